// ClipCov greedy on the GPU: one block per class, all classes at once in one launch, each running
// the lazy greedy of core/greedy.hpp to its target. A stale gain is an upper bound
// (submodularity), so the best bound is the true maximum once it is caught up with the picks made
// since its version. The argmax is two-level: a best per chunk of 1024 members, refreshed only for
// the chunk that changed, and a scan over the chunk bests. The catch-up of a candidate against
// its missed picks runs across the block's warps, in float64 from the caller's values (exact
// similarities: no threshold band needed here).
#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/buffer.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {
namespace {

__device__ void refresh_chunk(int64_t q, int64_t b, int64_t m, int64_t cb, GreedyState g, double* sg, int32_t* si) {
  const int64_t lo = q * kChunk, hi = min(m, lo + kChunk);
  double best = -INFINITY;
  int32_t at = -1;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
    if (g.ver[b + i] >= 0 && ranks_above(g.gain[b + i], i, best, at)) {
      best = g.gain[b + i];
      at = int32_t(i);
    }
  block_best(best, at, sg, si);
  if (threadIdx.x == 0) {
    g.chunk_g[cb + q] = best;
    g.chunk_i[cb + q] = at;
  }
  __syncthreads();
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    lazy_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* class_ptr, const double* sA,
           const double* sB, GreedyState g, const int32_t* classes, const int64_t* target, double tau,
           double w_red) {
  extern __shared__ double cand[];  // a_i (d) then b_i (d), scaled, float64
  __shared__ double sg[kWarps], wsum[kWarps];
  __shared__ int32_t si[kWarps];
  const int64_t c = classes[blockIdx.x];
  const int64_t b = class_ptr[c], m = class_ptr[c + 1] - b, cb = g.chunk_ptr[c];
  const int64_t nch = (m + kChunk - 1) / kChunk, goal = min(target[c], m);
  const double scale = w_red / double(m);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t N = g.count[c];
  if (N >= goal) return;
  for (int64_t q = 0; q < nch; ++q) refresh_chunk(q, b, m, cb, g, sg, si);

  while (N < goal) {
    double best = -INFINITY;
    int32_t li = -1;
    for (int64_t q = threadIdx.x; q < nch; q += blockDim.x)
      if (ranks_above(g.chunk_g[cb + q], g.chunk_i[cb + q], best, li)) {
        best = g.chunk_g[cb + q];
        li = g.chunk_i[cb + q];
      }
    block_best(best, li, sg, si);
    if (li < 0) break;  // nobody left (cannot happen while N < goal <= m)
    const int32_t v = g.ver[b + li];
    // Every thread has read the version before thread 0 may overwrite it (-1 on a pick, N after a
    // catch-up): a late warp that read the new value would take the other branch and pair its
    // barriers with the wrong ones.
    __syncthreads();
    if (v == N || scale == 0.0) {  // exact and ahead of every upper bound: the greedy's pick
      if (threadIdx.x == 0) {
        g.pick_local[b + N] = li;
        g.pick_gain[b + N] = best;
        g.ver[b + li] = -1;
      }
      ++N;
      __syncthreads();
      refresh_chunk(li / kChunk, b, m, cb, g, sg, si);
      continue;
    }
    // Catch up with picks [v, N): w = s+(<a_i, b_j>) + s+(<a_j, b_i>).
    const int64_t row = b + li;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
      cand[k] = to_d(A.row(order[row])[k]) * sA[row];
      cand[d + k] = to_d(B.row(order[row])[k]) * sB[row];
    }
    __syncthreads();
    double acc = 0.0;
    for (int64_t p = v + warp; p < N; p += kWarps) {
      const int64_t j = b + g.pick_local[b + p];
      const double sij = warp_dot(B.row(order[j]), cand, d) * sB[j];
      const double sji = warp_dot(A.row(order[j]), cand + d, d) * sA[j];
      acc += splus(sij, tau) + splus(sji, tau);
    }
    if (lane == 0) wsum[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      double sum = 0.0;
      for (int w = 0; w < kWarps; ++w) sum += wsum[w];
      g.gain[row] = best - scale * sum;
      g.ver[row] = int32_t(N);
    }
    __syncthreads();
    refresh_chunk(li / kChunk, b, m, cb, g, sg, si);
  }
  if (threadIdx.x == 0) g.count[c] = N;
}

}  // namespace

void lazy_greedy(const Rows& r, const GreedyState& g, const std::vector<int32_t>& classes, const int64_t* target,
                 double tau, double w_red) {
  if (classes.empty()) return;
  DeviceBuffer<int32_t> list(int64_t(classes.size()), "class list");
  list.upload(classes);
  const size_t shared = size_t(2 * r.d) * sizeof(double);
  by_dtype(r.A.itemsize, [&](auto t) {
    using T = decltype(t);
    check(cudaFuncSetAttribute(lazy_k<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)),
          "lazy greedy shared memory");
    lazy_k<T><<<unsigned(classes.size()), kThreads, shared>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.class_ptr,
                                                              r.sA, r.sB, g, list.get(), target, tau, w_red);
  });
  check_launch("lazy greedy");
  check(cudaDeviceSynchronize(), "lazy greedy");
}

}  // namespace gpu
}  // namespace clipcov
