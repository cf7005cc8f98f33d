"""Load paths for training and testing the GRU surrogate (paper 003, sections 2-3).

Random monotonic paths (training data)
    A fixed loading *direction* ``N`` -- a random symmetric, traceless 3x3 tensor with unit
    Frobenius norm -- and a scalar log-strain magnitude ``s(t)`` that grows monotonically:
    the path is split into ``sections`` sections of equal duration, each with a random rate
    ``r_i ~ U(0, 1)``; the cumulative section-end targets ``s_i = sum_{j<=i} r_j`` are scaled so
    that the final magnitude is uniform in ``(0, max_strain]`` and interpolated onto the time
    steps with :class:`scipy.interpolate.PchipInterpolator` (monotone, C1, no overshoot).
    The deformation gradient is ``F(t) = expm(s(t) N)``: symmetric, ``det F = exp(s tr N) = 1``
    (volume preserving, as the paper's volume-corrected targets) and
    ``logm(sqrt(F^T F)) = s(t) N`` exactly, so ``s`` is the Hencky (log) strain magnitude.

Idealised paths (tests)
    Isochoric versions of the paper's eqs. (6)-(8) with the whole deformation gradient
    prescribed (the paper's mixed stress conditions are left to the solver):

    * ``'uniaxial_tension'``: ``F = diag(l, l^-1/2, l^-1/2)``;
    * ``'plane_strain'``: ``F = diag(l, 1, 1/l)``;
    * ``'pure_shear'``: ``F = expm(g/2 (e1 (x) e2 + e2 (x) e1))`` -- symmetric pure shear
      (principal stretches ``exp(+-g/2)`` along the 45 deg diagonals of the 1-2 plane), major
      component 12, ``det F = 1``, and to first order ``F12 = F21 = g/2`` (engineering shear
      strain ``g``).

    with ``l = exp(e)``; ``e`` (resp. ``g``) grows linearly from 0 to ``strain`` over ``steps``
    equal steps, so ``strain`` is the final axial Hencky strain (or engineering shear strain
    ``g``, defined through the log strain).

All paths are numpy float64 arrays ``(steps + 1, 3, 3)`` with ``F[0] = I``.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..mechanics import expm_sym
from .spec import IDEALISED_KINDS

__all__ = [
    "random_direction",
    "random_monotonic_path",
    "idealised_path",
    "IDEALISED_KINDS",
]



def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def random_direction(rng) -> np.ndarray:
    """Random loading direction: symmetric, traceless, unit Frobenius norm.

    The upper-triangle components are drawn uniformly from ``[-1, 1]`` (as the paper's
    direction components), symmetrised, the trace removed and the result normalised.

    Parameters
    ----------
    rng : numpy.random.Generator or int or None

    Returns
    -------
    numpy.ndarray, shape (3, 3)
    """
    rng = _rng(rng)
    while True:
        A = rng.uniform(-1.0, 1.0, (3, 3))
        A = 0.5 * (A + A.T)
        A -= np.trace(A) / 3.0 * np.eye(3)
        n = np.linalg.norm(A)
        if n > 1e-8:
            return A / n


def random_monotonic_path(rng=None, steps: int = 100, max_strain: float = 0.05,
                          sections: int = 4, return_info: bool = False):
    """Random monotonic, volume-preserving load path (paper 003, section 2).

    Parameters
    ----------
    rng : numpy.random.Generator or int or None
        Random source.
    steps : int, optional
        Number of load increments; the path has ``steps + 1`` states.
    max_strain : float, optional
        Upper bound of the final Hencky strain magnitude ``||ln U||_F``; the final magnitude is
        uniform in ``(0, max_strain]``.
    sections : int, optional
        Number of sections with independent random rates (``1 <= sections <= steps``).
    return_info : bool, optional
        Also return a dict with ``direction`` (3, 3), ``magnitude`` (steps + 1,),
        ``knots_t`` and ``knots_s`` (section-end times in steps and targets).

    Returns
    -------
    F : numpy.ndarray, shape (steps + 1, 3, 3)
        Deformation gradients, ``F[0] = I``, ``det F = 1``.
    info : dict
        Only with ``return_info``.
    """
    steps, sections = int(steps), int(sections)
    if steps < 1 or not 1 <= sections <= steps:
        raise ValueError(f"need steps >= 1 and 1 <= sections <= steps, got {steps}, {sections}")
    if not max_strain > 0:
        raise ValueError(f"max_strain must be > 0, got {max_strain}")
    rng = _rng(rng)
    direction = random_direction(rng)
    rates = rng.uniform(0.0, 1.0, sections)
    if rates.sum() <= 0:  # pragma: no cover - measure zero
        rates[:] = 1.0
    final = max_strain * (1.0 - rng.random())          # uniform in (0, max_strain]
    knots_t = np.linspace(0.0, steps, sections + 1)     # equal section durations
    knots_s = np.concatenate([[0.0], np.cumsum(rates)]) * (final / rates.sum())
    knots_s[-1] = final
    s = PchipInterpolator(knots_t, knots_s)(np.arange(steps + 1, dtype=float))
    s = np.maximum.accumulate(np.clip(s, 0.0, final))   # guard rounding only
    s[0] = 0.0
    F = expm_sym(s[:, None, None] * direction)
    F[0] = np.eye(3)
    if return_info:
        return F, dict(direction=direction, magnitude=s, knots_t=knots_t, knots_s=knots_s)
    return F


def idealised_path(kind: str, steps: int = 100, strain: float = 0.05) -> np.ndarray:
    """Idealised isochoric load paths (paper 003, eqs. 6-8), fully prescribed F.

    Parameters
    ----------
    kind : {'uniaxial_tension', 'plane_strain', 'pure_shear'}
        ``uniaxial_tension``: ``diag(l, l^-1/2, l^-1/2)``; ``plane_strain``:
        ``diag(l, 1, 1/l)``; ``pure_shear``: ``expm(g/2 (e1 (x) e2 + e2 (x) e1))``.
    steps : int, optional
        Number of equal increments; the path has ``steps + 1`` states.
    strain : float, optional
        Final axial Hencky strain ``ln l`` (uniaxial, plane strain) or shear ``g``.

    Returns
    -------
    numpy.ndarray, shape (steps + 1, 3, 3)
        ``F[0] = I``, ``det F = 1``.
    """
    t = np.linspace(0.0, float(strain), int(steps) + 1)
    F = np.zeros((t.size, 3, 3))
    if kind == "uniaxial_tension":
        F[:, 0, 0] = np.exp(t)
        F[:, 1, 1] = F[:, 2, 2] = np.exp(-0.5 * t)
    elif kind == "plane_strain":
        F[:, 0, 0] = np.exp(t)
        F[:, 1, 1] = 1.0
        F[:, 2, 2] = np.exp(-t)
    elif kind == "pure_shear":
        N = np.zeros((3, 3))
        N[0, 1] = N[1, 0] = 0.5
        F = expm_sym(t[:, None, None] * N)
        F[0] = np.eye(3)
    else:
        raise ValueError(f"unknown load path kind {kind!r}; expected one of {IDEALISED_KINDS}")
    return F
