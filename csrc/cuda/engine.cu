// The CUDA engine's host side: device selection, input copies or borrowed pointers, the order of
// the stages, and the global merge (on the host, with core/greedy.hpp's merge_classes, so the tie
// rule is the CPU engine's own code).
#include "cuda/engine.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/greedy.hpp"
#include "cuda/buffer.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

namespace clipcov {
namespace gpu {

int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("no usable CUDA device: ") + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
  }
  return n;
}

std::pair<int64_t, int64_t> memory_info() {
  size_t f = 0, t = 0;
  check(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
  return {int64_t(f), int64_t(t)};
}

int64_t peak_bytes() { return ledger().peak; }
void reset_peak() { ledger().peak = ledger().now; }

struct Engine::Impl {
  int64_t n = 0, d = 0, K = 0;
  bool normalize = true;
  int device = -1;
  std::vector<int64_t> order, class_ptr;
  DeviceBuffer<unsigned char> ownA, ownB;  // copies of host inputs
  DeviceBuffer<int64_t> order_d, class_ptr_d;
  DeviceBuffer<int32_t> cls_d;
  DeviceBuffer<double> sA, sB, nA, nB, easy, cen, util;
  Rows rows;
  bool have_inputs = false, prepared = false, xcov = false;
  double tau = 0.0, w_red = 1.0;
  int64_t need = 0;

  void use_device() const {
    if (device >= 0) check(cudaSetDevice(device), "cudaSetDevice");
  }
  Input take(const ArrayDesc& a, DeviceBuffer<unsigned char>& own, const char* name);
  int64_t memory_need(int64_t input_copies) const;
  void require_memory(int64_t bytes, int64_t input_copies) const;
};

Engine::Engine(std::vector<int64_t> order, std::vector<int64_t> class_ptr, int64_t d, bool normalize, bool xcov)
    : impl_(new Impl) {
  Impl& m = *impl_;
  m.n = int64_t(order.size());
  m.d = d;
  m.K = int64_t(class_ptr.size()) - 1;
  m.normalize = normalize;
  m.xcov = xcov;
  if (m.K < 1 || class_ptr.front() != 0 || class_ptr.back() != m.n)
    throw std::invalid_argument("class_ptr must start at 0 and end at n");
  for (int64_t c = 0; c < m.K; ++c)
    if (class_ptr[c + 1] <= class_ptr[c]) throw std::invalid_argument("classes must be non-empty");
  if (m.n >= (int64_t(1) << 31)) throw std::invalid_argument("the CUDA engine takes fewer than 2^31 rows");
  m.order = std::move(order);
  m.class_ptr = std::move(class_ptr);
}

Engine::~Engine() = default;
int64_t Engine::n() const { return impl_->n; }
int64_t Engine::num_classes() const { return impl_->K; }

int64_t Engine::memory_need() const { return impl_->need; }

// Allocation rounding (about 2 MiB for each of the ~30 buffers) and the runtime's own memory for
// kernel launches, which no buffer counts.
constexpr int64_t kMemorySlack = int64_t(128) << 20;

// The engine's device memory at its peak: every buffer the stages allocate, stage by stage as they
// hold them (set_inputs, then prepare's norms, centre and objective steps, then greedy).
int64_t Engine::Impl::memory_need(int64_t input_copies) const {
  const int64_t rows = n * (8 + 4) + (K + 1) * 8;  // order, class of each row, class_ptr
  const int64_t terms = n * 7 * 8;                 // sA, sB, nA, nB, easy, cen, util
  const int64_t norms = n * 2 * 8;
  const int64_t centre = K > 1 ? 2 * K * d * 8 + class_sums_scratch_bytes(class_ptr, d) : 0;
  const int64_t objective = xcov ? n * 8 + xcov_initial_scratch_bytes(class_ptr, d)  // gains, d x d matrices
                                 : n * 2 * 8 + coverage_scratch_bytes(class_ptr);    // row and column sums
  const int64_t prepare = std::max({norms, centre, n * 8 + objective});              // + extra utility
  int64_t chunks = 0;
  for (int64_t c = 0; c < K; ++c) chunks += (class_ptr[c + 1] - class_ptr[c] + kChunk - 1) / kChunk;
  const int64_t greedy = n * (8 + 8 + 4 + 4) + K * (4 + 8 + 8) + (K + 1) * 8 + chunks * (8 + 4) +
                         (xcov ? xcov_greedy_scratch_bytes(class_ptr) : K * 4);
  return input_copies + rows + terms + std::max(prepare, greedy);
}

void Engine::Impl::require_memory(int64_t bytes, int64_t input_copies) const {
  const auto fm = memory_info();
  if (bytes + kMemorySlack > fm.first)
    throw OutOfDeviceMemory("out of GPU memory: the selection needs " + std::to_string(bytes + kMemorySlack) +
                            " bytes of device memory (" + std::to_string(input_copies) +
                            " of them for copies of host inputs, " + std::to_string(kMemorySlack) +
                            " of slack), and the GPU has " + std::to_string(fm.first) + " of " +
                            std::to_string(fm.second) + " bytes free");
}

Input Engine::Impl::take(const ArrayDesc& a, DeviceBuffer<unsigned char>& own, const char* name) {
  if (a.rows != n || a.cols != d) throw std::invalid_argument(std::string(name) + ": shape does not match the engine");
  if (a.row_stride % a.itemsize != 0 || a.row_stride < d * a.itemsize)
    throw std::invalid_argument(std::string(name) + ": rows must be contiguous and not overlap");
  if (a.on_device) return Input{a.ptr, a.row_stride / a.itemsize, a.itemsize};
  own.reset(n * d * a.itemsize, name);
  check(cudaMemcpy2D(own.get(), size_t(d * a.itemsize), a.ptr, size_t(a.row_stride), size_t(d * a.itemsize),
                     size_t(n), cudaMemcpyHostToDevice),
        "copy of the inputs to the GPU");
  return Input{own.get(), d, a.itemsize};
}

void Engine::set_inputs(const ArrayDesc& a, const ArrayDesc& b) {
  Impl& m = *impl_;
  if (a.itemsize != b.itemsize) throw std::invalid_argument("emb_img and emb_txt must have the same dtype");
  if (a.on_device != b.on_device) throw std::invalid_argument("emb_img and emb_txt must both be on the GPU or both on the host");
  if (a.on_device) {
    int dev[2];
    const ArrayDesc* ab[2] = {&a, &b};
    for (int t = 0; t < 2; ++t) {
      cudaPointerAttributes attr{};
      check(cudaPointerGetAttributes(&attr, ab[t]->ptr), "cudaPointerGetAttributes");
      if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        throw std::invalid_argument("a device array's pointer is not CUDA device memory");
      dev[t] = attr.device;
    }
    if (dev[0] != dev[1]) throw std::invalid_argument("emb_img and emb_txt are on different GPUs");
    m.device = dev[0];
  } else {
    check(cudaGetDevice(&m.device), "cudaGetDevice");
  }
  m.use_device();
  check(cudaDeviceSynchronize(), "waiting for the producer of the inputs");
  // Once, for the whole run: a selection that starts does not run out of device memory later.
  const int64_t copies = a.on_device ? 0 : 2 * m.n * m.d * a.itemsize;
  m.need = m.memory_need(copies);
  m.require_memory(m.need, copies);
  m.rows.A = m.take(a, m.ownA, "emb_img");
  m.rows.B = m.take(b, m.ownB, "emb_txt");
  m.rows.n = m.n;
  m.rows.d = m.d;
  m.rows.K = m.K;
  m.order_d.reset(m.n, "order");
  m.order_d.upload(m.order);
  m.class_ptr_d.reset(m.K + 1, "class_ptr");
  m.class_ptr_d.upload(m.class_ptr);
  std::vector<int32_t> cls(m.n);
  for (int64_t c = 0; c < m.K; ++c) std::fill(cls.begin() + m.class_ptr[c], cls.begin() + m.class_ptr[c + 1], int32_t(c));
  m.cls_d.reset(m.n, "class of row");
  m.cls_d.upload(cls);
  m.rows.order = m.order_d.get();
  m.rows.class_ptr = m.class_ptr_d.get();
  m.rows.cls = m.cls_d.get();
  m.have_inputs = true;
}

std::pair<int64_t, int> Engine::prepare(int64_t k, double tau, const EngineWeights& w, const double* extra) {
  Impl& m = *impl_;
  if (!m.have_inputs) throw std::logic_error("set_inputs first");
  m.use_device();
  const int64_t n = m.n, d = m.d, K = m.K;
  const bool xcov = m.xcov;
  m.tau = tau;
  m.w_red = w.redundancy;
  for (auto* buf : {&m.sA, &m.sB, &m.nA, &m.nB, &m.easy, &m.cen, &m.util}) buf->reset(n, "per-row terms");
  m.rows.sA = m.sA.get();
  m.rows.sB = m.sB.get();
  m.rows.nA = m.nA.get();
  m.rows.nB = m.nB.get();

  // Norms first: bad rows are reported like the CPU engine does, before any other work.
  {
    DeviceBuffer<double> na2(n, "norms"), nb2(n, "norms");
    row_stats(m.rows, m.normalize, na2.get(), nb2.get(), m.easy.get());
    const std::vector<double> ha = na2.download(), hb = nb2.download();
    int64_t bad_row = -1;
    int problem = 0;
    for (int64_t s = 0; s < n; ++s) {
      int p = 0;
      if (!std::isfinite(ha[s])) p = 1;
      else if (!std::isfinite(hb[s])) p = 2;
      else if (m.normalize && ha[s] == 0) p = 3;
      else if (m.normalize && hb[s] == 0) p = 4;
      if (p && (bad_row < 0 || m.order[s] < bad_row)) {
        bad_row = m.order[s];
        problem = p;
      }
    }
    if (problem) return {bad_row, problem};
  }

  // Centre penalty: class means on the GPU, the other-classes means on the host (K x d).
  m.cen.zero();
  if (K > 1) {
    DeviceBuffer<double> si(K * d, "class sums"), st(K * d, "class sums");
    class_sums(m.rows, si.get(), st.get());
    std::vector<double> mi = si.download(), mt = st.download(), all_i(d, 0.0), all_t(d, 0.0);
    for (int64_t c = 0; c < K; ++c) {
      const double size = double(m.class_ptr[c + 1] - m.class_ptr[c]);
      for (int64_t j = 0; j < d; ++j) {
        mi[c * d + j] /= size;
        mt[c * d + j] /= size;
        all_i[j] += mi[c * d + j];
        all_t[j] += mt[c * d + j];
      }
    }
    for (int64_t c = 0; c < K; ++c)
      for (int64_t j = 0; j < d; ++j) {
        mi[c * d + j] = (all_i[j] - mi[c * d + j]) / double(K - 1);
        mt[c * d + j] = (all_t[j] - mt[c * d + j]) / double(K - 1);
      }
    si.upload(mi);
    st.upload(mt);
    center(m.rows, si.get(), st.get(), m.cen.get());
  }

  DeviceBuffer<double> ex(n, "extra utility");
  ex.upload(extra, n);
  if (xcov) {
    DeviceBuffer<double> g(n, "xcov gains");
    xcov_initial(m.rows, double(k) / double(n), g.get());
    utility(m.rows, g.get(), 1.0, m.easy.get(), w.easiness, m.cen.get(), w.center, ex.get(), m.util.get());
  } else {
    DeviceBuffer<double> rowsum(n, "coverage sums"), colsum(n, "coverage sums");
    coverage(m.rows, tau, rowsum.get(), colsum.get());
    finish_coverage(m.rows, rowsum.get(), colsum.get());
    utility(m.rows, rowsum.get(), w.coverage, m.easy.get(), w.easiness, m.cen.get(), w.center, ex.get(),
            m.util.get());
  }
  check(cudaDeviceSynchronize(), "prepare");
  m.prepared = true;
  return {-1, 0};
}

int64_t Engine::greedy(const int64_t* quota, bool global_budget, int64_t k, int64_t* out_index, double* out_gain) {
  Impl& m = *impl_;
  if (!m.prepared) throw std::logic_error("prepare first");
  m.use_device();
  const int64_t n = m.n, K = m.K;
  DeviceBuffer<double> gain(n, "greedy gains"), pick_gain(n, "greedy picks");
  DeviceBuffer<int32_t> ver(n, "greedy versions"), pick_local(n, "greedy picks"), last(K, "greedy last picks");
  DeviceBuffer<int64_t> count(K, "greedy counts"), target_d(K, "greedy targets"), chunk_ptr(K + 1, "greedy chunks");
  check(cudaMemcpy(gain.get(), m.util.get(), size_t(n) * sizeof(double), cudaMemcpyDeviceToDevice), "copy gains");
  ver.zero();
  count.zero();
  check(cudaMemset(last.get(), 0xff, size_t(K) * sizeof(int32_t)), "memset");  // -1: no pending pick
  std::vector<int64_t> cp(K + 1, 0);
  for (int64_t c = 0; c < K; ++c) cp[c + 1] = cp[c] + (m.class_ptr[c + 1] - m.class_ptr[c] + kChunk - 1) / kChunk;
  chunk_ptr.upload(cp);
  DeviceBuffer<double> chunk_g(cp[K], "greedy chunks");
  DeviceBuffer<int32_t> chunk_i(cp[K], "greedy chunks");
  GreedyState g;
  g.gain = gain.get();
  g.ver = ver.get();
  g.pick_local = pick_local.get();
  g.pick_gain = pick_gain.get();
  g.count = count.get();
  g.last = last.get();
  g.chunk_ptr = chunk_ptr.get();
  g.chunk_g = chunk_g.get();
  g.chunk_i = chunk_i.get();

  // Targets: the quotas; for the global budget a guess that grows where the merge asks for more.
  std::vector<int64_t> size(K), target(K), done(K, 0);
  for (int64_t c = 0; c < K; ++c) {
    size[c] = m.class_ptr[c + 1] - m.class_ptr[c];
    const int64_t q = std::min(quota[c], size[c]);
    target[c] = global_budget ? std::min(q, k * size[c] / n + k * size[c] / (4 * n) + 16) : q;
  }
  std::vector<int32_t> by_size(K);
  std::iota(by_size.begin(), by_size.end(), 0);
  std::stable_sort(by_size.begin(), by_size.end(), [&](int32_t x, int32_t y) { return size[x] > size[y]; });

  for (;;) {
    std::vector<int32_t> run;
    std::vector<int64_t> remaining;
    for (int32_t c : by_size)
      if (target[c] > done[c]) {
        run.push_back(c);
        remaining.push_back(target[c] - done[c]);
      }
    target_d.upload(target);
    if (m.xcov) xcov_greedy(m.rows, g, run, remaining);
    else lazy_greedy(m.rows, g, run, target_d.get(), m.tau, m.w_red);
    done = count.download();
    const std::vector<int32_t> local = pick_local.download();
    const std::vector<double> gains = pick_gain.download();
    std::vector<int64_t> at(K, 0);
    std::vector<char> more(K, 0);
    bool need = false;
    const int64_t got = merge_classes(
        K, quota, k,
        [&](int64_t c, int64_t& row, double& gv) {
          if (at[c] >= done[c]) {
            if (done[c] < std::min(quota[c], size[c])) more[c] = need = true;  // the class could go on
            return false;
          }
          const int64_t s = m.class_ptr[c] + at[c]++;
          row = m.order[m.class_ptr[c] + local[s]];
          gv = gains[s];
          return true;
        },
        out_index, out_gain);
    if (!need) return got;
    for (int64_t c = 0; c < K; ++c)
      if (more[c]) target[c] = std::min(std::min(quota[c], size[c]), std::max(2 * target[c], target[c] + 64));
  }
}

}  // namespace gpu
}  // namespace clipcov
