"""Per-grain GRU surrogate in the crystal frames with a mean-field coupling (``gru`` backend,
``gru_grain_aluminium_v8.pt``).

Where :class:`polyfe2.constitutive.gru_network.GRUSurrogate` compresses a VE's 20 grains into one
vector and runs one recurrent state per VE, this model runs one recurrent state per *grain*, as
crystal plasticity does (one set of slip resistances per crystal), and forms the VE's stress the
way the labels do, as the volume average of the grains' stresses:

* every grain g sees the VE's isochoric stretch in its own crystal frame,
  ``F_g = R_g F R_g^T`` (``R_g`` lab -> crystal), so one network serves all orientations: in the
  iso-strain (Taylor) limit the grains are identical crystals that differ only by the frame;
* its step input is ``[f_g, df_g, ln dt]`` (the 9 components of ``F_g``, their increment over the
  step and the log step time, standardised), the log of its volume fraction times G, and the VE's
  stress of the step before seen in its frame, ``R_g sigma_bar R_g^T`` -- the mean-field coupling
  that lets a grain take less or more than the average strain's share, as the grains of a
  full-field VE do (Eshelby-type interaction; Taylor has none, and the network can ignore it);
* ``x = MLP([f_g, df_g, ln dt, ln(G v_g), R_g sigma_bar R_g^T])`` -> ``GRUCell`` stack (hidden
  ``H``, the same weights for every grain) -> ``MLP`` -> the grain's deviatoric stress
  ``s_g`` in its crystal frame;
* ``sigma_bar = dev sum_g v_g R_g^T s_g R_g``, in the network's scaling (one scale ``s_scale`` for
  all components, because the frames mix them).

Every grain starts from the same (zero) hidden state: an annealed crystal has no history. The
construction is objective for *any* rigid rotation ``Q`` of the specimen: ``R_g -> R_g Q^T`` and
``F -> Q F Q^T`` leave ``F_g`` and the coupling input unchanged and give ``Q sigma Q^T``. A grain's
orientation enters only through ``R_g``, which is defined up to the 24 rotations of the cube; in
training each grain's ``R_g`` is drawn among them every batch, so the network learns that they are
the same crystal. It learns it only in part: one grain given as another equivalent moves the VE's
stress by 0.27 MPa (eq. 5, mean over steps and 64 held-out VEs), every grain at once by 2.3 MPa. So the model
reduces every orientation to the fundamental zone first (:meth:`GrainGRUSurrogate.grain_frames`):
its answer is the same for any equivalent quaternion, and what is left is a jump of that 0.25 MPa
size where a grain's orientation crosses a face of the zone.

Solver interface: the per-point hidden state is one vector ``h`` (1, N, layers*G*H + 6): the
grains' GRU states and the coupling input of the next step; ``m`` (N, G*10) holds each grain's
``R_g`` and ``ln(G v_g)``. :meth:`GrainGRUSurrogate.step` takes and returns them like
:meth:`GRUSurrogate.step`.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..checkpoints import load_weights, read_checkpoint, save_checkpoint
from ..errors import InputError
from ..mechanics import STRESS_ORDER, isochoric, tensor_to_voigt, voigt_to_tensor
from ..microstructure.descriptor import DESCRIPTOR_LAYOUT, DESCRIPTOR_WIDTH, reduce_to_fz
from .crystal import orientation_matrices

__all__ = ["GrainGRUSurrogate", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "N_STEP_FEATURES"]

CHECKPOINT_FORMAT = "polyfe2.grain_gru_surrogate"
CHECKPOINT_VERSION = 1
#: crystal-frame step features: F_g (9), its increment (9), ln dt
N_STEP_FEATURES = 19
_N_IN = N_STEP_FEATURES + 1 + 6   # step features, ln(G v_g), coupling input


def _cube_symmetry(device, dtype) -> Tensor:
    """(24, 3, 3) the proper rotations of the cube (damask's, identity first)."""
    import damask

    return torch.as_tensor(damask.Orientation(lattice="cF").symmetry_operations.as_matrix(), device=device,
                           dtype=dtype)


class GrainGRUSurrogate(nn.Module):
    """Per-grain GRU surrogate of a G-grain VE's deviatoric stress (module docstring).

    Parameters
    ----------
    hidden : int, optional
        GRU hidden size per grain (256).
    layers : int, optional
        Stacked GRU cells (1).
    width : int or None, optional
        Width of the input and output MLPs; default ``hidden``.
    n_grains : int, optional
        Grains per descriptor (20); informative (any G works).

    Notes
    -----
    Shapes as :class:`GRUSurrogate`: descriptor (B, G, 7) rows ``[x, y, z, q0..q3]`` (the seeds'
    positions are not read), fractions (B, G) (required), deformation gradients (B, T, 3, 3),
    dt (B,) or a number, stress (B, [T,] 6) in Pa, order :data:`STRESS_ORDER`.
    """

    #: what the callers of a surrogate ask of it (as GRUSurrogate's attributes)
    pooling = "volume"
    features = "crystal-frame F+dF+dt"
    positions = False
    squash = None
    orientation = "crystal frame"

    def __init__(self, hidden: int = 256, layers: int = 1, width: Optional[int] = None, n_grains: int = 20):
        super().__init__()
        width = int(width or hidden)
        self.hidden, self.layers, self.width = int(hidden), int(layers), width
        self.arch = dict(hidden=self.hidden, layers=self.layers, width=width, n_grains=int(n_grains),
                         descriptor_width=DESCRIPTOR_WIDTH)
        self.inp = nn.Sequential(nn.Linear(_N_IN, width), nn.SiLU(), nn.Linear(width, hidden))
        self.cells = nn.ModuleList([nn.GRUCell(hidden, hidden) for _ in range(layers)])
        self.out = nn.Sequential(nn.Linear(hidden, width), nn.SiLU(), nn.Linear(width, 6))
        self.register_buffer("x_mean", torch.zeros(N_STEP_FEATURES))
        self.register_buffer("x_std", torch.ones(N_STEP_FEATURES))
        self.register_buffer("s_scale", torch.ones(()))
        self.meta: dict = {}
        self.checkpoint_version = CHECKPOINT_VERSION

    scaling_keys = ("x_mean", "x_std", "s_scale")

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def grain_frames(descriptor: Tensor) -> Tensor:
        """(B, G, 3, 3) lab->crystal matrices of the grains, each orientation reduced to the cubic
        fundamental zone first: one matrix per crystal, whichever of its 24 equivalent quaternions
        the descriptor holds."""
        q = torch.as_tensor(reduce_to_fz(descriptor[..., 3:].detach().cpu().double().numpy()))
        return orientation_matrices(q, None, device=descriptor.device, dtype=descriptor.dtype)

    def rotations(self, descriptor: Tensor) -> Tensor:
        """(B, G, 3, 3) :meth:`grain_frames`; in training mode each one is one of its 24 cubic
        equivalents, drawn anew every call."""
        R = self.grain_frames(descriptor)
        if self.training:
            S = _cube_symmetry(R.device, R.dtype)
            R = S[torch.randint(0, len(S), R.shape[:-2], device=R.device)] @ R
        return R

    @staticmethod
    def path_inputs(F_path: Tensor, dt=None) -> Tensor:
        """(B, T, 10) per step: the isochoric F (row major) and ln dt, from F (B, T, 3, 3) of steps
        1..T and dt (a number or (B,)); what :meth:`forward_prescaled` takes."""
        f = isochoric(F_path).reshape(F_path.shape[:2] + (9,))
        if dt is None:
            raise ValueError("the grain surrogate needs the step times dt")
        log_dt = torch.log(torch.as_tensor(dt, dtype=F_path.dtype, device=F_path.device))
        log_dt = log_dt.reshape(-1, 1, 1).expand(F_path.shape[0], F_path.shape[1], 1)
        return torch.cat([f, log_dt], dim=-1)

    scale_path = path_inputs   # the training loop prepares its paths once with it

    def _crystal_features(self, R: Tensor, path: Tensor) -> Tensor:
        """Raw crystal-frame features (B, G, T, 19) of path inputs (B, T, 10), the path starting at I."""
        B, T = path.shape[:2]
        eye = torch.eye(3, dtype=path.dtype, device=path.device).reshape(1, 1, 3, 3).expand(B, 1, 3, 3)
        F = torch.cat([eye, path[..., :9].reshape(B, T, 3, 3)], dim=1)            # (B, T+1, 3, 3)
        Fc = (R[:, :, None] @ F[:, None] @ R[:, :, None].transpose(-1, -2)).flatten(-2)   # (B, G, T+1, 9)
        log_dt = path[:, None, :, 9:].expand(B, R.shape[1], T, 1)
        return torch.cat([Fc[:, :, 1:], Fc[:, :, 1:] - Fc[:, :, :-1], log_dt], dim=-1)

    def _standardise(self, x: Tensor) -> Tensor:
        return (x - self.x_mean) / self.x_std

    @torch.no_grad()
    def fit_scaling(self, descriptors: Tensor, F_paths: Tensor, sigma_dev: Tensor, dt=None) -> None:
        """Feature statistics over the training paths in the grains' frames, and the stress scale
        (the labels' standard deviation)."""
        R = self.grain_frames(descriptors)
        x = self._crystal_features(R, self.path_inputs(F_paths, dt)).reshape(-1, N_STEP_FEATURES)
        std = x.std(0)
        self.x_mean.copy_(x.mean(0))
        # a feature the data hold constant (ln dt of one step time) is scaled to about 0, not by its
        # round-off spread (which would blow it up to saturate the gates)
        self.x_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        self.s_scale.copy_(sigma_dev.std())

    def scale_stress(self, s: Tensor) -> Tensor:
        return s / self.s_scale

    def unscale_stress(self, y: Tensor) -> Tensor:
        return y * self.s_scale

    @staticmethod
    def _weights(fractions: Optional[Tensor], descriptor: Tensor) -> Tensor:
        if fractions is None:
            raise ValueError("the grain surrogate needs the grains' volume fractions")
        if fractions.shape != descriptor.shape[:-1]:
            raise ValueError(f"fractions {tuple(fractions.shape)} do not match descriptors {tuple(descriptor.shape)}")
        v = fractions.to(descriptor.dtype)
        return v / v.sum(-1, keepdim=True)

    # ------------------------------------------------------------------ the recurrence
    def _step(self, z: Tensor, grain: Tensor, ctx: Tensor, h: list, R: Tensor, w: Tensor):
        """One step for all grains: scaled step features z (B, G, 19), static grain inputs
        ``ln(G v)`` (B, G, 1), coupling input (B, G, 6), hidden states (B*G, H) per layer ->
        (scaled lab-frame deviatoric VE stress (B, 3, 3), new states, next coupling input)."""
        B, G = z.shape[:2]
        x = self.inp(torch.cat([z, grain, ctx], dim=-1)).reshape(B * G, -1)
        new = []
        for cell, hk in zip(self.cells, h):
            x = cell(x, hk)
            new.append(x)
        s_c = voigt_to_tensor(self.out(x).reshape(B, G, 6))                      # crystal frames
        S = (w[..., None, None] * (R.transpose(-1, -2) @ s_c @ R)).sum(1)         # volume average, lab
        S = S - torch.diagonal(S, dim1=-2, dim2=-1).mean(-1)[..., None, None] * torch.eye(3, dtype=S.dtype,
                                                                                          device=S.device)
        return S, new, tensor_to_voigt(R @ S[:, None] @ R.transpose(-1, -2))

    def forward_prescaled(self, descriptor: Tensor, path: Tensor, fractions: Optional[Tensor] = None) -> Tensor:
        """Scaled VE stress (B, T, 6) for path inputs ``path = path_inputs(F_path, dt)`` (B, T, 10)."""
        w = self._weights(fractions, descriptor)
        R = self.rotations(descriptor)
        B, G = w.shape
        z = self._standardise(self._crystal_features(R, path))
        grain = torch.log(w * G)[..., None]
        h = [z.new_zeros(B * G, self.hidden) for _ in self.cells]
        ctx = z.new_zeros(B, G, 6)
        out = []
        for t in range(z.shape[2]):
            S, h, ctx = self._step(z[:, :, t], grain, ctx, h, R, w)
            out.append(tensor_to_voigt(S))
        return torch.stack(out, dim=1)

    def forward_scaled(self, descriptor: Tensor, F_path: Tensor, dt=None, fractions: Optional[Tensor] = None) -> Tensor:
        return self.forward_prescaled(descriptor, self.path_inputs(F_path, dt), fractions)

    def forward(self, descriptor: Tensor, F_path: Tensor, dt=None, fractions: Optional[Tensor] = None) -> Tensor:
        """Deviatoric Cauchy stress (B, T, 6) in Pa along paths F (B, T, 3, 3) of steps 1..T."""
        return self.unscale_stress(self.forward_scaled(descriptor, F_path, dt, fractions))

    # ------------------------------------------------------------------ solver interface
    def state_size(self, n_grains: int) -> int:
        """Length of a point's hidden-state vector: every layer's grain states and the coupling input."""
        return self.layers * n_grains * self.hidden + 6

    def initial_state(self, descriptor: Tensor, fractions: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``h`` (1, B, layers*G*H + 6) zeros (annealed grains, no stress yet) and ``m`` (B, G*10): each
        grain's lab->crystal matrix and ``ln(G v_g)``."""
        w = self._weights(fractions, descriptor)
        R = self.grain_frames(descriptor)
        B, G = w.shape
        m = torch.cat([R.reshape(B, G, 9), torch.log(w * G)[..., None]], dim=-1).reshape(B, G * 10)
        return descriptor.new_zeros(1, B, self.state_size(G)), m

    def step(self, F: Tensor, m: Tensor, h: Tensor, F_prev: Optional[Tensor] = None, dt=None) -> Tuple[Tensor, Tensor]:
        """One load increment ``F_prev -> F`` (B, 3, 3) taking ``dt`` s from the committed state
        ``h`` (not modified): (deviatoric Cauchy stress (B, 6) in Pa, trial state like ``h``)."""
        if F_prev is None or dt is None:
            raise ValueError("the grain surrogate's step needs F_prev and dt")
        B = F.shape[0]
        G = m.shape[1] // 10
        dtype = self.x_mean.dtype
        mg = m.reshape(B, G, 10).to(dtype)
        R, grain = mg[..., :9].reshape(B, G, 3, 3), mg[..., 9:]
        w = torch.softmax(grain[..., 0], dim=-1)   # = v / sum v, from ln(G v)
        # crystal-frame features in F's precision (an increment of 1e-4 keeps its digits), then rounded
        Rd = R.to(F.dtype)
        Fc = (Rd[:, :, None] @ torch.stack([isochoric(F_prev), isochoric(F)], 1)[:, None]
              @ Rd[:, :, None].transpose(-1, -2)).flatten(-2)                       # (B, G, 2, 9)
        if isinstance(dt, (int, float)):
            log_dt = torch.full((B, G, 1), math.log(dt), dtype=F.dtype, device=F.device)
        else:
            log_dt = torch.log(torch.as_tensor(dt, dtype=F.dtype, device=F.device)).reshape(-1, 1, 1).expand(B, G, 1)
        x = torch.cat([Fc[:, :, 1], Fc[:, :, 1] - Fc[:, :, 0], log_dt], dim=-1)
        z = ((x - self.x_mean.to(F.dtype)) / self.x_std.to(F.dtype)).to(dtype)
        flat = h[0].to(dtype)
        n = G * self.hidden
        states = [flat[:, k * n:(k + 1) * n].reshape(B * G, self.hidden) for k in range(self.layers)]
        ctx = flat[:, self.layers * n:].reshape(B, 1, 6).expand(B, G, 6)
        # the stored coupling input is the lab-frame VE stress; each grain sees it in its frame
        ctx = tensor_to_voigt(R @ voigt_to_tensor(ctx) @ R.transpose(-1, -2))
        S, new, _ = self._step(z, grain, ctx, states, R, w)
        s = tensor_to_voigt(S)
        h_new = torch.cat([x.reshape(B, n) for x in new] + [s], dim=-1)[None]
        return self.unscale_stress(s), h_new

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, meta: Optional[dict] = None) -> None:
        """Write a checkpoint (plain ``torch.save`` dict, as :meth:`GRUSurrogate.save`)."""
        ckpt = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, layout=DESCRIPTOR_LAYOUT,
                    stress_order=list(STRESS_ORDER), units="Pa", arch=dict(self.arch),
                    scaling={k: getattr(self, k).detach().cpu().clone() for k in self.scaling_keys},
                    state_dict={k: v.detach().cpu() for k, v in self.state_dict().items()},
                    meta=dict(meta or {}))
        save_checkpoint(path, ckpt)

    @classmethod
    def load(cls, path) -> "GrainGRUSurrogate":
        """Read a checkpoint written by :meth:`save`, in evaluation mode (one-line InputError naming file and key)."""
        path = os.fspath(path)
        ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "grain GRU surrogate checkpoint",
                               mappings=("arch", "state_dict"))
        if ckpt.get("layout") != DESCRIPTOR_LAYOUT:
            raise InputError(f"descriptor layout {ckpt.get('layout')!r}, expected {DESCRIPTOR_LAYOUT!r}",
                             file=path, key="layout")
        arch = {k: v for k, v in ckpt["arch"].items() if k != "descriptor_width"}
        try:
            model = cls(**arch)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad architecture ({type(exc).__name__}: {exc})", file=path, key="arch") from None
        load_weights(model, ckpt["state_dict"], path)
        model.meta = ckpt.get("meta", {})
        model.checkpoint_version = ckpt["version"]
        return model.eval()   # training mode would draw the grains' cubic equivalents
