"""Fused per-voxel GRU hidden-state update (one GRU step per load increment).

The solver evaluates the step many times per increment from the same committed hidden
state; only the deformation changes. The step is therefore split:

* once per increment, :func:`precompute` (or :meth:`FusedGRU.precompute`):
  ``gh_l = W_hh_l h_l + b_hh_l`` for every layer and, when the input layer is *linear*
  (``x = W_in_F f + W_in_m m + b_in``), ``gx_const = W_ih_1 (W_in_m m + b_in) + b_ih_1``;
* per evaluation, :func:`gru_step_precomputed` (linear input layer: ``gx_1 = gx_const + W_f f``
  with ``W_f = W_ih_1 W_in_F``, a K = 9 or 19 product over the surrogate's step features) or
  :func:`gru_step` (general: the caller passes
  ``x`` -- use it when the input layer has an activation -- and ``gx_1 = W_ih_1 x + b_ih_1``);
  then ``gx_l = W_ih_l h'_{l-1} + b_ih_l`` and torch.nn.GRU's gates with the precomputed
  ``gh_l``. Optionally the output projection ``y = W_out h'_L + b_out`` is fused.

Both functions return ``(h_new, y)``: ``h_new`` (L, N, H), ``y`` (N, O) or ``None``. They run the
compiled CPU kernel (``_gru_cpu``) or CUDA kernels (``_gru_cuda``) for the tensors' device when
built (``tools/build_kernels.sh``), else the pure-torch reference (:mod:`.reference`).
:func:`backend_info` names the implementation in use, for the log.

All tensors must be float32, C-contiguous and on one device. See :mod:`.reference` for shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from .reference import (fold_input_weights, gru_cell, gru_step_precomputed_reference,
                        gru_step_reference, precompute)

__all__ = [
    "gru_step",
    "gru_step_precomputed",
    "precompute",
    "fold_input_weights",
    "gru_cell",
    "FusedGRU",
    "GRUPrecomputed",
    "backend_info",
    "has_cpu_kernel",
    "has_cuda",
    "KernelArgumentError",
]

try:  # compiled CPU kernel
    from . import _gru_cpu  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _gru_cpu = None
try:  # compiled CUDA kernels
    from . import _gru_cuda  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _gru_cuda = None

CPU_KERNEL = "compiled CPU kernel"
CUDA_KERNEL = "compiled CUDA kernel"
REFERENCE = "torch reference (kernels not built)"
_BACKENDS = ("auto", "compiled", "reference")
_MATH = ("fp32", "tf32", "bf16")


class KernelArgumentError(ValueError):
    """A tensor handed to the GRU step kernels has the wrong shape, dtype, device or layout."""


def has_cpu_kernel() -> bool:
    """True when the compiled CPU kernel module is importable."""
    return _gru_cpu is not None


def has_cuda() -> bool:
    """True when the compiled CUDA module is importable and torch sees a CUDA device."""
    return _gru_cuda is not None and torch.cuda.is_available()


def backend_info(device: "torch.device | str" = "cpu") -> str:
    """Which implementation :func:`gru_step` uses for tensors on ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if _gru_cuda is not None:
            lib, _err = _gru_cuda.cublas_library()
            return CUDA_KERNEL + (f" (GEMMs: {lib})" if lib else " (GEMMs: built-in SGEMM, no cuBLAS)")
        return "torch reference (CUDA kernels not built)"
    if dev.type == "cpu" and _gru_cpu is not None:
        return CPU_KERNEL + f" ({_gru_cpu.isa}, {_gru_cpu.max_threads()} threads)"
    return REFERENCE


# ----------------------------------------------------------------------------- checks
def _check(name: str, t: Tensor, shape: tuple, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        raise KernelArgumentError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise KernelArgumentError(f"{name}: expected dtype float32, got {t.dtype}")
    if t.device != device:
        raise KernelArgumentError(f"{name}: on {t.device}, expected {device} (like h)")
    if tuple(t.shape) != tuple(shape):
        raise KernelArgumentError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if not t.is_contiguous():
        raise KernelArgumentError(f"{name}: must be C-contiguous (call .contiguous())")


def _check_common(h, gh, w_ih, b_ih, nrest, w_out, b_out):
    if not isinstance(h, Tensor) or h.dim() != 3:
        raise KernelArgumentError("h: expected a (L, N, H) tensor")
    L, N, H = h.shape
    dev = h.device
    _check("h", h, (L, N, H), dev)
    _check("gh", gh, (L, N, 3 * H), dev)
    if len(w_ih) != nrest or len(b_ih) != nrest:
        raise KernelArgumentError(f"w_ih / b_ih: expected {nrest} entries each, got "
                                  f"{len(w_ih)} / {len(b_ih)}")
    O = 0
    if w_out is not None:
        if w_out.dim() != 2:
            raise KernelArgumentError("w_out: expected an (O, H) tensor")
        O = w_out.shape[0]
        _check("w_out", w_out, (O, H), dev)
        if b_out is not None:
            _check("b_out", b_out, (O,), dev)
    elif b_out is not None:
        raise KernelArgumentError("b_out given without w_out")
    return L, N, H, O, dev


def _use_compiled(dev: torch.device, backend: str) -> bool:
    if backend not in _BACKENDS:
        raise KernelArgumentError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "reference":
        return False
    mod = _gru_cuda if dev.type == "cuda" else _gru_cpu if dev.type == "cpu" else None
    if mod is None and backend == "compiled":
        raise RuntimeError(f"no compiled GRU kernel for {dev.type} (run tools/build_kernels.sh)")
    return mod is not None


def _outputs(h, N, O, w_out, out_h, out_y):
    """Output buffers: the caller's (checked) or fresh ones."""
    L, _, H = h.shape
    if out_h is not None:
        _check("out_h", out_h, (L, N, H), h.device)
        if out_h.data_ptr() == h.data_ptr():
            raise KernelArgumentError("out_h must not alias h")
    else:
        out_h = torch.empty_like(h)
    if w_out is None:
        return out_h, None
    if out_y is not None:
        _check("out_y", out_y, (N, O), h.device)
    else:
        out_y = torch.empty(N, O, dtype=h.dtype, device=h.device)
    return out_h, out_y


def _run(dev, N, H, L, K1, a1, w1, init1, init1_rows, h, gh, w_rest, b_rest, w_out, b_out, O,
         math, num_threads, out_h, out_y):
    h_new, y = _outputs(h, N, O, w_out, out_h, out_y)
    ptrs = dict(
        N=N, H=H, L=L, K1=K1, a1=a1.data_ptr(), w1=w1.data_ptr(), init1=init1.data_ptr(),
        init1_rows=init1_rows, gh=gh.data_ptr(), w_ih=[w.data_ptr() for w in w_rest],
        b_ih=[b.data_ptr() for b in b_rest], h=h.data_ptr(), h_new=h_new.data_ptr(),
        w_out=w_out.data_ptr() if w_out is not None else 0,
        b_out=b_out.data_ptr() if b_out is not None else 0, O=O,
        y=y.data_ptr() if y is not None else 0)
    if N == 0:
        return h_new, y
    if dev.type == "cpu":
        if num_threads is None:
            num_threads = torch.get_num_threads()
        _gru_cpu.step(**ptrs, num_threads=int(num_threads))
    else:
        if math not in _MATH:
            raise KernelArgumentError(f"math must be one of {_MATH}, got {math!r}")
        ws = None
        if L > 1 or not init1_rows:
            ws = torch.empty(N, 3 * H, dtype=torch.float32, device=dev)
        stream = torch.cuda.current_stream(dev)
        _gru_cuda.step(**ptrs, workspace=ws.data_ptr() if ws is not None else 0, math=math,
                       stream=stream.cuda_stream, device=dev.index if dev.index is not None
                       else torch.cuda.current_device())
        if ws is not None:
            ws.record_stream(stream)
    return h_new, y


# ----------------------------------------------------------------------------- entry points
def gru_step(x: Tensor, h: Tensor, gh: Tensor, w_ih: Sequence[Tensor], b_ih: Sequence[Tensor], *,
             w_out: Optional[Tensor] = None, b_out: Optional[Tensor] = None,
             backend: str = "auto", math: str = "fp32", num_threads: Optional[int] = None,
             out_h: Optional[Tensor] = None, out_y: Optional[Tensor] = None):
    """General split GRU step (any input layer): ``x`` (N, D) is the layer-1 input.

    ``h`` (L, N, H) committed state, ``gh`` (L, N, 3H) from :func:`precompute`, ``w_ih``/``b_ih``
    lists of L tensors (``(3H, D)``/``(3H,)`` then ``(3H, H)``/``(3H,)``), optional ``w_out``
    (O, H), ``b_out`` (O). ``backend``: "auto" (compiled kernel when built, else reference),
    "compiled" (error when not built) or "reference". ``math`` (CUDA only): "fp32", "tf32" or
    "bf16" for the GEMMs. ``num_threads`` (CPU): OpenMP threads, default torch's.
    ``out_h`` (L, N, H) / ``out_y`` (N, O): optional preallocated results (reusing them across
    evaluations avoids page-faulting fresh large buffers on every call; must not alias ``h``).
    Returns ``(h_new (L, N, H), y (N, O) or None)``.
    """
    L, N, H, O, dev = _check_common(h, gh, list(w_ih)[1:], list(b_ih)[1:], _nrest(h),
                                    w_out, b_out)
    if len(w_ih) != L or len(b_ih) != L:
        raise KernelArgumentError(f"w_ih / b_ih: expected {L} entries each (one per layer)")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise KernelArgumentError("x: expected an (N, D) tensor")
    D = x.shape[1]
    _check("x", x, (N, D), dev)
    _check("w_ih[0]", w_ih[0], (3 * H, D), dev)
    _check("b_ih[0]", b_ih[0], (3 * H,), dev)
    for l in range(1, L):
        _check(f"w_ih[{l}]", w_ih[l], (3 * H, H), dev)
        _check(f"b_ih[{l}]", b_ih[l], (3 * H,), dev)
    if not _use_compiled(dev, backend) or D == 0:
        return _copy_out(gru_step_reference(x, h, gh, w_ih, b_ih, w_out=w_out, b_out=b_out),
                         h, N, O, w_out, out_h, out_y)
    return _run(dev, N, H, L, D, x, w_ih[0], b_ih[0], False, h, gh, list(w_ih)[1:],
                list(b_ih)[1:], w_out, b_out, O, math, num_threads, out_h, out_y)


def gru_step_precomputed(f: Tensor, gx_const: Tensor, w_f: Tensor, h: Tensor, gh: Tensor,
                         w_ih: Sequence[Tensor], b_ih: Sequence[Tensor], *,
                         w_out: Optional[Tensor] = None, b_out: Optional[Tensor] = None,
                         backend: str = "auto", math: str = "fp32",
                         num_threads: Optional[int] = None, out_h: Optional[Tensor] = None,
                         out_y: Optional[Tensor] = None):
    """Split GRU step for a *linear* input layer: ``gx_1 = gx_const + f w_f^T``.

    ``f`` (N, K) (any small K; the surrogate's 9 or 19 step features), ``gx_const`` (N, 3H) and ``gh`` (L, N, 3H) from
    :func:`precompute`, ``w_f = W_ih_1 W_in_F`` (3H, K) (:func:`fold_input_weights`),
    ``w_ih``/``b_ih`` lists of L - 1 tensors for layers 2..L. Other arguments as :func:`gru_step`.
    """
    L, N, H, O, dev = _check_common(h, gh, w_ih, b_ih, _nrest(h), w_out, b_out)
    if not isinstance(f, Tensor) or f.dim() != 2:
        raise KernelArgumentError("f: expected an (N, K) tensor")
    K = f.shape[1]
    _check("f", f, (N, K), dev)
    _check("gx_const", gx_const, (N, 3 * H), dev)
    _check("w_f", w_f, (3 * H, K), dev)
    for l in range(L - 1):
        _check(f"w_ih[{l}] (layer {l + 2})", w_ih[l], (3 * H, H), dev)
        _check(f"b_ih[{l}] (layer {l + 2})", b_ih[l], (3 * H,), dev)
    if not _use_compiled(dev, backend) or K == 0:
        res = gru_step_precomputed_reference(f, gx_const, w_f, h, gh, w_ih, b_ih, w_out=w_out,
                                             b_out=b_out)
        return _copy_out(res, h, N, O, w_out, out_h, out_y)
    return _run(dev, N, H, L, K, f, w_f, gx_const, True, h, gh, w_ih, b_ih, w_out, b_out, O,
                math, num_threads, out_h, out_y)


def _copy_out(res, h, N, O, w_out, out_h, out_y):
    if out_h is None and out_y is None:
        return res
    h_new, y = _outputs(h, N, O, w_out, out_h, out_y)
    h_new.copy_(res[0])
    if y is not None:
        y.copy_(res[1])
    return h_new, y


def _nrest(h: Tensor) -> int:
    if not isinstance(h, Tensor) or h.dim() != 3:
        raise KernelArgumentError("h: expected a (L, N, H) tensor")
    return h.shape[0] - 1


# ----------------------------------------------------------------------------- module wrapper
@dataclass
class GRUPrecomputed:
    """Once-per-increment terms: ``gh`` (L, N, 3H); ``gx_const`` (N, 3H) or None."""

    gh: Tensor
    gx_const: Optional[Tensor] = None


class FusedGRU:
    """The split GRU step for the weights of an ``nn.GRU`` (+ optional input/output ``Linear``).

    ``input_linear``: the model's input layer ``Linear(n_f + n_m -> D)`` when it is *linear*
    (no activation after it); its first ``n_f`` input columns act on the isochoric F and the rest
    on the microstructure vector m. Then :meth:`precompute` takes ``m`` and :meth:`step` takes
    ``f`` (N, n_f). Without it (input layer with an activation), :meth:`step` takes ``x`` (N, D).
    ``output_linear``: optional ``Linear(H -> O)`` fused into the step (returns ``y``).
    Weights are copied (float32, contiguous) onto ``device`` at construction.
    """

    def __init__(self, gru: torch.nn.GRU, input_linear: Optional[torch.nn.Linear] = None,
                 output_linear: Optional[torch.nn.Linear] = None, *, n_f: int = 9,
                 device: "torch.device | str | None" = None, backend: str = "auto",
                 math: str = "fp32"):
        if gru.bidirectional or not gru.bias or getattr(gru, "proj_size", 0):
            raise KernelArgumentError("FusedGRU supports unidirectional nn.GRU with biases only")
        dev = torch.device(device) if device is not None else next(gru.parameters()).device
        cv = lambda t: t.detach().to(device=dev, dtype=torch.float32).contiguous()  # noqa: E731
        self.L, self.H = gru.num_layers, gru.hidden_size
        self.device, self.backend, self.math = dev, backend, math
        self.w_ih = [cv(getattr(gru, f"weight_ih_l{l}")) for l in range(self.L)]
        self.b_ih = [cv(getattr(gru, f"bias_ih_l{l}")) for l in range(self.L)]
        self.w_hh = [cv(getattr(gru, f"weight_hh_l{l}")) for l in range(self.L)]
        self.b_hh = [cv(getattr(gru, f"bias_hh_l{l}")) for l in range(self.L)]
        self.linear_input = input_linear is not None
        if input_linear is not None:
            W = cv(input_linear.weight)
            self.n_f = n_f
            self.w_in_f = W[:, :n_f].contiguous()
            self.w_in_m = W[:, n_f:].contiguous()
            self.b_in = cv(input_linear.bias) if input_linear.bias is not None else None
            self.w_f = fold_input_weights(self.w_ih[0], self.w_in_f).contiguous()
        self.w_out = cv(output_linear.weight) if output_linear is not None else None
        self.b_out = (cv(output_linear.bias)
                      if output_linear is not None and output_linear.bias is not None else None)

    def backend_info(self) -> str:
        return REFERENCE if self.backend == "reference" else backend_info(self.device)

    @torch.no_grad()
    def precompute(self, h: Tensor, m: Optional[Tensor] = None) -> GRUPrecomputed:
        """Once per increment: ``gh`` from the committed ``h`` (L, N, H) and, for a linear
        input layer, ``gx_const`` from the microstructure ``m`` (N, n_m)."""
        if self.linear_input and m is None:
            raise KernelArgumentError("precompute: m is required with a linear input layer")
        gh, gxc = precompute(h, self.w_hh, self.b_hh,
                             m=m if self.linear_input else None,
                             w_in_m=getattr(self, "w_in_m", None), b_in=getattr(self, "b_in", None),
                             w_ih1=self.w_ih[0], b_ih1=self.b_ih[0])
        return GRUPrecomputed(gh.contiguous(), gxc.contiguous() if gxc is not None else None)

    @torch.no_grad()
    def step(self, inp: Tensor, h: Tensor, pre: GRUPrecomputed, *, num_threads=None,
             out_h: Optional[Tensor] = None, out_y: Optional[Tensor] = None):
        """Per evaluation: ``inp`` is ``f`` (N, n_f) with a linear input layer, else ``x`` (N, D).
        Returns ``(h_new (L, N, H), y (N, O) or None)``."""
        kw = dict(w_out=self.w_out, b_out=self.b_out, backend=self.backend, math=self.math,
                  num_threads=num_threads, out_h=out_h, out_y=out_y)
        if self.linear_input:
            return gru_step_precomputed(inp, pre.gx_const, self.w_f, h, pre.gh, self.w_ih[1:],
                                        self.b_ih[1:], **kw)
        return gru_step(inp, h, pre.gh, self.w_ih, self.b_ih, **kw)
