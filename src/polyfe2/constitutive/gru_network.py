"""Microstructure-sensitive GRU surrogate (paper 003, section 2; DESIGN "GRU surrogate").

Architecture
    * Descriptor ``d`` (B, G, 7) -- rows ``[x, y, z, q0..q3]`` (:data:`DESCRIPTOR_LAYOUT`),
      min-max scaled per column.
    * Two mean-pooled (Deep Sets) microstructure networks, each a per-grain MLP
      ``7 -> W -> W`` (SiLU) averaged over the G grains, then a linear head; the mean makes them
      invariant to the order of the grains:

      - ``h0 = tanh(head_h(mean_g phi_h(d_g)))`` reshaped to (layers, B, hidden): the GRU's
        initial hidden state;
      - ``m = head_m(mean_g phi_m(d_g))`` (B, 32), fed at every step.
    * Input layer ``x = W_in [f, m] + b_in`` with ``f`` the min-max scaled, flattened isochoric
      F (9, row major ``F11, F12, ..., F33``). It is deliberately *linear* (no activation):
      :class:`polyfe2.kernels.FusedGRU` then folds it into the GRU's first input GEMM
      (``W_ih_1 W_in_F``, K = 9) and computes the m-dependent part once per increment.
    * ``nn.GRU(input_size, hidden=256, layers=2, batch_first=True)``.
    * Output layer ``Linear(hidden -> 6)``: the min-max scaled deviatoric Cauchy stress in
      Voigt order ``11, 22, 33, 23, 13, 12`` (:data:`STRESS_ORDER`).

Units and scaling
    Public methods take physical inputs (F, descriptor) and return the deviatoric Cauchy
    stress in **Pa** (SI, as the rest of the package). The min-max statistics (per component,
    to ``[0, 1]``) live in buffers (``F_min/F_max`` (9), ``d_min/d_max`` (7),
    ``s_min/s_max`` (6)) and are part of the checkpoint; set them from training data with
    :meth:`GRUSurrogate.fit_scaling`. :meth:`GRUSurrogate.forward_scaled` returns the scaled
    outputs for an MSE training loss.

Checkpoints
    :meth:`GRUSurrogate.save` writes a plain ``torch.save`` dict (``format``, ``version``,
    ``layout``, ``arch``, ``scaling``, ``state_dict``, ``meta``); :meth:`GRUSurrogate.load`
    checks ``format``, ``version`` and ``layout`` and raises a one-line
    :class:`polyfe2.errors.InputError` naming the file and the key.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..checkpoints import load_weights, read_checkpoint, save_checkpoint
from ..errors import InputError
from ..kernels import FusedGRU
from ..microstructure.descriptor import DESCRIPTOR_LAYOUT, DESCRIPTOR_WIDTH
from ..mechanics import STRESS_ORDER, isochoric

__all__ = [
    "GRUSurrogate",
    "STRESS_ORDER",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "polyfe2.gru_surrogate"
CHECKPOINT_VERSION = 1


class _PooledMLP(nn.Module):
    """Per-grain MLP, mean over grains, linear head (permutation invariant)."""

    def __init__(self, n_in: int, width: int, n_out: int):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU())
        self.head = nn.Linear(width, n_out)

    def forward(self, d: Tensor) -> Tensor:  # d (B, G, n_in)
        return self.head(self.phi(d).mean(dim=-2))


class GRUSurrogate(nn.Module):
    """GRU surrogate of the deviatoric stress response of a 20-grain Voronoi VE.

    Parameters
    ----------
    hidden : int, optional
        GRU hidden size (256).
    layers : int, optional
        Number of GRU layers (2).
    m_size : int, optional
        Size of the per-step microstructure vector ``m`` (32).
    input_size : int or None, optional
        Output size of the (linear) input layer; default ``hidden``.
    mlp_width : int, optional
        Width of the per-grain MLPs (128).
    n_grains : int, optional
        Grains per descriptor (20); informative (the pooling accepts any G).
    descriptor_width : int, optional
        Width of a descriptor row: 7 for grain rows ``[x, y, z, q0..q3]``; a microstructure
        fingerprint (:mod:`polyfe2.learn.fingerprint`) of width W is given as one row (B, 1, W).

    Notes
    -----
    Shapes: descriptor (B, G, 7), deformation gradients (B, T, 3, 3) or (B, 3, 3) per step,
    hidden state (layers, B, hidden), stress (B, [T,] 6) in Pa, order :data:`STRESS_ORDER`.
    """

    def __init__(self, hidden: int = 256, layers: int = 2, m_size: int = 32,
                 input_size: Optional[int] = None, mlp_width: int = 128, n_grains: int = 20,
                 descriptor_width: int = DESCRIPTOR_WIDTH):
        super().__init__()
        input_size = hidden if input_size is None else int(input_size)
        self.arch = dict(hidden=int(hidden), layers=int(layers), m_size=int(m_size),
                         input_size=input_size, mlp_width=int(mlp_width),
                         n_grains=int(n_grains), descriptor_width=int(descriptor_width))
        self.hidden, self.layers, self.m_size = int(hidden), int(layers), int(m_size)
        self.h0_net = _PooledMLP(descriptor_width, mlp_width, layers * hidden)
        self.m_net = _PooledMLP(descriptor_width, mlp_width, m_size)
        self.input_layer = nn.Linear(9 + m_size, input_size)   # linear: foldable by FusedGRU
        self.gru = nn.GRU(input_size, hidden, num_layers=layers, batch_first=True)
        self.output_layer = nn.Linear(hidden, 6)
        # min-max statistics (identity scaling until fit_scaling is called)
        self.register_buffer("F_min", torch.zeros(9))
        self.register_buffer("F_max", torch.ones(9))
        self.register_buffer("d_min", torch.zeros(descriptor_width))
        self.register_buffer("d_max", torch.ones(descriptor_width))
        self.register_buffer("s_min", torch.zeros(6))
        self.register_buffer("s_max", torch.ones(6))

    # ------------------------------------------------------------------ scaling
    @staticmethod
    def _span(lo: Tensor, hi: Tensor) -> Tensor:
        span = hi - lo
        return torch.where(span > 0, span, torch.ones_like(span))

    @torch.no_grad()
    def fit_scaling(self, descriptors: Tensor, F_paths: Tensor, sigma_dev: Tensor) -> None:
        """Set the min-max statistics from training data.

        Parameters
        ----------
        descriptors : Tensor, shape (B, G, 7)
        F_paths : Tensor, shape (B, T, 3, 3)
            Deformation gradients (the isochoric part is taken here).
        sigma_dev : Tensor, shape (B, T, 6)
            Deviatoric Cauchy stress in Pa, :data:`STRESS_ORDER`.
        """
        f = isochoric(F_paths).reshape(-1, 9)
        d = descriptors.reshape(-1, descriptors.shape[-1])
        s = sigma_dev.reshape(-1, 6)
        for name, x in (("F", f), ("d", d), ("s", s)):
            getattr(self, f"{name}_min").copy_(x.amin(0))
            getattr(self, f"{name}_max").copy_(x.amax(0))

    def scale_F(self, F: Tensor) -> Tensor:
        """Scaled, flattened isochoric F: (..., 3, 3) -> (..., 9) (the ``f`` of FusedGRU)."""
        f = isochoric(F).reshape(F.shape[:-2] + (9,))
        return (f - self.F_min) / self._span(self.F_min, self.F_max)

    def scale_descriptor(self, d: Tensor) -> Tensor:
        """Min-max scaled descriptor (..., G, 7)."""
        return (d - self.d_min) / self._span(self.d_min, self.d_max)

    def scale_stress(self, s: Tensor) -> Tensor:
        """Pa -> scaled [0, 1] (per component)."""
        return (s - self.s_min) / self._span(self.s_min, self.s_max)

    def unscale_stress(self, y: Tensor) -> Tensor:
        """Scaled network output -> deviatoric Cauchy stress in Pa."""
        return y * self._span(self.s_min, self.s_max) + self.s_min

    # ------------------------------------------------------------------ model
    def initial_state(self, descriptor: Tensor) -> Tuple[Tensor, Tensor]:
        """Initial hidden state and microstructure vector.

        Parameters
        ----------
        descriptor : Tensor, shape (B, G, 7)
            Physical (unscaled) descriptor.

        Returns
        -------
        h0 : Tensor, shape (layers, B, hidden)
        m : Tensor, shape (B, m_size)
        """
        d = self.scale_descriptor(descriptor)
        B = d.shape[0]
        h0 = torch.tanh(self.h0_net(d)).reshape(B, self.layers, self.hidden)
        return h0.transpose(0, 1).contiguous(), self.m_net(d)

    def _inputs(self, f: Tensor, m: Tensor) -> Tensor:
        """Input layer on the scaled isochoric F ``f`` (B, [T,] 9) and m."""
        mm = m if f.dim() == 2 else m[:, None, :].expand(-1, f.shape[1], -1)
        return self.input_layer(torch.cat([f, mm], dim=-1))

    def forward_prescaled(self, descriptor: Tensor, f_path: Tensor) -> Tensor:
        """Scaled outputs (B, T, 6) for already scaled inputs ``f_path = scale_F(F_path)``
        (training scales its data once)."""
        h0, m = self.initial_state(descriptor)
        out, _ = self.gru(self._inputs(f_path, m), h0)
        return self.output_layer(out)

    def forward_scaled(self, descriptor: Tensor, F_path: Tensor) -> Tensor:
        """Scaled outputs (B, T, 6) in [0, 1] (for the training loss)."""
        return self.forward_prescaled(descriptor, self.scale_F(F_path))

    def forward(self, descriptor: Tensor, F_path: Tensor) -> Tensor:
        """Deviatoric Cauchy stress along whole load paths.

        Parameters
        ----------
        descriptor : Tensor, shape (B, G, 7)
        F_path : Tensor, shape (B, T, 3, 3)
            Deformation gradients of steps 1..T (the state before step 1 is ``h0``).

        Returns
        -------
        Tensor, shape (B, T, 6)
            Deviatoric Cauchy stress in Pa, order :data:`STRESS_ORDER`.
        """
        return self.unscale_stress(self.forward_scaled(descriptor, F_path))

    def step(self, F: Tensor, m: Tensor, h: Tensor) -> Tuple[Tensor, Tensor]:
        """One load increment (what the solver calls per evaluation).

        Parameters
        ----------
        F : Tensor, shape (B, 3, 3)
            Deformation gradient at the end of the increment.
        m : Tensor, shape (B, m_size)
            From :meth:`initial_state`.
        h : Tensor, shape (layers, B, hidden)
            Committed hidden state (not modified).

        Returns
        -------
        sigma_dev : Tensor, shape (B, 6)
            Deviatoric Cauchy stress in Pa, order :data:`STRESS_ORDER`.
        h_new : Tensor, shape (layers, B, hidden)
            Trial hidden state (commit it once the increment converged).
        """
        out, h_new = self.gru(self._inputs(self.scale_F(F), m)[:, None, :], h)
        return self.unscale_stress(self.output_layer(out[:, 0])), h_new

    def fused(self, **kwargs):
        """A :class:`polyfe2.kernels.FusedGRU` for this model's gru/input/output layers.

        Its ``step(f, h, pre)`` takes ``f = self.scale_F(F)`` and returns the *scaled* output;
        apply :meth:`unscale_stress`. ``pre = fused.precompute(h, m)``.
        """
        return FusedGRU(self.gru, self.input_layer, self.output_layer, n_f=9, **kwargs)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, meta: Optional[dict] = None) -> None:
        """Write a checkpoint (plain ``torch.save`` dict).

        Parameters
        ----------
        path : str or os.PathLike
        meta : dict, optional
            Plain data (str, numbers, lists, dicts; e.g. training settings, material).
        """
        ckpt = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                    layout=DESCRIPTOR_LAYOUT, stress_order=list(STRESS_ORDER), units="Pa",
                    arch=dict(self.arch),
                    scaling={k: getattr(self, k).detach().cpu().clone()
                             for k in ("F_min", "F_max", "d_min", "d_max", "s_min", "s_max")},
                    state_dict={k: v.detach().cpu() for k, v in self.state_dict().items()},
                    meta=dict(meta or {}))
        save_checkpoint(path, ckpt)

    @classmethod
    def load(cls, path) -> "GRUSurrogate":
        """Read a checkpoint written by :meth:`save`.

        Raises
        ------
        polyfe2.errors.InputError
            Unreadable file, other format, version or descriptor layout (names file and key).
        """
        path = os.fspath(path)
        ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "GRU surrogate checkpoint",
                               mappings=("arch", "state_dict"))
        if ckpt.get("layout") != DESCRIPTOR_LAYOUT:
            raise InputError(f"descriptor layout {ckpt.get('layout')!r}, expected "
                             f"{DESCRIPTOR_LAYOUT!r}", file=path, key="layout")
        try:
            model = cls(**ckpt["arch"])
            model.to(ckpt["state_dict"]["output_layer.weight"].dtype)   # keep float64 exact
        except (TypeError, KeyError) as exc:
            raise InputError(f"bad architecture ({type(exc).__name__}: {exc})", file=path, key="arch") from None
        load_weights(model, ckpt["state_dict"], path)
        model.meta = ckpt.get("meta", {})
        return model
