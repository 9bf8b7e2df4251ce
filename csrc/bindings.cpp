// pybind11 bindings of the CPU engine (no logic here).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bind_common.hpp"

#include "cpu/engine.hpp"
#include "cpu/read_rows.hpp"
#include "cpu/reduce.hpp"

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
  // '=' native, '|' no order; an explicit '<' or '>' other than this machine's is read wrong
  const char order = x.dtype().byteorder();
  const bool little = [] { const uint16_t one = 1; return *reinterpret_cast<const char*>(&one) == 1; }();
  if (!(order == '=' || order == '|' || order == (little ? '<' : '>')))
    throw py::type_error(std::string(name) + " is in " + (order == '>' ? "big" : "little") +
                         "-endian byte order, not this machine's; convert it first (arr.astype(arr.dtype.newbyteorder('=')))");
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
using Sums = py::array_t<double, py::array::c_style>;

// sum_img and sum_txt are (rows, d) float64 arrays and every dst entry names one of their rows.
void check_sums(const Engine& e, const carray<int64_t>& dst, const Sums& sum_img, const Sums& sum_txt) {
  if (sum_img.ndim() != 2 || sum_img.shape(1) != e.d() || sum_txt.ndim() != 2 ||
      sum_txt.shape(0) != sum_img.shape(0) || sum_txt.shape(1) != e.d())
    throw py::value_error("sum_img and sum_txt must be float64 (rows, d) C arrays");
  for (int64_t t = 0; t < dst.size(); ++t)
    if (dst.data()[t] < 0 || dst.data()[t] >= sum_img.shape(0)) throw py::value_error("dst out of range");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "clipcov_fast CPU engine (C++, OpenMP, OpenBLAS)";
  m.def("other_means",
        [](carray<double> sum_img, carray<double> sum_txt, carray<int64_t> count, carray<int64_t> which) {
          const int64_t K = count.size();
          if (K < 2 || sum_img.ndim() != 2 || sum_img.shape(0) != K || sum_txt.ndim() != 2 ||
              sum_txt.shape(0) != K || sum_txt.shape(1) != sum_img.shape(1))
            throw py::value_error("other_means: sums must be (K, d) with K = len(count) >= 2");
          const int64_t d = sum_img.shape(1), m = which.size();
          for (int64_t t = 0; t < m; ++t)
            if (which.data()[t] < 0 || which.data()[t] >= K) throw py::value_error("which out of range");
          py::array_t<double> oi({m, d}), ot({m, d});
          clipcov::other_means(sum_img.data(), sum_txt.data(), count.data(), K, d, which.data(), m,
                               oi.mutable_data(), ot.mutable_data());
          return py::make_tuple(oi, ot);
        },
        py::arg("sum_img"), py::arg("sum_txt"), py::arg("count"), py::arg("which"),
        "Each listed class's mean of the other classes' means, from float64 class sums and counts");
  m.def("read_rows",
        [](const std::string& path, int64_t offset, carray<int64_t> rows, py::array out) {
          if (out.ndim() != 2 || out.shape(0) != rows.size() || !(out.flags() & py::array::c_style) ||
              !out.writeable())
            throw py::value_error("read_rows: out must be a writable C-contiguous (len(rows), d) array");
          const int64_t n = rows.size(), row_bytes = out.shape(1) * out.itemsize();
          for (int64_t t = 1; t < n; ++t)
            if (rows.data()[t] <= rows.data()[t - 1]) throw py::value_error("read_rows: rows must ascend");
          if (n && rows.data()[0] < 0) throw py::value_error("read_rows: rows must be >= 0");
          char* dst = static_cast<char*>(out.mutable_data());
          std::string error;
          {
            py::gil_scoped_release nogil;
            try {
              clipcov::read_rows(path, offset, row_bytes, rows.data(), n, dst);
            } catch (const std::runtime_error& e) {
              error = e.what();
            }
          }
          if (!error.empty()) throw py::value_error(error);
        },
        py::arg("path"), py::arg("offset"), py::arg("rows"), py::arg("out"),
        "Rows `rows` (ascending) of a file of rows of out's width, the first at byte `offset`, into out");
  m.def("reduce_block",
        [](carray<float> A, carray<float> B, double scale, bool row_lse, bool col_lse, bool row_max, bool before,
           bool abs_max, int threads) {
          if (A.ndim() != 2 || B.ndim() != 2 || A.shape(1) != B.shape(1))
            throw py::value_error("reduce_block: A and B must be (m, d) and (p, d) arrays of one width");
          if (before && (A.shape(0) != B.shape(0) || row_lse || col_lse))
            throw py::value_error("reduce_block: before takes one set of rows (A is B) and the max only");
          if ((col_lse && !row_lse) || (row_max && row_lse))
            throw py::value_error("reduce_block: row_lse (with or without col_lse), or row_max");
          if (threads < 1) throw py::value_error("reduce_block: threads must be >= 1");
          const int64_t m = A.shape(0), p = B.shape(0), d = A.shape(1);
          py::dict out;
          clipcov::BlockReduce o;
          o.before = before;
          o.abs_max = abs_max;
          if (abs_max && !row_max) throw py::value_error("reduce_block: abs_max goes with row_max");
          py::array_t<double> rl(row_lse ? m : 0), cl(col_lse ? p : 0);
          py::array_t<float> rm(row_max ? m : 0);
          py::array_t<int64_t> ra(row_max ? m : 0);
          if (row_lse) o.row_lse = rl.mutable_data();
          if (col_lse) o.col_lse = cl.mutable_data();
          if (row_max) {
            o.row_max = rm.mutable_data();
            o.row_arg = ra.mutable_data();
          }
          {
            py::gil_scoped_release nogil;
            clipcov::reduce_block(A.data(), m, B.data(), p, d, float(scale), threads, o);
          }
          if (row_lse) out["row_lse"] = rl;
          if (col_lse) out["col_lse"] = cl;
          if (row_max) {
            out["row_max"] = rm;
            out["row_arg"] = ra;
          }
          return out;
        },
        py::arg("A"), py::arg("B"), py::arg("scale") = 1.0, py::arg("row_lse") = false, py::arg("col_lse") = false,
        py::arg("row_max") = false, py::arg("before") = false, py::arg("abs_max") = false, py::arg("threads") = 1,
        "Reductions of S = scale A B^T, tiled (never the m x p block): row/column log-sum-exp (float64), row "
        "max and first argmax (of |S| with abs_max); before: row i over the columns j < i only");
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
              double tau, double w_cov, double w_easy, double w_center, double w_red, carray<double> extra,
              int64_t pool_n, std::optional<carray<double>> other_img, std::optional<carray<double>> other_txt) {
             if (objective != "clipcov" && objective != "xcov") throw py::value_error("unknown objective");
             if (extra.size() != e.n()) throw py::value_error("extra must have n entries");
             if (bool(other_img) != bool(other_txt)) throw py::value_error("give both other_img and other_txt");
             if (other_img && (other_img->size() != e.num_classes() * e.d() ||
                               other_txt->size() != e.num_classes() * e.d()))
               throw py::value_error("other_img and other_txt must be num_classes x d");
             SourceView va = view_of(A, "emb_img"), vb = view_of(B, "emb_txt");
             clipcov::Weights w{w_cov, w_easy, w_center, w_red};
             const double* oi = other_img ? other_img->data() : nullptr;
             const double* ot = other_txt ? other_txt->data() : nullptr;
             py::gil_scoped_release nogil;
             e.prepare(va, vb, objective == "xcov", k, pool_n < 0 ? e.n() : pool_n, tau, w, extra.data(), oi, ot);
           },
           py::arg("A"), py::arg("B"), py::arg("objective"), py::arg("k"), py::arg("tau"), py::arg("w_cov"),
           py::arg("w_easy"), py::arg("w_center"), py::arg("w_red"), py::arg("extra"), py::arg("pool_n") = -1,
           py::arg("other_img") = py::none(), py::arg("other_txt") = py::none())
      .def("add_class_sums",
           [](const Engine& e, carray<int64_t> dst, Sums sum_img, Sums sum_txt) {
             if (dst.size() != e.num_classes()) throw py::value_error("dst must have one entry per class");
             check_sums(e, dst, sum_img, sum_txt);
             double *si = sum_img.mutable_data(), *st = sum_txt.mutable_data();
             py::gil_scoped_release nogil;
             e.add_class_sums(dst.data(), si, st);
           },
           "Add each class's stored rows, in order, to rows dst[c] of the float64 sums (in place)")
      .def("add_row_sums",
           [](const Engine& e, carray<int64_t> dst, Sums sum_img, Sums sum_txt) {
             if (e.num_classes() != 1 || dst.size() > e.n())
               throw py::value_error("add_row_sums: an engine of one class, at most n rows");
             check_sums(e, dst, sum_img, sum_txt);
             double *si = sum_img.mutable_data(), *st = sum_txt.mutable_data();
             py::gil_scoped_release nogil;
             e.add_row_sums(dst.data(), dst.size(), si, st);
           },
           "Add stored rows s < len(dst), in order, to rows dst[s] of the float64 sums (one-class engine)")
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
      .def("screen_stats",
           [](const Engine& e) {
             const auto& s = e.screen_stats();
             py::dict out;
             out["entries"] = s.entries;
             out["screened"] = s.screened;
             out["decided"] = s.decided;
             out["skipped_tiles"] = s.skipped_tiles;
             out["sparse_tiles"] = s.sparse_tiles;
             out["dense_tiles"] = s.dense_tiles;
             out["classes"] = s.classes;
             out["declined"] = s.declined;
             return out;
           },
           "What the coverage screen did in the last prepare: entries of the screened classes, decided ones, tiles")
      .def_property_readonly("n", &Engine::n)
      .def_property_readonly("d", &Engine::d)
      .def_property_readonly("num_classes", &Engine::num_classes);
}
