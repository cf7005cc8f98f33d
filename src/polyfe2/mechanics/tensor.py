"""Tensor algebra on second- and fourth-order tensors in a Cartesian frame.

All routines take second-order tensors with shape (...,3,3) and fourth-order tensors with
shape (...,3,3,3,3); they work on the trailing axes only, so any leading batch shape passes
through. Voigt 6-vectors and Mandel 6x6 matrices have shape (...,6) and (...,6,6).

Every routine accepts numpy arrays and torch tensors and returns the type it was given;
constants are created with the input's device and dtype.

Voigt and Mandel component order
--------------------------------
The six independent components of a symmetric tensor are taken in the order
:data:`VOIGT_PAIRS` (tensor indices) = :data:`STRESS_ORDER` (names): 11, 22, 33, 23, 13, 12.
The Voigt vector of a tensor holds the components themselves; the Mandel vector
multiplies the shear components by sqrt(2), so that the Mandel matrix of a fourth-order tensor
is an orthonormal-basis representation (norms, eigenvalues and inverses carry over).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._array import Array, asarray, asarrays, check_shape, xp

__all__ = [
    "eye3",
    "transpose",
    "symmetric",
    "trace",
    "spherical",
    "deviatoric",
    "ddot42",
    "VOIGT_PAIRS",
    "STRESS_ORDER",
    "tensor_to_voigt",
    "voigt_to_tensor",
    "to_mandel",
    "from_mandel",
]

#: tensor indices (i, j) of the six components of a symmetric tensor, in Voigt order
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
#: names of the six components, in the order of :data:`VOIGT_PAIRS`
STRESS_ORDER = ("11", "22", "33", "23", "13", "12")

# position in VOIGT_PAIRS of the component (i, j), for both triangles
_VOIGT_INDEX = ((0, 5, 4), (5, 1, 3), (4, 3, 2))
#: Mandel weights of the components in VOIGT_PAIRS order: 1 on the normal, sqrt(2) on the shear ones
MANDEL_WEIGHTS = (1.0, 1.0, 1.0, math.sqrt(2.0), math.sqrt(2.0), math.sqrt(2.0))


def eye3(like: Array) -> Array:
    """
    Second-order identity tensor with the type, device and dtype of ``like``.

    Parameters
    ----------
    like : numpy.ndarray or torch.Tensor of shape (...)
        Any array; only its type, device and dtype are used.

    Returns
    -------
    I : numpy.ndarray or torch.Tensor of shape (3,3)
        Identity δ_ij, to be broadcast against (...,3,3).
    """
    like = asarray(like)
    if isinstance(like, torch.Tensor):
        return torch.eye(3, device=like.device, dtype=like.dtype)
    return np.eye(3, dtype=like.dtype)


def transpose(T: Array) -> Array:
    """
    Transpose of a tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Tensor of which the transpose is computed.

    Returns
    -------
    T_T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Transpose T_ji of T.
    """
    T = asarray(T)
    check_shape(T, (3, 3), "T")
    return T.swapaxes(-1, -2)


def symmetric(T: Array) -> Array:
    """
    Symmetric part of a tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Tensor of which the symmetric part is computed.

    Returns
    -------
    T_sym : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric part of T.

    Notes
    -----
    sym(T) = ½ (T + Tᵀ).
    """
    T = asarray(T)
    return 0.5 * (T + transpose(T))


def trace(T: Array) -> Array:
    """
    Trace of a tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Tensor of which the trace is computed.

    Returns
    -------
    tr : numpy.ndarray or torch.Tensor of shape (...)
        Trace T_ii of T.
    """
    T = asarray(T)
    check_shape(T, (3, 3), "T")
    return T[..., 0, 0] + T[..., 1, 1] + T[..., 2, 2]


def spherical(T: Array) -> Array:
    """
    Spherical (hydrostatic) part of a tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Tensor of which the spherical part is computed.

    Returns
    -------
    T_sph : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Spherical part of T.

    Notes
    -----
    sph(T) = (tr T / 3) I, as ``damask.tensor.spherical(T, tensor=True)``.
    """
    T = asarray(T)
    return (trace(T) / 3.0)[..., None, None] * eye3(T)


def deviatoric(T: Array) -> Array:
    """
    Deviatoric part of a tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Tensor of which the deviatoric part is computed.

    Returns
    -------
    T_dev : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deviatoric part of T (traceless).

    Notes
    -----
    dev(T) = T − (tr T / 3) I.
    """
    T = asarray(T)
    return T - spherical(T)


def ddot42(C: Array, E: Array) -> Array:
    """
    Double contraction of a fourth-order with a second-order tensor.

    Parameters
    ----------
    C : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Fourth-order tensor; a single (3,3,3,3) tensor is applied to every E of the batch.
    E : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Second-order tensor. The leading axes of C and E broadcast against each other.

    Returns
    -------
    S : numpy.ndarray or torch.Tensor of shape (...,3,3)
        C : E.

    Notes
    -----
    (C : E)_ij = C_ijkl E_kl.
    """
    C, E = asarrays(C, E)
    check_shape(C, (3, 3, 3, 3), "C")
    check_shape(E, (3, 3), "E")
    if C.ndim == 4:
        # one C for the whole batch: a (..., 9) x (9, 9) matrix product, C is not broadcast
        return xp(C).einsum("ijkl,...kl->...ij", C, E)
    return xp(C).einsum("...ijkl,...kl->...ij", C, E)


def tensor_to_voigt(T: Array) -> Array:
    """
    Voigt vector of a symmetric tensor.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric tensor. Only the components (i, j) of :data:`VOIGT_PAIRS` (diagonal and upper
        triangle) are read; symmetry is not checked.

    Returns
    -------
    s : numpy.ndarray or torch.Tensor of shape (...,6)
        Components 11, 22, 33, 23, 13, 12 (:data:`STRESS_ORDER`), without any factor on the
        shear components.
    """
    T = asarray(T)
    check_shape(T, (3, 3), "T")
    return xp(T).stack([T[..., i, j] for i, j in VOIGT_PAIRS], -1)


def voigt_to_tensor(s: Array) -> Array:
    """
    Symmetric tensor from its Voigt vector.

    Parameters
    ----------
    s : numpy.ndarray or torch.Tensor of shape (...,6)
        Components 11, 22, 33, 23, 13, 12 (:data:`STRESS_ORDER`), without any factor on the
        shear components.

    Returns
    -------
    T : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric tensor with T_ij = T_ji = s_k for (i, j) = ``VOIGT_PAIRS[k]``.
    """
    s = asarray(s)
    check_shape(s, (6,), "s")
    m = xp(s)
    return m.stack([m.stack([s[..., k] for k in row], -1) for row in _VOIGT_INDEX], -2)


def to_mandel(C: Array) -> Array:
    """
    Mandel matrix of a fourth-order tensor with minor symmetries.

    Parameters
    ----------
    C : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Fourth-order tensor with C_ijkl = C_jikl = C_ijlk (only the components of
        :data:`VOIGT_PAIRS` are read).

    Returns
    -------
    M : numpy.ndarray or torch.Tensor of shape (...,6,6)
        Mandel matrix, rows and columns in the order of :data:`VOIGT_PAIRS`.

    Notes
    -----
    M_ab = w_a w_b C_ijkl with (i, j) = ``VOIGT_PAIRS[a]``, (k, l) = ``VOIGT_PAIRS[b]`` and
    w = (1, 1, 1, √2, √2, √2). With the Mandel vector e_a = w_a E_ij of a symmetric E the double
    contraction becomes a matrix product, (C : E)_a w_a = M_ab e_b, and M is symmetric if C has
    the major symmetry C_ijkl = C_klij.

    References
    ----------
    M. M. Mehrabadi and S. C. Cowin, Eigentensors of linear anisotropic elastic materials,
    The Quarterly Journal of Mechanics and Applied Mathematics 43(1):15-41, 1990,
    https://doi.org/10.1093/qjmam/43.1.15
    """
    C = asarray(C)
    check_shape(C, (3, 3, 3, 3), "C")
    m = xp(C)
    w = MANDEL_WEIGHTS
    return m.stack([m.stack([w[a] * w[b] * C[..., i, j, k, l] for b, (k, l) in enumerate(VOIGT_PAIRS)], -1)
                    for a, (i, j) in enumerate(VOIGT_PAIRS)], -2)


def from_mandel(M: Array) -> Array:
    """
    Fourth-order tensor from its Mandel matrix.

    Parameters
    ----------
    M : numpy.ndarray or torch.Tensor of shape (...,6,6)
        Mandel matrix, rows and columns in the order of :data:`VOIGT_PAIRS`.

    Returns
    -------
    C : numpy.ndarray or torch.Tensor of shape (...,3,3,3,3)
        Fourth-order tensor with the minor symmetries C_ijkl = C_jikl = C_ijlk.

    Notes
    -----
    C_ijkl = M_ab / (w_a w_b) with a the position of (i, j) or (j, i) in :data:`VOIGT_PAIRS`,
    b that of (k, l) or (l, k), and w = (1, 1, 1, √2, √2, √2); the inverse of
    :func:`to_mandel` for tensors with minor symmetries.

    References
    ----------
    M. M. Mehrabadi and S. C. Cowin, Eigentensors of linear anisotropic elastic materials,
    The Quarterly Journal of Mechanics and Applied Mathematics 43(1):15-41, 1990,
    https://doi.org/10.1093/qjmam/43.1.15
    """
    M = asarray(M)
    check_shape(M, (6, 6), "M")
    m = xp(M)
    w = MANDEL_WEIGHTS
    idx = [(_VOIGT_INDEX[i][j], _VOIGT_INDEX[k][l])
           for i in range(3) for j in range(3) for k in range(3) for l in range(3)]
    flat = m.stack([M[..., a, b] / (w[a] * w[b]) for a, b in idx], -1)
    return flat.reshape(tuple(M.shape[:-2]) + (3, 3, 3, 3))
