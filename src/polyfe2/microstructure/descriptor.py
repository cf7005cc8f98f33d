"""Per-sample microstructure descriptor of the GRU surrogate (paper 003, section 2).

A volume element (VE) is a periodic Voronoi tessellation of the unit cube with ``G`` grains
(``G = 20`` by default). Each grain contributes one row of the descriptor

    ``[x, y, z, q0, q1, q2, q3]``

* ``x, y, z`` -- the Voronoi seed position in ``[0, 1)^3``
  (``damask.seeds.from_random([1, 1, 1], G, ...)``);
* ``q0..q3`` -- the grain orientation as a unit quaternion (scalar first, DAMASK's passive
  convention, ``q0 >= 0``) reduced to the cubic (fcc, ``lattice='cF'``) fundamental zone with
  ``damask.Orientation(rotation=..., lattice='cF').reduced``.

The layout string :data:`DESCRIPTOR_LAYOUT` is stored in surrogate checkpoints so that a model
is never fed descriptors of another layout.

All sampling goes through ``damask`` (no hand-written rotation code) and is seeded with a
:class:`numpy.random.Generator` (or anything :func:`numpy.random.default_rng` accepts).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import damask
import numpy as np

from .textures import TEXTURE_COMPONENTS

__all__ = [
    "N_GRAINS",
    "DESCRIPTOR_LAYOUT",
    "DESCRIPTOR_WIDTH",
    "TEXTURE_COMPONENTS",
    "reduce_to_fz",
    "random_seeds",
    "make_descriptor",
    "random_texture",
    "texture_component",
    "from_odf_samples",
    "voronoi_grid",
]

#: Number of grains per volume element used by the paper (and the default everywhere).
N_GRAINS = 20
#: Column layout of one descriptor row; stored in checkpoints and checked on load.
DESCRIPTOR_LAYOUT = "seed_xyz[3]+quat_cF_FZ[4] (x,y,z,q0,q1,q2,q3; scalar first, q0>=0)"
#: Number of columns of one descriptor row.
DESCRIPTOR_WIDTH = 7



def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def reduce_to_fz(quaternions) -> np.ndarray:
    """Reduce orientations to the cubic (cF) fundamental zone.

    Parameters
    ----------
    quaternions : array_like, shape (..., 4)
        Unit quaternions, scalar first (DAMASK convention).

    Returns
    -------
    numpy.ndarray, shape (..., 4)
        The symmetry-equivalent quaternions inside the fundamental zone, ``q0 >= 0``.
    """
    q = np.asarray(quaternions, dtype=float)
    # damask's ``Orientation.reduced`` forms all 24 equivalents (14 µs per orientation; minutes for
    # the plate's 6.8 million). The cubic fundamental zone is the set of equivalents closest to
    # the identity, i.e. with the largest |scalar part|, and the scalar part of s·q is
    # s0 q0 - s⃗·q⃗ whatever the sign convention: pick that operation with one matrix product,
    # then form only its product, with damask (same result as ``reduced``, tested).
    ops = damask.Orientation(lattice="cF").symmetry_operations.quaternion   # (24, 4)
    flat = q.reshape(-1, 4)
    best = np.abs(flat @ (ops * np.array([1.0, -1.0, -1.0, -1.0])).T).argmax(axis=1)
    reduced = (damask.Rotation(ops[best]) * damask.Rotation(flat)).quaternion
    reduced = np.where(reduced[:, :1] < 0, -reduced, reduced)
    return np.asarray(reduced, dtype=float).reshape(q.shape)


def random_seeds(G: int, rng) -> np.ndarray:
    """Uniformly random Voronoi seed positions in the unit cube.

    Parameters
    ----------
    G : int
        Number of seeds (grains).
    rng : numpy.random.Generator or int or None
        Random source.

    Returns
    -------
    numpy.ndarray, shape (G, 3)
        Seed coordinates in ``[0, 1)^3``.
    """
    return np.asarray(damask.seeds.from_random([1.0, 1.0, 1.0], int(G), rng_seed=_rng(rng)),
                      dtype=float)


def make_descriptor(seeds, quaternions) -> np.ndarray:
    """Assemble a descriptor from seed positions and (not necessarily reduced) orientations.

    Parameters
    ----------
    seeds : array_like, shape (..., G, 3)
        Voronoi seed positions in the unit cube (leading axes: many VEs at once).
    quaternions : array_like, shape (..., G, 4)
        Unit quaternions (scalar first); they are reduced to the cubic fundamental zone.

    Returns
    -------
    numpy.ndarray, shape (..., G, 7)
        Rows ``[x, y, z, q0, q1, q2, q3]`` (see :data:`DESCRIPTOR_LAYOUT`).
    """
    seeds = np.asarray(seeds, dtype=float)
    q = np.asarray(quaternions, dtype=float)
    if seeds.ndim < 2 or seeds.shape[-1] != 3 or q.shape != seeds.shape[:-1] + (4,):
        raise ValueError(f"seeds (..., G, 3) and quaternions (..., G, 4) expected, got {seeds.shape} "
                         f"and {q.shape}")
    return np.concatenate([seeds, reduce_to_fz(q)], axis=-1)


def random_texture(G: int = N_GRAINS, rng=None) -> np.ndarray:
    """Descriptor of a VE with uniformly random (untextured) orientations.

    Parameters
    ----------
    G : int, optional
        Number of grains (default 20).
    rng : numpy.random.Generator or int or None
        Random source (seeds are drawn first, then orientations).

    Returns
    -------
    numpy.ndarray, shape (G, 7)
        Descriptor rows ``[x, y, z, q0, q1, q2, q3]``.
    """
    rng = _rng(rng)
    seeds = random_seeds(G, rng)
    q = damask.Rotation.from_random(int(G), rng_seed=rng).as_quaternion()
    return make_descriptor(seeds, q)


def texture_component(name: str, G: int = N_GRAINS, spread_deg: float = 10.0,
                      rng=None) -> np.ndarray:
    """Descriptor of a VE whose orientations scatter around an ideal texture component.

    Orientations are drawn with ``damask.Rotation.from_spherical_component`` (a Gaussian-like
    spread of standard deviation ``spread_deg`` about the component), then reduced to the
    cubic fundamental zone.

    Parameters
    ----------
    name : {'cube', 'goss', 'brass', 'copper'}
        Texture component (case-insensitive); Bunge Euler angles in
        :data:`TEXTURE_COMPONENTS`.
    G : int, optional
        Number of grains (default 20).
    spread_deg : float, optional
        Spread (degrees) of the spherical component.
    rng : numpy.random.Generator or int or None
        Random source.

    Returns
    -------
    numpy.ndarray, shape (G, 7)
        Descriptor rows.
    """
    key = str(name).lower()
    if key not in TEXTURE_COMPONENTS:
        raise ValueError(f"unknown texture component {name!r}; expected one of "
                         f"{sorted(TEXTURE_COMPONENTS)}")
    rng = _rng(rng)
    seeds = random_seeds(G, rng)
    center = damask.Rotation.from_Euler_angles(np.array(TEXTURE_COMPONENTS[key]), degrees=True)
    rot = damask.Rotation.from_spherical_component(center, float(spread_deg), int(G),
                                                   degrees=True, rng_seed=rng)
    return make_descriptor(seeds, rot.as_quaternion())


def from_odf_samples(quaternions, G: int = N_GRAINS, rng=None) -> np.ndarray:
    """Descriptor of a VE whose orientations are drawn from a sample of an ODF.

    Parameters
    ----------
    quaternions : array_like, shape (M, 4)
        Orientations sampled from the ODF (scalar first). ``G`` of them are drawn uniformly,
        without replacement when ``M >= G``, with replacement otherwise.
    G : int, optional
        Number of grains (default 20).
    rng : numpy.random.Generator or int or None
        Random source.

    Returns
    -------
    numpy.ndarray, shape (G, 7)
        Descriptor rows.
    """
    pool = np.asarray(quaternions, dtype=float).reshape(-1, 4)
    if pool.shape[0] == 0:
        raise ValueError("from_odf_samples: empty orientation sample")
    rng = _rng(rng)
    seeds = random_seeds(G, rng)
    idx = rng.choice(pool.shape[0], size=int(G), replace=pool.shape[0] < G)
    return make_descriptor(seeds, pool[idx])


def voronoi_grid(descriptor, cells: Sequence[int] = (32, 32, 32)) -> Tuple[np.ndarray, np.ndarray]:
    """Discretise a descriptor's periodic Voronoi tessellation on a regular grid.

    Parameters
    ----------
    descriptor : array_like, shape (G, 7)
        Descriptor rows ``[x, y, z, q0, q1, q2, q3]``.
    cells : sequence of 3 int, optional
        Grid cells (the paper uses 32^3).

    Returns
    -------
    material : numpy.ndarray of int, shape cells
        Material (grain) ID per cell, ``0..G-1`` in descriptor row order (x fastest in files,
        as DAMASK writes them; the array is indexed ``[ix, iy, iz]``).
    orientations : numpy.ndarray, shape (G, 4)
        Grain orientations (quaternions, scalar first) in grain-ID order.
    """
    d = np.asarray(descriptor, dtype=float)
    if d.ndim != 2 or d.shape[1] != DESCRIPTOR_WIDTH:
        raise ValueError(f"descriptor must be (G, {DESCRIPTOR_WIDTH}), got {d.shape}")
    grid = damask.GeomGrid.from_Voronoi_tessellation(np.asarray(cells, dtype=int),
                                                     np.ones(3), d[:, :3], periodic=True)
    return np.asarray(grid.material), d[:, 3:].copy()


def grain_fractions(descriptor: np.ndarray, cells: int = 16) -> np.ndarray:
    """Volume fraction of every grain of the VE's periodic Voronoi tessellation on a ``cells``^3 grid."""
    material, _ = voronoi_grid(descriptor, (cells,) * 3)
    counts = np.bincount(material.ravel(), minlength=descriptor.shape[0]).astype(float)
    return counts / counts.sum()


def voronoi_ensemble(n: int, G: int = N_GRAINS, rng=None, pool: int = 256, cells: int = 16):
    """Seeds and grain volume fractions of ``n`` periodic Voronoi VEs of ``G`` grains, fast.

    The fractions of :func:`grain_fractions` (measured on a ``cells``³ grid) cost about 7 ms per
    VE, which is 40 minutes for the 3.4e5 VEs of the component-scale plate. Here ``pool`` VEs
    are tessellated, and every one of the ``n`` VEs is a pool member moved by a symmetry of the
    grid: a translation by whole cells and one of the 48 axis permutations and reflections of
    the cube. These map the cell centres onto themselves, so the moved VE's fractions on the
    grid are exactly the pool member's (tested against :func:`grain_fractions`), while its seeds
    differ: ``pool`` × cells³ × 48 distinct VEs (5e7 for the defaults).

    Returns ``seeds`` (n, G, 3) in [0, 1) and ``fractions`` (n, G).
    """
    import itertools

    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    base = random_seeds(pool * G, rng).reshape(pool, G, 3)
    base_fractions = np.stack([grain_fractions(np.concatenate([s, np.tile([1.0, 0, 0, 0], (G, 1))], axis=1), cells)
                               for s in base])
    member = rng.integers(0, pool, size=n)
    permutations = np.array(list(itertools.permutations(range(3))))
    perm = permutations[rng.integers(0, 6, size=n)]                      # (n, 3)
    flip = rng.integers(0, 2, size=(n, 1, 3)).astype(bool)
    shift = rng.integers(0, cells, size=(n, 1, 3)) / cells
    seeds = np.take_along_axis(base[member], perm[:, None, :], axis=2)
    seeds = np.where(flip, 1.0 - seeds, seeds)                           # x -> 1 - x maps centres to centres
    seeds = (seeds + shift) % 1.0
    return seeds, base_fractions[member]
