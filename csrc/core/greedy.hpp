// The greedy's skeleton, independent of how gains are computed.
//
// Classes are independent (a pick changes only its own class's gains), so the global greedy is a
// greedy per class plus a merge of the class heads by (gain desc, index asc). Inside a class,
// EagerGreedy serves xcov, which is not submodular: every pick updates every unpicked gain (the
// ClipCov class greedy is cpu/class_greedy.hpp). Local indices ascend with the original row
// index, so "ties to the smallest local index" is the contract's "ties to the smallest index".
#pragma once
#include <algorithm>
#include <cstdint>
#include <queue>
#include <vector>

namespace clipcov {

// Max-heap order: larger gain first, then smaller index.
inline bool ranks_below(double ga, int64_t ia, double gb, int64_t ib) {
  return ga < gb || (ga == gb && ia > ib);
}

// Exact greedy with eager updates: update(j, gains, picked) subtracts pick j's effect from the
// gains of all unpicked members. It runs at the next call, so a last pick costs no update.
template <class Update>
class EagerGreedy {
 public:
  EagerGreedy(std::vector<double> gains, Update update)
      : gains_(std::move(gains)), picked_(gains_.size(), 0), update_(update) {}

  bool next(int32_t& local, double& gain) {
    if (last_ >= 0) update_(last_, gains_.data(), picked_.data());
    int32_t best = -1;
    for (int32_t i = 0; i < int32_t(gains_.size()); ++i)
      if (!picked_[i] && (best < 0 || gains_[i] > gains_[best])) best = i;
    if (best < 0) return false;
    picked_[best] = 1;
    last_ = best;
    local = best;
    gain = gains_[best];
    return true;
  }

 private:
  std::vector<double> gains_;
  std::vector<char> picked_;
  Update update_;
  int32_t last_ = -1;
};

// Global greedy from per-class greedies. next(c, &row, &gain) yields class c's next pick (row is a
// global index used for ties) or false; quota[c] bounds the picks taken from class c.
template <class Next>
int64_t merge_classes(int64_t num_classes, const int64_t* quota, int64_t k, Next next, int64_t* out_row,
                      double* out_gain) {
  struct Head {
    double gain;
    int64_t row;
    int64_t cls;
  };
  auto cmp = [](const Head& a, const Head& b) { return ranks_below(a.gain, a.row, b.gain, b.row); };
  std::priority_queue<Head, std::vector<Head>, decltype(cmp)> heads(cmp);
  std::vector<int64_t> left(quota, quota + num_classes);
  auto refill = [&](int64_t c) {
    Head h{0.0, 0, c};
    if (left[c] > 0 && next(c, h.row, h.gain)) heads.push(h);
  };
  for (int64_t c = 0; c < num_classes; ++c) refill(c);
  int64_t t = 0;
  for (; t < k && !heads.empty(); ++t) {
    Head h = heads.top();
    heads.pop();
    out_row[t] = h.row;
    out_gain[t] = h.gain;
    left[h.cls] -= 1;
    refill(h.cls);
  }
  return t;
}

}  // namespace clipcov
