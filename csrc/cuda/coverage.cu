// Coverage on the GPU: for every class, the n_c x n_c block of s_ij = <a_i, b_j> is computed tile by
// tile in float32 FMA (a plain SIMT SGEMM: tensor-core fp16/TF32 products are too coarse for the
// contract), thresholded, and reduced by rows and columns in float64 in the same pass. Entries
// within the float32 error band of tau > 0 are queued and redone in float64 afterwards. No n_c x n_c
// buffer ever exists: a tile lives in registers.
#include <algorithm>
#include <vector>

#include "core/threshold.hpp"
#include "cuda/buffer.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {
namespace {

constexpr int kTile = 128;  // output tile kTile x kTile, 8 x 8 per thread
constexpr int kDepth = 16;  // k-slice staged in shared memory

struct Recheck {
  int64_t i, j;  // sorted rows
  double used;   // what the tile added for this entry
};

// Tile t of the list: the class holding it (binary search over the per-class tile prefix), then its
// row and column block inside that class.
__device__ inline void locate(int64_t t, const int64_t* tile_ptr, const int64_t* class_ptr, int64_t K, int64_t& i0,
                              int64_t& j0, int64_t& e) {
  int64_t lo = 0, hi = K;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (tile_ptr[mid] <= t) lo = mid;
    else hi = mid;
  }
  const int64_t b = class_ptr[lo];
  e = class_ptr[lo + 1];
  const int64_t nt = (e - b + kTile - 1) / kTile, local = t - tile_ptr[lo];
  i0 = b + (local / nt) * kTile;
  j0 = b + (local % nt) * kTile;
}

// Local row (or column) of a thread's r-th value: two bands of 4, 64 apart (float4 shared reads).
__device__ __forceinline__ int lane_pos(int t, int r) { return (r < 4 ? 0 : 64) + t * 4 + (r & 3); }

template <class T>
__global__ void __launch_bounds__(kThreads, 2)
    tiles_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const int64_t* class_ptr, const int64_t* tile_ptr,
            int64_t K, int64_t num_tiles, const double* sA, const double* sB, const double* nA, const double* nB,
            float tau32, double tau, double bound, double* rowsum, double* colsum, Recheck* queue,
            unsigned long long* queued, unsigned long long capacity) {
  __shared__ __align__(16) float As[kDepth][kTile + 4];
  __shared__ __align__(16) float Bs[kDepth][kTile + 4];
  __shared__ double colred[kWarps][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32, lane = tid % 32;
  const int lr = tid >> 1, lk = (tid & 1) * 8;  // loader: row lr, 8 consecutive k from lk

  for (int64_t t = blockIdx.x; t < num_tiles; t += gridDim.x) {
    int64_t i0, j0, e;
    locate(t, tile_ptr, class_ptr, K, i0, j0, e);
    const T* pa = i0 + lr < e ? A.row(order[i0 + lr]) : nullptr;
    const T* pb = j0 + lr < e ? B.row(order[j0 + lr]) : nullptr;
    float ra[8], rb[8];
    auto load = [&](int64_t k0) {
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const int64_t k = k0 + lk + q;
        ra[q] = (pa && k < d) ? to_f(pa[k]) : 0.0f;
        rb[q] = (pb && k < d) ? to_f(pb[k]) : 0.0f;
      }
    };
    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;

    load(0);
    for (int64_t k0 = 0; k0 < d; k0 += kDepth) {
      __syncthreads();  // the previous slice is consumed
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        As[lk + q][lr] = ra[q];
        Bs[lk + q][lr] = rb[q];
      }
      __syncthreads();
      if (k0 + kDepth < d) load(k0 + kDepth);  // in flight while this slice is multiplied
#pragma unroll
      for (int kk = 0; kk < kDepth; ++kk) {
        const float4 a0 = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
        const float4 a1 = *reinterpret_cast<const float4*>(&As[kk][64 + ty * 4]);
        const float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
        const float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][64 + tx * 4]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int r = 0; r < 8; ++r)
#pragma unroll
          for (int c = 0; c < 8; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
      }
    }

    // Epilogue: scale, threshold, queue the undecidable, reduce rows and columns in float64.
    // (All lanes run every shuffle: out-of-class entries add zero instead of skipping.)
    double cpart[8], sj[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const int64_t gj = j0 + lane_pos(tx, c);
      sj[c] = gj < e ? sB[gj] : 0.0;
      cpart[c] = 0.0;
    }
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const int64_t gi = i0 + lane_pos(ty, r);
      const bool row_ok = gi < e;
      const double si = row_ok ? sA[gi] : 0.0;
      const double bi = row_ok && tau != 0.0 ? bound * nA[gi] : 0.0;
      double rpart = 0.0;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t gj = j0 + lane_pos(tx, c);
        if (!row_ok || gj >= e) continue;
        const double band = tau != 0.0 ? bi * nB[gj] : 0.0;
        const TileEntry te = tile_entry(scaled_similarity(acc[r][c], si, sj[c]), tau32, tau, band);
        rpart += te.used;
        cpart[c] += te.used;
        if (te.recheck) {
          const unsigned long long q = atomicAdd(queued, 1ull);
          if (q < capacity) queue[q] = Recheck{gi, gj, te.used};
        }
      }
      // The 16 threads of a row band are one half-warp.
      for (int off = 8; off > 0; off >>= 1) rpart += __shfl_xor_sync(0xffffffffu, rpart, off);
      if (tx == 0 && row_ok) atomicAdd(rowsum + gi, rpart);
    }
    // Columns: combine the two row bands of a warp, then the 8 warps through shared memory.
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const double v = cpart[c] + __shfl_xor_sync(0xffffffffu, cpart[c], 16);
      if (lane < 16) colred[warp][lane_pos(tx, c)] = v;
    }
    __syncthreads();
    if (tid < kTile && j0 + tid < e) {
      double v = 0.0;
      for (int w = 0; w < kWarps; ++w) v += colred[w][tid];
      atomicAdd(colsum + j0 + tid, v);
    }
  }
}

// One warp per queued entry: the float64 similarity from the caller's values.
template <class T>
__global__ void recheck_k(Src<T> A, Src<T> B, int64_t d, const int64_t* order, const double* sA, const double* sB,
                          double tau, const Recheck* queue, int64_t count, double* rowsum, double* colsum) {
  const int64_t q = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (q >= count) return;
  const Recheck r = queue[q];
  const T* a = A.row(order[r.i]);
  const T* b = B.row(order[r.j]);
  double s = 0.0;
  for (int64_t k = threadIdx.x % 32; k < d; k += 32) s += to_d(a[k]) * to_d(b[k]);
  s = warp_sum(s);
  if (threadIdx.x % 32) return;
  const double delta = splus(s * sA[r.i] * sB[r.j], tau) - r.used;
  atomicAdd(rowsum + r.i, delta);
  atomicAdd(colsum + r.j, delta);
}

}  // namespace

void coverage(const Rows& r, double tau, double* rowsum, double* colsum) {
  std::vector<int64_t> cp(r.K + 1), tp(r.K + 1, 0);
  check(cudaMemcpy(cp.data(), r.class_ptr, cp.size() * sizeof(int64_t), cudaMemcpyDeviceToHost), "class_ptr");
  for (int64_t c = 0; c < r.K; ++c) {
    const int64_t nt = (cp[c + 1] - cp[c] + kTile - 1) / kTile;
    tp[c + 1] = tp[c] + nt * nt;
  }
  DeviceBuffer<int64_t> tile_ptr(r.K + 1, "tile list");
  tile_ptr.upload(tp);
  DeviceBuffer<unsigned long long> queued(1, "recheck counter");
  int64_t capacity = tau != 0.0 ? int64_t(1) << 20 : 0;
  DeviceBuffer<Recheck> queue(std::max<int64_t>(capacity, 1), "recheck queue");
  const unsigned grid = unsigned(std::min<int64_t>(tp[r.K], int64_t(1) << 24));
  const double bound = f32_dot_error_bound(r.d);
  for (;;) {
    check(cudaMemset(rowsum, 0, size_t(r.n) * sizeof(double)), "memset");
    check(cudaMemset(colsum, 0, size_t(r.n) * sizeof(double)), "memset");
    queued.zero();
    by_dtype(r.A.itemsize, [&](auto t) {
      using T = decltype(t);
      tiles_k<T><<<grid, kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.class_ptr, tile_ptr.get(), r.K,
                                     tp[r.K], r.sA, r.sB, r.nA, r.nB, float(tau), tau, bound, rowsum, colsum,
                                     queue.get(), queued.get(), (unsigned long long)capacity);
    });
    check_launch("coverage tiles");
    const int64_t count = int64_t(queued.download()[0]);
    if (count > capacity) {  // rare: the queue overflowed; redo the pass with room for all
      capacity = count + count / 4;
      queue.reset(capacity, "recheck queue");
      continue;
    }
    if (count > 0) {
      by_dtype(r.A.itemsize, [&](auto t) {
        using T = decltype(t);
        recheck_k<T><<<blocks_for(count, kWarps), kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.sA, r.sB,
                                                              tau, queue.get(), count, rowsum, colsum);
      });
      check_launch("coverage recheck");
    }
    check(cudaDeviceSynchronize(), "coverage");
    return;
  }
}

}  // namespace gpu
}  // namespace clipcov
