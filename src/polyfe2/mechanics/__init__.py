"""Continuum-mechanics maths: tensors, kinematics, stress measures and cubic elasticity.

A pure layer of free functions without state, I/O or configuration; it imports nothing else from
polyfe2.

Shape contract: all routines take second-order tensors with shape (...,3,3), fourth-order
tensors with shape (...,3,3,3,3), Voigt vectors (...,6) and Mandel matrices (...,6,6), and work
on the trailing axes only; any leading batch shape passes through.

Array types: every routine accepts numpy arrays and torch tensors and returns the type it was
given (if arguments are mixed, the computation runs in torch on the tensor's device and dtype).
Constants are created with the input's device and dtype; there is no global device or dtype.

Submodules
----------
:mod:`~polyfe2.mechanics.tensor`
    Identity, transpose, symmetric/spherical/deviatoric parts, trace, C : E, Voigt vectors and
    Mandel matrices.
:mod:`~polyfe2.mechanics.kinematics`
    Green-Lagrange and logarithmic strain, polar decomposition F = R U, isochoric part of F,
    exponential and logarithm of symmetric tensors.
:mod:`~polyfe2.mechanics.stress`
    Cauchy and second Piola-Kirchhoff stress from P and F, P from the Cauchy stress, von Mises
    equivalent stress.
:mod:`~polyfe2.mechanics.elasticity`
    Cubic stiffness, its rotation to the lab frame, the iso-strain average over grains and the
    cubic bulk modulus.
"""
from .elasticity import average_stiffness, bulk_modulus_cubic, cubic_stiffness, rotate_stiffness
from .kinematics import expm_sym, green_lagrange, isochoric, logm_spd, polar_decomposition, strain_log
from .stress import equivalent_stress_Mises, first_Piola_Kirchhoff, stress_Cauchy, stress_second_Piola_Kirchhoff
from .tensor import (MANDEL_WEIGHTS, STRESS_ORDER, VOIGT_PAIRS, ddot42, deviatoric, eye3, from_mandel, spherical, symmetric,
                     tensor_to_voigt, to_mandel, trace, transpose, voigt_to_tensor)

__all__ = [
    # tensor
    "eye3",
    "transpose",
    "symmetric",
    "trace",
    "spherical",
    "deviatoric",
    "ddot42",
    "VOIGT_PAIRS",
    "MANDEL_WEIGHTS",
    "STRESS_ORDER",
    "tensor_to_voigt",
    "voigt_to_tensor",
    "to_mandel",
    "from_mandel",
    # kinematics
    "green_lagrange",
    "polar_decomposition",
    "isochoric",
    "expm_sym",
    "logm_spd",
    "strain_log",
    # stress
    "stress_Cauchy",
    "stress_second_Piola_Kirchhoff",
    "equivalent_stress_Mises",
    "first_Piola_Kirchhoff",
    # elasticity
    "cubic_stiffness",
    "rotate_stiffness",
    "average_stiffness",
    "bulk_modulus_cubic",
]
