// A read-only view of a caller's 2-D array (float16/32/64, any strides), read row by row in
// float64. The engine keeps such views of the original inputs to recompute, in float64, the few
// similarities whose float32 value is too close to the threshold to decide.
#pragma once
#include <cstdint>
#if defined(__F16C__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

#include "precision.hpp"

namespace clipcov {

struct SourceView {
  const char* ptr = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t stride_row = 0, stride_col = 0;  // in bytes
  int itemsize = 4;                        // 2: float16, 4: float32, 8: float64

  double at(int64_t i, int64_t k) const {
    const char* p = ptr + i * stride_row + k * stride_col;
    switch (itemsize) {
      case 2: return half_to_float(*reinterpret_cast<const uint16_t*>(p));
      case 4: return *reinterpret_cast<const float*>(p);
      default: return *reinterpret_cast<const double*>(p);
    }
  }

  template <class T>
  void row_as(int64_t i, double* out) const {
    const char* p = ptr + i * stride_row;
#if defined(__F16C__) && !defined(__CUDACC__)
    if constexpr (sizeof(T) == 2) {
      if (stride_col == 2) {  // contiguous float16: 8 at a time with the F16C instructions
        int64_t k = 0;
        for (; k + 8 <= cols; k += 8) {
          __m256 f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k)));
          _mm256_storeu_pd(out + k, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
          _mm256_storeu_pd(out + k + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
        }
        for (; k < cols; ++k) out[k] = half_to_float(reinterpret_cast<const uint16_t*>(p)[k]);
        return;
      }
    }
#endif
    for (int64_t k = 0; k < cols; ++k, p += stride_col) {
      if constexpr (sizeof(T) == 2) out[k] = half_to_float(*reinterpret_cast<const uint16_t*>(p));
      else out[k] = double(*reinterpret_cast<const T*>(p));
    }
  }

  // Row i in float64 (one dtype switch per row, not per element).
  void row(int64_t i, double* out) const {
    switch (itemsize) {
      case 2: row_as<uint16_t>(i, out); break;
      case 4: row_as<float>(i, out); break;
      default: row_as<double>(i, out); break;
    }
  }
};

// <x_i, y_j> in float64 straight from the sources (scales applied by the caller).
inline double source_dot(const SourceView& x, int64_t i, const SourceView& y, int64_t j) {
  double s = 0.0;
  for (int64_t k = 0; k < x.cols; ++k) s += x.at(i, k) * y.at(j, k);
  return s;
}

}  // namespace clipcov
