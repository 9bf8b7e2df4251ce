// Per-row terms in float64 straight from the caller's values: norms and scales, easiness, class
// means for the centre penalty, and the utility (initial gain).
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {
namespace {

// One warp per sorted row.
template <class T>
__global__ void row_stats_k(Src<T> A, Src<T> B, int64_t n, int64_t d, const int64_t* order, bool normalize,
                            double* na2, double* nb2, double* sA, double* sB, double* nA, double* nB,
                            double* easy) {
  const int64_t s = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (s >= n) return;
  const T* a = A.row(order[s]);
  const T* b = B.row(order[s]);
  double aa = 0, bb = 0, ab = 0;
  for (int64_t k = threadIdx.x % 32; k < d; k += 32) {
    const double x = to_d(a[k]), y = to_d(b[k]);
    aa += x * x;
    bb += y * y;
    ab += x * y;
  }
  aa = warp_sum(aa);
  bb = warp_sum(bb);
  ab = warp_sum(ab);
  if (threadIdx.x % 32) return;
  const double na = sqrt(aa), nb = sqrt(bb);
  const double sa = normalize ? 1.0 / na : 1.0, sb = normalize ? 1.0 / nb : 1.0;
  na2[s] = aa;
  nb2[s] = bb;
  sA[s] = sa;
  sB[s] = sb;
  nA[s] = normalize ? 1.0 : na;
  nB[s] = normalize ? 1.0 : nb;
  easy[s] = ab * sa * sb;
}

// Column k of a run of 64 sorted rows, summed per class (runs may cross class borders).
template <class T>
__global__ void class_sums_k(Src<T> A, Src<T> B, int64_t n, int64_t d, const int64_t* order, const int32_t* cls,
                             const double* sA, const double* sB, double* sum_img, double* sum_txt) {
  const int64_t s0 = int64_t(blockIdx.x) * 64, s1 = min(n, s0 + 64);
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
    double xa = 0, xb = 0;
    int32_t cur = cls[s0];
    for (int64_t s = s0; s < s1; ++s) {
      if (cls[s] != cur) {
        atomicAdd(sum_img + int64_t(cur) * d + k, xa);
        atomicAdd(sum_txt + int64_t(cur) * d + k, xb);
        xa = xb = 0;
        cur = cls[s];
      }
      const int64_t o = order[s];
      xa += to_d(A.row(o)[k]) * sA[s];
      xb += to_d(B.row(o)[k]) * sB[s];
    }
    atomicAdd(sum_img + int64_t(cur) * d + k, xa);
    atomicAdd(sum_txt + int64_t(cur) * d + k, xb);
  }
}

// cen = <a, other_txt_c> + <b, other_img_c>, one warp per sorted row.
template <class T>
__global__ void center_k(Src<T> A, Src<T> B, int64_t n, int64_t d, const int64_t* order, const int32_t* cls,
                         const double* sA, const double* sB, const double* oI, const double* oT, double* cen) {
  const int64_t s = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (s >= n) return;
  const int64_t c = cls[s];
  const double x = warp_dot(A.row(order[s]), oT + c * d, d);
  const double y = warp_dot(B.row(order[s]), oI + c * d, d);
  if (threadIdx.x % 32 == 0) cen[s] = x * sA[s] + y * sB[s];
}

__global__ void utility_k(int64_t n, const int64_t* order, const double* base, double w_base, const double* easy,
                          double w_easy, const double* cen, double w_center, const double* extra, double* util) {
  const int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= n) return;
  util[s] = w_base * base[s] + w_easy * easy[s] + extra[order[s]] - w_center * cen[s];
}

__global__ void finish_coverage_k(int64_t n, const int32_t* cls, const int64_t* class_ptr, double* rowsum,
                                  const double* colsum) {
  const int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= n) return;
  const int32_t c = cls[s];
  rowsum[s] = (rowsum[s] + colsum[s]) / double(class_ptr[c + 1] - class_ptr[c]);
}

}  // namespace

void row_stats(const Rows& r, bool normalize, double* na2, double* nb2, double* easy) {
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    row_stats_k<T><<<blocks_for(r.n, kWarps), kThreads>>>(src<T>(r.A), src<T>(r.B), r.n, r.d, r.order, normalize,
                                                         na2, nb2, r.sA, r.sB, r.nA, r.nB, easy);
  });
  check_launch("row_stats");
}

void class_sums(const Rows& r, double* sum_img, double* sum_txt) {
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    class_sums_k<T><<<blocks_for(r.n, 64), kThreads>>>(src<T>(r.A), src<T>(r.B), r.n, r.d, r.order, r.cls, r.sA,
                                                      r.sB, sum_img, sum_txt);
  });
  check_launch("class_sums");
}

void center(const Rows& r, const double* other_img, const double* other_txt, double* cen) {
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    center_k<T><<<blocks_for(r.n, kWarps), kThreads>>>(src<T>(r.A), src<T>(r.B), r.n, r.d, r.order, r.cls, r.sA,
                                                      r.sB, other_img, other_txt, cen);
  });
  check_launch("center");
}

void utility(const Rows& r, const double* base, double w_base, const double* easy, double w_easy,
             const double* cen, double w_center, const double* extra, double* util) {
  utility_k<<<blocks_for(r.n, kThreads), kThreads>>>(r.n, r.order, base, w_base, easy, w_easy, cen, w_center,
                                                     extra, util);
  check_launch("utility");
}

void finish_coverage(const Rows& r, double* rowsum, const double* colsum) {
  finish_coverage_k<<<blocks_for(r.n, kThreads), kThreads>>>(r.n, r.cls, r.class_ptr, rowsum, colsum);
  check_launch("finish_coverage");
}

}  // namespace gpu
}  // namespace clipcov
