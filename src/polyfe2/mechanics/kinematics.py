"""Finite-strain kinematics: strain measures and the polar decomposition of F.

All routines take (...,3,3) tensors and work on the trailing axes only, so any leading batch
shape passes through. Every routine accepts numpy arrays and torch tensors and returns the type
it was given; constants are created with the input's device and dtype.
"""
from __future__ import annotations

import torch

from ._array import Array, asarray, check_shape, is_empty, xp
from .tensor import eye3, symmetric, transpose

__all__ = [
    "green_lagrange",
    "polar_decomposition",
    "isochoric",
    "expm_sym",
    "logm_spd",
    "strain_log",
]


def green_lagrange(F: Array) -> Array:
    """
    Green-Lagrange strain.

    Parameters
    ----------
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient.

    Returns
    -------
    E : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Green-Lagrange strain (material frame, symmetric).

    Notes
    -----
    E = ½ (FᵀF − I).

    References
    ----------
    G. A. Holzapfel, Nonlinear Solid Mechanics, Wiley, 2000, section 2.4.
    """
    F = asarray(F)
    check_shape(F, (3, 3), "F")
    return 0.5 * (transpose(F) @ F - eye3(F))


def polar_decomposition(F: Array, tol: float = 1e-13, max_iter: int = 40,
                        unchecked: int | None = None) -> tuple[Array, Array]:
    """
    Right polar decomposition F = R U by Newton's iteration.

    Parameters
    ----------
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient, det F > 0.
    tol : float, optional
        The iteration stops when no component of R changed by more than ``tol`` in the last
        iteration (largest change over the whole batch). Default 1e-13, for float64; float32
        input needs a tolerance near its resolution (1e-6), or all ``max_iter`` iterations run.
    max_iter : int, optional
        Most iterations; the last iterate is returned, without an error, if ``tol`` has not been
        met by then. Default 40.
    unchecked : int, optional
        Number of first iterations that run without the convergence check. Each check reads a
        number back to the host, on a GPU a synchronisation per iteration; stretches of a few
        per cent need 4-5 iterations. Default 5 for CUDA tensors, 0 otherwise.

    Returns
    -------
    R : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Rotation (orthogonal, det R = +1 for det F > 0).
    U : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Right stretch (symmetric positive definite).

    Notes
    -----
    Newton's iteration for the orthogonal polar factor,

    R₀ = F,    R_{k+1} = ½ (R_k + R_k⁻ᵀ),

    converges quadratically for every non-singular F; a handful of batched 3x3 inverses is much
    cheaper than a batched eigen- or singular-value decomposition. Then U = sym(Rᵀ F).

    References
    ----------
    N. J. Higham, Computing the polar decomposition—with applications, SIAM Journal on
    Scientific and Statistical Computing 7(4):1160-1174, 1986, https://doi.org/10.1137/0907079
    """
    F = asarray(F)
    check_shape(F, (3, 3), "F")
    m = xp(F)
    if unchecked is None:
        unchecked = 5 if isinstance(F, torch.Tensor) and F.is_cuda else 0
    empty = is_empty(F)
    R = F
    for i in range(max_iter):
        R_new = 0.5 * (R + transpose(m.linalg.inv(R)))
        done = i >= unchecked and (empty or bool(m.abs(R_new - R).max() <= tol))
        R = R_new
        if done:
            break
    return R, symmetric(transpose(R) @ F)


def isochoric(F: Array) -> Array:
    """
    Isochoric (volume-preserving) part of a deformation gradient.

    Parameters
    ----------
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient, det F > 0.

    Returns
    -------
    F_iso : numpy.ndarray or torch.Tensor of shape (...,3,3)
        J^(-1/3) F, with unit determinant.

    Notes
    -----
    F = J^(1/3) I · F_iso with J = det F splits F into a dilatation and an isochoric part.

    References
    ----------
    P. J. Flory, Thermodynamic relations for high elastic materials, Transactions of the Faraday
    Society 57:829-838, 1961, https://doi.org/10.1039/TF9615700829
    """
    F = asarray(F)
    check_shape(F, (3, 3), "F")
    J = xp(F).linalg.det(F)
    return F * (J ** (-1.0 / 3.0))[..., None, None]


def _spectral_function(A: Array, function: str, name: str) -> Array:
    """f(A) = Σ_a f(λ_a) n_a ⊗ n_a of a symmetric A (..., 3, 3), f = numpy's/torch's ``function``."""
    A = asarray(A)
    check_shape(A, (3, 3), name)
    m = xp(A)
    w, Q = m.linalg.eigh(A)
    return m.einsum("...ik,...k,...jk->...ij", Q, getattr(m, function)(w), Q)


def expm_sym(A: Array) -> Array:
    """
    Matrix exponential of a symmetric tensor.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric tensor (only the lower triangle is read).

    Returns
    -------
    exp_A : numpy.ndarray or torch.Tensor of shape (...,3,3)
        exp(A), symmetric positive definite.

    Notes
    -----
    With the spectral decomposition A = Σ_a λ_a n_a ⊗ n_a,  exp(A) = Σ_a exp(λ_a) n_a ⊗ n_a.
    """
    return _spectral_function(A, "exp", "A")


def logm_spd(S: Array) -> Array:
    """
    Matrix logarithm of a symmetric positive-definite tensor.

    Parameters
    ----------
    S : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric positive-definite tensor (only the lower triangle is read).

    Returns
    -------
    ln_S : numpy.ndarray or torch.Tensor of shape (...,3,3)
        ln(S), symmetric.

    Notes
    -----
    With the spectral decomposition S = Σ_a λ_a n_a ⊗ n_a (λ_a > 0),
    ln(S) = Σ_a ln(λ_a) n_a ⊗ n_a.
    """
    return _spectral_function(S, "log", "S")


def strain_log(F: Array) -> Array:
    """
    Logarithmic (Hencky) strain in the material frame.

    Parameters
    ----------
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient, det F ≠ 0.

    Returns
    -------
    epsilon : numpy.ndarray or torch.Tensor of shape (...,3,3)
        ln U, symmetric; ``damask.mechanics.strain(F, 'U', 0)``.

    Notes
    -----
    ln U = ½ ln(C) with the right Cauchy-Green tensor C = FᵀF = U².

    References
    ----------
    H. Hencky, Über die Form des Elastizitätsgesetzes bei ideal elastischen Stoffen,
    Zeitschrift für technische Physik 9:215-220, 1928.
    """
    F = asarray(F)
    check_shape(F, (3, 3), "F")
    return 0.5 * logm_spd(transpose(F) @ F)
