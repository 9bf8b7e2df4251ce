// pybind11 glue shared by the CPU and CUDA modules.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace clipcov {

template <class T>
using carray = pybind11::array_t<T, pybind11::array::c_style | pybind11::array::forcecast>;

// engine.greedy(quota, k, global_budget) -> (indices, gains), the GIL released while it runs.
template <class Engine>
pybind11::tuple run_greedy(Engine& e, const carray<int64_t>& quota, int64_t k, bool global_budget) {
  if (quota.size() != e.num_classes()) throw pybind11::value_error("quota must have one entry per class");
  pybind11::array_t<int64_t> idx(k);
  pybind11::array_t<double> gain(k);
  int64_t done;
  {
    pybind11::gil_scoped_release nogil;
    done = e.greedy(quota.data(), global_budget, k, idx.mutable_data(), gain.mutable_data());
  }
  idx.resize({done});
  gain.resize({done});
  return pybind11::make_tuple(idx, gain);
}

}  // namespace clipcov
