// Per-row terms in float64 straight from the caller's values: norms and scales, easiness, class
// means for the centre penalty, and the utility (initial gain).
#include <cmath>
#include <vector>

#include "cuda/buffer.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {

constexpr int64_t kSumRows = 1024;  // rows per partial of the class sums

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

// Sums of the scaled rows over one chunk of one class (chunks never cross classes), one column per
// thread, rows in order: with class_sums_k a fixed order, so the sums are the same bits every run.
template <class T>
__global__ void chunk_sums_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* chunk_lo,
                             const double* sA, const double* sB, double* part_img, double* part_txt) {
  const int64_t s0 = chunk_lo[blockIdx.x], s1 = chunk_lo[blockIdx.x + 1];
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
    double xa = 0, xb = 0;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t o = order[s];
      xa += to_d(A.row(o)[k]) * sA[s];
      xb += to_d(B.row(o)[k]) * sB[s];
    }
    part_img[int64_t(blockIdx.x) * d + k] = xa;
    part_txt[int64_t(blockIdx.x) * d + k] = xb;
  }
}

// Class sums from the chunk partials, in chunk order; one thread per (class, column).
__global__ void class_sums_k(int64_t K, int64_t d, const int64_t* first_chunk, const double* part_img,
                             const double* part_txt, double* sum_img, double* sum_txt) {
  const int64_t at = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (at >= K * d) return;
  const int64_t c = at / d, k = at % d;
  double xa = 0, xb = 0;
  for (int64_t q = first_chunk[c]; q < first_chunk[c + 1]; ++q) {
    xa += part_img[q * d + k];
    xb += part_txt[q * d + k];
  }
  sum_img[at] = xa;
  sum_txt[at] = xb;
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

// Chunks of at most kSumRows rows inside each class: chunk_lo (one past the last chunk: n) and the
// first chunk of each class.
static void sum_chunks(const std::vector<int64_t>& cp, std::vector<int64_t>& lo, std::vector<int64_t>& first) {
  lo.clear();
  first.assign(1, 0);
  for (size_t c = 0; c + 1 < cp.size(); ++c) {
    for (int64_t s = cp[c]; s < cp[c + 1]; s += kSumRows) lo.push_back(s);
    first.push_back(int64_t(lo.size()));
  }
  lo.push_back(cp.back());
}

int64_t class_sums_scratch_bytes(const std::vector<int64_t>& class_ptr, int64_t d) {
  std::vector<int64_t> lo, first;
  sum_chunks(class_ptr, lo, first);
  return (2 * (int64_t(lo.size()) - 1) * d + int64_t(lo.size() + first.size())) * 8;
}

void class_sums(const Rows& r, double* sum_img, double* sum_txt) {
  std::vector<int64_t> cp(r.K + 1), lo, first;
  check(cudaMemcpy(cp.data(), r.class_ptr, cp.size() * sizeof(int64_t), cudaMemcpyDeviceToHost), "class_ptr");
  sum_chunks(cp, lo, first);
  const int64_t chunks = int64_t(lo.size()) - 1;
  DeviceBuffer<int64_t> lo_d(int64_t(lo.size()), "class sum chunks"), first_d(int64_t(first.size()), "class sum chunks");
  lo_d.upload(lo);
  first_d.upload(first);
  DeviceBuffer<double> pi(chunks * r.d, "class sum partials"), pt(chunks * r.d, "class sum partials");
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    chunk_sums_k<T><<<unsigned(chunks), kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, lo_d.get(), r.sA, r.sB,
                                                   pi.get(), pt.get());
  });
  check_launch("class sums");
  class_sums_k<<<blocks_for(r.K * r.d, kThreads), kThreads>>>(r.K, r.d, first_d.get(), pi.get(), pt.get(), sum_img,
                                                              sum_txt);
  check_launch("class sums");
  check(cudaDeviceSynchronize(), "class sums");  // the partials are freed on return
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
