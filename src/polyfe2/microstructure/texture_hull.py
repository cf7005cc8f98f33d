"""Discrete ODFs on the fcc texture hull and hierarchical simplex sampling (paper 000, sec. 2.1).

An orientation distribution function (ODF) is approximated by weights ``p_j`` over ``J`` fixed
*fundamental orientations* ``q^(j)`` of the cubic (fcc, ``lattice='cF'``) fundamental zone (FZ):

    f(q) ≈ Σ_j p_j δ(q, q^(j)),   p_j >= 0,   Σ_j p_j = 1.

The set of admissible weight vectors is the (J-1)-simplex, the *texture hull* M_H: its vertices
are single-orientation textures, its edges two-orientation mixtures, ..., and its barycentre the
(discrete) random texture.

Fundamental orientations (:func:`fundamental_orientations`)
-----------------------------------------------------------
An equal-volume grid of SO(3) built with damask's cubochoric map
(``damask.Rotation.from_cubochoric``): the cubochoric cube of edge ``π^(2/3)`` (volume ``π²``,
the SO(3) volume of the homochoric ball) is cut into ``n³`` cubes of edge ``a = π^(2/3)/n`` and
their centres are mapped to rotations. The map is volume preserving, so each cell carries the
same share ``1/n³`` of SO(3). Only the centres inside the cubic FZ (``Orientation.in_FZ``) are
kept, in grid (C) order, as quaternions (scalar first, ``q0 >= 0``); the FZ is 1/24 of SO(3), so
``J ≈ n³/24``.

Resolution rule: near the identity the homochoric vector of a rotation by ω is ``≈ (ω/2) n̂``,
so a cube of angular edge Δ occupies homochoric volume ``(Δ/2)³``. Equating this with the cell
volume ``a³`` gives ``a = Δ/2``, i.e. ::

    n = round(2 π^(2/3) / Δ)      (Δ in radians)

At Δ = 10° this is n = round(24.58) = 25 (odd, so the identity / cube orientation is a grid
point) and **J = 627** orientations (paper 000: 618). The set is not a lattice in angle space
(the cubochoric map is not isometric): the nearest-neighbour disorientation has median ≈ 7.5°
(5-95 %: 5.9°-7.9°) at Δ = 10°, and points just inside opposite FZ faces may be closer (min ≈ 2.3°).
Random orientations lie within 5.1° (median), 8.1° (95 %), 12.5° (max) of a grid point, and
uniform weights reproduce the isotropic Voigt C_1111 of aluminium to 0.06 GPa (0.05 %).

Hierarchical simplex sampling (:func:`hierarchical_simplex_sample`)
-------------------------------------------------------------------
A flat Dirichlet over J ≈ 600 weights (:func:`dirichlet_sample`) concentrates at the random
texture (texture index ≈ 2, see below): almost none of the hull's extremes are ever drawn.
Hierarchical simplex sampling (Johnson & Kurniawan 2018; Niño & Johnson 2024) samples the faces of
the simplex at all dimensions instead. Here each sample is drawn independently as

1. a *level* (face size) k is picked uniformly from ``levels``; the default is the powers of two
   below J plus J itself, ``{1, 2, 4, ..., 2^⌊log2(J-1)⌋, J}`` (J = 627: 1, 2, ..., 512, 627 —
   11 levels), i.e. ``log2 k`` roughly uniform over ``[0, log2 J]``;
2. k distinct vertices (orientations) are picked uniformly at random, without replacement;
3. the weights on that (k-1)-face are flat Dirichlet(1, ..., 1): independent standard
   exponentials on the k vertices, normalised to sum one; all other weights are zero.

Level 1 gives the hull's vertices (single orientations), small k sparse mixtures, k = J a flat
Dirichlet over the whole hull. This is our own implementation of the idea (no public code); it
does not claim to reproduce the authors' exact level schedule.

Coverage measures
-----------------
* :func:`texture_index`: ``J Σ_j p_j²`` (dimensionless) — 1 for the discrete random texture, J
  for a single orientation; flat Dirichlet has mean ``2J/(J+1) ≈ 2``.
* :func:`voigt_c1111`: the iso-strain (Voigt) average of the lab-frame stiffness component C_1111
  (units of the elastic constants, e.g. Pa), ``Σ_j p_j C_1111(q^(j))``, using
  :mod:`polyfe2.mechanics.elasticity`.

Grain orientations from a discrete ODF (:func:`sample_odf_orientations`)
------------------------------------------------------------------------
Categorical draws of the J orientations with probabilities ``p``, optionally scattered by a
uniform (Haar) random rotation within a misorientation ball of radius ``scatter_deg`` (about
half the resolution, e.g. 5° at 10°, is natural), composed with damask, then reduced to the FZ.

Rotation conventions are DAMASK's (passive, scalar-first quaternions); all rotation algebra goes
through ``damask``. Random sources are :class:`numpy.random.Generator` (or anything
:func:`numpy.random.default_rng` accepts).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import damask
import numpy as np

from ..mechanics.elasticity import average_stiffness, cubic_stiffness
from .descriptor import reduce_to_fz

__all__ = [
    "DEFAULT_RESOLUTION_DEG",
    "cubochoric_cells",
    "fundamental_orientations",
    "default_levels",
    "hierarchical_simplex_sample",
    "dirichlet_sample",
    "texture_index",
    "voigt_c1111",
    "sample_odf_orientations",
]

#: Angular resolution (degrees) of the fundamental orientations used by paper 000.
DEFAULT_RESOLUTION_DEG = 10.0

#: Edge of the cubochoric cube, π^(2/3).
_CUBE_EDGE = np.pi ** (2.0 / 3.0)


def _sizes(J, n) -> tuple[int, int]:
    J, n = int(J), int(n)
    if J < 1 or n < 0:
        raise ValueError(f"need J >= 1 and n >= 0, got J={J}, n={n}")
    return J, n


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def cubochoric_cells(resolution_deg: float = DEFAULT_RESOLUTION_DEG) -> int:
    """Number of cells ``n`` per edge of the cubochoric cube for an angular resolution.

    Parameters
    ----------
    resolution_deg : float
        Angular size Δ (degrees) of one cell.

    Returns
    -------
    int
        ``n = max(1, round(2 π^(2/3) / Δ))`` with Δ in radians (module docstring); 25 at 10°.
    """
    delta = np.radians(float(resolution_deg))
    if not np.isfinite(delta) or delta <= 0.0:
        raise ValueError(f"resolution_deg must be positive, got {resolution_deg!r}")
    return max(1, int(round(2.0 * _CUBE_EDGE / delta)))


@functools.lru_cache(maxsize=8)
def _fundamental_orientations(n: int) -> np.ndarray:
    centres = (np.arange(n) + 0.5) * (_CUBE_EDGE / n) - 0.5 * _CUBE_EDGE
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    rot = damask.Rotation.from_cubochoric(grid)
    keep = np.asarray(damask.Orientation(rotation=rot, lattice="cF").in_FZ, dtype=bool)
    q = np.asarray(rot.quaternion, dtype=float)[keep]
    q = np.where(q[:, :1] < 0.0, -q, q)
    q.setflags(write=False)
    return q


def fundamental_orientations(resolution_deg: float = DEFAULT_RESOLUTION_DEG) -> np.ndarray:
    """Nearly uniform discrete orientations of the cubic fundamental zone.

    Centres of an equal-volume cubochoric grid with ``n = cubochoric_cells(resolution_deg)``
    cells per edge, kept when inside the cubic (cF) FZ (module docstring). Deterministic.

    Parameters
    ----------
    resolution_deg : float, optional
        Angular resolution Δ in degrees (default 10°, giving J = 627).

    Returns
    -------
    numpy.ndarray, shape (J, 4)
        Unit quaternions, scalar first, ``q0 >= 0``, in the cF fundamental zone.
    """
    return _fundamental_orientations(cubochoric_cells(resolution_deg)).copy()


def default_levels(J: int) -> np.ndarray:
    """Default HSS face sizes ``{1, 2, 4, ..., 2^m, J}`` with ``2^m < J`` (just ``[1]`` for J = 1).

    Parameters
    ----------
    J : int
        Number of vertices of the simplex (fundamental orientations).

    Returns
    -------
    numpy.ndarray of int
        Increasing, distinct face sizes (numbers of vertices with non-zero weight).
    """
    J = int(J)
    if J < 1:
        raise ValueError(f"J must be >= 1, got {J}")
    powers = [1 << i for i in range(J.bit_length()) if (1 << i) < J]
    return np.array(sorted(set(powers) | {J}), dtype=int)


def hierarchical_simplex_sample(J: int, n: int, rng=None,
                                levels: Optional[Sequence[int]] = None) -> np.ndarray:
    """Hierarchical simplex sampling of the texture hull.

    Each of the ``n`` samples independently picks a face size ``k`` uniformly from ``levels``,
    ``k`` distinct vertices uniformly at random, and flat Dirichlet weights on them
    (normalised standard exponentials); the other ``J - k`` weights are zero.

    Parameters
    ----------
    J : int
        Number of fundamental orientations (simplex vertices).
    n : int
        Number of samples.
    rng : numpy.random.Generator or int or None
        Random source.
    levels : sequence of int, optional
        Face sizes to choose from (each with equal probability), each in ``1..J``; default
        :func:`default_levels` (``log2 k`` roughly uniform on ``[0, log2 J]``).

    Returns
    -------
    numpy.ndarray, shape (n, J)
        Weights, ``>= 0``, each row summing to one.
    """
    J, n = _sizes(J, n)
    lv = default_levels(J) if levels is None else np.asarray(levels, dtype=int).ravel()
    if lv.size == 0 or lv.min() < 1 or lv.max() > J:
        raise ValueError(f"levels must be non-empty integers in 1..{J}, got {levels!r}")
    rng = _rng(rng)
    k = lv[rng.integers(lv.size, size=n)]                        # face size per sample
    order = np.argsort(rng.random((n, J)), axis=1)               # uniform random permutations
    on = np.zeros((n, J), dtype=bool)
    np.put_along_axis(on, order, np.arange(J)[None, :] < k[:, None], axis=1)
    w = np.where(on, rng.standard_exponential((n, J)), 0.0)      # Gamma(1) on the chosen face
    return w / w.sum(axis=1, keepdims=True)


def dirichlet_sample(J: int, n: int, rng=None) -> np.ndarray:
    """Flat Dirichlet(1, ..., 1) samples of the J-vertex simplex (uniform on the texture hull).

    Parameters
    ----------
    J : int
        Number of fundamental orientations.
    n : int
        Number of samples.
    rng : numpy.random.Generator or int or None
        Random source.

    Returns
    -------
    numpy.ndarray, shape (n, J)
        Weights, ``>= 0``, each row summing to one.
    """
    J, n = _sizes(J, n)
    return _rng(rng).dirichlet(np.ones(J), size=n)


def texture_index(weights) -> np.ndarray:
    """Texture index of discrete ODFs relative to the random texture, ``J Σ_j p_j²``.

    Parameters
    ----------
    weights : array_like, shape (..., J)
        ODF weights (summing to one).

    Returns
    -------
    numpy.ndarray, shape (...)
        Dimensionless: 1 for uniform weights, J for a single orientation.
    """
    p = np.asarray(weights, dtype=float)
    return p.shape[-1] * np.sum(p * p, axis=-1)


def voigt_c1111(weights, orientations, c11: float, c12: float, c44: float) -> np.ndarray:
    """Voigt (iso-strain) average of the lab-frame stiffness component C_1111.

    Parameters
    ----------
    weights : array_like, shape (..., J)
        ODF weights (summing to one; not normalised here).
    orientations : array_like, shape (J, 4)
        Fundamental orientations, quaternions (scalar first).
    c11, c12, c44 : float
        Cubic elastic constants (Voigt notation), e.g. in Pa.

    Returns
    -------
    numpy.ndarray, shape (...)
        ``Σ_j p_j C_1111(q^(j))`` in the units of the elastic constants.
    """
    p = np.asarray(weights, dtype=float)
    q = np.asarray(orientations, dtype=float).reshape(-1, 4)
    if p.shape[-1:] != (q.shape[0],):
        raise ValueError(f"weights: expected shape (..., {q.shape[0]}), got {p.shape}")
    C = cubic_stiffness(c11, c12, c44).numpy()
    R = np.asarray(damask.Rotation(q).as_matrix(), dtype=float)          # (J, 3, 3)
    lead = p.shape[:-1]
    # R is shared by all ODFs, so the J rotated stiffnesses are formed once
    C_avg = average_stiffness(C, R, p.reshape(-1, q.shape[0]))           # (N, 3, 3, 3, 3)
    return C_avg[..., 0, 0, 0, 0].reshape(lead)


def _ball_angles(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Rotation angles (rad) of Haar-uniform rotations within misorientation ``radius``.

    The Haar density of the angle is ∝ 1 - cos ω, so the CDF is (ω - sin ω)/(r - sin r);
    inverted by interpolation on a fine table.
    """
    w = np.linspace(0.0, radius, 4097)
    cdf = w - np.sin(w)
    cdf /= cdf[-1]
    return np.interp(rng.random(size), cdf, w)


def sample_odf_orientations(weights, orientations, n_grains: int, rng=None,
                            scatter_deg: Optional[float] = None) -> np.ndarray:
    """Grain orientations drawn from a discrete ODF.

    Parameters
    ----------
    weights : array_like, shape (J,)
        ODF weights (non-negative; normalised here).
    orientations : array_like, shape (J, 4)
        Fundamental orientations (quaternions, scalar first).
    n_grains : int
        Number of grain orientations.
    rng : numpy.random.Generator or int or None
        Random source.
    scatter_deg : float, optional
        If given, each drawn orientation is composed with a Haar-uniform random rotation of
        angle at most ``scatter_deg`` degrees (about half the resolution is natural). Default:
        no scatter (orientations are the fundamental ones, reduced to the FZ).

    Returns
    -------
    numpy.ndarray, shape (n_grains, 4)
        Unit quaternions in the cF fundamental zone, scalar first, ``q0 >= 0``.
    """
    p = np.asarray(weights, dtype=float).ravel()
    q = np.asarray(orientations, dtype=float).reshape(-1, 4)
    if p.shape[0] != q.shape[0]:
        raise ValueError(f"weights has {p.shape[0]} entries, orientations {q.shape[0]}")
    if np.any(p < 0.0) or not np.isfinite(p).all() or p.sum() <= 0.0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    rng = _rng(rng)
    idx = rng.choice(q.shape[0], size=int(n_grains), p=p / p.sum())
    out = q[idx]
    if scatter_deg is not None and float(scatter_deg) > 0.0:
        m = out.shape[0]
        axis = rng.standard_normal((m, 3))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        omega = _ball_angles(rng, m, np.radians(float(scatter_deg)))
        small = damask.Rotation.from_axis_angle(np.column_stack([axis, omega]))
        out = (small * damask.Rotation(out)).quaternion
    return reduce_to_fz(out)
