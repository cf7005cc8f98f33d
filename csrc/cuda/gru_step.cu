// Fused per-voxel GRU step (torch.nn.GRU semantics, gate order r, z, n) -- CUDA kernels.
//
// Same split step as csrc/cpu/gru_step.cpp:
//   layer 1, precomputed : gx_1 = gx_const + f W_f^T (K = 9 or 19) is computed inside the gate kernel
//                          (no GEMM, one memory-bound pass);
//   layer 1, general     : gx_1 = x W_ih_1^T (GEMM into the workspace), + b_ih_1 in the gate kernel;
//   layers l >= 2        : gx_l = h'_{l-1} W_ih_l^T (GEMM), + b_ih_l in the gate kernel;
//   gates (one kernel per layer): r, z = sigmoid(gx + gh), n = tanh(gx_n + r gh_n),
//                                 h' = (1 - z) n + z h, with gh_l precomputed by the caller;
//   optional output projection y = h'_L W_out^T + b_out (one warp per voxel).
// Everything is enqueued on the caller's stream; no synchronisation, no host round trip.
//
// cuBLAS is not linked: it is opened at run time with dlopen (the copy torch has already loaded
// is found first), so the module builds with a bare CUDA toolkit and works next to any torch CUDA
// build. Math mode per call: fp32 (CUBLAS_COMPUTE_32F), tf32 (CUBLAS_COMPUTE_32F_FAST_TF32) or
// bf16 (CUBLAS_COMPUTE_32F_FAST_16BF; fp32 data, bf16 tensor-core products, fp32 accumulation).
// Without a loadable cuBLAS the GEMMs run on a built-in tiled fp32 SGEMM kernel.

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "gru_step_cuda.h"

namespace polyfe2_cuda {
namespace {

// ------------------------------------------------------------------ run-time cuBLAS
// Minimal declarations (values from cublas_api.h / library_types.h; stable since CUDA 11).
typedef struct cublasContext* cublasHandle_t;
typedef int cublasStatus_t;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kCudaR32F = 0;
constexpr int kCompute32F = 68, kCompute32FFast16BF = 75, kCompute32FFastTF32 = 77;
constexpr int kGemmDefault = -1;

using CreateFn = cublasStatus_t (*)(cublasHandle_t*);
using SetStreamFn = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
using GemmExFn = cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void*,
                                    const void*, int, int, const void*, int, int, const void*,
                                    void*, int, int, int, int);

struct Cublas {
  void* lib = nullptr;
  std::string name, error;
  CreateFn create = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
  std::mutex mu;
  std::unordered_map<int, cublasHandle_t> handles;  // one handle per device
};

Cublas& cublas() {
  static Cublas* c = [] {
    auto* c = new Cublas();  // leaked on purpose: no destruction-order issues at exit
    const char* names[] = {getenv("POLYFE2_CUBLAS"), "libcublas.so.13", "libcublas.so.12",
                           "libcublas.so.11", "libcublas.so"};
    for (int pass = 0; pass < 2 && !c->lib; ++pass) {
      const int flags = RTLD_NOW | RTLD_LOCAL | (pass == 0 ? RTLD_NOLOAD : 0);
      for (const char* n : names) {
        if (!n || !*n) continue;
        if (void* lib = dlopen(n, flags)) {
          c->lib = lib;
          c->name = n;
          break;
        }
      }
    }
    if (!c->lib) {
      c->error = "libcublas could not be opened (set POLYFE2_CUBLAS to its path)";
      return c;
    }
    c->create = reinterpret_cast<CreateFn>(dlsym(c->lib, "cublasCreate_v2"));
    c->set_stream = reinterpret_cast<SetStreamFn>(dlsym(c->lib, "cublasSetStream_v2"));
    c->gemm_ex = reinterpret_cast<GemmExFn>(dlsym(c->lib, "cublasGemmEx"));
    if (!c->create || !c->set_stream || !c->gemm_ex) {
      c->error = "libcublas (" + c->name + ") lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx";
      c->lib = nullptr;
      c->name.clear();
    }
    return c;
  }();
  return *c;
}

// Returns nullptr when cuBLAS is unavailable (fallback kernel is used then).
cublasHandle_t cublas_handle(int device) {
  Cublas& c = cublas();
  if (!c.lib) return nullptr;
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.handles.find(device);
  if (it != c.handles.end()) return it->second;
  cublasHandle_t h = nullptr;
  cublasStatus_t st = c.create(&h);
  if (st != 0) throw std::runtime_error("cublasCreate failed with status " + std::to_string(st));
  c.handles[device] = h;
  return h;
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("gru_step (CUDA): ") + what + ": " + cudaGetErrorString(e));
}

// ------------------------------------------------------------------ kernels
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float gru_blend(float gr, float gz, float gn, const float* __restrict__ gh,
                                           int64_t row3, int H, int j, float hprev) {
  const float r = sigmoidf_(gr + __ldg(gh + row3 + j));
  const float z = sigmoidf_(gz + __ldg(gh + row3 + H + j));
  const float n = tanhf(gn + r * __ldg(gh + row3 + 2 * H + j));
  return n + z * (hprev - n);
}

// Layer with gx from a GEMM (ws, N x 3H) plus bias b (3H).
__global__ void gates_kernel(int64_t N, int H, const float* __restrict__ gx,
                             const float* __restrict__ b, const float* __restrict__ gh,
                             const float* __restrict__ h, float* __restrict__ hn) {
  const int64_t total = N * H;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / H;
    const int j = (int)(idx - n * H);
    const int64_t row3 = n * 3 * (int64_t)H;
    const float gr = gx[row3 + j] + __ldg(b + j);
    const float gz = gx[row3 + H + j] + __ldg(b + H + j);
    const float gn = gx[row3 + 2 * H + j] + __ldg(b + 2 * H + j);
    hn[idx] = gru_blend(gr, gz, gn, gh, row3, H, j, h[idx]);
  }
}

// Layer 1 of the precomputed path: gx = gx_const + f W_f^T with K small (9 or 19), fused.
__global__ void gates_precomputed_kernel(int64_t N, int H, int K, const float* __restrict__ f,
                                         const float* __restrict__ wf,
                                         const float* __restrict__ gxc,
                                         const float* __restrict__ gh,
                                         const float* __restrict__ h, float* __restrict__ hn) {
  const int64_t total = N * H;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / H;
    const int j = (int)(idx - n * H);
    const int64_t row3 = n * 3 * (int64_t)H;
    float gr = gxc[row3 + j], gz = gxc[row3 + H + j], gn = gxc[row3 + 2 * H + j];
    const float* fr = f + n * K;
    const float* wr = wf + (int64_t)j * K;
    const float* wz = wf + (int64_t)(H + j) * K;
    const float* wn = wf + (int64_t)(2 * H + j) * K;
    for (int k = 0; k < K; ++k) {
      const float a = __ldg(fr + k);
      gr = fmaf(a, __ldg(wr + k), gr);
      gz = fmaf(a, __ldg(wz + k), gz);
      gn = fmaf(a, __ldg(wn + k), gn);
    }
    hn[idx] = gru_blend(gr, gz, gn, gh, row3, H, j, h[idx]);
  }
}

// y[n, o] = b[o] + sum_j W[o, j] hL[n, j]; one warp per voxel.
__global__ void output_kernel(int64_t N, int H, int O, const float* __restrict__ hL,
                              const float* __restrict__ W, const float* __restrict__ b,
                              float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t n = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; n < N; n += warps) {
    const float* hr = hL + n * H;
    for (int o = 0; o < O; ++o) {
      const float* w = W + (int64_t)o * H;
      float s = 0.0f;
      for (int j = lane; j < H; j += 32) s = fmaf(__ldg(w + j), hr[j], s);
      for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
      if (lane == 0) y[n * O + o] = s + (b ? __ldg(b + o) : 0.0f);
    }
  }
}

// Fallback SGEMM (no cuBLAS): C (M x Nc, ld ldc) = A (M x K, ld lda) W^T, W (Nc x K, ld K).
constexpr int TM = 64, TN = 64, TK = 16;
__global__ void __launch_bounds__(256) sgemm_nt_kernel(int M, int Nc, int K,
                                                       const float* __restrict__ A, int lda,
                                                       const float* __restrict__ W,
                                                       float* __restrict__ C, int ldc) {
  __shared__ float As[TK][TM + 4];
  __shared__ float Ws[TK][TN + 4];
  const int t = threadIdx.x, tx = t & 15, ty = t >> 4;
  const int m0 = blockIdx.y * TM, c0 = blockIdx.x * TN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += TK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = t + 256 * i, row = e / TK, kk = e % TK;
      const int gm = m0 + row, gc = c0 + row, gk = k0 + kk;
      As[kk][row] = (gm < M && gk < K) ? A[(int64_t)gm * lda + gk] : 0.0f;
      Ws[kk][row] = (gc < Nc && gk < K) ? W[(int64_t)gc * K + gk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TK; ++kk) {
      float a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[j] = Ws[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int gm = m0 + ty + 16 * i;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int gc = c0 + tx + 16 * j;
      if (gc < Nc) C[(int64_t)gm * ldc + gc] = acc[i][j];
    }
  }
}

// C (N x 3H row-major) = A (N x K, ld lda) W^T with W (3H x K) row-major.
void gemm_nt(int device, cudaStream_t stream, Math math, int64_t N, int H3, int K, const float* A,
             int lda, const float* W, float* C) {
  if (N > INT32_MAX) throw std::runtime_error("gru_step (CUDA): N exceeds 2^31 - 1");
  if (cublasHandle_t handle = cublas_handle(device)) {
    Cublas& c = cublas();
    cublasStatus_t st = c.set_stream(handle, stream);
    if (st != 0) throw std::runtime_error("cublasSetStream failed: status " + std::to_string(st));
    const int compute = math == Math::TF32   ? kCompute32FFastTF32
                        : math == Math::BF16 ? kCompute32FFast16BF
                                             : kCompute32F;
    const float alpha = 1.0f, beta = 0.0f;
    // Column-major view: C^T (3H x N) = W (3H x K) * A^T (K x N).
    st = c.gemm_ex(handle, kOpT, kOpN, H3, (int)N, K, &alpha, W, kCudaR32F, K, A, kCudaR32F, lda,
                   &beta, C, kCudaR32F, H3, compute, kGemmDefault);
    if (st != 0) throw std::runtime_error("cublasGemmEx failed: status " + std::to_string(st));
    return;
  }
  dim3 grid((H3 + TN - 1) / TN, (unsigned)((N + TM - 1) / TM));
  sgemm_nt_kernel<<<grid, 256, 0, stream>>>((int)N, H3, K, A, lda, W, C, H3);
  check(cudaGetLastError(), "sgemm_nt_kernel launch");
}

unsigned grid_for(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = 65535LL * 8;
  if (blocks > cap) blocks = cap;  // grid-stride loops cover the rest
  if (blocks < 1) blocks = 1;
  return (unsigned)blocks;
}

struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev), "cudaGetDevice");
    if (prev != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int cur = -1;
    if (prev >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev) cudaSetDevice(prev);
  }
};

template <typename T>
T* P(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

}  // namespace

void step(const StepArgs& a) {
  if (a.N < 0 || a.H <= 0 || a.L <= 0 || a.K1 <= 0)
    throw std::invalid_argument("gru_step (CUDA): need N >= 0, H > 0, L > 0, K1 > 0");
  if ((int)a.w_ih.size() != a.L - 1 || (int)a.b_ih.size() != a.L - 1)
    throw std::invalid_argument("gru_step (CUDA): w_ih / b_ih must hold L - 1 entries");
  if (!a.a1 || !a.w1 || !a.init1 || !a.gh || !a.h || !a.h_new)
    throw std::invalid_argument("gru_step (CUDA): null pointer");
  const bool need_ws = a.L > 1 || !a.init1_rows;
  if (need_ws && !a.workspace)
    throw std::invalid_argument("gru_step (CUDA): a workspace of N x 3H floats is required");
  if (a.w_out && (!a.y || a.O <= 0))
    throw std::invalid_argument("gru_step (CUDA): w_out given without y / O");
  if (a.N == 0) return;

  DeviceGuard guard(a.device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(a.stream);
  const int64_t N = a.N, NH = N * a.H, NH3 = 3 * NH;
  const int H = a.H, H3 = 3 * a.H;
  constexpr int kThreads = 256;
  const unsigned grid = grid_for(NH, kThreads);
  float* ws = P<float>(a.workspace);

  for (int l = 0; l < a.L; ++l) {
    const float* gh = P<const float>(a.gh) + l * NH3;
    const float* h = P<const float>(a.h) + l * NH;
    float* hn = P<float>(a.h_new) + l * NH;
    if (l == 0 && a.init1_rows) {
      gates_precomputed_kernel<<<grid, kThreads, 0, stream>>>(
          N, H, a.K1, P<const float>(a.a1), P<const float>(a.w1), P<const float>(a.init1), gh, h,
          hn);
      check(cudaGetLastError(), "gates_precomputed_kernel launch");
      continue;
    }
    const float* A = l == 0 ? P<const float>(a.a1) : P<const float>(a.h_new) + (l - 1) * NH;
    const int K = l == 0 ? a.K1 : H;
    const float* W = l == 0 ? P<const float>(a.w1) : P<const float>(a.w_ih[l - 1]);
    const float* b = l == 0 ? P<const float>(a.init1) : P<const float>(a.b_ih[l - 1]);
    gemm_nt(a.device, stream, a.math, N, H3, K, A, K, W, ws);
    gates_kernel<<<grid, kThreads, 0, stream>>>(N, H, ws, b, gh, h, hn);
    check(cudaGetLastError(), "gates_kernel launch");
  }
  if (a.w_out) {
    const float* hL = P<const float>(a.h_new) + (a.L - 1) * NH;
    output_kernel<<<grid_for(N * 32, kThreads), kThreads, 0, stream>>>(
        N, H, a.O, hL, P<const float>(a.w_out), P<const float>(a.b_out), P<float>(a.y));
    check(cudaGetLastError(), "output_kernel launch");
  }
}

std::string cublas_library(std::string* error) {
  Cublas& c = cublas();
  if (error) *error = c.error;
  return c.name;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state
    return 0;
  }
  return n;
}

std::string runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

}  // namespace polyfe2_cuda
