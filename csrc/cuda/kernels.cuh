// Launchers of the CUDA kernels (one .cu per stage). All work on class-sorted rows: sorted row s
// is the caller's row order[s]; class c holds sorted rows [class_ptr[c], class_ptr[c+1]).
#pragma once
#include <cstdint>
#include <vector>

namespace clipcov {
namespace gpu {

struct Input {
  const void* ptr = nullptr;
  int64_t stride = 0;  // row stride in elements
  int itemsize = 4;
};

// The device arrays every stage reads (n sorted rows, K classes).
struct Rows {
  Input A, B;
  int64_t n = 0, d = 0, K = 0;
  const int64_t* order = nullptr;      // n
  const int64_t* class_ptr = nullptr;  // K + 1
  const int32_t* cls = nullptr;        // n: class of each sorted row
  double *sA = nullptr, *sB = nullptr;  // row scale (1/norm or 1)
  double *nA = nullptr, *nB = nullptr;  // norm of the scaled row
};

// terms.cu
void row_stats(const Rows& r, bool normalize, double* na2, double* nb2, double* easy);
void class_sums(const Rows& r, double* sum_img, double* sum_txt);  // K x d each, written in a fixed order
int64_t class_sums_scratch_bytes(const std::vector<int64_t>& class_ptr, int64_t d);  // what class_sums allocates
void center(const Rows& r, const double* other_img, const double* other_txt, double* cen);
// util[s] = base[s] + w_easy*easy - w_center*cen + extra[order[s]], base = w_cov*cov (or xcov gain)
void utility(const Rows& r, const double* base, double w_base, const double* easy, double w_easy,
             const double* cen, double w_center, const double* extra, double* util);
// cov[s] = (rowsum[s] + colsum[s]) / n_c, in place into rowsum
void finish_coverage(const Rows& r, double* rowsum, const double* colsum);

// coverage.cu: row and column sums of the thresholded class blocks (fp32 tiles, float64 sums in a
// fixed order, float64 recheck near tau). rowsum/colsum: n, written here.
void coverage(const Rows& r, double tau, double* rowsum, double* colsum);
int64_t coverage_batch_tiles(const std::vector<int64_t>& class_ptr);    // tiles whose partials are held at once
int64_t coverage_scratch_bytes(const std::vector<int64_t>& class_ptr);  // what coverage allocates

// xcov.cu
void xcov_initial(const Rows& r, double ratio, double* gains);  // 2 ratio a^T M_c b - |a|^2|b|^2
int64_t xcov_initial_scratch_bytes(const std::vector<int64_t>& class_ptr, int64_t d);  // what xcov_initial allocates

// Greedy state on the device, indexed by sorted row (picks of class c at [class_ptr[c], ...)).
struct GreedyState {
  double* gain = nullptr;        // n: upper bound (lazy) or exact gain (eager)
  int32_t* ver = nullptr;        // n: picks already applied to gain; -1 once picked
  int32_t* pick_local = nullptr;  // n
  double* pick_gain = nullptr;    // n
  int64_t* count = nullptr;       // K: picks made per class
  int32_t* last = nullptr;        // K: xcov: last pick not yet applied (-1 none)
  int64_t* chunk_ptr = nullptr;   // K + 1 (lazy)
  double* chunk_g = nullptr;      // lazy: best bound per chunk
  int32_t* chunk_i = nullptr;
};
constexpr int64_t kChunk = 1024;  // members per chunk of the lazy greedy's two-level argmax

// lazy_greedy.cu: ClipCov, one block per listed class (largest first), each runs to target[c]
// picks (resumable: count, gain, ver and picks persist between calls). target: device, K entries.
void lazy_greedy(const Rows& r, const GreedyState& g, const std::vector<int32_t>& classes, const int64_t* target,
                 double tau, double w_red);
// xcov.cu: eager greedy in rounds; in round t every listed class with remaining[c] > t picks once
// (one launch pair per round for all classes). remaining: host, one entry per listed class.
void xcov_greedy(const Rows& r, const GreedyState& g, const std::vector<int32_t>& classes,
                 const std::vector<int64_t>& remaining);
int64_t xcov_greedy_scratch_bytes(const std::vector<int64_t>& class_ptr);  // what one xcov_greedy call allocates
constexpr int64_t kSegment = 1024;

}  // namespace gpu
}  // namespace clipcov
