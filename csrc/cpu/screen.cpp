#include "cpu/screen.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/precision.hpp"
#include "cpu/kernels.hpp"

namespace clipcov {

namespace {

// The largest fraction of a tile's entries computed one dot product at a time; above it the tile is one SGEMM.
constexpr double kSparseFraction = 1.0 / 16;
// The screen pays when at least this share of the first row block's tiles is decided whole or nearly.
constexpr double kPays = 0.75;

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

bool forced_dense() { return env_on("CLIPCOV_SCREEN_DENSE"); }  // debug: the screen decides nothing

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// An orthonormal basis (d x r', row-major: basis[k * r' + t]) of the class's main directions: its image and
// caption sums, and r - 2 random combinations of its rows (Rademacher signs, seeded by the class's first
// row), orthonormalized twice by modified Gram-Schmidt in float64. Columns left with no norm are dropped.
std::vector<double> class_basis(const Store& st, int64_t b, int64_t e, const double* SA, const double* SB,
                                int r, int& kept) {
  const int64_t d = st.d, m = e - b, extra = std::max(0, r - 2);
  std::vector<float> signs(m * extra);
  uint64_t seed = uint64_t(b) * 0x9E3779B97F4A7C15ull + uint64_t(m);
  for (auto& s : signs) s = (splitmix(seed) & 1) ? 1.0f : -1.0f;
  std::vector<float> Y32(d * std::max<int64_t>(extra, 1), 0.0f);
  if (extra) {  // Y = A_c^T S + B_c^T S (d x extra)
    scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(extra), int(m), 1.0f, st.a(b), int(d),
                      signs.data(), int(extra), 0.0f, Y32.data(), int(extra));
    scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(extra), int(m), 1.0f, st.b(b), int(d),
                      signs.data(), int(extra), 1.0f, Y32.data(), int(extra));
  }
  std::vector<std::vector<double>> cols;
  cols.emplace_back(SA, SA + d);
  cols.emplace_back(SB, SB + d);
  for (int64_t t = 0; t < extra; ++t) {
    std::vector<double> c(d);
    for (int64_t k = 0; k < d; ++k) c[k] = Y32[k * extra + t];
    cols.push_back(std::move(c));
  }
  std::vector<std::vector<double>> Q;
  for (auto& c : cols) {
    double before = 0;
    for (double v : c) before += v * v;
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& q : Q) {
        double p = 0;
        for (int64_t k = 0; k < d; ++k) p += q[k] * c[k];
        for (int64_t k = 0; k < d; ++k) c[k] -= p * q[k];
      }
    double after = 0;
    for (double v : c) after += v * v;
    if (!(after > 1e-20 * before) || after == 0) continue;  // dependent on the columns kept
    const double inv = 1.0 / std::sqrt(after);
    for (double& v : c) v *= inv;
    Q.push_back(std::move(c));
    if (int64_t(Q.size()) == d) break;
  }
  kept = int(Q.size());
  std::vector<double> out(d * kept);
  for (int t = 0; t < kept; ++t)
    for (int64_t k = 0; k < d; ++k) out[k * kept + t] = Q[t][k];
  return out;
}

// The screen of one class: its basis, the rows' projections and residual bounds.
struct Screen {
  const Store& st;
  int64_t b, m, d;
  int r = 0;
  double tau;
  std::vector<float> PA, PB, rho, sig, na, nb;
  float tau32, margin32;

  Screen(const Store& st_, int64_t b_, int64_t e_, double tau_, const double* SA, const double* SB)
      : st(st_), b(b_), m(e_ - b_), d(st_.d), tau(tau_) {
    const std::vector<double> Q = class_basis(st, b, b + m, SA, SB, kScreenRank, r);
    const std::vector<float> Q32(Q.begin(), Q.end());
    PA.resize(m * r);
    PB.resize(m * r);
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), r, int(d), 1.0f, st.a(b), int(d),
                      Q32.data(), r, 0.0f, PA.data(), r);
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), r, int(d), 1.0f, st.b(b), int(d),
                      Q32.data(), r, 0.0f, PB.data(), r);
    // Rigorous in floating point, generously: a float32 projection is off by at most (d + 8) 2^-24 |row| in
    // each coordinate, the float32 basis is orthonormal to about (r + 8) 2^-24, and the r-dimensional float32
    // product and the stored rows add their own errors (the dense path's recheck band).
    const double g = double(d + r + 16) * (1.0 / 16777216.0);
    const double slack2 = 8.0 * std::sqrt(double(std::max(r, 1))) * g;  // on rho^2 / |row|^2
    margin32 = float(16.0 * g + f32_dot_error_bound(d) + 1e-6);        // on |s - s_hat - <Ra, Rb>| / (|a| |b|)
    tau32 = float(tau);
    rho.resize(m);
    sig.resize(m);
    na.resize(m);
    nb.resize(m);
    for (int64_t i = 0; i < m; ++i) {
      const double a2 = dot_f64(st.a(b + i), st.a(b + i), d), b2 = dot_f64(st.b(b + i), st.b(b + i), d);
      double pa2 = 0, pb2 = 0;
      for (int t = 0; t < r; ++t) {
        pa2 += double(PA[i * r + t]) * PA[i * r + t];
        pb2 += double(PB[i * r + t]) * PB[i * r + t];
      }
      // rounded up a little, so that the float32 comparison in open_entries stays on the safe side
      rho[i] = float(std::sqrt(std::max(0.0, a2 - pa2) + slack2 * a2) * (1 + 1e-6));
      sig[i] = float(std::sqrt(std::max(0.0, b2 - pb2) + slack2 * b2) * (1 + 1e-6));
      na[i] = float(std::sqrt(a2) * (1 + 1e-6));
      nb[i] = float(std::sqrt(b2) * (1 + 1e-6));
    }
  }

  // The entries of tile [i0, i0 + mm) x [j0, j0 + nn) that may be at or below tau (open[x * nn + y] = 1);
  // returns how many.
  int64_t open_entries(int64_t i0, int64_t mm, int64_t j0, int64_t nn, float* shat, uint8_t* open) const {
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mm), int(nn), r, 1.0f, PA.data() + i0 * r, r,
                      PB.data() + j0 * r, r, 0.0f, shat, int(nn));
    int64_t left = 0;
    for (int64_t x = 0; x < mm; ++x) {
      const float* row = shat + x * nn;
      uint8_t* u = open + x * nn;
      const float rx = rho[i0 + x], ax = margin32 * na[i0 + x];
      const float* sj = sig.data() + j0;
      const float* bj = nb.data() + j0;
      int64_t cnt = 0;
#pragma omp simd reduction(+ : cnt)
      for (int64_t y = 0; y < nn; ++y) {
        const uint8_t o = row[y] <= tau32 + rx * sj[y] + ax * bj[y];
        u[y] = o;
        cnt += o;
      }
      left += cnt;
    }
    return left;
  }
};

}  // namespace

bool screen_enabled() {
  const char* v = std::getenv("CLIPCOV_SCREEN");  // CLIPCOV_SCREEN=0: the dense path everywhere (benchmarks)
  return !(v && std::strcmp(v, "0") == 0);
}

bool coverage_class_screened(const Store& st, int64_t b, int64_t e, double tau, const ExactSimilarity& exact,
                             int threads, double* cov, ScreenStats* stats) {
  const int64_t m = e - b, d = st.d;
  if (m < kScreenMinRows || !screen_enabled()) return false;
  const bool forced = forced_dense();
  std::vector<double> SA(d, 0.0), SB(d, 0.0);  // the class sums, float64, in row order
  for (int64_t s = b; s < e; ++s)
    for (int64_t k = 0; k < d; ++k) {
      SA[k] += st.a(s)[k];
      SB[k] += st.b(s)[k];
    }
  const Screen sc(st, b, e, tau, SA.data(), SB.data());
  const int64_t sparse_max = int64_t(kSparseFraction * double(kTileRows * kTileCols));
  if (!forced) {  // the probe: does the screen decide most of the first row block's tiles (whole or nearly)?
    std::vector<float> shat(kTileRows * kTileCols);
    std::vector<uint8_t> open(kTileRows * kTileCols);
    const int64_t mm = std::min(kTileRows, m);
    int64_t tiles = 0, cheap = 0;
    for (int64_t j0 = 0; j0 < m; j0 += kTileCols, ++tiles)
      cheap += sc.open_entries(0, mm, j0, std::min(kTileCols, m - j0), shat.data(), open.data()) <= sparse_max;
    if (double(cheap) < kPays * double(tiles)) {
      if (stats) {
#pragma omp critical(clipcov_screen_stats)
        ++stats->declined;
      }
      return false;
    }
  }
  std::vector<double> full_row(m), full_col(m);  // <a_i, sum_j b_j> and <sum_i a_i, b_j>
  for (int64_t i = 0; i < m; ++i) {
    full_row[i] = dot_f64(st.a(b + i), SB.data(), d);
    full_col[i] = dot_f64(st.b(b + i), SA.data(), d);
  }
  const double band_unit = f32_dot_error_bound(d);
  // An open entry's value, the same whatever the tile's path: a float64 dot product of the stored rows, and
  // the float64 value of the source rows near tau (as the dense path rechecks).
  auto value = [&](int64_t i, int64_t j) {
    const double s = dot_f64(st.a(b + i), st.b(b + j), d);
    if (tau != 0.0 && std::fabs(s - tau) <= band_unit * st.normA[b + i] * st.normB[b + j]) return exact(b + i, b + j);
    return s;
  };
  // Corrections: the sum of s_ij over the entries at or below tau, per row, and per column in fixed groups of
  // row blocks added in group order (thread-independent); within a tile, entries in row-major order.
  const int64_t blocks = (m + kTileRows - 1) / kTileRows;
  const int64_t groups = std::min<int64_t>(blocks, kCoverageGroups);
  std::vector<double> corr_row(m, 0.0);
  std::vector<std::vector<double>> corr_col(groups);
  std::vector<ScreenStats> part(groups);
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> shat(kTileRows * kTileCols), tile(kTileRows * kTileCols);
    std::vector<uint8_t> open(kTileRows * kTileCols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t grp = 0; grp < groups; ++grp) {
      corr_col[grp].assign(m, 0.0);
      double* cc = corr_col[grp].data();
      ScreenStats& ps = part[grp];
      auto add = [&](int64_t i, int64_t j) {
        const double s = value(i, j);
        if (!(s > tau)) {
          corr_row[i] += s;
          cc[j] += s;
        }
      };
      for (int64_t blk = grp * blocks / groups; blk < (grp + 1) * blocks / groups; ++blk) {
        const int64_t i0 = blk * kTileRows, mm = std::min(kTileRows, m - i0);
        for (int64_t j0 = 0; j0 < m; j0 += kTileCols) {
          const int64_t nn = std::min(kTileCols, m - j0);
          if (!forced) {
            const int64_t left = sc.open_entries(i0, mm, j0, nn, shat.data(), open.data());
            ps.decided += mm * nn - left;
            if (left == 0) {
              ++ps.skipped_tiles;
              continue;
            }
            if (left <= sparse_max) {  // one dot product per open entry
              ++ps.sparse_tiles;
              for (int64_t x = 0; x < mm; ++x)
                for (int64_t y = 0; y < nn; ++y)
                  if (open[x * nn + y]) add(i0 + x, j0 + y);
              continue;
            }
          }
          // One SGEMM of the tile finds the entries that may be at or below tau: outside twice the float32
          // band above tau, an entry is surely above it (in the stored rows' and the source rows' values too).
          ++ps.dense_tiles;
          scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mm), int(nn), int(d), 1.0f, st.a(b + i0),
                            int(d), st.b(b + j0), int(d), 0.0f, tile.data(), int(nn));
          for (int64_t x = 0; x < mm; ++x) {
            const double band_i = 2.0 * band_unit * st.normA[b + i0 + x];
            for (int64_t y = 0; y < nn; ++y)
              if (double(tile[x * nn + y]) - tau <= band_i * st.normB[b + j0 + y]) add(i0 + x, j0 + y);
          }
        }
      }
    }
  }
  std::vector<double> colsum(m, 0.0);
  for (const auto& c : corr_col)
    for (int64_t j = 0; j < m; ++j) colsum[j] += c[j];
  for (int64_t i = 0; i < m; ++i) cov[i] = ((full_row[i] - corr_row[i]) + (full_col[i] - colsum[i])) / double(m);
  if (stats) {
#pragma omp critical(clipcov_screen_stats)
    {
      ++stats->classes;
      stats->entries += m * m;
      for (const auto& ps : part) {
        stats->decided += ps.decided;
        stats->skipped_tiles += ps.skipped_tiles;
        stats->sparse_tiles += ps.sparse_tiles;
        stats->dense_tiles += ps.dense_tiles;
      }
    }
  }
  return true;
}

}  // namespace clipcov
