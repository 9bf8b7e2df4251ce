// Owned device memory with a running total, so the engine can report its peak and name the
// bytes it needed when an allocation fails.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/engine.hpp"

namespace clipcov {
namespace gpu {

struct MemoryLedger {
  int64_t now = 0, peak = 0;
};
inline MemoryLedger& ledger() {
  static MemoryLedger m;
  return m;
}

inline void* device_alloc(int64_t bytes, const char* what) {
  void* p = nullptr;
  if (bytes <= 0) return nullptr;
  const cudaError_t e = cudaMalloc(&p, size_t(bytes));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw OutOfDeviceMemory("out of GPU memory: " + std::string(what) + " needs " + std::to_string(bytes) +
                            " bytes on top of the " + std::to_string(ledger().now) +
                            " already held by clipcov_fast; the GPU has " + std::to_string(free_b) + " of " +
                            std::to_string(total_b) + " bytes free");
  }
  check(e, what);
  ledger().now += bytes;
  if (ledger().now > ledger().peak) ledger().peak = ledger().now;
  return p;
}

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(int64_t n, const char* what) { reset(n, what); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }
  void reset(int64_t n, const char* what) {
    release();
    p_ = static_cast<T*>(device_alloc(n * int64_t(sizeof(T)), what));
    n_ = n;
  }
  void release() {
    if (p_) {
      cudaFree(p_);
      ledger().now -= n_ * int64_t(sizeof(T));
    }
    p_ = nullptr;
    n_ = 0;
  }
  void zero() { check(cudaMemset(p_, 0, size_t(n_) * sizeof(T)), "memset"); }
  void upload(const T* host, int64_t n) { check(cudaMemcpy(p_, host, size_t(n) * sizeof(T), cudaMemcpyHostToDevice), "upload"); }
  void upload(const std::vector<T>& v) {
    if (int64_t(v.size()) > n_) reset(int64_t(v.size()), "upload");
    upload(v.data(), int64_t(v.size()));
  }
  std::vector<T> download(int64_t n = -1) const {
    std::vector<T> v(n < 0 ? n_ : n);
    if (!v.empty()) check(cudaMemcpy(v.data(), p_, v.size() * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return v;
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace gpu
}  // namespace clipcov
