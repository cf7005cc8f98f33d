"""Crystal kinematics shared by the backends: orientations as matrices, fcc slip systems, Schmid
tensors and the latent-hardening table (the tensor maths is in :mod:`polyfe2.mechanics`).

Conventions (DESIGN.md, "Conventions"): orientations are unit quaternions, scalar first,
DAMASK's passive convention; ``R = damask.Rotation(q).as_matrix()`` maps lab coordinates to
crystal coordinates, ``v_c = R v_lab``. Tensors are torch tensors with the last axes (3, 3)
or (3, 3, 3, 3). Nothing here keeps state between calls.
"""
from __future__ import annotations

from typing import Sequence

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
    """Schmid tensors m_α = d_α ⊗ n_α, (12, 3, 3)."""
    return torch.einsum("ai,aj->aij", d, n)


def fcc_interaction_matrix(values: Sequence[float], *, device=None, dtype=torch.float64) -> torch.Tensor:
    """12x12 slip-slip hardening matrix h_αβ = values[type(α, β) - 1] (DAMASK's buildInteraction)."""
    t = torch.as_tensor(FCC_SLIP_INTERACTION_TYPES, device=device, dtype=torch.long) - 1
    return torch.as_tensor([float(x) for x in values], device=device, dtype=dtype)[t]
