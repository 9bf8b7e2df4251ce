#include "cpu/class_greedy.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*)

#include <algorithm>

#include "core/greedy.hpp"
#include "cpu/kernels.hpp"

namespace clipcov {

LazyClassGreedy::LazyClassGreedy(const Store& st, int64_t b, int64_t e, const double* util, double scale,
                                 double tau, const ExactSimilarity& exact, int64_t hint)
    : st_(st), b_(b), d_(st.d), scale_(scale), tau_(tau), exact_(exact) {
  const int32_t m = int32_t(e - b);
  heap_.reserve(m);
  for (int32_t i = 0; i < m; ++i) heap_.push_back({util[i], util[i], i, 0, 0});
  std::make_heap(heap_.begin(), heap_.end(), below);
  hint_ = std::min<int64_t>(hint, m);
  picks_.reserve(hint_);
  norm_a_.reserve(hint_ + 1);
  norm_b_.reserve(hint_ + 1);
  norm_a_.assign(1, 0.0);
  norm_b_.assign(1, 0.0);
  rebuild();
  // The engine's exact w_iq comes from float32 products of rounded rows; allow twice their error
  // bound so that the linear bound never exceeds it.
  slack_ = 2.0 * f32_dot_error_bound(d_);
}

void LazyClassGreedy::expect(int64_t picks) {
  hint_ = std::min<int64_t>(picks, int64_t(picks_.size() + heap_.size()));
}

void LazyClassGreedy::pause() {
  std::vector<float>().swap(pick_a_);
  std::vector<float>().swap(pick_b_);
  std::vector<double>().swap(sum_a_);
  std::vector<double>().swap(sum_b_);
  std::vector<float>().swap(s1_);
  std::vector<float>().swap(s2_);
  paused_ = true;
}

// The picked rows and their running sums (entry t = sum of the first t picks), from the store, added in
// pick order as next() adds them. Room for hint_ picks is reserved up front: growing by reallocation
// would copy the sums and touch fresh pages at every doubling.
void LazyClassGreedy::rebuild() {
  const int64_t now = int64_t(picks_.size()), cap = std::max(now, hint_);
  pick_a_.reserve(cap * d_);
  pick_b_.reserve(cap * d_);
  sum_a_.reserve((cap + 1) * d_);
  sum_b_.reserve((cap + 1) * d_);
  sum_a_.assign(d_, 0.0);
  sum_b_.assign(d_, 0.0);
  for (int64_t t = 0; t < now; ++t) append(picks_[t], t);
  paused_ = false;
}

// Pick number t (the local row `local`): its rows, and the running sums through it.
void LazyClassGreedy::append(int32_t local, int64_t t) {
  const float* a = st_.a(b_ + local);
  const float* b = st_.b(b_ + local);
  pick_a_.insert(pick_a_.end(), a, a + d_);
  pick_b_.insert(pick_b_.end(), b, b + d_);
  sum_a_.resize((t + 2) * d_);
  sum_b_.resize((t + 2) * d_);
  for (int64_t k = 0; k < d_; ++k) {
    sum_a_[(t + 1) * d_ + k] = sum_a_[t * d_ + k] + a[k];
    sum_b_[(t + 1) * d_ + k] = sum_b_[t * d_ + k] + b[k];
  }
}

bool LazyClassGreedy::below(const Entry& x, const Entry& y) { return ranks_below(x.key, x.local, y.key, y.local); }

double LazyClassGreedy::exact_penalty(int32_t i, int32_t from) {
  const int32_t len = int32_t(picks_.size()) - from;
  s1_.resize(len);
  s2_.resize(len);
  // s1[q] = <a_i, b_{pick q}>, s2[q] = <a_{pick q}, b_i>
  scipy_cblas_sgemv(CblasRowMajor, CblasNoTrans, len, int(d_), 1.0f, pick_b_.data() + from * d_, int(d_),
                    st_.a(b_ + i), 1, 0.0f, s1_.data(), 1);
  scipy_cblas_sgemv(CblasRowMajor, CblasNoTrans, len, int(d_), 1.0f, pick_a_.data() + from * d_, int(d_),
                    st_.b(b_ + i), 1, 0.0f, s2_.data(), 1);
  double sum = 0.0;
  for (int32_t q = 0; q < len; ++q) {
    const int64_t si = b_ + i, sj = b_ + picks_[from + q];
    sum += exact_.splus_checked(s1_[q], tau_, si, sj) + exact_.splus_checked(s2_[q], tau_, sj, si);
  }
  return sum;
}

double LazyClassGreedy::linear_penalty(int32_t i, int32_t from) {
  const int64_t now = int64_t(picks_.size());
  const double* ta = sum_a_.data() + now * d_;
  const double* tb = sum_b_.data() + now * d_;
  const double* fa = sum_a_.data() + from * d_;
  const double* fb = sum_b_.data() + from * d_;
  const float* ai = st_.a(b_ + i);
  const float* bi = st_.b(b_ + i);
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d_; ++k) s += double(ai[k]) * (tb[k] - fb[k]) + double(bi[k]) * (ta[k] - fa[k]);
  const double err = slack_ * (st_.normA[b_ + i] * (norm_b_[now] - norm_b_[from]) +
                               st_.normB[b_ + i] * (norm_a_[now] - norm_a_[from]));
  return s - 2.0 * tau_ * double(now - from) - err;
}

bool LazyClassGreedy::next(int32_t& local, double& gain) {
  if (paused_) rebuild();
  const int32_t now = int32_t(picks_.size());
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), below);
    Entry e = heap_.back();
    heap_.pop_back();
    if (e.version < now && scale_ != 0.0) {
      if (e.bounded < now) {  // first tighten the bound cheaply
        e.key = std::min(e.key, e.gain - scale_ * linear_penalty(e.local, e.version));
        e.bounded = now;
      } else {  // the bound is current and still on top: pay for the exact gain
        e.gain -= scale_ * exact_penalty(e.local, e.version);
        e.version = now;
        e.key = e.gain;
      }
      if (!heap_.empty() && below(e, heap_.front())) {
        heap_.push_back(e);
        std::push_heap(heap_.begin(), heap_.end(), below);
        continue;
      }
      if (e.version < now) {  // top by its bound alone: evaluate exactly, then decide again
        heap_.push_back(e);
        std::push_heap(heap_.begin(), heap_.end(), below);
        continue;
      }
    }
    picks_.push_back(e.local);
    append(e.local, now);
    norm_a_.push_back(norm_a_.back() + st_.normA[b_ + e.local]);
    norm_b_.push_back(norm_b_.back() + st_.normB[b_ + e.local]);
    local = e.local;
    gain = e.gain;
    return true;
  }
  return false;
}

}  // namespace clipcov
