#include "cpu/screen.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/precision.hpp"
#include "cpu/kernels.hpp"

namespace clipcov {

namespace {

// The largest fraction of a tile's entries computed one dot product at a time; above it the tile is one SGEMM.
constexpr double kSparseFraction = 1.0 / 16;
// The screen pays when its probe expects at most this share of the class's entries to take a dense path.
constexpr double kPays = 0.5;
// A row or column is screened when its estimated bound against a typical partner clears tau by this much.
constexpr double kGoodSlack = 0.02;
// The first look: a sample of kSample x kSample entries; more than kSampleBelow of them within kGoodSlack of tau
// or below means most tiles would stay open (random data: half), so the class keeps the dense path at once.
constexpr int64_t kSample = 256;
constexpr double kSampleBelow = 0.25;
// The basis's random directions combine at most this many of the class's rows (a strided sample).
constexpr int64_t kBasisRows = 512;

// The share of a strided sample of the class's entries (rows and columns kSample apart in class order) at or
// below tau + kGoodSlack, in float32: a cheap guess, never a decision about an entry.
double sampled_low_share(const Store& st, int64_t b, int64_t e, double tau) {
  const int64_t m = e - b, d = st.d, ns = std::min(kSample, m);
  std::vector<float> As(ns * d), Bs(ns * d), s(ns * ns);
  for (int64_t x = 0; x < ns; ++x) {
    const int64_t i = b + x * m / ns, j = b + (x * m / ns + m / (2 * ns)) % m;  // columns offset from the rows
    std::copy_n(st.a(i), d, As.data() + x * d);
    std::copy_n(st.b(j), d, Bs.data() + x * d);
  }
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(ns), int(ns), int(d), 1.0f, As.data(), int(d),
                    Bs.data(), int(d), 0.0f, s.data(), int(ns));
  const float low = float(tau + kGoodSlack);
  int64_t cnt = 0;
  for (float v : s) cnt += v <= low;
  return double(cnt) / double(ns * ns);
}

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
// caption sums, and r - 2 random combinations (Rademacher signs, seeded by the class's place) of a strided
// sample of its rows, orthonormalized twice by modified Gram-Schmidt in float64. Columns left with no norm are
// dropped. Any orthonormal basis keeps the bound rigorous; a good one only decides more.
std::vector<double> class_basis(const Store& st, int64_t b, int64_t e, const double* SA, const double* SB,
                                int r, int& kept) {
  const int64_t d = st.d, m = e - b, extra = std::max(0, r - 2), ns = std::min(m, kBasisRows);
  std::vector<float> rows(2 * ns * d);  // the sampled image rows, then their caption rows
  for (int64_t x = 0; x < ns; ++x) {
    std::copy_n(st.a(b + x * m / ns), d, rows.data() + x * d);
    std::copy_n(st.b(b + x * m / ns), d, rows.data() + (ns + x) * d);
  }
  std::vector<float> signs(2 * ns * extra);
  uint64_t seed = uint64_t(b) * 0x9E3779B97F4A7C15ull + uint64_t(m);
  for (auto& s : signs) s = (splitmix(seed) & 1) ? 1.0f : -1.0f;
  std::vector<float> Y32(d * std::max<int64_t>(extra, 1), 0.0f);
  if (extra)  // Y = R^T S (d x extra), R the 2 ns sampled rows
    scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(extra), int(2 * ns), 1.0f, rows.data(),
                      int(d), signs.data(), int(extra), 0.0f, Y32.data(), int(extra));
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
        const double* qk = q.data();
        double* ck = c.data();
        double p = 0;
#pragma omp simd reduction(+ : p)
        for (int64_t k = 0; k < d; ++k) p += qk[k] * ck[k];
#pragma omp simd
        for (int64_t k = 0; k < d; ++k) ck[k] -= p * qk[k];
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

  Screen(const Store& st_, int64_t b_, int64_t e_, double tau_, const double* SA, const double* SB, int threads)
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
#pragma omp parallel for num_threads(threads) schedule(static)
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

  // The entries of the tile rows[0..mm) x cols[0..nn) (class-local ids, with pa/pb the gathered projections)
  // that may be at or below tau (open[x * nn + y] = 1); returns how many.
  int64_t open_entries(const float* pa, const int64_t* rows, int64_t mm, const float* pb, const int64_t* cols,
                       int64_t nn, float* shat, float* s_sig, float* s_nb, uint8_t* open) const {
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mm), int(nn), r, 1.0f, pa, r, pb, r, 0.0f, shat,
                      int(nn));
    for (int64_t y = 0; y < nn; ++y) {
      s_sig[y] = sig[cols[y]];
      s_nb[y] = nb[cols[y]];
    }
    int64_t left = 0;
    for (int64_t x = 0; x < mm; ++x) {
      const float* row = shat + x * nn;
      uint8_t* u = open + x * nn;
      const float rx = rho[rows[x]], ax = margin32 * na[rows[x]];
      int64_t cnt = 0;
#pragma omp simd reduction(+ : cnt)
      for (int64_t y = 0; y < nn; ++y) {
        const uint8_t o = row[y] <= tau32 + rx * s_sig[y] + ax * s_nb[y];
        u[y] = o;
        cnt += o;
      }
      left += cnt;
    }
    return left;
  }
};

// Rows (or columns) the screen can decide against a typical partner: their estimated lower bound against the
// class's mean projection of the other side clears tau. A performance split only: the other rows and
// columns go through the dense thresholded product, which is exact anyway.
std::vector<uint8_t> good_rows(const std::vector<float>& P, const std::vector<float>& res, const std::vector<float>& Pother,
                               const std::vector<float>& res_other, int r, int64_t m, float tau, float margin) {
  std::vector<double> mean(r, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int t = 0; t < r; ++t) mean[t] += Pother[i * r + t];
  for (double& v : mean) v /= double(m);
  std::vector<float> sorted(res_other);
  std::nth_element(sorted.begin(), sorted.begin() + m / 2, sorted.end());
  const double typical = sorted[m / 2];
  std::vector<uint8_t> good(m);
  for (int64_t i = 0; i < m; ++i) {
    double s = 0;
    for (int t = 0; t < r; ++t) s += double(P[i * r + t]) * mean[t];
    good[i] = s - double(res[i]) * typical - margin > tau + kGoodSlack;
  }
  return good;
}

// Thresholded sums of the dense block rows x cols (class-local ids; A and B their rows, contiguous), today's
// semantics: float32 SGEMM values, the float64 value within the recheck band of tau. Adds to row_sum (indexed
// like rows) and col_sum (by class-local column).
void dense_block(const Store& st, int64_t b, const float* A, const int64_t* rows, int64_t mm, const float* B,
                 const int64_t* cols, int64_t nc, double tau, const ExactSimilarity& exact, double* row_sum,
                 double* col_sum, float* tile, double* csum) {
  const int64_t d = st.d;
  const double bound = f32_dot_error_bound(d);
  const float tau32 = float(tau);
  const double slack = std::fabs(double(tau32) - tau);
  for (int64_t y0 = 0; y0 < nc; y0 += kTileCols) {
    const int64_t nn = std::min(kTileCols, nc - y0);
    const int64_t* cj = cols + y0;
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mm), int(nn), int(d), 1.0f, A, int(d),
                      B + y0 * d, int(d), 0.0f, tile, int(nn));
    std::fill(csum, csum + nn, 0.0);
    for (int64_t x = 0; x < mm; ++x) {  // as coverage_rows: vectorized, the columns' sums in tile order
      const float* row = tile + x * nn;
      double rs = 0.0;
#pragma omp simd reduction(+ : rs)
      for (int64_t y = 0; y < nn; ++y) {
        const double v = row[y] > tau32 ? double(row[y]) : 0.0;
        rs += v;
        csum[y] += v;
      }
      row_sum[x] += rs;
    }
    if (tau != 0.0) {  // near tau the float32 decision may differ from the float64 one: redo those entries
      for (int64_t x = 0; x < mm; ++x) {
        const float* row = tile + x * nn;
        const int64_t i = rows[x];
        for (int64_t y = 0; y < nn; ++y) {
          if (std::fabs(double(row[y]) - tau) > bound * st.normA[b + i] * st.normB[b + cj[y]] + slack) continue;
          const double delta = splus(exact(b + i, b + cj[y]), tau) - (row[y] > tau32 ? double(row[y]) : 0.0);
          row_sum[x] += delta;
          csum[y] += delta;
        }
      }
    }
    for (int64_t y = 0; y < nn; ++y) col_sum[cj[y]] += csum[y];
  }
}

}  // namespace

bool screen_enabled() {
  const char* v = std::getenv("CLIPCOV_SCREEN");  // CLIPCOV_SCREEN=0: the dense path everywhere (benchmarks)
  return !(v && std::strcmp(v, "0") == 0);
}

bool coverage_class_screened(const Store& st, int64_t b, int64_t e, double tau, const ExactSimilarity& exact,
                             int threads, double* cov, ScreenStats* stats) {
  const int64_t m = e - b, d = st.d;
  if (m < kScreenMinRows || d < kScreenMinDim || !screen_enabled()) return false;
  const bool forced = forced_dense();
  if (!forced && sampled_low_share(st, b, e, tau) > kSampleBelow) {
    if (stats) {
#pragma omp critical(clipcov_screen_stats)
      ++stats->declined;
    }
    return false;
  }
  std::vector<double> SA(d, 0.0), SB(d, 0.0);  // the class sums, float64, in row order
  for (int64_t s = b; s < e; ++s)
    for (int64_t k = 0; k < d; ++k) {
      SA[k] += st.a(s)[k];
      SB[k] += st.b(s)[k];
    }
  const Screen sc(st, b, e, tau, SA.data(), SB.data(), threads);
  const int r = sc.r;
  // good rows x good columns are screened; the rest (rows or columns the screen would leave open, such as
  // captions that belong to another class) take the dense thresholded product
  const std::vector<uint8_t> grow = good_rows(sc.PA, sc.rho, sc.PB, sc.sig, r, m, sc.tau32, sc.margin32);
  const std::vector<uint8_t> gcol = good_rows(sc.PB, sc.sig, sc.PA, sc.rho, r, m, sc.tau32, sc.margin32);
  std::vector<int64_t> gr, br, gc;
  for (int64_t i = 0; i < m; ++i) (grow[i] ? gr : br).push_back(i);
  for (int64_t j = 0; j < m; ++j)
    if (gcol[j]) gc.push_back(j);
  std::vector<int64_t> bc, all(m);
  for (int64_t j = 0; j < m; ++j)
    if (!gcol[j]) bc.push_back(j);
  std::iota(all.begin(), all.end(), int64_t(0));
  const int64_t ngr = int64_t(gr.size()), ngc = int64_t(gc.size()), nbc = int64_t(bc.size());
  std::vector<float> Bbad(nbc * d);  // the bad columns' rows, gathered once
  for (int64_t y = 0; y < nbc; ++y) std::copy_n(st.b(b + bc[y]), d, Bbad.data() + y * d);
  std::vector<float> PAg(ngr * r), PBg(ngc * r);
  for (int64_t x = 0; x < ngr; ++x) std::copy_n(sc.PA.data() + gr[x] * r, r, PAg.data() + x * r);
  for (int64_t y = 0; y < ngc; ++y) std::copy_n(sc.PB.data() + gc[y] * r, r, PBg.data() + y * r);
  const int64_t sparse_max = int64_t(kSparseFraction * double(kTileRows * kTileCols));
  if (!forced) {  // the probe: the dense share plus the first good row block's tiles the screen leaves open
    std::vector<float> shat(kTileRows * kTileCols), ssig(kTileCols), snb(kTileCols);
    std::vector<uint8_t> open(kTileRows * kTileCols);
    const int64_t mm = std::min(kTileRows, ngr);
    int64_t tiles = 0, cheap = 0;
    for (int64_t y0 = 0; y0 < ngc && mm > 0; y0 += kTileCols, ++tiles)
      cheap += sc.open_entries(PAg.data(), gr.data(), mm, PBg.data() + y0 * r, gc.data() + y0,
                               std::min(kTileCols, ngc - y0), shat.data(), ssig.data(), snb.data(),
                               open.data()) <= sparse_max;
    const double dense_share = 1.0 - double(ngr) * double(ngc) / double(m * m);
    const double open_share = tiles ? 1.0 - double(cheap) / double(tiles) : 1.0;
    if (dense_share + (1.0 - dense_share) * open_share > kPays) {
      if (stats) {
#pragma omp critical(clipcov_screen_stats)
        ++stats->declined;
      }
      return false;
    }
  }
  // Full sums over the good partners: <a_i, sum_{j good} b_j> for good rows, <sum_{i good} a_i, b_j> for good
  // columns (float64).
  std::vector<double> SBg(d, 0.0), SAg(d, 0.0);
  for (int64_t j : gc)
    for (int64_t k = 0; k < d; ++k) SBg[k] += st.b(b + j)[k];
  for (int64_t i : gr)
    for (int64_t k = 0; k < d; ++k) SAg[k] += st.a(b + i)[k];
  std::vector<double> row_sum(m, 0.0), col_sum(m, 0.0);
  for (int64_t i : gr) row_sum[i] = dot_f64(st.a(b + i), SBg.data(), d);
  for (int64_t j : gc) col_sum[j] = dot_f64(st.b(b + j), SAg.data(), d);
  const double band_unit = f32_dot_error_bound(d);
  // An open entry's value, the same whatever its tile's path: a float64 dot product of the stored rows, and
  // the float64 value of the source rows within the recheck band of tau.
  auto value = [&](int64_t i, int64_t j) {
    const double s = dot_f64(st.a(b + i), st.b(b + j), d);
    if (tau != 0.0 && std::fabs(s - tau) <= band_unit * st.normA[b + i] * st.normB[b + j]) return exact(b + i, b + j);
    return s;
  };
  // Work in fixed groups of row blocks, partial column sums added in group order (thread-independent):
  // the good rows' blocks against the good columns (screen) and, densely, against the bad columns;
  // the bad rows' blocks against every column.
  const int64_t gblocks = (ngr + kTileRows - 1) / kTileRows, bblocks = (int64_t(br.size()) + kTileRows - 1) / kTileRows;
  const int64_t blocks = gblocks + bblocks;
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(blocks, kCoverageGroups));
  std::vector<double> corr_row(m, 0.0);
  std::vector<std::vector<double>> part_col(groups), corr_col(groups);
  std::vector<ScreenStats> part(groups);
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> shat(kTileRows * kTileCols), tile(kTileRows * kTileCols), ssig(kTileCols), snb(kTileCols);
    std::vector<float> Ab(kTileRows * d), Bb(kTileCols * d);
    std::vector<uint8_t> open(kTileRows * kTileCols);
    std::vector<double> rs(kTileRows), csum(kTileCols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t grp = 0; grp < groups; ++grp) {
      part_col[grp].assign(m, 0.0);
      corr_col[grp].assign(m, 0.0);
      double *pc = part_col[grp].data(), *cc = corr_col[grp].data();
      ScreenStats& ps = part[grp];
      auto add = [&](int64_t i, int64_t j) {  // an open entry of good x good: subtracted when at or below tau
        const double s = value(i, j);
        if (!(s > tau)) {
          corr_row[i] += s;
          cc[j] += s;
        }
      };
      for (int64_t blk = grp * blocks / groups; blk < (grp + 1) * blocks / groups; ++blk) {
        const bool good = blk < gblocks;
        const int64_t* rows = good ? gr.data() + blk * kTileRows : br.data() + (blk - gblocks) * kTileRows;
        const int64_t mm = std::min(kTileRows, (good ? ngr : int64_t(br.size())) - (blk - (good ? 0 : gblocks)) * kTileRows);
        for (int64_t x = 0; x < mm; ++x) std::copy_n(st.a(b + rows[x]), d, Ab.data() + x * d);
        std::fill(rs.begin(), rs.begin() + mm, 0.0);
        if (!good) {  // a bad row block: dense against every column
          dense_block(st, b, Ab.data(), rows, mm, st.b(b), all.data(), m, tau, exact, rs.data(), pc, tile.data(),
                      csum.data());
          for (int64_t x = 0; x < mm; ++x) row_sum[rows[x]] += rs[x];
          continue;
        }
        // good rows against the bad columns: dense
        dense_block(st, b, Ab.data(), rows, mm, Bbad.data(), bc.data(), nbc, tau, exact, rs.data(), pc, tile.data(),
                    csum.data());
        for (int64_t x = 0; x < mm; ++x) row_sum[rows[x]] += rs[x];
        // good rows against the good columns: the screen
        for (int64_t y0 = 0; y0 < ngc; y0 += kTileCols) {
          const int64_t nn = std::min(kTileCols, ngc - y0);
          const int64_t* cols = gc.data() + y0;
          if (!forced) {
            const int64_t left = sc.open_entries(PAg.data() + blk * kTileRows * r, rows, mm, PBg.data() + y0 * r,
                                                 cols, nn, shat.data(), ssig.data(), snb.data(), open.data());
            ps.decided += mm * nn - left;
            if (left == 0) {
              ++ps.skipped_tiles;
              continue;
            }
            if (left <= sparse_max) {  // one dot product per open entry
              ++ps.sparse_tiles;
              for (int64_t x = 0; x < mm; ++x)
                for (int64_t y = 0; y < nn; ++y)
                  if (open[x * nn + y]) add(rows[x], cols[y]);
              continue;
            }
          }
          // One SGEMM of the tile finds the entries that may be at or below tau: beyond twice the float32 band
          // above tau an entry is surely above it (in the stored rows' and the source rows' values too).
          ++ps.dense_tiles;
          for (int64_t y = 0; y < nn; ++y) std::copy_n(st.b(b + cols[y]), d, Bb.data() + y * d);
          scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mm), int(nn), int(d), 1.0f, Ab.data(),
                            int(d), Bb.data(), int(d), 0.0f, tile.data(), int(nn));
          for (int64_t x = 0; x < mm; ++x) {
            const double band_i = 2.0 * band_unit * st.normA[b + rows[x]];
            for (int64_t y = 0; y < nn; ++y)
              if (double(tile[x * nn + y]) - tau <= band_i * st.normB[b + cols[y]]) add(rows[x], cols[y]);
          }
        }
      }
    }
  }
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t j = 0; j < m; ++j) col_sum[j] += part_col[grp][j] - corr_col[grp][j];
  for (int64_t i = 0; i < m; ++i) cov[i] = ((row_sum[i] - corr_row[i]) + col_sum[i]) / double(m);
  if (stats) {
#pragma omp critical(clipcov_screen_stats)
    {
      ++stats->classes;
      stats->entries += m * m;
      stats->screened += ngr * ngc;
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
