"""Microstructure-sensitive GRU surrogate (paper 003, section 2; DESIGN "GRU surrogate").

Architecture
    * Descriptor ``d`` (B, G, 7) -- rows ``[x, y, z, q0..q3]`` (:data:`DESCRIPTOR_LAYOUT`),
      min-max scaled per column (``orientation='cubic'``: the quaternion replaced by the 15
      components of the cubic orientation tensor, :func:`cubic_orientation_tensor`) -- and, with
      ``pooling='volume'``, the grains' volume fractions ``v`` (B, G).
    * Two pooled (Deep Sets) microstructure networks, each a per-grain MLP ``7 (18) -> W -> W``
      (SiLU) pooled over the G grains, then a linear head. ``pooling='mean'`` averages the grains
      with equal weights; ``pooling='volume'`` weights grain g by ``v_g``, as the VE's average
      stress weights it. Either way the networks are invariant to the order of the grains:

      - ``h0 = tanh(head_h(pool_g phi_h(d_g)))`` reshaped to (layers, B, hidden): the GRU's
        initial hidden state;
      - ``m = head_m(pool_g phi_m(d_g))`` (B, 32), fed at every step.
    * Input layer ``x = W_in [f, m] + b_in`` with ``f`` the scaled step features
      (:data:`FEATURES`):

      - ``'F'`` (9): the flattened isochoric F (row major ``F11, F12, ..., F33``), min-max
        scaled per component over the training paths;
      - ``'F+dF+dt'`` (19): the isochoric F, its increment over the step and ``ln dt``, each
        standardised (zero mean, unit variance over the training steps). One step moves the
        increment features by O(1), where it moves a min-max scaled F by under 1 % of its range;
        ``ln dt`` lets the network follow the rate dependence of the labels.

      The input layer is deliberately *linear* (no activation): :class:`polyfe2.kernels.FusedGRU`
      then folds it into the GRU's first input GEMM (``W_ih_1 W_in_F``, K = 9 or 19) and computes
      the m-dependent part once per increment.
    * ``nn.GRU(input_size, hidden=256, layers=2, batch_first=True)``.
    * Output layer ``Linear(hidden -> 6)``: the min-max scaled deviatoric Cauchy stress in
      Voigt order ``11, 22, 33, 23, 13, 12`` (:data:`STRESS_ORDER`).

Units and scaling
    Public methods take physical inputs (F, dt, descriptor) and return the deviatoric Cauchy
    stress in **Pa** (SI, as the rest of the package). The statistics live in buffers
    (``F_min/F_max`` (9) for ``'F'``, ``x_mean/x_std`` (19) for ``'F+dF+dt'``, ``d_min/d_max``
    (7), ``s_min/s_max`` (6)) and are part of the checkpoint; set them from training data with
    :meth:`GRUSurrogate.fit_scaling`. :meth:`GRUSurrogate.forward_scaled` returns the scaled
    outputs for an MSE training loss. A path starts undeformed (``F_0 = I``): the initial hidden
    state stands for it, and the first increment is ``F_1 - I``.

Checkpoints
    :meth:`GRUSurrogate.save` writes a plain ``torch.save`` dict (``format``, ``version``,
    ``layout``, ``arch``, ``scaling``, ``state_dict``, ``meta``); :meth:`GRUSurrogate.load`
    checks ``format``, ``version`` and ``layout`` and raises a one-line
    :class:`polyfe2.errors.InputError` naming the file and the key. Version 1 files (``'F'``
    features, mean pooling) are read as they are.
"""
from __future__ import annotations

import math
import os
from itertools import combinations_with_replacement
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..checkpoints import load_weights, read_checkpoint, save_checkpoint
from ..errors import InputError
from ..kernels import FusedGRU
from ..microstructure.descriptor import DESCRIPTOR_LAYOUT, DESCRIPTOR_WIDTH
from ..mechanics import STRESS_ORDER, isochoric
from .crystal import orientation_matrices

__all__ = [
    "GRUSurrogate",
    "STRESS_ORDER",
    "FEATURES",
    "POOLINGS",
    "ORIENTATIONS",
    "cubic_orientation_tensor",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "polyfe2.gru_surrogate"
#: version 2 adds ``arch.features`` and ``arch.pooling``; version 1 files are read as ``F``/``mean``
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: step features and their number
FEATURES = {"F": 9, "F+dF+dt": 19}
POOLINGS = ("mean", "volume")
#: how a grain's orientation reaches the per-grain networks (see :func:`cubic_orientation_tensor`)
ORIENTATIONS = ("quaternion", "cubic")
#: the independent components (i <= j <= k <= l) of a fully symmetric 4th-order tensor
_SYM4 = torch.tensor(list(combinations_with_replacement(range(3), 4)))


def cubic_orientation_tensor(q: Tensor) -> Tensor:
    """The 15 independent components of ``A = sum_k r_k (x) r_k (x) r_k (x) r_k`` (..., 15) for
    unit quaternions ``q`` (..., 4) (DAMASK's, scalar first), ``r_k`` the cube axes of the crystal
    in the sample frame (rows of the lab->crystal matrix).

    A is the same for all 24 cubic equivalents of an orientation (a symmetry operation permutes
    the axes and flips their signs) and tells orientations apart up to them (the octahedral group
    is exactly the symmetry of x^4 + y^4 + z^4), and it changes smoothly with the orientation,
    where a quaternion reduced to the fundamental zone jumps at the zone's faces. The anisotropic
    part of a cubic crystal's stiffness in the sample frame is linear in it:
    ``C = C_12 I(x)I + 2 C_44 I_sym + (C_11 - C_12 - 2 C_44) A``."""
    R = orientation_matrices(q, None, device=q.device, dtype=q.dtype)
    i, j, k, l = _SYM4.to(q.device).unbind(1)
    return (R[..., :, i] * R[..., :, j] * R[..., :, k] * R[..., :, l]).sum(-2)


class _PooledMLP(nn.Module):
    """Per-grain MLP, pooled over the grains (equal or given weights), linear head
    (permutation invariant)."""

    def __init__(self, n_in: int, width: int, n_out: int):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU())
        self.head = nn.Linear(width, n_out)

    def forward(self, d: Tensor, weights: Optional[Tensor] = None) -> Tensor:  # d (B, G, n_in), weights (B, G)
        phi = self.phi(d)
        if weights is None:
            return self.head(phi.mean(dim=-2))
        w = weights / weights.sum(-1, keepdim=True)
        return self.head((phi * w[..., None]).sum(dim=-2))


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
    features : str, optional
        Step features, one of :data:`FEATURES` (``'F'``, the version 1 models; or ``'F+dF+dt'``).
    pooling : str, optional
        ``'mean'`` (equal grain weights) or ``'volume'`` (grain volume fractions, which every
        call then needs).
    positions : bool, optional
        Whether the seeds' positions ``x, y, z`` are an input (True, the shipped models up to v4).
        A periodic VE has no absolute position: with False every seed is read as the middle of
        the cell, and moving a VE as a whole cannot change the prediction.
    squash : float or None, optional
        ``'F+dF+dt'`` only: the standardised features ``z`` reach the network as
        ``c asinh(z / c)`` with ``c = squash`` (about ``z`` for ``|z| < c``, logarithmic beyond),
        so that strains and steps far larger than the training steps' spread (a crack tip's,
        tens of standard deviations) do not saturate the gates; None (the models up to v5): ``z``.
    orientation : str, optional
        How a grain's orientation reaches the per-grain networks: ``'quaternion'`` (the shipped
        models; reduced to the fundamental zone, so it jumps where two nearly equal orientations
        lie on either side of a face of the zone) or ``'cubic'`` (:func:`cubic_orientation_tensor`:
        the same for all 24 equivalents and smooth in the orientation).

    Notes
    -----
    Shapes: descriptor (B, G, 7), fractions (B, G), deformation gradients (B, T, 3, 3) or
    (B, 3, 3) per step, dt (B,) or a number, hidden state (layers, B, hidden), stress
    (B, [T,] 6) in Pa, order :data:`STRESS_ORDER`.
    """

    def __init__(self, hidden: int = 256, layers: int = 2, m_size: int = 32,
                 input_size: Optional[int] = None, mlp_width: int = 128, n_grains: int = 20,
                 descriptor_width: int = DESCRIPTOR_WIDTH, features: str = "F", pooling: str = "mean",
                 positions: bool = True, squash: Optional[float] = None, orientation: str = "quaternion"):
        super().__init__()
        if squash is not None and (features != "F+dF+dt" or not float(squash) > 0):
            raise ValueError(f"squash needs features 'F+dF+dt' and a positive width, got {features!r}, {squash!r}")
        if not positions and descriptor_width != DESCRIPTOR_WIDTH:
            raise ValueError("positions=False needs grain rows [x, y, z, q0..q3] as the microstructure input")
        if features not in FEATURES:
            raise ValueError(f"features must be one of {tuple(FEATURES)}, got {features!r}")
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        if orientation != "quaternion" and descriptor_width != DESCRIPTOR_WIDTH:
            raise ValueError(f"orientation {orientation!r} needs grain rows [x, y, z, q0..q3] as the microstructure input")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        input_size = hidden if input_size is None else int(input_size)
        self.arch = dict(hidden=int(hidden), layers=int(layers), m_size=int(m_size),
                         input_size=input_size, mlp_width=int(mlp_width),
                         n_grains=int(n_grains), descriptor_width=int(descriptor_width),
                         features=features, pooling=pooling, positions=bool(positions))
        if squash is not None:   # absent from the files of the models without it
            self.arch["squash"] = float(squash)
        if orientation != "quaternion":   # likewise
            self.arch["orientation"] = orientation
        self.orientation = orientation
        # the per-grain networks' input: the rows as given, or x, y, z and A's 15 components
        row_width = descriptor_width if orientation == "quaternion" else 3 + len(_SYM4)
        self.squash = None if squash is None else float(squash)
        self.positions = bool(positions)
        self.hidden, self.layers, self.m_size = int(hidden), int(layers), int(m_size)
        self.features, self.pooling, self.n_features = features, pooling, FEATURES[features]
        self.h0_net = _PooledMLP(row_width, mlp_width, layers * hidden)
        self.m_net = _PooledMLP(row_width, mlp_width, m_size)
        self.input_layer = nn.Linear(self.n_features + m_size, input_size)   # linear: foldable by FusedGRU
        self.gru = nn.GRU(input_size, hidden, num_layers=layers, batch_first=True)
        self.output_layer = nn.Linear(hidden, 6)
        # statistics (identity scaling until fit_scaling is called)
        if features == "F":
            self.register_buffer("F_min", torch.zeros(9))
            self.register_buffer("F_max", torch.ones(9))
        else:
            self.register_buffer("x_mean", torch.zeros(self.n_features))
            self.register_buffer("x_std", torch.ones(self.n_features))
        self.register_buffer("d_min", torch.zeros(row_width))
        self.register_buffer("d_max", torch.ones(row_width))
        self.register_buffer("s_min", torch.zeros(6))
        self.register_buffer("s_max", torch.ones(6))

    @property
    def scaling_keys(self) -> tuple:
        first = ("F_min", "F_max") if self.features == "F" else ("x_mean", "x_std")
        return first + ("d_min", "d_max", "s_min", "s_max")

    # ------------------------------------------------------------------ features and scaling
    @staticmethod
    def _span(lo: Tensor, hi: Tensor) -> Tensor:
        span = hi - lo
        return torch.where(span > 0, span, torch.ones_like(span))

    def raw_features(self, F: Tensor, F_prev: Optional[Tensor] = None, dt=None) -> Tensor:
        """Unscaled step features (..., n_features) of the step ``F_prev -> F`` taking ``dt`` s.

        ``F``, ``F_prev`` (..., 3, 3); ``dt`` a number or broadcastable to ``F.shape[:-2]``.
        ``F_prev`` and ``dt`` are only needed for ``'F+dF+dt'``."""
        f = isochoric(F).reshape(F.shape[:-2] + (9,))
        if self.features == "F":
            return f
        if F_prev is None or dt is None:
            raise ValueError("features 'F+dF+dt' need F_prev and dt")
        df = f - isochoric(F_prev).reshape(F_prev.shape[:-2] + (9,))
        if isinstance(dt, (int, float)):   # the solver's case: no host-to-device copy
            log_dt = torch.full(F.shape[:-2] + (1,), math.log(dt), dtype=F.dtype, device=F.device)
        else:
            log_dt = torch.log(torch.as_tensor(dt, dtype=F.dtype, device=F.device)).expand(F.shape[:-2])[..., None]
        return torch.cat([f, df, log_dt], dim=-1)

    def path_features(self, F_path: Tensor, dt=None) -> Tensor:
        """Unscaled features (B, T, n_features) of paths ``F_path`` (B, T, 3, 3) (steps 1..T;
        the path starts at ``I``) with step times ``dt`` (a number or (B,))."""
        if self.features == "F":
            return self.raw_features(F_path)
        I = torch.eye(3, dtype=F_path.dtype, device=F_path.device).expand(F_path.shape[0], 1, 3, 3)
        F_prev = torch.cat([I, F_path[:, :-1]], dim=1)
        if dt is not None:
            dt = torch.as_tensor(dt, dtype=F_path.dtype, device=F_path.device)
            dt = dt[:, None] if dt.dim() == 1 else dt
        return self.raw_features(F_path, F_prev, dt)

    def scale_features(self, x: Tensor) -> Tensor:
        """Raw features (..., n_features) -> the network's ``f``."""
        if self.features == "F":
            return (x - self.F_min) / self._span(self.F_min, self.F_max)
        z = (x - self.x_mean) / torch.where(self.x_std > 0, self.x_std, torch.ones_like(self.x_std))
        return z if self.squash is None else self.squash * torch.asinh(z / self.squash)

    def step_features(self, F: Tensor, F_prev: Optional[Tensor] = None, dt=None) -> Tensor:
        """Scaled features (B, n_features) of one step (the ``f`` of FusedGRU)."""
        return self.scale_features(self.raw_features(F, F_prev, dt))

    def scale_path(self, F_path: Tensor, dt=None) -> Tensor:
        """Scaled features (B, T, n_features) of whole paths."""
        return self.scale_features(self.path_features(F_path, dt))

    @torch.no_grad()
    def fit_scaling(self, descriptors: Tensor, F_paths: Tensor, sigma_dev: Tensor, dt=None) -> None:
        """Set the statistics from training data.

        Parameters
        ----------
        descriptors : Tensor, shape (B, G, 7)
        F_paths : Tensor, shape (B, T, 3, 3)
            Deformation gradients of steps 1..T (the isochoric part is taken here).
        sigma_dev : Tensor, shape (B, T, 6)
            Deviatoric Cauchy stress in Pa, :data:`STRESS_ORDER`.
        dt : number or Tensor (B,), optional
            Step times (``'F+dF+dt'``).
        """
        x = self.path_features(F_paths, dt).reshape(-1, self.n_features)
        if self.features == "F":
            self.F_min.copy_(x.amin(0))
            self.F_max.copy_(x.amax(0))
        else:
            self.x_mean.copy_(x.mean(0))
            self.x_std.copy_(x.std(0) if x.shape[0] > 1 else torch.ones_like(self.x_std))
            # a feature the data hold constant (e.g. ln dt of one step time) is scaled to 0 in
            # training and gets no gradient: its weights are zeroed, so other values do not act
            # through untrained weights
            self.input_layer.weight[:, :self.n_features][:, self.x_std == 0] = 0.0
        self.fit_descriptor_scaling(descriptors)
        s = sigma_dev.reshape(-1, 6)
        self.s_min.copy_(s.amin(0))
        self.s_max.copy_(s.amax(0))

    @torch.no_grad()
    def fit_descriptor_scaling(self, descriptors: Tensor) -> None:
        """Set the per-column range of the per-grain networks' rows from descriptors (B, G, 7)."""
        d = self.grain_rows(descriptors)
        d = d.reshape(-1, d.shape[-1])
        self.d_min.copy_(d.amin(0))
        self.d_max.copy_(d.amax(0))

    def grain_rows(self, d: Tensor) -> Tensor:
        """Unscaled per-grain rows (..., G, W): the descriptor, its quaternions replaced by
        :func:`cubic_orientation_tensor` with ``orientation='cubic'``."""
        if self.orientation == "quaternion":
            return d
        return torch.cat([d[..., :3], cubic_orientation_tensor(d[..., 3:])], dim=-1)

    def scale_descriptor(self, d: Tensor) -> Tensor:
        """Min-max scaled per-grain rows (..., G, W) of a descriptor (..., G, 7); without
        ``positions`` every seed at the middle."""
        if not self.positions:
            d = torch.cat([torch.full_like(d[..., :3], 0.5), d[..., 3:]], dim=-1)
        return (self.grain_rows(d) - self.d_min) / self._span(self.d_min, self.d_max)

    def scale_stress(self, s: Tensor) -> Tensor:
        """Pa -> scaled [0, 1] (per component)."""
        return (s - self.s_min) / self._span(self.s_min, self.s_max)

    def unscale_stress(self, y: Tensor) -> Tensor:
        """Scaled network output -> deviatoric Cauchy stress in Pa."""
        return y * self._span(self.s_min, self.s_max) + self.s_min

    # ------------------------------------------------------------------ model
    def _pool_weights(self, fractions: Optional[Tensor], d: Tensor) -> Optional[Tensor]:
        if self.pooling == "mean":
            return None
        if fractions is None:
            raise ValueError("pooling 'volume' needs the grains' volume fractions")
        if fractions.shape != d.shape[:-1]:
            raise ValueError(f"fractions {tuple(fractions.shape)} do not match descriptors {tuple(d.shape)}")
        return fractions.to(d.dtype)

    def initial_state(self, descriptor: Tensor, fractions: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Initial hidden state and microstructure vector.

        Parameters
        ----------
        descriptor : Tensor, shape (B, G, 7)
            Physical (unscaled) descriptor.
        fractions : Tensor, shape (B, G), optional
            Grain volume fractions (``pooling='volume'``).

        Returns
        -------
        h0 : Tensor, shape (layers, B, hidden)
        m : Tensor, shape (B, m_size)
        """
        d = self.scale_descriptor(descriptor)
        w = self._pool_weights(fractions, d)
        B = d.shape[0]
        h0 = torch.tanh(self.h0_net(d, w)).reshape(B, self.layers, self.hidden)
        return h0.transpose(0, 1).contiguous(), self.m_net(d, w)

    def _inputs(self, f: Tensor, m: Tensor) -> Tensor:
        """Input layer on the scaled features ``f`` (B, [T,] n_features) and m."""
        mm = m if f.dim() == 2 else m[:, None, :].expand(-1, f.shape[1], -1)
        return self.input_layer(torch.cat([f, mm], dim=-1))

    def forward_prescaled(self, descriptor: Tensor, f_path: Tensor, fractions: Optional[Tensor] = None) -> Tensor:
        """Scaled outputs (B, T, 6) for already scaled features ``f_path = scale_path(F_path, dt)``
        (training scales its data once)."""
        h0, m = self.initial_state(descriptor, fractions)
        out, _ = self.gru(self._inputs(f_path, m), h0)
        return self.output_layer(out)

    def forward_scaled(self, descriptor: Tensor, F_path: Tensor, dt=None, fractions: Optional[Tensor] = None) -> Tensor:
        """Scaled outputs (B, T, 6) in [0, 1] (for the training loss)."""
        return self.forward_prescaled(descriptor, self.scale_path(F_path, dt), fractions)

    def forward(self, descriptor: Tensor, F_path: Tensor, dt=None, fractions: Optional[Tensor] = None) -> Tensor:
        """Deviatoric Cauchy stress along whole load paths.

        Parameters
        ----------
        descriptor : Tensor, shape (B, G, 7)
        F_path : Tensor, shape (B, T, 3, 3)
            Deformation gradients of steps 1..T (the state before step 1 is ``h0``, ``F_0 = I``).
        dt : number or Tensor (B,), optional
            Time per step in s (``'F+dF+dt'``).
        fractions : Tensor, shape (B, G), optional
            Grain volume fractions (``pooling='volume'``).

        Returns
        -------
        Tensor, shape (B, T, 6)
            Deviatoric Cauchy stress in Pa, order :data:`STRESS_ORDER`.
        """
        return self.unscale_stress(self.forward_scaled(descriptor, F_path, dt, fractions))

    def step(self, F: Tensor, m: Tensor, h: Tensor, F_prev: Optional[Tensor] = None, dt=None) -> Tuple[Tensor, Tensor]:
        """One load increment (what the solver calls per evaluation).

        Parameters
        ----------
        F : Tensor, shape (B, 3, 3)
            Deformation gradient at the end of the increment.
        m : Tensor, shape (B, m_size)
            From :meth:`initial_state`.
        h : Tensor, shape (layers, B, hidden)
            Committed hidden state (not modified).
        F_prev : Tensor, shape (B, 3, 3), optional
            Committed deformation gradient (start of the increment; ``'F+dF+dt'``).
        dt : float, optional
            Time of the increment in s (``'F+dF+dt'``).

        Returns
        -------
        sigma_dev : Tensor, shape (B, 6)
            Deviatoric Cauchy stress in Pa, order :data:`STRESS_ORDER`.
        h_new : Tensor, shape (layers, B, hidden)
            Trial hidden state (commit it once the increment converged).
        """
        f = self.step_features(F, F_prev, dt).to(self.input_layer.weight.dtype)   # scaled in F's precision
        out, h_new = self.gru(self._inputs(f, m)[:, None, :], h)
        return self.unscale_stress(self.output_layer(out[:, 0])), h_new

    def fused(self, **kwargs):
        """A :class:`polyfe2.kernels.FusedGRU` for this model's gru/input/output layers.

        Its ``step(f, h, pre)`` takes ``f = self.step_features(F, F_prev, dt)`` and returns the
        *scaled* output; apply :meth:`unscale_stress`. ``pre = fused.precompute(h, m)``.
        """
        return FusedGRU(self.gru, self.input_layer, self.output_layer, n_f=self.n_features, **kwargs)

    @torch.no_grad()
    def with_inputs(self, features: str, pooling: str, F_paths: Tensor, dt=None,
                    positions: Optional[bool] = None, squash: Optional[float] = None,
                    orientation: Optional[str] = None, descriptors: Optional[Tensor] = None) -> "GRUSurrogate":
        """A copy of this model taking ``features``, ``pooling``, ``positions``, ``squash`` and
        ``orientation`` (default: this model's), the start of a fine-tune.

        Pooling has no weights of its own: volume pooling equals the mean for equal fractions.
        Dropping the positions keeps the weights, which then see every seed at the middle of the
        cell (not exact: the fine-tune adapts them). A new ``squash`` keeps the weights too (the
        features within about ``squash`` standard deviations reach the network almost unchanged).
        A new ``orientation`` gives the per-grain networks' first layers new (random) weights and
        their row ranges from ``descriptors`` (B, G, 7); every other weight is kept.
        From ``'F'`` to ``'F+dF+dt'`` the new statistics come from ``F_paths`` (B, T, 3, 3) and
        ``dt``, and the input layer is re-expressed exactly: with the same F the copy gives this
        model's outputs; the new feature columns (increment, ``ln dt``) start at zero weight."""
        like = self.output_layer.weight
        positions = self.positions if positions is None else bool(positions)
        squash = self.squash if squash is None else float(squash)
        orientation = self.orientation if orientation is None else orientation
        new = type(self)(**dict(self.arch, features=features, pooling=pooling, positions=positions,
                                squash=squash, orientation=orientation)).to(device=like.device, dtype=like.dtype)
        own = self.state_dict()
        if orientation != self.orientation:
            if descriptors is None:
                raise ValueError("a new orientation input needs the training descriptors for its row ranges")
            own = {k: v for k, v in own.items()
                   if not k.startswith(("h0_net.phi.0.", "m_net.phi.0.", "d_min", "d_max"))}
            new.fit_descriptor_scaling(descriptors.to(device=like.device, dtype=like.dtype))
        if features == self.features:
            new.load_state_dict(own, strict=orientation == self.orientation)
            return new
        if (self.features, features) != ("F", "F+dF+dt"):
            raise ValueError(f"converts 'F' features to 'F+dF+dt', not {self.features!r} to {features!r}")
        own = {k: v for k, v in own.items() if not k.startswith(("input_layer.", "F_min", "F_max"))}
        new.load_state_dict(own, strict=False)
        x = new.path_features(F_paths.to(device=like.device, dtype=like.dtype), dt).reshape(-1, new.n_features)
        new.x_mean.copy_(x.mean(0))
        new.x_std.copy_(x.std(0))
        sd = torch.where(new.x_std > 0, new.x_std, torch.ones_like(new.x_std))
        # f_minmax = (x - F_min) / span = (sd f_std + mean - F_min) / span on the 9 F columns
        span = self._span(self.F_min, self.F_max)
        W, b = self.input_layer.weight, self.input_layer.bias
        W_F, W_m = W[:, :9], W[:, 9:]
        new_W = torch.zeros_like(new.input_layer.weight)
        new_W[:, :9] = W_F * (sd[:9] / span)
        new_W[:, new.n_features:] = W_m
        new.input_layer.weight.copy_(new_W)
        new.input_layer.bias.copy_(b + W_F @ ((new.x_mean[:9] - self.F_min) / span))
        return new

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
                    scaling={k: getattr(self, k).detach().cpu().clone() for k in self.scaling_keys},
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
        ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, READABLE_VERSIONS, "GRU surrogate checkpoint",
                               mappings=("arch", "state_dict"))
        if ckpt.get("layout") != DESCRIPTOR_LAYOUT:
            raise InputError(f"descriptor layout {ckpt.get('layout')!r}, expected "
                             f"{DESCRIPTOR_LAYOUT!r}", file=path, key="layout")
        try:
            model = cls(**ckpt["arch"])
            model.to(ckpt["state_dict"]["output_layer.weight"].dtype)   # keep float64 exact
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError(f"bad architecture ({type(exc).__name__}: {exc})", file=path, key="arch") from None
        load_weights(model, ckpt["state_dict"], path)
        model.meta = ckpt.get("meta", {})
        model.checkpoint_version = ckpt["version"]
        return model
