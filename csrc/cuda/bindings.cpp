// pybind11 bindings of the fused GRU step CUDA kernels (module polyfe2.kernels._gru_cuda).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "gru_step_cuda.h"

namespace py = pybind11;
using namespace polyfe2_cuda;

static Math parse_math(const std::string& s) {
  if (s == "fp32") return Math::FP32;
  if (s == "tf32") return Math::TF32;
  if (s == "bf16") return Math::BF16;
  throw std::invalid_argument("math must be 'fp32', 'tf32' or 'bf16', got '" + s + "'");
}

PYBIND11_MODULE(_gru_cuda, m) {
  m.doc() =
      "polyfe2 fused GRU step, CUDA kernels (cuBLAS GEMMs opened at run time + fused gate kernels)";
  m.def(
      "step",
      [](int64_t N, int H, int L, int K1, uintptr_t a1, uintptr_t w1, uintptr_t init1,
         bool init1_rows, uintptr_t gh, std::vector<uintptr_t> w_ih, std::vector<uintptr_t> b_ih,
         uintptr_t h, uintptr_t h_new, uintptr_t w_out, uintptr_t b_out, int O, uintptr_t y,
         uintptr_t workspace, const std::string& math, uintptr_t stream, int device) {
        StepArgs a;
        a.N = N;
        a.H = H;
        a.L = L;
        a.K1 = K1;
        a.a1 = a1;
        a.w1 = w1;
        a.init1 = init1;
        a.init1_rows = init1_rows;
        a.gh = gh;
        a.w_ih = std::move(w_ih);
        a.b_ih = std::move(b_ih);
        a.h = h;
        a.h_new = h_new;
        a.w_out = w_out;
        a.b_out = b_out;
        a.O = O;
        a.y = y;
        a.workspace = workspace;
        a.math = parse_math(math);
        a.stream = stream;
        a.device = device;
        py::gil_scoped_release release;
        step(a);
      },
      py::arg("N"), py::arg("H"), py::arg("L"), py::arg("K1"), py::arg("a1"), py::arg("w1"),
      py::arg("init1"), py::arg("init1_rows"), py::arg("gh"), py::arg("w_ih"), py::arg("b_ih"),
      py::arg("h"), py::arg("h_new"), py::arg("w_out") = 0, py::arg("b_out") = 0,
      py::arg("O") = 0, py::arg("y") = 0, py::arg("workspace") = 0, py::arg("math") = "fp32",
      py::arg("stream") = 0, py::arg("device") = 0,
      "Enqueue the fused GRU step on `stream` (raw device pointers, fp32, C-contiguous).");
  m.def("cublas_library", []() {
    std::string err;
    std::string name = cublas_library(&err);
    return py::make_tuple(name, err);
  }, "(library name or '', error message) of the run-time loaded cuBLAS");
  m.def("device_count", &device_count);
  m.def("runtime_version", &runtime_version);
}
