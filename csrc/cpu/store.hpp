// The engine's copy of the inputs: rows grouped by class (stable, so ascending original index
// inside a class), scaled to unit norm when asked, in float32 for the GEMMs; plus the float64
// per-row facts the objective needs.
#pragma once
#include <cmath>
#include <cstdint>
#include <sys/mman.h>

#include <cstdlib>
#include <new>
#include <vector>

#include "core/source.hpp"

namespace clipcov {

// n x d floats, 2 MiB aligned and backed by huge pages where the kernel allows: the store is
// gigabytes, and 4 KiB page faults on first touch cost seconds.
struct RowBuffer {
  float* data = nullptr;
  void allocate(size_t count) {
    release();
    const size_t align = size_t(2) << 20, bytes = ((count * sizeof(float) + align - 1) / align) * align;
    data = static_cast<float*>(std::aligned_alloc(align, bytes ? bytes : align));
    if (!data) throw std::bad_alloc();
    madvise(data, bytes, MADV_HUGEPAGE);
  }
  void release() { std::free(data); data = nullptr; }
  RowBuffer() = default;
  RowBuffer(const RowBuffer&) = delete;
  RowBuffer& operator=(const RowBuffer&) = delete;
  ~RowBuffer() { release(); }
  float* get() const { return data; }
};

struct Store {
  int64_t n = 0, d = 0;
  bool normalize = true;
  std::vector<int64_t> order;      // sorted row -> original row
  std::vector<int64_t> class_ptr;  // class c holds sorted rows [class_ptr[c], class_ptr[c+1])
  RowBuffer A, B;                  // n x d, sorted rows
  std::vector<double> scaleA, scaleB;  // stored row = source row * scale (1/norm, or 1)
  std::vector<double> normA, normB;    // norm of the stored row (1 when normalized)
  std::vector<double> easy;            // <a_i, b_i> in float64 from the source

  int64_t num_classes() const { return int64_t(class_ptr.size()) - 1; }
  const float* a(int64_t s) const { return A.get() + s * d; }
  const float* b(int64_t s) const { return B.get() + s * d; }
};

// Float64 similarity <a_si, b_sj> of two sorted rows, recomputed from the caller's arrays.
struct ExactSimilarity {
  const Store* st;
  SourceView srcA, srcB;
  double operator()(int64_t si, int64_t sj) const {
    return source_dot(srcA, st->order[si], srcB, st->order[sj]) * st->scaleA[si] * st->scaleB[sj];
  }
  // s+ of <a_si, b_sj> given its float32 value: decided in float64 when within the error band.
  double splus_checked(float s, double tau, int64_t si, int64_t sj) const {
    if (tau != 0.0 && std::fabs(double(s) - tau) <= f32_dot_error_bound(st->d) * st->normA[si] * st->normB[sj])
      return splus((*this)(si, sj), tau);
    return splus(double(s), tau);
  }
};

}  // namespace clipcov
