// The exact ClipCov greedy inside one class: lazy greedy with versioned catch-up and a cheap
// linear bound.
//
// gain(i | S) = u_i - scale * sum_{j in S} w_ij with w_ij >= 0, so a stale gain is an upper bound:
// a popped candidate is caught up only with the picks made since its last exact evaluation (its
// version), and it is the true maximum if it still ranks above every other bound in the heap.
// Before paying for that catch-up, the bound is tightened for the price of two dot products:
// s+(x) >= x - tau, so sum_{q in [v, now)} w_iq >= <a_i, sum b_q> + <b_i, sum a_q> - 2 tau (now - v),
// read off running sums of the picked rows. On clustered data, where most similarities in a class
// exceed tau, this bound is nearly exact and most candidates sink without an exact catch-up.
// Exact catch-ups are two matrix-vector products over the contiguous block of picked rows.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/store.hpp"

namespace clipcov {

class LazyClassGreedy {
 public:
  // Class rows [b, e) of the store; util points at the class's utilities; hint: expected picks.
  LazyClassGreedy(const Store& st, int64_t b, int64_t e, const double* util, double scale, double tau,
                  const ExactSimilarity& exact, int64_t hint);
  bool next(int32_t& local, double& gain);
  // Frees the per-pick buffers (the picked rows and their running sums, about 12 KB a pick at d = 512)
  // while the run waits to be resumed; next() rebuilds them from the store with the same arithmetic, so
  // a paused run's picks are bit-identical.
  void pause();
  // The picks expected in all (room is reserved for them when the buffers are next built).
  void expect(int64_t picks);

 private:
  void rebuild();
  void append(int32_t local, int64_t t);
  struct Entry {
    double key;       // upper bound on the current gain (heap order)
    double gain;      // exact gain after `version` picks
    int32_t local;
    int32_t version;  // picks subtracted exactly
    int32_t bounded;  // picks accounted for in key
  };
  static bool below(const Entry& x, const Entry& y);
  double exact_penalty(int32_t i, int32_t from);   // sum of w_iq over picks [from, now)
  double linear_penalty(int32_t i, int32_t from);  // a lower bound of the same sum

  const Store& st_;
  int64_t b_, d_;
  double scale_, tau_, slack_;
  const ExactSimilarity& exact_;
  std::vector<Entry> heap_;
  std::vector<int32_t> picks_;
  std::vector<float> pick_a_, pick_b_;   // picked rows, contiguous
  std::vector<double> sum_a_, sum_b_;    // running sums of picked rows: entry t = sum of the first t
  std::vector<double> norm_a_, norm_b_;  // running sums of their norms (for the rounding slack)
  std::vector<float> s1_, s2_;
  int64_t hint_ = 0;
  bool paused_ = false;
};

}  // namespace clipcov
