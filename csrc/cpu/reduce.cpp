#include "cpu/reduce.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*, scipy_openblas_*)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace clipcov {

namespace {

constexpr int64_t kRows = 256, kCols = 256;  // a tile: 256 KiB of float32, in L2 (fastest of 64-512 x 256-2048 here)
constexpr int64_t kGroups = 32;             // fixed groups of row tiles: thread-independent column sums
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kLog2e = 1.4426950408889634, kLn2 = 0.6931471805599453;
// log-sum-exps run in base 2 (the tile is scale * log2(e) * A B^T): a column whose largest entry is this
// far below its tile's maximum (2^-80 ~ 1e-24) is summed against its own maximum instead.
constexpr float kFar = 80.0f;

// 2^x for x <= 0 in float32: x = n + f with n = round(x), f in [-1/2, 1/2], 2^f by a degree-6 polynomial
// (relative error about 2e-7 with float32 rounding), 2^n put into the exponent. Below -126 it is 2^-126
// times the polynomial (under 1e-38 of the tile's largest term, which every sum here holds). Branch-free
// plain arithmetic, so the loops that call it vectorize (this file is built with -fno-trapping-math, which
// lets the compiler vectorize the float-to-int conversion; no result changes).
inline float exp2_nonpositive(float x) {
  const float xc = x > -126.0f ? x : -126.0f;
  const float n = std::floor(xc + 0.5f);
  const float f = xc - n;
  float q = 1.5403530393381606e-4f;  // Taylor: ln(2)^k / k!; the remainder is under 1.2e-7 on [-1/2, 1/2]
  q = q * f + 1.3333558146428443e-3f;
  q = q * f + 9.6181291076284772e-3f;
  q = q * f + 5.5504108664821580e-2f;
  q = q * f + 2.4022650695910071e-1f;
  q = q * f + 6.9314718055994531e-1f;
  q = q * f + 1.0f;
  return q * __builtin_bit_cast(float, (int32_t(n) + 127) << 23);
}

// (max, sum of 2^(x - max)) pairs merged by the log-sum-exp rule, in float64; S == 0 means empty.
inline void lse_merge(double& M, double& S, double m, double s) {
  if (s == 0.0) return;
  if (S == 0.0) {
    M = m;
    S = s;
  } else if (m > M) {
    S = S * std::exp2(M - m) + s;
    M = m;
  } else {
    S += s * std::exp2(m - M);
  }
}

struct Scratch {
  std::vector<float> tile, colmax, rowmax;
  std::vector<double> colsum;
  Scratch() : tile(kRows * kCols), colmax(kCols), rowmax(kRows), colsum(kCols) {}
};

// One tile's row (and, with cM, column) log-sum-exp pairs, one exp per entry: e_ij = 2^(s_ij - r_i), r_i the
// row's tile maximum, gives the row sums; relative to the tile maximum R the column sums are
// sum_i e_ij u_i with u_i = 2^(r_i - R), accumulated in the same pass.
void lse_tile(const float* tile, int64_t m, int64_t nn, double* rM, double* rS, double* cM, double* cS,
              Scratch& w) {
  float* cmax = w.colmax.data();
  double* csum = w.colsum.data();
  float* rmax = w.rowmax.data();
  const bool cols = cM != nullptr;
  float R = kNegInf;
  if (cols) std::fill(cmax, cmax + nn, kNegInf);
  for (int64_t r = 0; r < m; ++r) {  // row (and column) maxima in one pass
    const float* row = tile + r * nn;
    float mx = kNegInf;
    if (cols) {
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < nn; ++c) {
        mx = std::max(mx, row[c]);
        cmax[c] = std::max(cmax[c], row[c]);
      }
    } else {
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < nn; ++c) mx = std::max(mx, row[c]);
    }
    rmax[r] = mx;
    R = std::max(R, mx);
  }
  if (cols) {
    std::fill(csum, csum + nn, 0.0);
    for (int64_t c = 0; c < nn; ++c) {  // far below R: its terms would underflow in the shared sum
      if (cmax[c] >= R - kFar) continue;
      double s = 0.0;
      for (int64_t r = 0; r < m; ++r) s += double(exp2_nonpositive(tile[r * nn + c] - cmax[c]));
      lse_merge(cM[c], cS[c], cmax[c], s);
      cmax[c] = kNegInf;  // done
    }
  }
  for (int64_t r = 0; r < m; ++r) {
    const float* row = tile + r * nn;
    const float mx = rmax[r];
    if (!(mx > kNegInf)) continue;
    double s = 0.0;
    if (cols) {
      const float u = exp2_nonpositive(mx - R);
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < nn; ++c) {
        const float e = exp2_nonpositive(row[c] - mx);
        s += double(e);
        csum[c] += double(e * u);
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < nn; ++c) s += double(exp2_nonpositive(row[c] - mx));
    }
    lse_merge(rM[r], rS[r], mx, s);
  }
  if (cols)
    for (int64_t c = 0; c < nn; ++c)
      if (cmax[c] > kNegInf) lse_merge(cM[c], cS[c], R, csum[c]);
}

// Row maxima and first argmaxima of one tile (columns jb..), kept where they beat the running ones.
void max_tile(const float* tile, int64_t m, int64_t nn, int64_t jb, float* row_max, int64_t* row_arg) {
  for (int64_t r = 0; r < m; ++r) {
    const float* row = tile + r * nn;
    float mx = kNegInf;
#pragma omp simd reduction(max : mx)
    for (int64_t c = 0; c < nn; ++c) mx = std::max(mx, row[c]);
    if (mx > row_max[r]) {  // strictly: an earlier tile keeps a tie
      row_max[r] = mx;
      if (row_arg) row_arg[r] = jb + (std::find(row, row + nn, mx) - row);
    }
  }
}

// Rows [i0, i1) of A against all of B: their row results in full (rM, rS, row_max, row_arg point at row
// i0), column pairs merged into cM, cS.
void reduce_rows(const float* A, int64_t i0, int64_t i1, const float* B, int64_t p, int64_t d, float alpha,
                 bool before, bool abs_max, double* rM, double* rS, double* cM, double* cS, float* row_max,
                 int64_t* row_arg, Scratch& w) {
  const int64_t m = i1 - i0;
  float* tile = w.tile.data();
  for (int64_t jb = 0; jb < p; jb += kCols) {
    if (before && jb >= i1 - 1) break;  // no row of this block has a column at or after jb
    const int64_t nn = std::min(kCols, p - jb);
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nn), int(d), alpha, A + i0 * d, int(d),
                      B + jb * d, int(d), 0.0f, tile, int(nn));
    if (before && jb + nn > i0) {  // a diagonal tile: row i keeps only the columns j < i
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = std::max<int64_t>(0, i0 + r - jb); c < nn; ++c) tile[r * nn + c] = kNegInf;
    }
    if (rM) lse_tile(tile, m, nn, rM, rS, cM ? cM + jb : nullptr, cS ? cS + jb : nullptr, w);
    if (abs_max)
      for (int64_t t = 0; t < m * nn; ++t) tile[t] = std::fabs(tile[t]);
    if (row_max) max_tile(tile, m, nn, jb, row_max, row_arg);
  }
}

}  // namespace

void reduce_block(const float* A, int64_t m, const float* B, int64_t p, int64_t d, float scale, int threads,
                  const BlockReduce& out) {
  scipy_openblas_set_num_threads(1);  // parallel over row groups here; each SGEMM on its own thread
  const bool lse = out.row_lse || out.col_lse;
  std::vector<float> own_max(out.row_arg && !out.row_max ? m : 0);
  float* row_max = out.row_max ? out.row_max : (out.row_arg ? own_max.data() : nullptr);
  if (row_max) std::fill(row_max, row_max + m, kNegInf);
  if (out.row_arg) std::fill(out.row_arg, out.row_arg + m, int64_t(-1));
  const int64_t blocks = (m + kRows - 1) / kRows;
  const int64_t groups = std::max<int64_t>(1, std::min(blocks, kGroups));
  std::vector<double> rM(lse ? m : 0, 0.0), rS(lse ? m : 0, 0.0);
  std::vector<std::vector<double>> gM(out.col_lse ? groups : 0), gS(out.col_lse ? groups : 0);
  const float alpha = lse ? float(double(scale) * kLog2e) : scale;  // log-sum-exps in base 2
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
#pragma omp parallel num_threads(threads)
  {
    Scratch w;
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < groups; ++g) {
      double *cM = nullptr, *cS = nullptr;
      if (out.col_lse) {
        gM[g].assign(p, 0.0);
        gS[g].assign(p, 0.0);
        cM = gM[g].data();
        cS = gS[g].data();
      }
      for (int64_t blk = g * blocks / groups; blk < (g + 1) * blocks / groups; ++blk) {
        const int64_t i0 = blk * kRows, i1 = std::min(m, i0 + kRows);
        reduce_rows(A, i0, i1, B, p, d, alpha, out.before, out.abs_max, lse ? rM.data() + i0 : nullptr,
                    lse ? rS.data() + i0 : nullptr, cM, cS, row_max ? row_max + i0 : nullptr,
                    out.row_arg ? out.row_arg + i0 : nullptr, w);
      }
    }
  }
  const double inf = std::numeric_limits<double>::infinity();
  if (out.row_lse)
    for (int64_t i = 0; i < m; ++i) out.row_lse[i] = rS[i] > 0 ? kLn2 * (rM[i] + std::log2(rS[i])) : -inf;
  if (out.col_lse) {
    for (int64_t j = 0; j < p; ++j) {
      double M = 0.0, S = 0.0;
      for (int64_t g = 0; g < groups; ++g) lse_merge(M, S, gM[g][j], gS[g][j]);
      out.col_lse[j] = S > 0 ? kLn2 * (M + std::log2(S)) : -inf;
    }
  }
}

}  // namespace clipcov
