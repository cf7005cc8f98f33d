// Host interface of the fused GRU step CUDA kernels (implemented in gru_step.cu, bound to Python
// in bindings.cpp). Plain C++ types only, so the binding translation unit needs no CUDA headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace polyfe2_cuda {

enum class Math : int { FP32 = 0, TF32 = 1, BF16 = 2 };

struct StepArgs {
  int64_t N = 0;
  int H = 0;
  int L = 0;
  int K1 = 0;
  uintptr_t a1 = 0, w1 = 0, init1 = 0;  // see csrc/cpu/gru_step.cpp for the meaning
  bool init1_rows = false;
  uintptr_t gh = 0;
  std::vector<uintptr_t> w_ih, b_ih;  // layers 2..L
  uintptr_t h = 0, h_new = 0;
  uintptr_t w_out = 0, b_out = 0, y = 0;
  int O = 0;
  uintptr_t workspace = 0;  // N x 3H fp32 device buffer (needed unless L == 1 and init1_rows)
  Math math = Math::FP32;
  uintptr_t stream = 0;  // cudaStream_t as integer (0 = legacy default stream)
  int device = 0;
};

// Enqueues the whole step on args.stream; never synchronises. Throws std::runtime_error.
void step(const StepArgs& args);

// Name of the cuBLAS library in use, or "" with *error set when none could be opened
// (the step then falls back to the built-in tiled SGEMM kernel).
std::string cublas_library(std::string* error);

int device_count();
std::string runtime_version();

}  // namespace polyfe2_cuda
