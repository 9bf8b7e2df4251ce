// The CPU engine: load (copy and check rows), prepare (per-example terms), greedy (pick order).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cpu/screen.hpp"
#include "cpu/store.hpp"

namespace clipcov {

enum LoadProblem {
  kOk = 0, kNonFiniteImg = 1, kNonFiniteTxt = 2, kZeroImg = 3, kZeroTxt = 4,
  kRangeImg = 5, kRangeTxt = 6,  // normalize=false: a value beyond float32's range, which the store holds
  kProblems = 7
};

struct Weights {
  double coverage = 1, easiness = 2, center = 1, redundancy = 1;
};

// For each class c in `which`, the mean of the other classes' means, (sum_c' mu_c' - mu_c) / (K - 1)
// with mu_c = sum[c] / count[c], over all K classes (counts > 0); out rows follow `which`.
void other_means(const double* sum_img, const double* sum_txt, const int64_t* count, int64_t K, int64_t d,
                 const int64_t* which, int64_t m, double* out_img, double* out_txt);

class Engine {
 public:
  Engine(std::vector<int64_t> order, std::vector<int64_t> class_ptr, int64_t d, bool normalize, int threads);

  // Copies original rows [start, start + rows) from the caller's arrays into the store.
  // Returns the first bad original row and its problem, or {-1, kOk}.
  std::pair<int64_t, int> load(int64_t start, const SourceView& a, const SourceView& b);

  // Per-example terms and initial gains. extra[i] (original order) is added to every utility
  // (the caller's w_label * <b_i, t_{y_i}>). A and B are the full original arrays. pool_n is the
  // pool's size for xcov's k/n (the engine may hold only some classes of the pool). other_img and
  // other_txt (num_classes x d, or null) give each class's mean of the other classes' means, from
  // other_means() over the whole pool's class sums; null computes them from the classes held here.
  void prepare(const SourceView& A, const SourceView& B, bool xcov, int64_t k, int64_t pool_n, double tau,
               const Weights& w, const double* extra, const double* other_img = nullptr,
               const double* other_txt = nullptr);

  // Adds each held class's stored rows, in order, to rows dst[c] of sum_img / sum_txt (float64,
  // any number of rows x d): the same sums prepare() takes its class means from.
  void add_class_sums(const int64_t* dst, double* sum_img, double* sum_txt) const;
  // Adds stored rows s < rows, in order, to rows dst[s] of sum_img / sum_txt: per class the same
  // additions in the same order as add_class_sums when the stored order is the original one (one class).
  void add_row_sums(const int64_t* dst, int64_t rows, double* sum_img, double* sum_txt) const;

  // Terms in original row order.
  void terms(double* coverage, double* easiness, double* center, double* utility) const;

  // quota[c] picks at most from class c; returns the number of picks written.
  int64_t greedy(const int64_t* quota, bool on_demand, int64_t k, int64_t* out_index, double* out_gain);

  const ScreenStats& screen_stats() const { return screen_stats_; }
  int64_t n() const { return st_.n; }
  int64_t d() const { return st_.d; }
  int64_t num_classes() const { return st_.num_classes(); }

  struct ClassRun;  // one class's greedy (defined in engine.cpp)

 private:
  ClassRun* make_run(int64_t c, int64_t hint) const;
  std::vector<int64_t> classes_by_size() const;

  Store st_;
  int threads_;
  std::vector<int64_t> pos_;  // original row -> sorted row
  std::vector<double> coverage_, center_, utility_;  // sorted order; utility = initial gain
  ScreenStats screen_stats_{};                       // what the coverage screen decided (last prepare)
  ExactSimilarity exact_{};
  bool xcov_ = false;
  double tau_ = 0.0;
  Weights w_{};
};

}  // namespace clipcov
