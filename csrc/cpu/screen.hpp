// Coverage below the GEMM floor: a certified screen plus class sums.
//
// With S = A_c B_c^T of a class and s+ = s if s > tau else 0, every row and column sum of S+ is a full sum
// minus the entries at or below tau:
//     sum_j s+_ij = <a_i, sum_j b_j> - sum_{j: s_ij <= tau} s_ij      (and the same for columns),
// and the full sums are O(n d) from the class sums. The screen finds the entries that may be at or below
// tau without the n x n x d product: each row is split over an orthonormal basis P of the class's main
// directions (its image and caption sums and random combinations of its rows, r of them) and a residual,
// s_ij = <P a_i, P b_j> + <R a_i, R b_j> with |<R a_i, R b_j>| <= rho_i sigma_j (Cauchy-Schwarz), so an
// r-dimensional product decides every entry whose bound clears tau by the float32 error terms. Only the
// entries left open get a value, each the same way whatever the tile's path (a float64 dot product of the
// stored rows, the float64 recheck near tau as the dense path has): the coverage does not depend on which
// tiles the screen decides, and so a debug setting that decides nothing (CLIPCOV_SCREEN_DENSE=1) gives the
// same bits.
#pragma once
#include <cstdint>

#include "cpu/store.hpp"

namespace clipcov {

constexpr int kScreenRank = 32;          // r: the basis's size
constexpr int64_t kScreenMinDim = 8 * kScreenRank;  // narrower rows keep the dense path (the r-dim product
                                                    // would cost more than an eighth of the dense one)
constexpr int64_t kScreenMinRows = 1024;  // smaller classes keep the dense path (the screen would not pay)

struct ScreenStats {
  int64_t entries = 0,   // of the classes screened (m^2 each)
      screened = 0,      // of those, good rows x good columns (the rest took the dense thresholded product)
      decided = 0,       // of those, decided by the screen
      skipped_tiles = 0, sparse_tiles = 0, dense_tiles = 0, classes = 0,
      declined = 0;      // classes whose probe found the screen would not pay (they took the dense path)
};

// Coverage of class [b, e) by the screen when its first row block says it pays (most of that block's tiles
// are decided whole or nearly); returns false, computing nothing, when it would not (the caller then takes
// the dense thresholded SGEMM, coverage_class). The result does not depend on `threads`.
bool screen_enabled();  // unless CLIPCOV_SCREEN=0 (the dense path everywhere: benchmarks compare the two)

bool coverage_class_screened(const Store& st, int64_t b, int64_t e, double tau, const ExactSimilarity& exact,
                             int threads, double* cov, ScreenStats* stats = nullptr);

}  // namespace clipcov
