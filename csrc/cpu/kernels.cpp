#include "cpu/kernels.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/precision.hpp"

namespace clipcov {

double dot_f64(const float* x, const float* y, int64_t d) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; ++k) s += double(x[k]) * double(y[k]);
  return s;
}

double dot_f64(const float* x, const double* y, int64_t d) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; ++k) s += double(x[k]) * y[k];
  return s;
}

void coverage_rows(const Store& st, int64_t b, int64_t e, int64_t i0, int64_t i1, double tau,
                   const ExactSimilarity& exact, double* rowsum, double* colsum, float* tile) {
  const int64_t d = st.d;
  const float tau32 = float(tau);
  const double bound = f32_dot_error_bound(d);
  for (int64_t ib = i0; ib < i1; ib += kTileRows) {
    const int64_t m = std::min(kTileRows, i1 - ib);
    for (int64_t jb = b; jb < e; jb += kTileCols) {
      const int64_t nn = std::min(kTileCols, e - jb);
      // tile = A[ib:ib+m] . B[jb:jb+nn]^T
      scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nn), int(d), 1.0f, st.a(ib), int(d),
                  st.b(jb), int(d), 0.0f, tile, int(nn));
      double* cs = colsum + (jb - b);
      for (int64_t r = 0; r < m; ++r) {
        const float* row = tile + r * nn;
        double rs = 0.0;
#pragma omp simd reduction(+ : rs)
        for (int64_t c = 0; c < nn; ++c) {
          const double v = row[c] > tau32 ? double(row[c]) : 0.0;
          rs += v;
          cs[c] += v;
        }
        rowsum[ib - b + r] += rs;
      }
      if (tau == 0.0) continue;  // s+ is continuous at 0: float32 error stays float32-sized
      // Near tau the float32 decision may differ from the float64 one: redo those entries exactly.
      const double slack = std::fabs(double(tau32) - tau);  // the tile compares with float(tau)
      for (int64_t r = 0; r < m; ++r) {
        const float* row = tile + r * nn;
        const double band_r = bound * st.normA[ib + r];
        for (int64_t c = 0; c < nn; ++c) {
          if (std::fabs(double(row[c]) - tau) > band_r * st.normB[jb + c] + slack) continue;
          const double used = row[c] > tau32 ? double(row[c]) : 0.0;
          const double delta = splus(exact(ib + r, jb + c), tau) - used;
          rowsum[ib - b + r] += delta;
          cs[c] += delta;
        }
      }
    }
  }
}

void coverage_class(const Store& st, int64_t b, int64_t e, double tau, const ExactSimilarity& exact,
                    int threads, double* cov) {
  const int64_t m = e - b;
  std::vector<double> rowsum(m, 0.0), colsum(m, 0.0);
  const int64_t blocks = (m + kTileRows - 1) / kTileRows;
  // Column sums are kept per group of consecutive row blocks and added in group order: a fixed
  // grouping, so the sums (and the picks) are the same whatever the thread count.
  const int64_t groups = std::min<int64_t>(blocks, kCoverageGroups);
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
  std::vector<std::vector<double>> partial(groups);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> tile(kTileRows * kTileCols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < groups; ++g) {
      partial[g].assign(m, 0.0);
      for (int64_t blk = g * blocks / groups; blk < (g + 1) * blocks / groups; ++blk) {
        const int64_t i0 = b + blk * kTileRows, i1 = std::min(e, i0 + kTileRows);
        coverage_rows(st, b, e, i0, i1, tau, exact, rowsum.data(), partial[g].data(), tile.data());
      }
    }
  }
  for (const auto& local : partial)
    for (size_t j = 0; j < local.size(); ++j) colsum[j] += local[j];
  for (int64_t i = 0; i < m; ++i) cov[i] = (rowsum[i] + colsum[i]) / double(m);
}

void xcov_initial(const Store& st, int64_t b, int64_t e, double ratio, double* gains) {
  const int64_t d = st.d, chunk = 128;
  std::vector<double> M(d * d, 0.0), Ad(chunk * d), Bd(chunk * d), X(chunk * d);
  auto load = [&](int64_t r0, int64_t m) {
    for (int64_t r = 0; r < m; ++r)
      for (int64_t k = 0; k < d; ++k) {
        Ad[r * d + k] = st.a(r0 + r)[k];
        Bd[r * d + k] = st.b(r0 + r)[k];
      }
  };
  // M_c = sum_i a_i b_i^T (float64 accumulation of float64 products).
  for (int64_t r0 = b; r0 < e; r0 += chunk) {
    const int64_t m = std::min(chunk, e - r0);
    load(r0, m);
    scipy_cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(d), int(m), 1.0, Ad.data(), int(d),
                Bd.data(), int(d), 1.0, M.data(), int(d));
  }
  // g_i = 2 ratio a_i^T M b_i - |a_i|^2 |b_i|^2
  for (int64_t r0 = b; r0 < e; r0 += chunk) {
    const int64_t m = std::min(chunk, e - r0);
    load(r0, m);
    scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(d), int(d), 2.0 * ratio, Ad.data(),
                int(d), M.data(), int(d), 0.0, X.data(), int(d));
    for (int64_t r = 0; r < m; ++r) {
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += X[r * d + k] * Bd[r * d + k];
      const int64_t row = r0 + r;
      gains[row - b] = s - st.normA[row] * st.normA[row] * st.normB[row] * st.normB[row];
    }
  }
}

}  // namespace clipcov
