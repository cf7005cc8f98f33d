"""``elastic``: cubic anisotropic St Venant–Kirchhoff elasticity in the lattice frame.

Per constituent k of a point with lab->crystal rotation R_k (DESIGN.md, "Built-in backends"):

    E   = ½(FᵀF − I)                     (Green–Lagrange strain, lab frame)
    E_c = R_k E R_kᵀ                     (crystal frame)
    S_c = C_cubic : E_c,   S_k = R_kᵀ S_c R_k
    P_k = F S_k,           P = Σ_k v_k P_k   (iso-strain)

A phase with tiny constants (e.g. 1e-6 × aluminium) is the void/free-surface material.
"""
from __future__ import annotations

import torch

from ..mechanics import average_stiffness, cubic_stiffness, ddot42, eye3, green_lagrange
from . import crystal
from .base import Backend, MaterialPoints, Response, State
from .registry import register


@register("elastic")
class ElasticBackend(Backend):
    """Cubic St Venant–Kirchhoff, iso-strain over the K constituents of a point.

    Parameters
    ----------
    phase : mapping
        material.yaml phase entry: ``lattice`` (cF or cI) and ``mechanical/elastic`` with
        ``type: Hooke`` and ``C_11``, ``C_12``, ``C_44`` in Pa. ``mechanical/plastic`` and
        ``output`` are ignored.
    options : mapping, optional
        None accepted.

    State keys
    ----------
    ``R`` (N, K, 3, 3) lab->crystal rotations, ``v`` (N, K) fractions (both constant).
    """


    # ------------------------------------------------------------------------------------------
    def _C(self, like: torch.Tensor) -> torch.Tensor:
        return cubic_stiffness(self.C_11, self.C_12, self.C_44, device=like.device, dtype=like.dtype)

    def setup(self, points: MaterialPoints, device, dtype) -> State:
        """Rotation matrices (from damask, once) and fractions."""
        v = points.fractions.to(device=device, dtype=dtype)
        R = crystal.orientation_matrices(points.orientations, v, device=device, dtype=dtype)
        return {"R": R, "v": v}

    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State) -> Response:
        """P = F Σ_k v_k R_kᵀ (C : (R_k E R_kᵀ)) R_k; pure, history-free."""
        R, v = state["R"], state["v"]
        ok = torch.isfinite(F).flatten(1).all(dim=1)
        Fs = torch.where(ok[:, None, None], F, eye3(F).expand_as(F))
        E = green_lagrange(Fs)
        E_c = R @ E[:, None] @ R.transpose(-1, -2)
        S_c = ddot42(self._C(F), E_c)
        S = torch.einsum("nk,nkij->nij", v, R.transpose(-1, -2) @ S_c @ R)
        P = Fs @ S
        P = torch.where(ok[:, None, None], P, torch.zeros_like(P))
        return Response(P=P, state=dict(state), failed=~ok)

    def stiffness(self, state: State) -> torch.Tensor:
        """(N,3,3,3,3) Σ_k v_k C_lab(R_k) (dP/dF at F = I)."""
        return average_stiffness(self._C(state["R"]), state["R"], state["v"])
