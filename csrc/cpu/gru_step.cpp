// Fused per-voxel GRU step (torch.nn.GRU semantics, gate order r, z, n) -- CPU kernel.
//
// One call evaluates, for every voxel n and layer l = 1..L,
//     gx_l = A_l W_l^T + c_l          (the only GEMM work done per evaluation)
//     r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//     h'_l = (1 - z) * n + z * h_l
// with gh_l = W_hh_l h_l + b_hh_l precomputed by the caller (once per load increment).
// Layer 1 comes in two flavours selected by the caller:
//   precomputed : A_1 = f (N x 9), W_1 = W_f = W_ih_1 W_in_F (3H x 9), c_1 = gx_const (N x 3H, per row)
//   general     : A_1 = x (N x D), W_1 = W_ih_1 (3H x D),               c_1 = b_ih_1 (3H, broadcast)
// Layers l >= 2: A_l = h'_{l-1}, W_l = W_ih_l (3H x H), c_l = b_ih_l.
// Optionally y = h'_L W_out^T + b_out (O outputs) is fused into the same pass.
//
// Structure: OpenMP over blocks of MC voxels; each thread runs all layers (and the output
// projection) for its block so that h'_{l-1} is still in cache when layer l reads it. The
// weights are packed once per call into panels that interleave the r, z and n rows of VL
// consecutive hidden units, so that one register tile of the micro-kernel holds the r, z and n
// pre-activations of the same VL units for MR voxels; the gate non-linearities and the blend are
// applied to that tile in registers and only h' is written: gx never touches memory.
//
// All arrays are fp32, C-contiguous, passed as raw addresses (tensor.data_ptr()).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;  // floats per vector register
constexpr int MR = 8;   // voxels per micro-tile: 8 x 3 accumulators + 3 weight vectors of 32 zmm
const char* kIsa = "avx512";
#elif defined(__AVX__)
constexpr int VL = 8;
constexpr int MR = 4;  // 4 x 3 accumulators + 3 + 1 of 16 ymm
const char* kIsa = "avx2";
#elif defined(__aarch64__)
constexpr int VL = 4;
constexpr int MR = 8;
const char* kIsa = "neon";
#else
constexpr int VL = 4;
constexpr int MR = 3;
const char* kIsa = "sse";
#endif

constexpr int MC = 64;  // voxels per cache block (one OpenMP work item)

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));

static inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}
static inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }
// s - 0 == s exactly (also for -0), so this folds to a single (load-)broadcast.
static inline vf vsplat(float s) { return s - vf{}; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// exp(x) for x in [-88, 88]: Cephes-style range reduction + degree-6 polynomial (~1-2 ulp).
static inline vf vexp(vf x) {
  x = vmin(vmax(x, vsplat(-87.0f)), vsplat(87.0f));
  vf fx = x * 1.44269504088896341f + 0.5f;
  vi fi = __builtin_convertvector(fx, vi);
  vf tf = __builtin_convertvector(fi, vf);
  fi = fx < tf ? fi - 1 : fi;  // floor (the comparison yields 0 / -1 lanes)
  tf = __builtin_convertvector(fi, vf);
  x = x - tf * 0.693359375f + tf * 2.12194440e-4f;
  vf x2 = x * x;
  vf p = vsplat(1.9875691500e-4f);
  p = p * x + 1.3981999507e-3f;
  p = p * x + 8.3334519073e-3f;
  p = p * x + 4.1665795894e-2f;
  p = p * x + 1.6666665459e-1f;
  p = p * x + 5.0000001201e-1f;
  p = p * x2 + x + 1.0f;
  vi e = (fi + 127) << 23;
  vf scale;
  std::memcpy(&scale, &e, sizeof(vf));
  return p * scale;
}
static inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }
static inline vf vtanh(vf x) {
  x = vmin(vmax(x, vsplat(-9.0f)), vsplat(9.0f));  // tanh(9) == 1 in fp32
  return 1.0f - 2.0f / (vexp(2.0f * x) + 1.0f);
}
static inline float ssigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Pack W (3H x K, row-major) into panels: P[jb][k][g*VL + t] = W[g*H + jb*VL + t][k]
// for the HB = H / VL full unit blocks (tail units are handled by the scalar path).
static void pack_weights(const float* W, int H, int K, std::vector<float>& P) {
  const int HB = H / VL;
  P.assign(static_cast<size_t>(HB) * K * 3 * VL, 0.0f);
  for (int jb = 0; jb < HB; ++jb)
    for (int k = 0; k < K; ++k)
      for (int g = 0; g < 3; ++g)
        for (int t = 0; t < VL; ++t)
          P[(static_cast<size_t>(jb) * K + k) * 3 * VL + g * VL + t] =
              W[static_cast<size_t>(g * H + jb * VL + t) * K + k];
}

struct Layer {
  const float* A;      // N x K input (row stride lda)
  int64_t lda;
  int K;
  const float* W;      // 3H x K row-major (for tails)
  const float* P;      // packed panels
  const float* init;   // either rows (N x 3H) or bias (3H)
  bool init_rows;
  const float* gh;     // N x 3H
  const float* h;      // N x H
  float* hn;           // N x H (output)
};

// Full MR x (3 x VL) micro-tile: voxels n0..n0+MR-1, hidden units j0..j0+VL-1.
template <bool ROWS>
static inline void micro_tile(const Layer& L, int H, int64_t n0, int jb) {
  const int j0 = jb * VL;
  const int64_t H3 = 3 * static_cast<int64_t>(H);
  const float* A = L.A + n0 * L.lda;
  const float* P = L.P + static_cast<size_t>(jb) * L.K * 3 * VL;
  vf acc[MR][3];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const float* c = ROWS ? L.init + (n0 + i) * H3 : L.init;
    acc[i][0] = vload(c + j0);
    acc[i][1] = vload(c + H + j0);
    acc[i][2] = vload(c + 2 * H + j0);
  }
  const int K = L.K;
  for (int k = 0; k < K; ++k) {
    const vf b0 = vload(P + 3 * VL * k);
    const vf b1 = vload(P + 3 * VL * k + VL);
    const vf b2 = vload(P + 3 * VL * k + 2 * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const vf a = vsplat(A[i * L.lda + k]);
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
      acc[i][2] += a * b2;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const int64_t n = n0 + i;
    const float* gh = L.gh + n * H3;
    const vf r = vsigmoid(acc[i][0] + vload(gh + j0));
    const vf z = vsigmoid(acc[i][1] + vload(gh + H + j0));
    const vf c = vtanh(acc[i][2] + r * vload(gh + 2 * H + j0));
    const vf hp = vload(L.h + n * H + j0);
    vstore(L.hn + n * H + j0, c + z * (hp - c));
  }
}

// Scalar path for tails: voxels [n0, n1) x hidden units [j0, j1).
static void scalar_tile(const Layer& L, int H, int64_t n0, int64_t n1, int j0, int j1) {
  const int64_t H3 = 3 * static_cast<int64_t>(H);
  for (int64_t n = n0; n < n1; ++n) {
    const float* a = L.A + n * L.lda;
    const float* c = L.init_rows ? L.init + n * H3 : L.init;
    const float* gh = L.gh + n * H3;
    for (int j = j0; j < j1; ++j) {
      float gr = c[j], gz = c[H + j], gn = c[2 * H + j];
      const float* wr = L.W + static_cast<int64_t>(j) * L.K;
      const float* wz = L.W + static_cast<int64_t>(H + j) * L.K;
      const float* wn = L.W + static_cast<int64_t>(2 * H + j) * L.K;
      for (int k = 0; k < L.K; ++k) {
        gr += a[k] * wr[k];
        gz += a[k] * wz[k];
        gn += a[k] * wn[k];
      }
      const float r = ssigmoid(gr + gh[j]);
      const float z = ssigmoid(gz + gh[H + j]);
      const float cn = std::tanh(gn + r * gh[2 * H + j]);
      L.hn[n * H + j] = cn + z * (L.h[n * H + j] - cn);
    }
  }
}

static void layer_block(const Layer& L, int H, int64_t b0, int64_t b1) {
  const int HB = H / VL;
  const int64_t nfull = b0 + ((b1 - b0) / MR) * MR;
  for (int jb = 0; jb < HB; ++jb)
    for (int64_t n = b0; n < nfull; n += MR) {
      if (L.init_rows)
        micro_tile<true>(L, H, n, jb);
      else
        micro_tile<false>(L, H, n, jb);
    }
  if (nfull < b1 && HB > 0) scalar_tile(L, H, nfull, b1, 0, HB * VL);
  if (HB * VL < H) scalar_tile(L, H, b0, b1, HB * VL, H);
}

static void output_block(const float* hL, int H, const float* Wo, const float* bo, int O,
                         float* y, int64_t b0, int64_t b1) {
  for (int64_t n = b0; n < b1; ++n) {
    const float* hn = hL + n * H;
    for (int o = 0; o < O; ++o) {
      const float* w = Wo + static_cast<int64_t>(o) * H;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int j = 0; j < H; ++j) s += w[j] * hn[j];
      y[n * O + o] = s + (bo ? bo[o] : 0.0f);
    }
  }
}

template <typename T>
static T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

// See the header comment. Pointers are addresses of fp32 C-contiguous arrays:
//   a1 (N x K1), w1 (3H x K1), init1 (N x 3H if init1_rows else 3H), gh (L x N x 3H),
//   w_ih[l], b_ih[l] for l = 2..L (3H x H, 3H), h (L x N x H), h_new (L x N x H),
//   w_out (O x H) or 0, b_out (O) or 0, y (N x O) when w_out != 0.
void step(int64_t N, int H, int nlayers, int K1, uintptr_t a1, uintptr_t w1, uintptr_t init1,
          bool init1_rows, uintptr_t gh, std::vector<uintptr_t> w_ih, std::vector<uintptr_t> b_ih,
          uintptr_t h, uintptr_t h_new, uintptr_t w_out, uintptr_t b_out, int O, uintptr_t y,
          int num_threads) {
  if (N < 0 || H <= 0 || nlayers <= 0 || K1 <= 0)
    throw std::invalid_argument("gru_step: need N >= 0, H > 0, L > 0, K1 > 0");
  if (static_cast<int>(w_ih.size()) != nlayers - 1 || static_cast<int>(b_ih.size()) != nlayers - 1)
    throw std::invalid_argument("gru_step: w_ih / b_ih must hold L - 1 entries (layers 2..L)");
  if (!a1 || !w1 || !init1 || !gh || !h || !h_new)
    throw std::invalid_argument("gru_step: null pointer");
  if (w_out && (!y || O <= 0)) throw std::invalid_argument("gru_step: w_out given without y / O");
  if (N == 0) return;

  std::vector<std::vector<float>> packed(nlayers);
  {
    py::gil_scoped_release release;
    pack_weights(ptr<const float>(w1), H, K1, packed[0]);
    for (int l = 1; l < nlayers; ++l) pack_weights(ptr<const float>(w_ih[l - 1]), H, H, packed[l]);

    std::vector<Layer> layers(nlayers);
    const int64_t NH = N * H, NH3 = 3 * N * H;
    for (int l = 0; l < nlayers; ++l) {
      Layer& Ly = layers[l];
      if (l == 0) {
        Ly.A = ptr<const float>(a1);
        Ly.lda = K1;
        Ly.K = K1;
        Ly.W = ptr<const float>(w1);
        Ly.init = ptr<const float>(init1);
        Ly.init_rows = init1_rows;
      } else {
        Ly.A = ptr<float>(h_new) + (l - 1) * NH;
        Ly.lda = H;
        Ly.K = H;
        Ly.W = ptr<const float>(w_ih[l - 1]);
        Ly.init = ptr<const float>(b_ih[l - 1]);
        Ly.init_rows = false;
      }
      Ly.P = packed[l].data();
      Ly.gh = ptr<const float>(gh) + l * NH3;
      Ly.h = ptr<const float>(h) + l * NH;
      Ly.hn = ptr<float>(h_new) + l * NH;
    }
    const int64_t nblocks = (N + MC - 1) / MC;
    const float* hL = ptr<const float>(h_new) + (nlayers - 1) * NH;
    int nt = num_threads;
#ifdef _OPENMP
    if (nt <= 0) nt = omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t b0 = b * MC, b1 = std::min<int64_t>(N, b0 + MC);
      for (int l = 0; l < nlayers; ++l) layer_block(layers[l], H, b0, b1);
      if (w_out)
        output_block(hL, H, ptr<const float>(w_out), ptr<const float>(b_out), O, ptr<float>(y), b0,
                     b1);
    }
    (void)nt;
  }
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_gru_cpu, m) {
  m.doc() = "polyfe2 fused GRU step, CPU kernel (fp32, OpenMP, packed register-tiled GEMM + fused gates)";
  m.def("step", &step, py::arg("N"), py::arg("H"), py::arg("L"), py::arg("K1"), py::arg("a1"),
        py::arg("w1"), py::arg("init1"), py::arg("init1_rows"), py::arg("gh"), py::arg("w_ih"),
        py::arg("b_ih"), py::arg("h"), py::arg("h_new"), py::arg("w_out") = 0, py::arg("b_out") = 0,
        py::arg("O") = 0, py::arg("y") = 0, py::arg("num_threads") = 0,
        "Fused GRU step on raw fp32 pointers; see csrc/cpu/gru_step.cpp.");
  m.def("max_threads", &max_threads);
  m.attr("isa") = kIsa;
  m.attr("vector_width") = VL;
  m.attr("micro_rows") = MR;
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
