// pybind11 bindings of the CUDA engine (no logic here; no CUDA headers either). The module imports
// on a machine without a GPU; device_count() then raises a RuntimeError that says why.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_common.hpp"

#include "cuda/engine.hpp"

namespace py = pybind11;
using clipcov::gpu::ArrayDesc;
using clipcov::gpu::Engine;

namespace {

using clipcov::carray;

// A host numpy array (copied to the GPU by set_inputs) or a device array described by the tuple
// (pointer, rows, cols, row stride in bytes, itemsize).
ArrayDesc describe(const py::object& x, const char* name) {
  ArrayDesc a;
  if (py::isinstance<py::tuple>(x)) {
    auto t = x.cast<py::tuple>();
    if (t.size() != 5) throw py::value_error(std::string(name) + ": device tuple must have 5 entries");
    a.ptr = reinterpret_cast<const void*>(t[0].cast<uintptr_t>());
    a.rows = t[1].cast<int64_t>();
    a.cols = t[2].cast<int64_t>();
    a.row_stride = t[3].cast<int64_t>();
    a.itemsize = t[4].cast<int>();
    a.on_device = true;
  } else {
    auto arr = x.cast<py::array>();
    if (arr.ndim() != 2 || arr.dtype().kind() != 'f') throw py::type_error(std::string(name) + " must be a 2-D float array");
    a.ptr = arr.data();
    a.rows = arr.shape(0);
    a.cols = arr.shape(1);
    a.row_stride = arr.strides(0);
    a.itemsize = int(arr.itemsize());
    if (arr.strides(1) != arr.itemsize()) throw py::value_error(std::string(name) + " must have contiguous rows");
  }
  if (a.itemsize != 2 && a.itemsize != 4 && a.itemsize != 8)
    throw py::type_error(std::string(name) + " must be float16, float32 or float64");
  return a;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "clipcov_fast CUDA engine";
  py::register_exception<clipcov::gpu::OutOfDeviceMemory>(m, "OutOfDeviceMemory", PyExc_MemoryError);
  m.def("device_count", &clipcov::gpu::device_count, "Usable CUDA devices; RuntimeError saying why if none");
  m.def("memory_info", &clipcov::gpu::memory_info, "(free, total) bytes on the current device");
  m.def("peak_bytes", &clipcov::gpu::peak_bytes, "Most device memory the engine held at once");
  m.def("reset_peak", &clipcov::gpu::reset_peak);
  py::class_<Engine>(m, "Engine")
      .def(py::init([](carray<int64_t> order, carray<int64_t> class_ptr, int64_t d, bool normalize,
                       const std::string& objective) {
             if (objective != "clipcov" && objective != "xcov") throw py::value_error("unknown objective");
             std::vector<int64_t> o(order.data(), order.data() + order.size());
             std::vector<int64_t> p(class_ptr.data(), class_ptr.data() + class_ptr.size());
             return new Engine(std::move(o), std::move(p), d, normalize, objective == "xcov");
           }),
           py::arg("order"), py::arg("class_ptr"), py::arg("d"), py::arg("normalize"), py::arg("objective"))
      .def("set_inputs",
           [](Engine& e, const py::object& a, const py::object& b) {
             ArrayDesc da = describe(a, "emb_img"), db = describe(b, "emb_txt");
             py::gil_scoped_release nogil;
             e.set_inputs(da, db);
           },
           "Checks device memory for the whole run, then copies host arrays to the GPU; device tuples "
           "are borrowed (keep them alive)")
      .def("prepare",
           [](Engine& e, int64_t k, double tau, double w_cov, double w_easy, double w_center, double w_red,
              carray<double> extra) {
             if (extra.size() != e.n()) throw py::value_error("extra must have n entries");
             clipcov::gpu::EngineWeights w{w_cov, w_easy, w_center, w_red};
             py::gil_scoped_release nogil;
             return e.prepare(k, tau, w, extra.data());
           })
      .def("greedy", &clipcov::run_greedy<Engine>, py::arg("quota"), py::arg("k"), py::arg("global_budget"),
           "Pick order (original rows) and gains; global_budget advances classes on demand")
      .def_property_readonly("n", &Engine::n)
      .def_property_readonly("num_classes", &Engine::num_classes)
      .def_property_readonly("memory_need", &Engine::memory_need,
                             "Bytes of engine buffers at the run's peak, as the memory check counted them");
}
