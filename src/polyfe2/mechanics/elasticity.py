"""Linear elastic stiffness of cubic crystals: construction, rotation and averaging.

All routines take fourth-order tensors (...,3,3,3,3) and rotation matrices (...,3,3) and work on
the trailing axes only. :func:`rotate_stiffness` and :func:`average_stiffness` accept numpy
arrays and torch tensors and return the type they were given; :func:`cubic_stiffness` builds a
torch tensor on the requested device and dtype.

Orientation convention (DAMASK's passive one): ``R = damask.Rotation(q).as_matrix()`` maps lab
coordinates to crystal coordinates, v_c = R v_lab.
"""
from __future__ import annotations

import math

import torch

from ._array import Array, asarrays, check_shape, xp

__all__ = [
    "cubic_stiffness",
    "rotate_stiffness",
    "average_stiffness",
    "bulk_modulus_cubic",
]


def cubic_stiffness(c11: float, c12: float, c44: float, *, device=None,
                    dtype=torch.float64) -> torch.Tensor:
    """
    Elastic stiffness of a cubic crystal in the lattice frame.

    Parameters
    ----------
    c11, c12, c44 : float
        Elastic constants in Voigt notation: C_11 = C_1111, C_12 = C_1122, C_44 = C_2323.
    device : torch.device or str, optional
        Device of the result; default torch's default device.
    dtype : torch.dtype, optional
        Dtype of the result; default float64.

    Returns
    -------
    C : torch.Tensor of shape (3,3,3,3)
        Stiffness C_ijkl with the minor and major symmetries.

    Notes
    -----
    C_ijkl = C_12 δ_ij δ_kl + C_44 (δ_ik δ_jl + δ_il δ_jk)
    + (C_11 − C_12 − 2 C_44) Σ_a δ_ia δ_ja δ_ka δ_la.

    References
    ----------
    J. F. Nye, Physical Properties of Crystals, Oxford University Press, 1957, chapter VIII.
    """
    d = torch.eye(3, device=device, dtype=dtype)
    C = (c12 * torch.einsum("ij,kl->ijkl", d, d)
         + c44 * (torch.einsum("ik,jl->ijkl", d, d) + torch.einsum("il,jk->ijkl", d, d)))
    a = torch.zeros(3, 3, 3, 3, device=device, dtype=dtype)
    for i in range(3):
        a[i, i, i, i] = 1.0
    return C + (c11 - c12 - 2.0 * c44) * a


def rotate_stiffness(C: Array, R: Array) -> Array:
    """
    Lab-frame stiffness of a crystal with lab-to-crystal rotation R.

    Parameters
    ----------
    C : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Stiffness in the crystal frame (typically a single (3,3,3,3) tensor).
    R : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Rotation matrices mapping lab to crystal coordinates, v_c = R v_lab. The leading axes
        of C and R broadcast against each other.

    Returns
    -------
    C_lab : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Stiffness in the lab frame.

    Notes
    -----
    With E_c = R E Rᵀ and S = Rᵀ S_c R:  C_lab,ijkl = R_ai R_bj R_ck R_dl C_abcd.
    """
    C, R = asarrays(C, R)
    check_shape(C, (3, 3, 3, 3), "C")
    check_shape(R, (3, 3), "R")
    m = xp(C)
    # one index at a time: intermediates stay (..., 3, 3, 3, 3) (a single 5-operand einsum may
    # build (..., 3^8) temporaries: gigabytes on a component-scale grid)
    out = m.einsum("...dl,abcd->...abcl" if C.ndim == 4 else "...dl,...abcd->...abcl", R, C)
    out = m.einsum("...ck,...abcl->...abkl", R, out)
    out = m.einsum("...bj,...abkl->...ajkl", R, out)
    return m.einsum("...ai,...ajkl->...ijkl", R, out)


def average_stiffness(C: Array, R: Array, v: Array) -> Array:
    """
    Iso-strain (Voigt) average of the lab-frame stiffness over the grains of a point.

    Parameters
    ----------
    C : numpy.ndarray or torch.Tensor of shape (3,3,3,3) or (...,K,3,3,3,3)
        Stiffness in the crystal frame.
    R : numpy.ndarray or torch.Tensor of shape (...,K,3,3)
        Lab-to-crystal rotations of the K grains (see :func:`rotate_stiffness`).
    v : numpy.ndarray or torch.Tensor of shape (...,K)
        Volume fractions of the grains (expected to sum to one; not normalised here).

    Returns
    -------
    C_avg : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Σ_k v_k C_lab(R_k).

    Notes
    -----
    Under a uniform strain every grain carries C_lab(R_k) : E, so the volume-averaged stress is
    (Σ_k v_k C_lab(R_k)) : E, an upper bound on the effective stiffness.

    References
    ----------
    W. Voigt, Ueber die Beziehung zwischen den beiden Elasticitätsconstanten isotroper Körper,
    Annalen der Physik 274(12):573-587, 1889, https://doi.org/10.1002/andp.18892741206
    """
    C, R, v = asarrays(C, R, v)
    check_shape(R, (3, 3), "R")
    if v.shape[-1:] != R.shape[-3:-2]:
        raise ValueError(f"v: expected shape (..., K) with K = {R.shape[-3]} rotations, got {tuple(v.shape)}")
    m = xp(C)
    lead, K = tuple(R.shape[:-3]), R.shape[-3]
    n = math.prod(lead)
    if n * K <= _CHUNK_GRAINS:
        return m.einsum("...k,...kabcd->...abcd", v, rotate_stiffness(C, R))
    # in chunks of points: the rotated stiffness of every grain is 648 bytes (4 GB for the plate's
    # 6.8 million grains), the average only 648 bytes per point
    R = R.reshape(n, K, 3, 3)
    v = m.broadcast_to(v, lead + (K,)).reshape(n, K)
    C = C if C.ndim == 4 else m.broadcast_to(C, lead + (K, 3, 3, 3, 3)).reshape(n, K, 3, 3, 3, 3)
    step = max(1, _CHUNK_GRAINS // K)
    parts = [m.einsum("nk,nkabcd->nabcd", v[i:i + step], rotate_stiffness(C if C.ndim == 4 else C[i:i + step],
                                                                           R[i:i + step]))
             for i in range(0, n, step)]
    return m.concatenate(parts).reshape(lead + (3, 3, 3, 3))


#: grains per chunk of :func:`average_stiffness` (the answer does not depend on it)
_CHUNK_GRAINS = 1 << 16


def bulk_modulus_cubic(C11, C12):
    """
    Bulk modulus of a cubic crystal.

    Parameters
    ----------
    C11, C12 : float or numpy.ndarray or torch.Tensor of shape (...)
        Elastic constants C_11 and C_12 (Voigt notation).

    Returns
    -------
    K : float or numpy.ndarray or torch.Tensor of shape (...)
        Bulk modulus, the same for every orientation and for the Voigt and Reuss averages.

    Notes
    -----
    K = (C_11 + 2 C_12) / 3 = C_iijj / 9, the ratio of the mean stress to the volumetric strain
    tr ε under a hydrostatic strain.

    References
    ----------
    J. F. Nye, Physical Properties of Crystals, Oxford University Press, 1957, chapter VIII.
    """
    return (C11 + 2.0 * C12) / 3.0
