// Numeric helpers shared by the CPU and CUDA code: half decoding, thresholding, and the
// float32 error bound that decides when a similarity must be recomputed in float64.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CLIPCOV_HD __host__ __device__ inline
#else
#define CLIPCOV_HD inline
#endif

namespace clipcov {

// IEEE binary16 -> float, exact (subnormals, Inf and NaN included).
CLIPCOV_HD float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);  // Inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);  // normal: rebias 15 -> 127
  } else if (man == 0) {
    bits = sign;  // signed zero
  } else {  // subnormal half: man * 2^-24, exact in float
    float f = float(man) * 5.9604644775390625e-08f;
    return sign ? -f : f;
  }
  float f;
#if defined(__CUDA_ARCH__)
  f = __uint_as_float(bits);
#else
  std::memcpy(&f, &bits, sizeof f);
#endif
  return f;
}

// s+ = s if s > tau else 0 (the contract's thresholded similarity).
CLIPCOV_HD double splus(double s, double tau) { return s > tau ? s : 0.0; }
CLIPCOV_HD float splus(float s, float tau) { return s > tau ? s : 0.0f; }

// A float32 dot product of two rows (stored in float32 after rounding from float64) differs from
// the float64 value by at most (d + 8) * 2^-24 * |a| * |b| in any summation order (the classic
// gamma_d bound, plus the rounding of the stored rows). Entries of a thresholded sum that fall
// within this band of tau are recomputed in float64, so the decision s > tau is the float64 one.
CLIPCOV_HD double f32_dot_error_bound(int64_t d) { return double(d + 8) * (1.0 / 16777216.0); }

}  // namespace clipcov
