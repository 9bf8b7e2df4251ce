#include "cpu/engine.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "core/greedy.hpp"
#include "cpu/class_greedy.hpp"
#include "cpu/kernels.hpp"
#include "cpu/screen.hpp"

#include <cblas.h>  // scipy-openblas32: prefixed symbols (scipy_cblas_*, scipy_openblas_*)

namespace clipcov {

Engine::Engine(std::vector<int64_t> order, std::vector<int64_t> class_ptr, int64_t d, bool normalize,
               int threads)
    : threads_(std::max(1, threads)) {
  st_.n = int64_t(order.size());
  st_.d = d;
  st_.normalize = normalize;
  st_.order = std::move(order);
  st_.class_ptr = std::move(class_ptr);
  if (st_.class_ptr.empty() || st_.class_ptr.front() != 0 || st_.class_ptr.back() != st_.n)
    throw std::invalid_argument("class_ptr must start at 0 and end at n");
  pos_.assign(st_.n, -1);
  for (int64_t s = 0; s < st_.n; ++s) {
    const int64_t i = st_.order[s];
    if (i < 0 || i >= st_.n || pos_[i] >= 0) throw std::invalid_argument("order must be a permutation");
    pos_[i] = s;
  }
  st_.A.allocate(st_.n * d, threads_);
  st_.B.allocate(st_.n * d, threads_);
  st_.scaleA.assign(st_.n, 1.0);
  st_.scaleB.assign(st_.n, 1.0);
  st_.normA.assign(st_.n, 1.0);
  st_.normB.assign(st_.n, 1.0);
  st_.easy.assign(st_.n, 0.0);
  // Parallelism comes from our OpenMP loops; each BLAS call runs on the thread that makes it.
  scipy_openblas_set_num_threads(1);
}

namespace {

// Squared norms and the dot product of a row pair; a sum of squares that over- or underflowed float64
// (inputs scaled by 1e200, or 1e-200) is redone on the rows divided by their largest magnitude, so that
// only a true NaN/Inf or an all-zero row is refused. In-range rows keep the plain sums bit for bit.
struct RowNorms {
  double na, nb;  // the norms (not squared)
  double ab;      // <x / ma, y / mb>
  double ma, mb;  // 1, or the largest magnitudes the rows were divided by
  bool finite;    // every value of both rows is finite
};

double max_abs(const double* x, int64_t d) {
  double m = 0;
  for (int64_t k = 0; k < d; ++k) m = std::max(m, std::fabs(x[k]));
  return m;
}

bool out_of_range(double squared) { return !std::isfinite(squared) || squared < 0x1p-900; }

RowNorms row_norms(const double* x, const double* y, int64_t d) {
  double na = 0, nb = 0, ab = 0;
#pragma omp simd reduction(+ : na, nb, ab)
  for (int64_t k = 0; k < d; ++k) {
    na += x[k] * x[k];
    nb += y[k] * y[k];
    ab += x[k] * y[k];
  }
  if (std::isfinite(na + nb + ab) && !out_of_range(na) && !out_of_range(nb))
    return {std::sqrt(na), std::sqrt(nb), ab, 1.0, 1.0, true};
  const double ma = max_abs(x, d), mb = max_abs(y, d);  // std::max drops a NaN: test the sums too
  if (!std::isfinite(ma) || !std::isfinite(mb) || std::isnan(na) || std::isnan(nb)) return {na, nb, ab, 1, 1, false};
  double sa = 0, sb = 0, sab = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double u = ma > 0 ? x[k] / ma : 0.0, v = mb > 0 ? y[k] / mb : 0.0;
    sa += u * u;
    sb += v * v;
    sab += u * v;
  }
  return {ma * std::sqrt(sa), mb * std::sqrt(sb), sab, ma > 0 ? ma : 1.0, mb > 0 ? mb : 1.0, true};
}

}  // namespace

std::pair<int64_t, int> Engine::load(int64_t start, const SourceView& a, const SourceView& b) {
  const int64_t d = st_.d, rows = a.rows;
  if (a.cols != d || b.cols != d || b.rows != rows || start < 0 || start + rows > st_.n)
    throw std::invalid_argument("load: chunk does not fit the engine's shape");
  std::vector<int64_t> first(kProblems, INT64_MAX);  // first bad row per problem
#pragma omp parallel num_threads(threads_)
  {
    std::vector<double> x(d), y(d);
    std::vector<int64_t> mine(kProblems, INT64_MAX);
    auto flag = [&](int problem, int64_t i) { mine[problem] = std::min(mine[problem], i); };
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      a.row(r, x.data());
      b.row(r, y.data());
      const int64_t i = start + r;
      const RowNorms nr = row_norms(x.data(), y.data(), d);
      if (!nr.finite) {  // name the input with a bad value
        bool bad_a = false;
        for (int64_t k = 0; k < d; ++k) bad_a |= !std::isfinite(x[k]);
        flag(bad_a ? kNonFiniteImg : kNonFiniteTxt, i);
        continue;
      }
      const double na = nr.na, nb = nr.nb;
      if (st_.normalize && na == 0) { flag(kZeroImg, i); continue; }
      if (st_.normalize && nb == 0) { flag(kZeroTxt, i); continue; }
      const int64_t s = pos_[i];
      const double sa = st_.normalize ? 1.0 / na : 1.0, sb = st_.normalize ? 1.0 / nb : 1.0;
      float* pa = st_.A.get() + s * d;
      float* pb = st_.B.get() + s * d;
      for (int64_t k = 0; k < d; ++k) {
        pa[k] = float(x[k] * sa);
        pb[k] = float(y[k] * sb);
      }
      if (!st_.normalize && !(std::isfinite(na * na) && std::isfinite(nb * nb) && na * na <= 0x1p127 &&
                              nb * nb <= 0x1p127)) {  // the float32 store and its products cannot hold this row
        flag(na * na <= 0x1p127 ? kRangeTxt : kRangeImg, i);
        continue;
      }
      st_.scaleA[s] = sa;
      st_.scaleB[s] = sb;
      st_.normA[s] = st_.normalize ? 1.0 : na;
      st_.normB[s] = st_.normalize ? 1.0 : nb;
      st_.easy[s] = nr.ab * (nr.ma * sa) * (nr.mb * sb);  // (ma = mb = 1: the plain ab * sa * sb)
    }
#pragma omp critical
    for (int p = 1; p < kProblems; ++p) first[p] = std::min(first[p], mine[p]);
  }
  int best = kOk;
  for (int p = 1; p < kProblems; ++p)
    if (first[p] != INT64_MAX && (best == kOk || first[p] < first[best])) best = p;
  return best == kOk ? std::make_pair(int64_t(-1), int(kOk)) : std::make_pair(first[best], best);
}

std::vector<int64_t> Engine::classes_by_size() const {
  std::vector<int64_t> cls(st_.num_classes());
  std::iota(cls.begin(), cls.end(), 0);
  auto size = [&](int64_t c) { return st_.class_ptr[c + 1] - st_.class_ptr[c]; };
  std::stable_sort(cls.begin(), cls.end(), [&](int64_t x, int64_t y) { return size(x) > size(y); });
  return cls;
}

void Engine::add_class_sums(const int64_t* dst, double* sum_img, double* sum_txt) const {
  const int64_t d = st_.d;
  for (int64_t c = 0; c < st_.num_classes(); ++c) {
    double *si = sum_img + dst[c] * d, *st = sum_txt + dst[c] * d;
    for (int64_t s = st_.class_ptr[c]; s < st_.class_ptr[c + 1]; ++s)
      for (int64_t j = 0; j < d; ++j) {
        si[j] += st_.a(s)[j];
        st[j] += st_.b(s)[j];
      }
  }
}

void Engine::add_row_sums(const int64_t* dst, int64_t rows, double* sum_img, double* sum_txt) const {
  const int64_t d = st_.d;
  for (int64_t s = 0; s < rows; ++s) {
    double *si = sum_img + dst[s] * d, *st = sum_txt + dst[s] * d;
    for (int64_t j = 0; j < d; ++j) {
      si[j] += st_.a(s)[j];
      st[j] += st_.b(s)[j];
    }
  }
}

void other_means(const double* sum_img, const double* sum_txt, const int64_t* count, int64_t K, int64_t d,
                 const int64_t* which, int64_t m, double* out_img, double* out_txt) {
  std::vector<double> total_img(d, 0.0), total_txt(d, 0.0);
  for (int64_t c = 0; c < K; ++c)
    for (int64_t j = 0; j < d; ++j) {
      total_img[j] += sum_img[c * d + j] / double(count[c]);
      total_txt[j] += sum_txt[c * d + j] / double(count[c]);
    }
  for (int64_t t = 0; t < m; ++t) {
    const int64_t c = which[t];
    for (int64_t j = 0; j < d; ++j) {
      out_img[t * d + j] = (total_img[j] - sum_img[c * d + j] / double(count[c])) / double(K - 1);
      out_txt[t * d + j] = (total_txt[j] - sum_txt[c * d + j] / double(count[c])) / double(K - 1);
    }
  }
}

void Engine::prepare(const SourceView& A, const SourceView& B, bool xcov, int64_t k, int64_t pool_n, double tau,
                     const Weights& w, const double* extra, const double* other_img, const double* other_txt) {
  const int64_t n = st_.n, d = st_.d, K = st_.num_classes();
  exact_ = ExactSimilarity{&st_, A, B};
  xcov_ = xcov;
  tau_ = tau;
  w_ = w;
  coverage_.assign(n, 0.0);
  screen_stats_ = ScreenStats{};
  center_.assign(n, 0.0);
  utility_.assign(n, 0.0);

  // Centre penalty: class sums, then for each class the mean of the other classes' means (given by
  // the caller when this engine holds only some of the pool's classes).
  std::vector<double> o_img, o_txt;
  if (other_img && other_txt) {
    o_img.assign(other_img, other_img + K * d);
    o_txt.assign(other_txt, other_txt + K * d);
  } else if (K > 1) {
    std::vector<double> sum_img(K * d, 0.0), sum_txt(K * d, 0.0);
    std::vector<int64_t> ids(K), count(K);
    std::iota(ids.begin(), ids.end(), 0);
    for (int64_t c = 0; c < K; ++c) count[c] = st_.class_ptr[c + 1] - st_.class_ptr[c];
    add_class_sums(ids.data(), sum_img.data(), sum_txt.data());
    o_img.resize(K * d);
    o_txt.resize(K * d);
    other_means(sum_img.data(), sum_txt.data(), count.data(), K, d, ids.data(), K, o_img.data(), o_txt.data());
  }
  if (!o_img.empty()) {
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 4)
    for (int64_t c = 0; c < K; ++c)
      for (int64_t s = st_.class_ptr[c]; s < st_.class_ptr[c + 1]; ++s)
        center_[s] = dot_f64(st_.a(s), o_txt.data() + c * d, d) + dot_f64(st_.b(s), o_img.data() + c * d, d);
  }

  // Coverage (ClipCov) or the d x d initial gains (xcov). Large classes use all threads one after
  // another; the rest run one class per thread.
  const std::vector<int64_t> cls = classes_by_size();
  const int64_t big = 4 * kTileRows * threads_;
  auto per_class = [&](int64_t c, int threads) {
    const int64_t b = st_.class_ptr[c], e = st_.class_ptr[c + 1];
    if (xcov) xcov_initial(st_, b, e, double(k) / double(pool_n), utility_.data() + b);
    else if (!coverage_class_screened(st_, b, e, tau, exact_, threads, coverage_.data() + b, &screen_stats_))
      coverage_class(st_, b, e, tau, exact_, threads, coverage_.data() + b);
  };
  size_t first_small = 0;
  while (first_small < cls.size() && !xcov &&
         st_.class_ptr[cls[first_small] + 1] - st_.class_ptr[cls[first_small]] >= big)
    per_class(cls[first_small++], threads_);
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1)
  for (size_t t = first_small; t < cls.size(); ++t) per_class(cls[t], 1);

  for (int64_t s = 0; s < n; ++s) {
    const double rest = w.easiness * st_.easy[s] + extra[st_.order[s]] - w.center * center_[s];
    utility_[s] = xcov ? utility_[s] + rest : w.coverage * coverage_[s] + rest;
  }
}

void Engine::terms(double* coverage, double* easiness, double* center, double* utility) const {
  for (int64_t s = 0; s < st_.n; ++s) {
    const int64_t i = st_.order[s];
    coverage[i] = coverage_[s];
    easiness[i] = st_.easy[s];
    center[i] = center_[s];
    utility[i] = utility_[s];
  }
}

// One class's greedy, yielding sorted rows.
struct Engine::ClassRun {
  virtual ~ClassRun() = default;
  virtual bool next(int32_t& local, double& gain) = 0;
  virtual void pause() {}                 // it may free what it can rebuild
  virtual void expect(int64_t picks) {}  // the picks it will be asked for in all
};

namespace {
template <class G>
struct RunOf : Engine::ClassRun {
  G g;
  template <class... Args>
  explicit RunOf(Args&&... args) : g(std::forward<Args>(args)...) {}
  bool next(int32_t& local, double& gain) override { return g.next(local, gain); }
};

struct LazyRun : RunOf<LazyClassGreedy> {
  using RunOf<LazyClassGreedy>::RunOf;
  void pause() override { g.pause(); }
  void expect(int64_t picks) override { g.expect(picks); }
};
}  // namespace

Engine::ClassRun* Engine::make_run(int64_t c, int64_t hint) const {
  const int64_t b = st_.class_ptr[c], e = st_.class_ptr[c + 1];
  const int32_t m = int32_t(e - b);
  const Store* st = &st_;
  if (xcov_) {
    auto update = [st, b, m](int32_t j, double* g, const char* picked) {
      const float *aj = st->a(b + j), *bj = st->b(b + j);
      for (int32_t i = 0; i < m; ++i)
        if (!picked[i])
          g[i] -= 2.0 * dot_f64(st->a(b + i), aj, st->d) * dot_f64(st->b(b + i), bj, st->d);
    };
    std::vector<double> g(utility_.begin() + b, utility_.begin() + e);
    return new RunOf<EagerGreedy<decltype(update)>>(std::move(g), update);
  }
  return new LazyRun(st_, b, e, utility_.data() + b, w_.redundancy / double(m), tau_, exact_, hint);
}

int64_t Engine::greedy(const int64_t* quota, bool on_demand, int64_t k, int64_t* out_index, double* out_gain) {
  const int64_t K = st_.num_classes();
  int64_t done;
  if (on_demand) {
    // Global budget: every class runs in parallel to a guessed target (its proportional share plus a
    // margin); a merge then finds the classes it would take past their targets, those resume in
    // parallel to a larger target, and the merge is redone, until no class is short.
    std::vector<std::unique_ptr<ClassRun>> runs(K);
    std::vector<std::vector<std::pair<int64_t, double>>> seq(K);
    std::vector<char> ended(K, 0);
    std::vector<int64_t> target(K, 0), need;
    for (int64_t c = 0; c < K; ++c) {
      const int64_t m = st_.class_ptr[c + 1] - st_.class_ptr[c];
      const int64_t share = (k * m + st_.n - 1) / std::max<int64_t>(1, st_.n);
      target[c] = std::min({quota[c], m, share + share / 16 + 2});
      if (target[c] > 0) need.push_back(c);
    }
    std::stable_sort(need.begin(), need.end(), [&](int64_t x, int64_t y) { return target[x] > target[y]; });
    while (true) {  // need: the classes to run on, biggest first
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1)
      for (size_t t = 0; t < need.size(); ++t) {
        const int64_t c = need[t];
        if (!runs[c]) runs[c].reset(make_run(c, target[c]));
        runs[c]->expect(target[c]);
        int32_t local;
        double gain;
        seq[c].reserve(target[c]);
        while (int64_t(seq[c].size()) < target[c]) {
          if (!runs[c]->next(local, gain)) { ended[c] = 1; break; }
          seq[c].emplace_back(st_.order[st_.class_ptr[c] + local], gain);
        }
        // Freed now, its buffers serve the thread's next class (as in the proportional path): fresh
        // memory costs a page fault per 4 KB, which made this path 2-3x slower when every run kept them.
        if (ended[c]) runs[c].reset();
        else runs[c]->pause();
      }
      need.clear();
      std::vector<size_t> at(K, 0);
      std::vector<int64_t> short_at(K, 0);  // picks the merge had made when the class ran short
      int64_t yielded = 0;
      done = merge_classes(K, quota, k, [&](int64_t c, int64_t& row, double& gain) {
        if (at[c] < seq[c].size()) {
          std::tie(row, gain) = seq[c][at[c]++];
          ++yielded;
          return true;
        }
        if (!ended[c]) {  // short: the picks after this point are not final
          need.push_back(c);
          short_at[c] = std::max<int64_t>(1, yielded - K);
        }
        return false;
      }, out_index, out_gain);
      if (need.empty()) break;
      // A class the merge did not exhaust is final: later rounds only raise the merge's last gain.
      std::vector<char> short_now(K, 0);
      for (int64_t c : need) short_now[c] = 1;
      for (int64_t c = 0; c < K; ++c)
        if (!short_now[c]) runs[c].reset();
      // A short class grows by what its pick rate so far predicts for the rest of the merge (at least
      // an eighth), so that a class the global greedy favours catches up in a few parallel rounds.
      for (int64_t c : need) {
        const int64_t have = int64_t(seq[c].size());
        const double rate = double(have) / double(short_at[c]);
        const int64_t more = int64_t(1.1 * rate * double(std::max<int64_t>(0, k - short_at[c]))) + 4;
        target[c] = std::min(quota[c], have + std::max(have / 8 + 4, more));
      }
      std::stable_sort(need.begin(), need.end(), [&](int64_t x, int64_t y) {
        return target[x] - int64_t(seq[x].size()) > target[y] - int64_t(seq[y].size());
      });
    }
  } else {
    // Class quotas: every class runs to its quota in parallel, then the sequences are merged.
    std::vector<std::vector<std::pair<int64_t, double>>> seq(K);
    const std::vector<int64_t> cls = classes_by_size();
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1)
    for (size_t t = 0; t < cls.size(); ++t) {
      const int64_t c = cls[t];
      if (quota[c] <= 0) continue;
      std::unique_ptr<ClassRun> run(make_run(c, quota[c]));
      int32_t local;
      double gain;
      seq[c].reserve(quota[c]);
      while (int64_t(seq[c].size()) < quota[c] && run->next(local, gain))
        seq[c].emplace_back(st_.order[st_.class_ptr[c] + local], gain);
    }
    std::vector<size_t> at(K, 0);
    done = merge_classes(K, quota, k, [&](int64_t c, int64_t& row, double& gain) {
      if (at[c] >= seq[c].size()) return false;
      std::tie(row, gain) = seq[c][at[c]++];
      return true;
    }, out_index, out_gain);
  }
  return done;
}

}  // namespace clipcov
