// objective="xcov" on the GPU, all in float64 from the caller's values.
// Initial gains: per class M_c = sum_i a_i b_i^T (d x d), then g_i = 2 (k/n) a_i^T M_c b_i - |a_i|^2 |b_i|^2,
// classes in batches so that the d x d matrices fit in a bounded buffer.
// Greedy: not submodular, so every pick updates every unpicked member of its class
// (g_i -= 2 <a_i, a_j> <b_i, b_j>). All classes advance together, one pick per class per round:
// one launch updates and reduces 1024-member segments, a second picks per class.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cuda/buffer.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {
namespace {

constexpr int kM = 32;  // M tile edge, and rows per slice

// Mt[q][p] = sum over the class's rows of a[p] b[q] (stored transposed for the gain kernel).
template <class T>
__global__ void __launch_bounds__(kThreads)
    outer_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* class_ptr, const double* sA,
            const double* sB, int64_t c0, double* Mt) {
  __shared__ double sa[kM][kM + 1], sb[kM][kM + 1];
  const int64_t c = c0 + blockIdx.z, b = class_ptr[c], e = class_ptr[c + 1];
  const int64_t p0 = int64_t(blockIdx.y) * kM, q0 = int64_t(blockIdx.x) * kM;
  const int tx = threadIdx.x % kM, ty = threadIdx.x / kM;  // 32 x 8
  double acc[4] = {0, 0, 0, 0};
  for (int64_t s0 = b; s0 < e; s0 += kM) {
    __syncthreads();
    for (int rr = ty; rr < kM; rr += kWarps) {
      const int64_t s = s0 + rr;
      const bool ok = s < e;
      sa[rr][tx] = ok && p0 + tx < d ? to_d(A.row(order[s])[p0 + tx]) * sA[s] : 0.0;
      sb[rr][tx] = ok && q0 + tx < d ? to_d(B.row(order[s])[q0 + tx]) * sB[s] : 0.0;
    }
    __syncthreads();
    for (int rr = 0; rr < kM; ++rr)
#pragma unroll
      for (int u = 0; u < 4; ++u) acc[u] += sa[rr][ty + kWarps * u] * sb[rr][tx];
  }
  double* out = Mt + int64_t(blockIdx.z) * d * d;
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t p = p0 + ty + kWarps * u, q = q0 + tx;
    if (p < d && q < d) out[q * d + p] = acc[u];
  }
}

// g = 2 ratio a^T M b - |a|^2 |b|^2 for kM rows of one class (a block of the row-block list).
template <class T>
__global__ void __launch_bounds__(kThreads)
    gains_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* class_ptr, const double* sA,
            const double* sB, const double* nA, const double* nB, int64_t c0, const int64_t* blk_row,
            const int32_t* blk_cls, const double* Mt, double ratio, double* gains) {
  __shared__ double sb[kM][kM + 1], red[kWarps][kM];
  const int64_t s0 = blk_row[blockIdx.x], c = blk_cls[blockIdx.x], e = class_ptr[c + 1];
  const double* M = Mt + (c - c0) * d * d;
  double part[kM];
#pragma unroll
  for (int r = 0; r < kM; ++r) part[r] = 0.0;
  for (int64_t p0 = 0; p0 < d; p0 += kThreads) {
    const int64_t p = p0 + threadIdx.x;
    double acc[kM];
#pragma unroll
    for (int r = 0; r < kM; ++r) acc[r] = 0.0;
    for (int64_t q0 = 0; q0 < d; q0 += kM) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kM * kM; idx += kThreads) {
        const int r = idx / kM, qq = idx % kM;
        const int64_t s = s0 + r;
        sb[r][qq] = s < e && q0 + qq < d ? to_d(B.row(order[s])[q0 + qq]) * sB[s] : 0.0;
      }
      __syncthreads();
      if (p < d)
        for (int qq = 0; qq < kM && q0 + qq < d; ++qq) {
          const double mv = M[(q0 + qq) * d + p];
#pragma unroll
          for (int r = 0; r < kM; ++r) acc[r] += mv * sb[r][qq];
        }
    }
    if (p < d)
#pragma unroll
      for (int r = 0; r < kM; ++r) {
        const int64_t s = s0 + r;
        if (s < e) part[r] += to_d(A.row(order[s])[p]) * sA[s] * acc[r];
      }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kM; ++r) {
    const double v = warp_sum(part[r]);
    if (lane == 0) red[warp][r] = v;
  }
  __syncthreads();
  if (threadIdx.x < kM) {
    const int64_t s = s0 + threadIdx.x;
    double v = 0.0;
    for (int w = 0; w < kWarps; ++w) v += red[w][threadIdx.x];
    if (s < e) gains[s] = 2.0 * ratio * v - nA[s] * nA[s] * nB[s] * nB[s];
  }
}

// Round step 1: apply each class's last pick to a segment of its members, then the segment's best.
template <class T>
__global__ void __launch_bounds__(kThreads)
    round_update_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* class_ptr, const double* sA,
                   const double* sB, GreedyState g, const int32_t* seg_cls, const int64_t* seg_lo, double* part_g,
                   int32_t* part_i) {
  extern __shared__ double pick[];  // a_j then b_j, scaled
  __shared__ double sg[kWarps];
  __shared__ int32_t si[kWarps];
  const int64_t c = seg_cls[blockIdx.x], b = class_ptr[c], e = class_ptr[c + 1];
  const int64_t lo = seg_lo[blockIdx.x], hi = min(e, lo + kSegment);
  const int32_t last = g.last[c];
  if (last >= 0) {
    const int64_t j = b + last;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
      pick[k] = to_d(A.row(order[j])[k]) * sA[j];
      pick[d + k] = to_d(B.row(order[j])[k]) * sB[j];
    }
    __syncthreads();
  }
  const int warp = threadIdx.x / 32;
  double best = -INFINITY;
  int32_t at = -1;
  for (int64_t s = lo + warp; s < hi; s += kWarps) {
    if (g.ver[s] < 0) continue;
    double gs = g.gain[s];
    if (last >= 0) {
      const double aa = warp_dot(A.row(order[s]), pick, d) * sA[s];
      const double bb = warp_dot(B.row(order[s]), pick + d, d) * sB[s];
      gs -= 2.0 * aa * bb;
      if (threadIdx.x % 32 == 0) g.gain[s] = gs;
    }
    if (ranks_above(gs, int32_t(s - b), best, at)) {
      best = gs;
      at = int32_t(s - b);
    }
  }
  block_best(best, at, sg, si);
  if (threadIdx.x == 0) {
    part_g[blockIdx.x] = best;
    part_i[blockIdx.x] = at;
  }
}

// Round step 2: one warp per active class picks the best of its segments.
__global__ void round_pick_k(int64_t active, const int32_t* classes, const int64_t* first_seg,
                             const int64_t* class_ptr, GreedyState g, const double* part_g, const int32_t* part_i) {
  const int64_t a = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (a >= active) return;
  const int lane = threadIdx.x % 32;
  double best = -INFINITY;
  int32_t at = -1;
  for (int64_t q = first_seg[a] + lane; q < first_seg[a + 1]; q += 32)
    if (ranks_above(part_g[q], part_i[q], best, at)) {
      best = part_g[q];
      at = part_i[q];
    }
  for (int off = 16; off > 0; off >>= 1) {
    const double og = __shfl_xor_sync(0xffffffffu, best, off);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, at, off);
    if (ranks_above(og, oi, best, at)) { best = og; at = oi; }
  }
  if (lane != 0 || at < 0) return;
  const int64_t c = classes[a], b = class_ptr[c], N = g.count[c];
  g.pick_local[b + N] = at;
  g.pick_gain[b + N] = best;
  g.ver[b + at] = -1;
  g.last[c] = at;
  g.count[c] = N + 1;
}

}  // namespace

// Classes whose d x d matrices are held at once: <= 1 GiB (or one class), <= 65535 (grid z).
static int64_t xcov_batch(int64_t K, int64_t d) {
  return std::max<int64_t>(1, std::min<int64_t>({K, (int64_t(1) << 27) / (d * d), 65535}));
}

int64_t xcov_initial_scratch_bytes(const std::vector<int64_t>& class_ptr, int64_t d) {
  const int64_t K = int64_t(class_ptr.size()) - 1, n = class_ptr.back();
  return xcov_batch(K, d) * d * d * 8 + (n / kM + K) * 12;  // matrices, row-block list
}

int64_t xcov_greedy_scratch_bytes(const std::vector<int64_t>& class_ptr) {
  const int64_t K = int64_t(class_ptr.size()) - 1, segs = class_ptr.back() / kSegment + K;
  return K * 4 + segs * (4 + 8 + 8 + 4) + (K + 1) * 8;  // classes, segments and partials, first segments
}

void xcov_initial(const Rows& r, double ratio, double* gains) {
  std::vector<int64_t> cp(r.K + 1);
  check(cudaMemcpy(cp.data(), r.class_ptr, cp.size() * sizeof(int64_t), cudaMemcpyDeviceToHost), "class_ptr");
  const int64_t per = r.d * r.d;
  const int64_t batch = xcov_batch(r.K, r.d);
  DeviceBuffer<double> Mt(batch * per, "xcov d x d matrices");
  DeviceBuffer<int64_t> blk_row;
  DeviceBuffer<int32_t> blk_cls;
  const unsigned tiles = unsigned((r.d + kM - 1) / kM);
  for (int64_t c0 = 0; c0 < r.K; c0 += batch) {
    const int64_t c1 = std::min(r.K, c0 + batch);
    std::vector<int64_t> rows;
    std::vector<int32_t> cls;
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t s = cp[c]; s < cp[c + 1]; s += kM) {
        rows.push_back(s);
        cls.push_back(int32_t(c));
      }
    blk_row.reset(int64_t(rows.size()), "xcov row blocks");
    blk_cls.reset(int64_t(cls.size()), "xcov row blocks");
    blk_row.upload(rows);
    blk_cls.upload(cls);
    by_dtype(r.A.itemsize, [&](auto t) {
      using T = decltype(t);
      outer_k<T><<<dim3(tiles, tiles, unsigned(c1 - c0)), kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order,
                                                                       r.class_ptr, r.sA, r.sB, c0, Mt.get());
      check_launch("xcov outer products");
      gains_k<T><<<unsigned(rows.size()), kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.class_ptr, r.sA,
                                                      r.sB, r.nA, r.nB, c0, blk_row.get(), blk_cls.get(), Mt.get(),
                                                      ratio, gains);
      check_launch("xcov initial gains");
    });
  }
  check(cudaDeviceSynchronize(), "xcov initial gains");
}

void xcov_greedy(const Rows& r, const GreedyState& g, const std::vector<int32_t>& classes,
                 const std::vector<int64_t>& remaining) {
  if (classes.empty()) return;
  std::vector<int64_t> cp(r.K + 1);
  check(cudaMemcpy(cp.data(), r.class_ptr, cp.size() * sizeof(int64_t), cudaMemcpyDeviceToHost), "class_ptr");
  // Classes by remaining picks, descending: the active ones of any round are a prefix, and so are
  // their segments.
  std::vector<size_t> idx(classes.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return remaining[x] > remaining[y]; });
  std::vector<int32_t> cls_sorted, seg_cls;
  std::vector<int64_t> rem_sorted, seg_lo, first_seg{0};
  for (size_t t : idx) {
    const int32_t c = classes[t];
    cls_sorted.push_back(c);
    rem_sorted.push_back(remaining[t]);
    for (int64_t s = cp[c]; s < cp[c + 1]; s += kSegment) {
      seg_cls.push_back(c);
      seg_lo.push_back(s);
    }
    first_seg.push_back(int64_t(seg_lo.size()));
  }
  DeviceBuffer<int32_t> d_cls(int64_t(cls_sorted.size()), "xcov classes"), d_seg_cls(int64_t(seg_cls.size()), "xcov segments");
  DeviceBuffer<int64_t> d_seg_lo(int64_t(seg_lo.size()), "xcov segments"), d_first(int64_t(first_seg.size()), "xcov segments");
  DeviceBuffer<double> part_g(int64_t(seg_lo.size()), "xcov partials");
  DeviceBuffer<int32_t> part_i(int64_t(seg_lo.size()), "xcov partials");
  d_cls.upload(cls_sorted);
  d_seg_cls.upload(seg_cls);
  d_seg_lo.upload(seg_lo);
  d_first.upload(first_seg);
  const size_t shared = size_t(2 * r.d) * sizeof(double);
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    check(cudaFuncSetAttribute(round_update_k<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)),
          "xcov shared memory");
    int64_t active = int64_t(cls_sorted.size());
    for (int64_t round = 0; round < rem_sorted.front(); ++round) {
      while (active > 0 && rem_sorted[active - 1] <= round) --active;
      const int64_t segs = first_seg[active];
      round_update_k<T><<<unsigned(segs), kThreads, shared>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.class_ptr,
                                                              r.sA, r.sB, g, d_seg_cls.get(), d_seg_lo.get(),
                                                              part_g.get(), part_i.get());
      round_pick_k<<<blocks_for(active, kWarps), kThreads>>>(active, d_cls.get(), d_first.get(), r.class_ptr, g,
                                                             part_g.get(), part_i.get());
    }
  });
  check_launch("xcov greedy");
  check(cudaDeviceSynchronize(), "xcov greedy");
}

}  // namespace gpu
}  // namespace clipcov
