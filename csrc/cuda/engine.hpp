// The CUDA engine, seen from the bindings (plain C++: no CUDA headers). Same stages as the CPU
// engine: inputs (host arrays copied once, device arrays borrowed), prepare (terms and initial
// gains), greedy (per-class sequences on the GPU, merged on the host by the contract's tie rule).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace clipcov {
namespace gpu {

// An allocation failed; the message names the bytes needed and free.
struct OutOfDeviceMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Number of usable CUDA devices; throws std::runtime_error with the driver's reason when there are
// none or the driver is missing (and clears the CUDA error state).
int device_count();
std::pair<int64_t, int64_t> memory_info();  // free and total bytes on the current device
int64_t peak_bytes();                        // most device memory clipcov_fast held at once
void reset_peak();

struct ArrayDesc {
  const void* ptr = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t row_stride = 0;  // in bytes; columns must be contiguous
  int itemsize = 4;        // 2, 4 or 8
  bool on_device = false;
};

struct EngineWeights {
  double coverage = 1, easiness = 2, center = 1, redundancy = 1;
};

class Engine {
 public:
  // xcov: the objective, known up front so that set_inputs can check memory for the whole run.
  Engine(std::vector<int64_t> order, std::vector<int64_t> class_ptr, int64_t d, bool normalize, bool xcov);
  ~Engine();
  // Checks device memory for every stage first (OutOfDeviceMemory naming the bytes needed and free).
  void set_inputs(const ArrayDesc& a, const ArrayDesc& b);
  // Returns {first bad original row, problem} like the CPU engine, or {-1, 0}.
  std::pair<int64_t, int> prepare(int64_t k, double tau, const EngineWeights& w, const double* extra);
  int64_t greedy(const int64_t* quota, bool global_budget, int64_t k, int64_t* out_index, double* out_gain);
  int64_t n() const;
  int64_t num_classes() const;
  int64_t memory_need() const;  // bytes of engine buffers at the run's peak, as set_inputs counted them

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpu
}  // namespace clipcov
