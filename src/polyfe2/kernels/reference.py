"""Pure-torch reference of the split GRU step (fallback and test oracle).

Semantics are those of ``torch.nn.GRU`` (gate order r, z, n; ``weight_ih_l0`` rows are
``[W_ir; W_iz; W_in]``)::

    r  = sigmoid(gx_r + gh_r)
    z  = sigmoid(gx_z + gh_z)
    n  = tanh(gx_n + r * gh_n)
    h' = (1 - z) * n + z * h

with ``gh_l = W_hh_l h_l + b_hh_l`` precomputed once per load increment (see
:func:`precompute`) and ``gx_l = W_ih_l a_l + b_ih_l`` computed per evaluation, where
``a_1`` is the layer input and ``a_l = h'_{l-1}`` for ``l >= 2``.

Shapes (N voxels, H hidden, L layers, D input size, O outputs):

* ``h``: (L, N, H) committed hidden state, ``gh``: (L, N, 3H)
* general path: ``x`` (N, D), ``w_ih`` list of L (``(3H, D)`` then ``(3H, H)``), ``b_ih`` list of L
* precomputed path (linear input layer ``x = W_in_F f + W_in_m m + b_in``): ``f`` (N, 9),
  ``gx_const = W_ih_1 (W_in_m m + b_in) + b_ih_1`` (N, 3H), ``w_f = W_ih_1 W_in_F`` (3H, 9),
  ``w_ih``/``b_ih`` lists of L - 1 (layers 2..L)
* optional output projection ``y = h'_L W_out^T + b_out``: ``w_out`` (O, H), ``b_out`` (O)

Every function returns ``(h_new, y)`` with ``h_new`` (L, N, H) and ``y`` (N, O) or ``None``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    "gru_cell",
    "gru_step_reference",
    "gru_step_precomputed_reference",
    "precompute",
    "fold_input_weights",
]


def gru_cell(gx: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """Gate non-linearities and blend, given both pre-activations (N, 3H) and h (N, H)."""
    H = h.shape[-1]
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
    n = torch.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
    return n + z * (h - n)


def _layers(gx1: Tensor, h: Tensor, gh: Tensor, w_ih: Sequence[Tensor], b_ih: Sequence[Tensor],
            w_out: Optional[Tensor], b_out: Optional[Tensor]):
    L = h.shape[0]
    out = [gru_cell(gx1, gh[0], h[0])]
    for l in range(1, L):
        gx = torch.addmm(b_ih[l - 1], out[-1], w_ih[l - 1].t())
        out.append(gru_cell(gx, gh[l], h[l]))
    h_new = torch.stack(out)
    y = None
    if w_out is not None:
        y = out[-1] @ w_out.t()
        if b_out is not None:
            y = y + b_out
    return h_new, y


def gru_step_reference(x: Tensor, h: Tensor, gh: Tensor, w_ih: Sequence[Tensor],
                       b_ih: Sequence[Tensor], *, w_out: Optional[Tensor] = None,
                       b_out: Optional[Tensor] = None):
    """General path: layer-1 input ``x`` given; ``w_ih``/``b_ih`` hold all L layers."""
    gx1 = torch.addmm(b_ih[0], x, w_ih[0].t())
    return _layers(gx1, h, gh, list(w_ih)[1:], list(b_ih)[1:], w_out, b_out)


def gru_step_precomputed_reference(f: Tensor, gx_const: Tensor, w_f: Tensor, h: Tensor, gh: Tensor,
                                   w_ih: Sequence[Tensor], b_ih: Sequence[Tensor], *,
                                   w_out: Optional[Tensor] = None,
                                   b_out: Optional[Tensor] = None):
    """Precomputed path: ``gx_1 = gx_const + f w_f^T``; ``w_ih``/``b_ih`` hold layers 2..L."""
    gx1 = torch.addmm(gx_const, f, w_f.t())
    return _layers(gx1, h, gh, w_ih, b_ih, w_out, b_out)


def precompute(h: Tensor, w_hh: Sequence[Tensor], b_hh: Sequence[Tensor], *,
               m: Optional[Tensor] = None, w_in_m: Optional[Tensor] = None,
               b_in: Optional[Tensor] = None, w_ih1: Optional[Tensor] = None,
               b_ih1: Optional[Tensor] = None):
    """Once-per-increment terms from the committed state (and the microstructure ``m``).

    Returns ``(gh, gx_const)``: ``gh`` (L, N, 3H) with ``gh_l = h_l W_hh_l^T + b_hh_l``, and,
    when ``m`` is given, ``gx_const = (m W_in_m^T + b_in) W_ih_1^T + b_ih_1`` (N, 3H) for the
    precomputed path (linear input layer), else ``None``. Plain torch GEMMs on h's device.
    """
    L, N, H = h.shape
    gh = torch.empty(L, N, 3 * H, dtype=h.dtype, device=h.device)
    for l in range(L):
        torch.addmm(b_hh[l], h[l], w_hh[l].t(), out=gh[l])
    gx_const = None
    if m is not None:
        if w_in_m is None or w_ih1 is None:
            raise ValueError("precompute: m given without w_in_m / w_ih1")
        xm = m @ w_in_m.t()
        if b_in is not None:
            xm = xm + b_in
        gx_const = xm @ w_ih1.t()
        if b_ih1 is not None:
            gx_const = gx_const + b_ih1
    return gh, gx_const


def fold_input_weights(w_ih1: Tensor, w_in_f: Tensor) -> Tensor:
    """``W_f = W_ih_1 W_in_F`` (3H, 9): the F-part of a linear input layer folded into layer 1."""
    return (w_ih1.double() @ w_in_f.double()).to(w_ih1.dtype)
