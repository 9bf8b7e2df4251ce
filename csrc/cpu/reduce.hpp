// Reductions of a similarity block S = scale * A B^T (A: m x d, B: p x d, float32 rows), tiled: a
// tile of products from SGEMM, reduced by rows and by columns in the same pass, never the m x p block.
// The field's heavy scores are all of this shape: negCLIPLoss (log-sum-exp of every row and column of a
// batch's block), NormSim-inf and nearest centroids (max and argmax of each row), SemDeDup (max of each
// row over the columns before it).
#pragma once
#include <cstdint>

namespace clipcov {

struct BlockReduce {
  // outputs (nullptr: not computed)
  double* row_lse = nullptr;    // m: log sum_j exp(S_ij)
  double* col_lse = nullptr;    // p: log sum_i exp(S_ij)
  float* row_max = nullptr;     // m: max_j S_ij (-inf when no column counts)
  int64_t* row_arg = nullptr;   // m: the first j attaining row_max (-1 when none)
  bool abs_max = false;         // row_max and row_arg of |S_ij| (NormSim-inf's infinity norm)
  // the columns that count for row i: all, or with `before`, j < i (A and B the same rows, in order)
  bool before = false;
};

// Sums are float64 (float32 exps of values shifted by a tile's maximum, added in float64; tiles merged
// by the log-sum-exp rule in float64). Row blocks are grouped in a fixed way and column results are
// merged in group order, so the results do not depend on `threads`.
void reduce_block(const float* A, int64_t m, const float* B, int64_t p, int64_t d, float scale, int threads,
                  const BlockReduce& out);

}  // namespace clipcov
