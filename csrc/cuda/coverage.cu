// Coverage on the GPU: for every class, the n_c x n_c block of s_ij = <a_i, b_j> is computed tile by
// tile in float32 FMA (a plain SIMT SGEMM: tensor-core fp16/TF32 products are too coarse for the
// contract), thresholded, and reduced by rows and columns in float64 in the same pass. Rows are
// scaled in float64 as they are loaded (the CPU store's float32 values). Entries within the float32
// error band of tau > 0 are redone in float64 by their warp inside the pass, so there is no queue to
// overflow. Sums are reproducible bit for bit: each tile writes its row and column partials, and a
// second kernel adds them in tile order (no floating-point atomics). The tiles run in batches of
// whole tile rows so that the partials stay bounded (coverage_batch_tiles). No n_c x n_c buffer
// ever exists: a tile lives in registers.
#include <algorithm>
#include <cstdlib>
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
constexpr int64_t kBatchTiles = int64_t(1) << 15;  // partials of 32,768 tiles: 64 MiB

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
            int64_t K, int64_t t0, int64_t t1, const double* sA, const double* sB, const double* nA,
            const double* nB, float tau32, double tau, double bound, double* rowpart, double* colpart) {
  __shared__ __align__(16) float As[kDepth][kTile + 4];
  __shared__ __align__(16) float Bs[kDepth][kTile + 4];
  __shared__ double colred[kWarps][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32, lane = tid % 32;
  const int lr = tid >> 1, lk = (tid & 1) * 8;  // loader: row lr, 8 consecutive k from lk

  for (int64_t t = t0 + blockIdx.x; t < t1; t += gridDim.x) {
    int64_t i0, j0, e;
    locate(t, tile_ptr, class_ptr, K, i0, j0, e);
    const int64_t la = i0 + lr, lb = j0 + lr;
    const T* pa = la < e ? A.row(order[la]) : nullptr;
    const T* pb = lb < e ? B.row(order[lb]) : nullptr;
    const double sa = pa ? sA[la] : 0.0, sb = pb ? sB[lb] : 0.0;
    float ra[8], rb[8];
    auto load = [&](int64_t k0) {
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const int64_t k = k0 + lk + q;
        ra[q] = (pa && k < d) ? stored_f32(to_d(pa[k]), sa) : 0.0f;
        rb[q] = (pb && k < d) ? stored_f32(to_d(pb[k]), sb) : 0.0f;
      }
    };
    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;

    load(0);
    for (int64_t k0 = 0; k0 < d; k0 += kDepth) {
      __syncthreads();  // the previous slice (or the previous tile's column partials) is consumed
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

    // Epilogue: threshold, reduce rows and columns in float64 in a fixed order. An entry whose
    // float32 decision may differ from the float64 one adds nothing here and is flagged instead.
    double rsum[8], cpart[8], nbj[8];
    unsigned long long flagged = 0;  // bit r * 8 + c
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const int64_t gj = j0 + lane_pos(tx, c);
      nbj[c] = gj < e ? nB[gj] : 0.0;
      cpart[c] = 0.0;
    }
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const int64_t gi = i0 + lane_pos(ty, r);
      const bool row_ok = gi < e;
      const double bi = row_ok ? bound * nA[gi] : 0.0;
      rsum[r] = 0.0;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        if (!row_ok || j0 + lane_pos(tx, c) >= e) continue;  // out of the class: adds zero
        const TileEntry te = tile_entry(acc[r][c], tau32, tau, bi * nbj[c]);
        if (te.recheck) flagged |= 1ull << (r * 8 + c);
        const double v = te.recheck ? 0.0 : te.used;
        rsum[r] += v;
        cpart[c] += v;
      }
    }
    // Flagged entries (tau > 0 only): the warp computes each one's float64 similarity from the
    // caller's values together (coalesced), lowest lane and lowest entry first; its owner adds it.
    for (;;) {
      const unsigned lanes = __ballot_sync(0xffffffffu, flagged != 0);
      if (!lanes) break;
      const int src = __ffs(lanes) - 1;
      const int p = __shfl_sync(0xffffffffu, flagged ? __ffsll((long long)flagged) - 1 : 0, src);
      const int r = p / 8, c = p % 8, src_tid = warp * 32 + src;
      const int64_t gi = i0 + lane_pos(src_tid / 16, r), gj = j0 + lane_pos(src_tid % 16, c);
      const double v = splus(warp_dot_rows(A.row(order[gi]), B.row(order[gj]), d) * sA[gi] * sB[gj], tau);
      if (lane == src) {
        flagged &= flagged - 1;
#pragma unroll
        for (int q = 0; q < 8; ++q) {  // constant indices keep rsum and cpart in registers
          if (q == r) rsum[q] += v;
          if (q == c) cpart[q] += v;
        }
      }
    }
    const int64_t slot = (t - t0) * kTile;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      double v = rsum[r];  // the 16 threads of a row band are one half-warp
      for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (tx == 0) rowpart[slot + lane_pos(ty, r)] = v;
    }
    // Columns: combine the two row bands of a warp, then the 8 warps in order.
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const double v = cpart[c] + __shfl_xor_sync(0xffffffffu, cpart[c], 16);
      if (lane < 16) colred[warp][lane_pos(tx, c)] = v;
    }
    __syncthreads();
    if (tid < kTile) {
      double v = 0.0;
      for (int w = 0; w < kWarps; ++w) v += colred[w][tid];
      colpart[slot + tid] = v;
    }
  }
}

// Adds one batch's tile partials to the sums of sorted rows [s0, s1), each in tile order: a row's
// over its tile row (tj ascending), a column's over its tile column (ti ascending). A batch holds
// whole tile rows, so a row sum comes from one batch; a column's from several, added in batch order.
__global__ void add_partials_k(int64_t s0, int64_t s1, const int64_t* class_ptr, const int64_t* tile_ptr,
                               const int32_t* cls, int64_t t0, int64_t t1, const double* rowpart,
                               const double* colpart, double* rowsum, double* colsum) {
  const int64_t s = s0 + int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= s1) return;
  const int64_t c = cls[s], b = class_ptr[c], nt = (class_ptr[c + 1] - b + kTile - 1) / kTile, tc = tile_ptr[c];
  const int64_t lo = max(t0, tc), hi = min(t1, tc + nt * nt);
  if (lo >= hi) return;  // no tile of this class in the batch
  const int64_t q = (s - b) / kTile, at = (s - b) % kTile;
  const int64_t r0 = (lo - tc) / nt, r1 = (hi - tc) / nt;  // the class's tile rows in the batch
  if (q >= r0 && q < r1) {
    double v = 0.0;
    for (int64_t tj = 0; tj < nt; ++tj) v += rowpart[(tc + q * nt + tj - t0) * kTile + at];
    rowsum[s] += v;
  }
  double v = 0.0;
  for (int64_t ti = r0; ti < r1; ++ti) v += colpart[(tc + ti * nt + q - t0) * kTile + at];
  colsum[s] += v;
}

}  // namespace

int64_t coverage_batch_tiles(const std::vector<int64_t>& class_ptr) {
  // CLIPCOV_CUDA_BATCH_TILES, a debug setting, makes batches smaller so that tests with small inputs
  // cross batch borders.
  const char* setting = std::getenv("CLIPCOV_CUDA_BATCH_TILES");
  int64_t widest = 0;  // a batch must hold the longest tile row
  for (size_t c = 0; c + 1 < class_ptr.size(); ++c)
    widest = std::max(widest, (class_ptr[c + 1] - class_ptr[c] + kTile - 1) / kTile);
  return std::max(setting ? std::max<int64_t>(1, std::atoll(setting)) : kBatchTiles, widest);
}

int64_t coverage_scratch_bytes(const std::vector<int64_t>& class_ptr) {
  return 2 * coverage_batch_tiles(class_ptr) * kTile * int64_t(sizeof(double)) +
         int64_t(class_ptr.size()) * int64_t(sizeof(int64_t));
}

void coverage(const Rows& r, double tau, double* rowsum, double* colsum) {
  std::vector<int64_t> cp(r.K + 1), tp(r.K + 1, 0);
  check(cudaMemcpy(cp.data(), r.class_ptr, cp.size() * sizeof(int64_t), cudaMemcpyDeviceToHost), "class_ptr");
  for (int64_t c = 0; c < r.K; ++c) {
    const int64_t nt = (cp[c + 1] - cp[c] + kTile - 1) / kTile;
    tp[c + 1] = tp[c] + nt * nt;
  }
  DeviceBuffer<int64_t> tile_ptr(r.K + 1, "tile list");
  tile_ptr.upload(tp);
  const int64_t cap = coverage_batch_tiles(cp);
  DeviceBuffer<double> rowpart(cap * kTile, "coverage partials"), colpart(cap * kTile, "coverage partials");
  check(cudaMemset(rowsum, 0, size_t(r.n) * sizeof(double)), "memset");
  check(cudaMemset(colsum, 0, size_t(r.n) * sizeof(double)), "memset");
  const double bound = f32_dot_error_bound(r.d);
  // Tiles [t0, t1) of classes [c0, c1]: their partials, then the sums of those classes' rows.
  auto run = [&](int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
    const unsigned grid = unsigned(std::min<int64_t>(t1 - t0, int64_t(1) << 24));
    by_dtype(r.A.itemsize, [&](auto t) {
      using T = decltype(t);
      tiles_k<T><<<grid, kThreads>>>(src<T>(r.A), src<T>(r.B), r.d, r.order, r.class_ptr, tile_ptr.get(), r.K,
                                     t0, t1, r.sA, r.sB, r.nA, r.nB, float(tau), tau, bound, rowpart.get(),
                                     colpart.get());
    });
    check_launch("coverage tiles");
    add_partials_k<<<blocks_for(cp[c1 + 1] - cp[c0], kThreads), kThreads>>>(
        cp[c0], cp[c1 + 1], r.class_ptr, tile_ptr.get(), r.cls, t0, t1, rowpart.get(), colpart.get(), rowsum,
        colsum);
    check_launch("coverage sums");
  };
  // Batches of whole tile rows, at most cap tiles each, in tile order.
  int64_t t0 = 0, c0 = 0;
  for (int64_t c = 0; c < r.K; ++c) {
    const int64_t nt = (cp[c + 1] - cp[c] + kTile - 1) / kTile;
    for (int64_t ti = 0; ti < nt; ++ti) {
      const int64_t t = tp[c] + ti * nt;  // first tile of this tile row
      if (t + nt - t0 > cap) {
        run(t0, t, c0, c);
        t0 = t;
        c0 = c;
      }
    }
  }
  run(t0, tp[r.K], c0, r.K - 1);
  check(cudaDeviceSynchronize(), "coverage");
}

}  // namespace gpu
}  // namespace clipcov
