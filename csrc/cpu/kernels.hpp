// CPU kernels: coverage by tiled SGEMM with the threshold and both reductions fused in the
// pass over each tile; xcov initial gains through d x d matrices; row dot products.
#pragma once
#include <cstdint>

#include "cpu/store.hpp"

namespace clipcov {

// Row and column sums of the thresholded block S+ over sorted rows [b, e) x [b, e), for the rows
// [i0, i1). rowsum is indexed from b over [i0, i1), colsum from b over [b, e); both accumulate.
void coverage_rows(const Store& st, int64_t b, int64_t e, int64_t i0, int64_t i1, double tau,
                   const ExactSimilarity& exact, double* rowsum, double* colsum, float* tile);
constexpr int64_t kTileRows = 128, kTileCols = 512;
constexpr int64_t kCoverageGroups = 8;  // column-sum partials per class (fixed: thread-independent sums)

// Coverage of every member of class [b, e), using `threads` threads inside the class; the result
// does not depend on `threads`.
void coverage_class(const Store& st, int64_t b, int64_t e, double tau, const ExactSimilarity& exact,
                    int threads, double* cov);

// xcov: g_i = 2 (k/n) a_i^T M_c b_i - |a_i|^2 |b_i|^2 for the class [b, e), in float64.
void xcov_initial(const Store& st, int64_t b, int64_t e, double ratio, double* gains);

double dot_f64(const float* x, const float* y, int64_t d);
double dot_f64(const float* x, const double* y, int64_t d);

}  // namespace clipcov
