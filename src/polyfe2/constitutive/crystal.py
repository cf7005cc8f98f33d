"""Crystal kinematics and cubic elasticity shared by the ``elastic`` and ``taylor`` backends.

Conventions (DESIGN.md, "Conventions"): orientations are unit quaternions, scalar first,
DAMASK's passive convention; ``R = damask.Rotation(q).as_matrix()`` maps lab coordinates to
crystal coordinates, ``v_c = R v_lab``. Tensors are torch tensors with the last axes (3, 3)
or (3, 3, 3, 3). Nothing here keeps state between calls.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import InputError

# Slip-slip interaction types of the 12 fcc <110>{111} systems in DAMASK's order, copied from
# DAMASK 3.0.2 src/crystal.f90 (crystal_interaction_SlipBySlip, CF_INTERACTIONSLIPSLIP, the
# octahedral 12x12 block; Madec & Kubin 2017, doi:10.1016/j.actamat.2016.12.040). DAMASK
# < 3.0.2 had type 5 at [0][5] and [1][5]; its commit 2d82568f3 ("fix incorrect glissile
# coefficient", in 3.0.2 and 3.1) made them 6, which restores the pattern of the rest of the
# table: type 6 where the junction's Burgers vector b_alpha +- b_beta lies in the reacting
# system's plane, type 5 where it lies in the acting system's plane, so type(a, b) = 5 exactly
# when type(b, a) = 6 (tests/constitutive/test_interaction_table.py checks both).
# Rows: reacting (primary) system alpha, columns: acting (forest) system beta. The Fortran
# source lists the table line by line in this same layout (reshape fills columns, and
# buildInteraction reads matrix(acting, reacting) into h(reacting, acting)), so
# h = values[TABLE - 1].
# Types: 1 self, 2 coplanar, 3 collinear, 4 Hirth lock, 5 glissile junction I,
#        6 glissile junction II, 7 Lomer lock.
FCC_SLIP_INTERACTION_TYPES = (
    (1, 2, 2, 4, 7, 6, 3, 5, 5, 4, 6, 7),
    (2, 1, 2, 7, 4, 6, 6, 4, 7, 5, 3, 5),
    (2, 2, 1, 5, 5, 3, 6, 7, 4, 7, 6, 4),
    (4, 7, 6, 1, 2, 2, 4, 6, 7, 3, 5, 5),
    (7, 4, 6, 2, 1, 2, 5, 3, 5, 6, 4, 7),
    (5, 5, 3, 2, 2, 1, 7, 6, 4, 6, 7, 4),
    (3, 5, 5, 4, 6, 7, 1, 2, 2, 4, 7, 6),
    (6, 4, 7, 5, 3, 5, 2, 1, 2, 7, 4, 6),
    (6, 7, 4, 7, 6, 4, 2, 2, 1, 5, 5, 3),
    (4, 6, 7, 3, 5, 5, 4, 7, 6, 1, 2, 2),
    (5, 3, 5, 6, 4, 7, 7, 4, 6, 2, 1, 2),
    (7, 6, 4, 6, 7, 4, 5, 5, 3, 2, 2, 1),
)
N_FCC_SLIP_TYPES = 7


# ----------------------------------------------------------------------------------------------
# parameter validation
# ----------------------------------------------------------------------------------------------
def _key(path: Sequence[str]) -> str:
    return "phase/" + "/".join(path)


def lookup(phase: Mapping[str, Any], path: Sequence[str], source: str, expected: str) -> Any:
    """The entry at ``path`` of the phase dict; :class:`InputError` naming it if missing."""
    node: Any = phase
    for i, p in enumerate(path):
        if not isinstance(node, Mapping) or p not in node:
            raise InputError(f"missing, expected {expected}", file=source, key=_key(path[:i + 1]))
        node = node[p]
    return node


def as_number(value: Any, path: Sequence[str], source: str, *, positive: bool = False,
              nonnegative: bool = False, length1: bool = False) -> float:
    """A real number (or a one-element list of one where ``length1``), checked."""
    what = "a positive number" if positive else ("a non-negative number" if nonnegative else "a number")
    v = value
    if length1 and isinstance(v, (list, tuple)):
        if len(v) != 1:
            raise InputError(f"expected {what} or a list of one, got {value!r}", file=source, key=_key(path))
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise InputError(f"expected {what}, got {value!r}", file=source, key=_key(path))
    v = float(v)
    if (positive and v <= 0.0) or (nonnegative and v < 0.0):
        raise InputError(f"expected {what}, got {value!r}", file=source, key=_key(path))
    return v


def cubic_constants(phase: Mapping[str, Any], source: str) -> tuple[float, float, float]:
    """(C_11, C_12, C_44) in Pa from ``mechanical/elastic`` (type Hooke), validated.

    Raises :class:`InputError` for a missing key, a non-positive constant or a stiffness that is
    not positive definite (cubic: C_11 > |C_12|, C_11 + 2 C_12 > 0, C_44 > 0).
    """
    el = lookup(phase, ("mechanical", "elastic"), source, "a mapping with type Hooke, C_11, C_12, C_44")
    t = lookup(phase, ("mechanical", "elastic", "type"), source, "'Hooke'")
    if t != "Hooke":
        raise InputError(f"expected 'Hooke', got {t!r}", file=source, key=_key(("mechanical", "elastic", "type")))
    C = []
    for name in ("C_11", "C_12", "C_44"):
        p = ("mechanical", "elastic", name)
        C.append(as_number(lookup(phase, p, source, "a positive number (Pa)"), p, source,
                           positive=(name != "C_12")))
    c11, c12, c44 = C
    if not (c11 > abs(c12) and c11 + 2.0 * c12 > 0.0):
        raise InputError(f"cubic stiffness not positive definite (need C_11 > |C_12| and C_11 + 2 C_12 > 0), "
                         f"got C_11={c11!r}, C_12={c12!r}", file=source, key=_key(("mechanical", "elastic", "C_12")))
    return c11, c12, c44


# ----------------------------------------------------------------------------------------------
# tensors
# ----------------------------------------------------------------------------------------------
def eye3(like: torch.Tensor) -> torch.Tensor:
    """3x3 identity on ``like``'s device and dtype."""
    return torch.eye(3, device=like.device, dtype=like.dtype)


def cubic_stiffness(c11: float, c12: float, c44: float, *, device=None,
                    dtype=torch.float64) -> torch.Tensor:
    """Cubic elastic stiffness C_ijkl (3,3,3,3) in the lattice frame.

    C_ijkl = C_12 δ_ij δ_kl + C_44 (δ_ik δ_jl + δ_il δ_jk) + (C_11 - C_12 - 2 C_44) Σ_a δ_ia δ_ja δ_ka δ_la
    (Voigt: C_11 = C_1111, C_12 = C_1122, C_44 = C_2323).
    """
    d = torch.eye(3, device=device, dtype=dtype)
    C = (c12 * torch.einsum("ij,kl->ijkl", d, d)
         + c44 * (torch.einsum("ik,jl->ijkl", d, d) + torch.einsum("il,jk->ijkl", d, d)))
    a = torch.zeros(3, 3, 3, 3, device=device, dtype=dtype)
    for i in range(3):
        a[i, i, i, i] = 1.0
    return C + (c11 - c12 - 2.0 * c44) * a


def rotate_stiffness(C: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Lab-frame stiffness of a crystal with lab->crystal rotation ``R`` (..., 3, 3).

    With E_c = R E R^T and S = R^T S_c R:  C_lab_ijkl = R_ai R_bj R_ck R_dl C_abcd.
    """
    # one index at a time: intermediates stay (..., 3, 3, 3, 3) (a single 5-operand einsum may
    # build (..., 3^8) temporaries: gigabytes on a component-scale grid)
    out = torch.einsum("...dl,abcd->...abcl", R, C)
    out = torch.einsum("...ck,...abcl->...abkl", R, out)
    out = torch.einsum("...bj,...abkl->...ajkl", R, out)
    return torch.einsum("...ai,...ajkl->...ijkl", R, out)


def average_stiffness(C: torch.Tensor, R: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Iso-strain (Voigt) average Σ_k v_k C_lab(R_k); R (N,K,3,3), v (N,K) -> (N,3,3,3,3)."""
    return torch.einsum("nk,nkabcd->nabcd", v, rotate_stiffness(C, R))


def green_lagrange(F: torch.Tensor) -> torch.Tensor:
    """E = ½(FᵀF − I)."""
    return 0.5 * (F.transpose(-1, -2) @ F - eye3(F))


def ddot42(C: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """(C : E)_ij = C_ijkl E_kl for a single C (3,3,3,3) and a batch E (..., 3, 3)."""
    return torch.einsum("ijkl,...kl->...ij", C, E)


# ----------------------------------------------------------------------------------------------
# orientations and slip systems
# ----------------------------------------------------------------------------------------------
def orientation_matrices(quaternions: torch.Tensor, fractions: torch.Tensor | None, *,
                         device, dtype, source: str = "orientations") -> torch.Tensor:
    """Lab->crystal rotation matrices (..., 3, 3) from quaternions (..., 4), once, with damask.

    Quaternions of constituents with zero fraction (padding) are replaced by the identity. Others
    must be finite and non-zero; they are normalised.
    """
    q = quaternions.detach().to("cpu", torch.float64).numpy().copy()
    norm = np.linalg.norm(q, axis=-1)
    pad = np.zeros(q.shape[:-1], dtype=bool)
    if fractions is not None:
        pad = fractions.detach().to("cpu").numpy() <= 0.0
    bad = ~pad & (~np.isfinite(norm) | (norm < 1e-12))
    if bad.any():
        raise InputError(f"{int(bad.sum())} orientation quaternion(s) are zero or not finite; "
                         "expected unit quaternions (scalar first)", key=source)
    q[pad] = (1.0, 0.0, 0.0, 0.0)
    norm[pad] = 1.0
    q = q / norm[..., None]
    # damask's passive convention requires q0 >= 0 (q and -q are the same rotation)
    q = np.where(q[..., :1] < 0.0, -q, q)
    import damask

    R = damask.Rotation(q).as_matrix()
    return torch.as_tensor(np.ascontiguousarray(R), device=device, dtype=dtype)


def fcc_slip_systems(*, device=None, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit slip directions d_α and plane normals n_α (12, 3) of fcc <110>{111}, DAMASK's order
    (``damask.Crystal(lattice='cF').kinematics('slip')``), in the crystal frame."""
    import damask

    k = damask.Crystal(lattice="cF").kinematics("slip")
    d = np.asarray(k["direction"][0], dtype=np.float64)
    n = np.asarray(k["plane"][0], dtype=np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    return (torch.as_tensor(d, device=device, dtype=dtype), torch.as_tensor(n, device=device, dtype=dtype))


def schmid_tensors(d: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """P_α = d_α ⊗ n_α, (12, 3, 3)."""
    return torch.einsum("ai,aj->aij", d, n)


def fcc_interaction_matrix(values: Sequence[float], *, device=None, dtype=torch.float64) -> torch.Tensor:
    """12x12 slip-slip hardening matrix h_αβ = values[type(α, β) - 1] (DAMASK's buildInteraction)."""
    t = torch.as_tensor(FCC_SLIP_INTERACTION_TYPES, device=device, dtype=torch.long) - 1
    return torch.as_tensor([float(x) for x in values], device=device, dtype=dtype)[t]
