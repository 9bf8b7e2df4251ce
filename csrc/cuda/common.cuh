// Device-side basics for the CUDA kernels: reading a caller's row in any of the three input
// dtypes, warp/block reductions, and the host-side dtype dispatch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/precision.hpp"
#include "core/rank.hpp"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {

constexpr int kThreads = 256;  // every kernel here runs 256-thread blocks (8 warps)
constexpr int kWarps = kThreads / 32;

// Input values as float (tile loads) or double (exact dot products). float16 arrives as raw bits.
__device__ __forceinline__ float to_f(uint16_t h) { return half_to_float(h); }
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(double x) { return float(x); }
__device__ __forceinline__ double to_d(uint16_t h) { return double(half_to_float(h)); }
__device__ __forceinline__ double to_d(float x) { return double(x); }
__device__ __forceinline__ double to_d(double x) { return x; }

// A caller's n x d array on the device: contiguous rows, any row stride (in elements).
template <class T>
struct Src {
  const T* ptr;
  int64_t stride;
  __device__ const T* row(int64_t r) const { return ptr + r * stride; }
};

template <class T>
Src<T> src(const Input& in) {
  return Src<T>{static_cast<const T*>(in.ptr), in.stride};
}

// Warp sum; every lane gets the result.
__device__ __forceinline__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Float64 dot of a caller's row with a float64 vector in shared memory, by one warp.
template <class T>
__device__ __forceinline__ double warp_dot(const T* row, const double* x, int64_t d) {
  double s = 0.0;
  for (int64_t k = threadIdx.x % 32; k < d; k += 32) s += to_d(row[k]) * x[k];
  return warp_sum(s);
}

// Float64 dot of two caller's rows, by one warp (every lane gets the result).
template <class T>
__device__ __forceinline__ double warp_dot_rows(const T* x, const T* y, int64_t d) {
  double s = 0.0;
  for (int64_t k = threadIdx.x % 32; k < d; k += 32) s += to_d(x[k]) * to_d(y[k]);
  return warp_sum(s);
}

// Block-wide best (gain desc, index asc; index -1 = none); every thread gets the result.
// sg/si: kWarps slots of shared scratch.
__device__ inline void block_best(double& g, int32_t& i, double* sg, int32_t* si) {
  for (int off = 16; off > 0; off >>= 1) {
    const double og = __shfl_xor_sync(0xffffffffu, g, off);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (ranks_above(og, oi, g, i)) { g = og; i = oi; }
  }
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) { sg[warp] = g; si[warp] = i; }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kWarps; ++w)
      if (ranks_above(sg[w], si[w], sg[0], si[0])) { sg[0] = sg[w]; si[0] = si[w]; }
  __syncthreads();
  g = sg[0];
  i = si[0];
  __syncthreads();  // the scratch may be reused right after
}

// Host: throw on a CUDA error, naming the step.
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
  }
}
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

// Host: call f with a value of the element type that matches itemsize (2: float16 bits).
template <class F>
void by_dtype(int itemsize, F&& f) {
  switch (itemsize) {
    case 2: f(uint16_t{}); break;
    case 4: f(float{}); break;
    case 8: f(double{}); break;
    default: throw std::invalid_argument("inputs must be float16, float32 or float64");
  }
}

inline unsigned blocks_for(int64_t items, int64_t per_block) {
  return unsigned((items + per_block - 1) / per_block);
}

}  // namespace gpu
}  // namespace clipcov
