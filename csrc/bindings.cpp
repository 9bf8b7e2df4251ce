// pybind11 bindings of the CPU engine (no logic here).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_common.hpp"

#include "cpu/engine.hpp"

namespace py = pybind11;
using clipcov::Engine;
using clipcov::SourceView;

namespace {

// A view of a 2-D float16/32/64 numpy array, any strides; the caller keeps the array alive.
SourceView view_of(const py::array& x, const char* name) {
  if (x.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  const auto kind = x.dtype().kind();
  const auto size = x.dtype().itemsize();
  if (kind != 'f' || (size != 2 && size != 4 && size != 8))
    throw py::type_error(std::string(name) + " must be float16, float32 or float64");
  SourceView v;
  v.ptr = static_cast<const char*>(x.data());
  v.rows = x.shape(0);
  v.cols = x.shape(1);
  v.stride_row = x.strides(0);
  v.stride_col = x.strides(1);
  v.itemsize = int(size);
  return v;
}

using clipcov::carray;

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "clipcov_fast CPU engine (C++, OpenMP, OpenBLAS)";
  py::class_<Engine>(m, "Engine")
      .def(py::init([](carray<int64_t> order, carray<int64_t> class_ptr, int64_t d, bool normalize, int threads) {
             std::vector<int64_t> o(order.data(), order.data() + order.size());
             std::vector<int64_t> p(class_ptr.data(), class_ptr.data() + class_ptr.size());
             return new Engine(std::move(o), std::move(p), d, normalize, threads);
           }),
           py::arg("order"), py::arg("class_ptr"), py::arg("d"), py::arg("normalize"), py::arg("num_threads"))
      .def("load",
           [](Engine& e, int64_t start, const py::array& a, const py::array& b) {
             SourceView va = view_of(a, "emb_img"), vb = view_of(b, "emb_txt");
             py::gil_scoped_release nogil;
             return e.load(start, va, vb);
           },
           "Copy rows [start, start + len(a)); returns (first bad row, problem code)")
      .def("prepare",
           [](Engine& e, const py::array& A, const py::array& B, const std::string& objective, int64_t k,
              double tau, double w_cov, double w_easy, double w_center, double w_red, carray<double> extra) {
             if (objective != "clipcov" && objective != "xcov") throw py::value_error("unknown objective");
             if (extra.size() != e.n()) throw py::value_error("extra must have n entries");
             SourceView va = view_of(A, "emb_img"), vb = view_of(B, "emb_txt");
             clipcov::Weights w{w_cov, w_easy, w_center, w_red};
             py::gil_scoped_release nogil;
             e.prepare(va, vb, objective == "xcov", k, tau, w, extra.data());
           })
      .def("terms",
           [](const Engine& e) {
             py::array_t<double> cov(e.n()), easy(e.n()), cen(e.n()), util(e.n());
             e.terms(cov.mutable_data(), easy.mutable_data(), cen.mutable_data(), util.mutable_data());
             py::dict out;
             out["coverage"] = cov;
             out["easiness"] = easy;
             out["center"] = cen;
             out["utility"] = util;
             return out;
           })
      .def("greedy", &clipcov::run_greedy<Engine>, py::arg("quota"), py::arg("k"), py::arg("global_budget"),
           "Pick order (original rows) and gains; global_budget advances classes on demand")
      .def_property_readonly("n", &Engine::n)
      .def_property_readonly("num_classes", &Engine::num_classes);
}
