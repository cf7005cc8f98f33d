"""Finite-strain stress measures and their conversions.

All routines take (...,3,3) tensors and work on the trailing axes only, so any leading batch
shape passes through (the batch shapes of several arguments broadcast). Every routine accepts
numpy arrays and torch tensors and returns the type it was given; if the arguments are mixed,
the computation runs in torch on the tensor's device and dtype.

Symbols: P first Piola-Kirchhoff stress, S second Piola-Kirchhoff stress, sigma Cauchy stress,
F deformation gradient, J = det F.
"""
from __future__ import annotations

from ._array import Array, asarray, asarrays, check_shape, xp
from .tensor import deviatoric, symmetric, transpose

__all__ = [
    "stress_Cauchy",
    "stress_second_Piola_Kirchhoff",
    "equivalent_stress_Mises",
    "first_Piola_Kirchhoff",
]


def stress_Cauchy(P: Array, F: Array) -> Array:
    """
    Cauchy stress (true stress).

    The result is symmetrised, as the Cauchy stress needs to be symmetric
    (as ``damask.mechanics.stress_Cauchy``).

    Parameters
    ----------
    P : numpy.ndarray or torch.Tensor of shape (...,3,3)
        First Piola-Kirchhoff stress.
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient.

    Returns
    -------
    sigma : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Cauchy stress.

    Notes
    -----
    σ = sym(J⁻¹ P Fᵀ) with J = det F.

    References
    ----------
    G. A. Holzapfel, Nonlinear Solid Mechanics, Wiley, 2000, section 3.1.
    """
    P, F = asarrays(P, F)
    check_shape(P, (3, 3), "P")
    check_shape(F, (3, 3), "F")
    J = xp(F).linalg.det(F)
    return symmetric(P @ transpose(F) / J[..., None, None])


def stress_second_Piola_Kirchhoff(P: Array, F: Array) -> Array:
    """
    Second Piola-Kirchhoff stress.

    The result is symmetrised, as the second Piola-Kirchhoff stress needs to be symmetric
    (as ``damask.mechanics.stress_second_Piola_Kirchhoff``).

    Parameters
    ----------
    P : numpy.ndarray or torch.Tensor of shape (...,3,3)
        First Piola-Kirchhoff stress.
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient.

    Returns
    -------
    S : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Second Piola-Kirchhoff stress.

    Notes
    -----
    S = sym(F⁻¹ P).

    References
    ----------
    G. A. Holzapfel, Nonlinear Solid Mechanics, Wiley, 2000, section 3.1.
    """
    P, F = asarrays(P, F)
    check_shape(P, (3, 3), "P")
    check_shape(F, (3, 3), "F")
    return symmetric(xp(F).linalg.inv(F) @ P)


def equivalent_stress_Mises(sigma: Array) -> Array:
    """
    Von Mises equivalent of a stress tensor.

    Parameters
    ----------
    sigma : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Symmetric stress tensor of which the von Mises equivalent is computed.

    Returns
    -------
    sigma_vM : numpy.ndarray or torch.Tensor of shape (...)
        Von Mises equivalent stress (as ``damask.mechanics.equivalent_stress_Mises``).

    Notes
    -----
    σ_vM = √(3/2 σ' : σ') with the deviatoric stress σ' = σ − (tr σ / 3) I; it equals |σ_11|
    for uniaxial stress and √3 |τ| for pure shear τ.

    References
    ----------
    R. von Mises, Mechanik der festen Körper im plastisch-deformablen Zustand, Nachrichten von
    der Gesellschaft der Wissenschaften zu Göttingen, Mathematisch-Physikalische Klasse
    1913:582-592, 1913.
    """
    sigma = asarray(sigma)
    check_shape(sigma, (3, 3), "sigma")
    d = deviatoric(sigma)
    return xp(sigma).sqrt(1.5 * (d * d).sum((-2, -1)))


def first_Piola_Kirchhoff(sigma: Array, F: Array) -> Array:
    """
    First Piola-Kirchhoff stress from the Cauchy stress.

    Parameters
    ----------
    sigma : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Cauchy stress.
    F : numpy.ndarray or torch.Tensor of shape (...,3,3)
        Deformation gradient.

    Returns
    -------
    P : numpy.ndarray or torch.Tensor of shape (...,3,3)
        First Piola-Kirchhoff stress (not symmetric in general).

    Notes
    -----
    P = J σ F⁻ᵀ with J = det F (Piola transform, inverse of :func:`stress_Cauchy` for
    symmetric σ).

    References
    ----------
    G. A. Holzapfel, Nonlinear Solid Mechanics, Wiley, 2000, section 3.1.
    """
    sigma, F = asarrays(sigma, F)
    check_shape(sigma, (3, 3), "sigma")
    check_shape(F, (3, 3), "F")
    m = xp(F)
    J = m.linalg.det(F)
    return J[..., None, None] * sigma @ transpose(m.linalg.inv(F))
