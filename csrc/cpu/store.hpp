// The engine's copy of the inputs: rows grouped by class (stable, so ascending original index
// inside a class), scaled to unit norm when asked, in float32 for the GEMMs; plus the float64
// per-row facts the objective needs.
#pragma once
#include <cmath>
#include <cstdint>
#include <sys/mman.h>

#include <algorithm>
#include <new>
#include <vector>

#include "core/source.hpp"

namespace clipcov {

// n x d floats in one anonymous mapping, populated up front on all threads: the store is
// gigabytes, and taking its pages one 4 KiB fault at a time on first touch costs seconds of kernel
// time on one core.
struct RowBuffer {
  float* data = nullptr;
  size_t bytes = 0;
  void allocate(size_t count, int threads) {
    release();
    bytes = std::max<size_t>(count * sizeof(float), 1);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data = static_cast<float*>(p);
    // Populate in 64 MiB pieces on all threads: the kernel's zeroing then runs on every core.
    const size_t piece = size_t(64) << 20, pieces = (bytes + piece - 1) / piece;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (size_t q = 0; q < pieces; ++q)  // (an older kernel ignores it: pages then fault in on first use)
      madvise(static_cast<char*>(p) + q * piece, std::min(piece, bytes - q * piece), 23 /* MADV_POPULATE_WRITE */);
  }
  void release() {
    if (data) munmap(data, bytes);
    data = nullptr;
  }
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
    const int64_t i = st->order[si], j = st->order[sj];
    const double dot = source_dot(srcA, i, srcB, j);
    if (std::isfinite(dot) && std::fabs(dot) > 0x1p-900) return dot * st->scaleA[si] * st->scaleB[sj];
    // the raw products over- or underflowed (inputs near float64's range): scale each term first
    double s = 0.0;
    for (int64_t k = 0; k < srcA.cols; ++k) s += (srcA.at(i, k) * st->scaleA[si]) * (srcB.at(j, k) * st->scaleB[sj]);
    return s;
  }
  // s+ of <a_si, b_sj> given its float32 value: decided in float64 when within the error band.
  double splus_checked(float s, double tau, int64_t si, int64_t sj) const {
    if (tau != 0.0 && std::fabs(double(s) - tau) <= f32_dot_error_bound(st->d) * st->normA[si] * st->normB[sj])
      return splus((*this)(si, sj), tau);
    return splus(double(s), tau);
  }
};

}  // namespace clipcov
