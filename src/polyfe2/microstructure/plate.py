"""The texture-graded plate with a slot (paper 003, section 5): its layout and textures.

Layout on a periodic grid (x along the load, y across the bands, z through the thickness):

* texture bands along y, graded from a strong copper texture (band 0) to random (last band);
* a soft layer of ``free_layer`` voxels at the top in y: with periodicity it makes both faces
  normal to y free surfaces;
* a blunted slot of the soft phase opening from the lower free surface (y = 0) at the middle
  of x, ``slot_width`` voxels wide and ``slot_depth`` deep, with a rounded tip.

The run configuration of the plate (materials, load) is built in
:mod:`polyfe2.simulation.plate`.
"""
from __future__ import annotations

import numpy as np

from .textures import TEXTURE_COMPONENTS

COPPER_EULER_DEG = TEXTURE_COMPONENTS["copper"]  # Bunge angles of the copper component {112}<111>


def plate_layout(cells, bands: int = 4, slot_width: int = 2, slot_depth: int | None = None,
                 free_layer: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Soft cells and texture band of every column.

    Returns
    -------
    soft : (Nx, Ny, Nz) bool
        The slot and the free layer.
    band_of_y : (Ny,) int
        Texture band of every row in y (0: copper ... ``bands - 1``: random).
    """
    nx, ny, nz = cells
    if ny <= free_layer + 2 or nx < slot_width + 2:
        raise ValueError(f"grid {tuple(cells)} too small for the slot and the free layer")
    solid_ny = ny - free_layer
    slot_depth = slot_depth if slot_depth is not None else max(1, solid_ny // 3)
    x, y = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5, indexing="ij")
    x0, r_tip = nx / 2.0, slot_width / 2.0
    soft = y >= solid_ny
    soft |= (np.abs(x - x0) <= r_tip) & (y <= slot_depth - r_tip)
    soft |= (x - x0) ** 2 + (y - (slot_depth - r_tip)) ** 2 <= r_tip**2
    band_of_y = np.minimum((np.arange(ny) * bands) // solid_ny, bands - 1)
    return np.repeat(soft[:, :, None], nz, axis=2), band_of_y


def band_orientations(n_points: int, K: int, copper_weight: float, spread_deg: float, rng) -> np.ndarray:
    """(n_points, K, 4) quaternions: each a copper orientation (with a Gaussian spread) with
    probability ``copper_weight``, else a random one."""
    import damask

    copper = damask.Rotation.from_Euler_angles(COPPER_EULER_DEG, degrees=True)
    n = n_points * K
    seeds = rng.integers(0, 2**31, size=2)
    textured = damask.Rotation.from_spherical_component(copper, spread_deg, shape=n, degrees=True,
                                                        rng_seed=int(seeds[0])).quaternion
    random = damask.Rotation.from_random(shape=n, rng_seed=int(seeds[1])).quaternion
    pick = rng.random(n) < copper_weight
    q = np.where(pick[:, None], textured, random)
    return q.reshape(n_points, K, 4)


def graded_orientations(solid: np.ndarray, band_of_y: np.ndarray, K: int, spread_deg: float,
                        rng) -> np.ndarray:
    """(n_solid, K, 4) orientations of the solid cells ``solid`` (n_solid, 3) from their bands:
    copper weight 1 in band 0 down to 0 (random) in the last."""
    bands = int(band_of_y.max()) + 1
    O = np.empty((len(solid), K, 4))
    for b in range(bands):
        sel = band_of_y[solid[:, 1]] == b
        O[sel] = band_orientations(int(sel.sum()), K, 1.0 - b / max(bands - 1, 1), spread_deg, rng)
    return O
