"""The texture-graded plate with a slot (paper 003, section 5), as DAMASK inputs.

Layout on a periodic grid (x along the load, y across the bands, z through the thickness):

* texture bands along y, graded from a strong copper texture (band 0) to random (last band);
  every voxel holds K orientations drawn from its band's ODF, as an iso-strain (Taylor) point;
* a soft elastic layer of ``free_layer`` voxels at the top in y: with periodicity it makes both
  faces normal to y free surfaces;
* a blunted slot of the soft phase opening from the lower free surface (y = 0) at the middle
  of x, ``slot_width`` voxels wide and ``slot_depth`` deep, with a rounded tip.

Uniaxial tension along x: average F_11 at a constant rate, the other normal stresses zero,
off-diagonal deformation held.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

ALUMINIUM = {
    "lattice": "cF",
    "mechanical": {
        "output": ["F", "P", "F_e", "F_p", "L_p", "O"],
        "elastic": {"type": "Hooke", "C_11": 106.75e9, "C_12": 60.41e9, "C_44": 28.34e9},
        "plastic": {"type": "phenopowerlaw", "N_sl": [12], "a_sl": [2.25], "atol_xi": 1.0,
                    "dot_gamma_0_sl": [1e-3], "h_0_sl-sl": [75e6], "h_sl-sl": [1, 1, 1.4, 1.4, 1.4, 1.4, 1.4],
                    "n_sl": [20], "xi_0_sl": [31e6], "xi_inf_sl": [63e6], "output": ["xi_sl", "gamma_sl"]},
    },
}

SOFT_FACTOR = 1e-6  # stiffness of the void phase relative to the crystal (DESIGN.md)

COPPER_EULER_DEG = (90.0, 35.26, 45.0)  # Bunge angles of the copper component {112}<111>


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


def write_voxel_descriptors(path: Path, O: np.ndarray, rng) -> np.ndarray:
    """descriptors.h5 for the gru backend: row 0 (the soft phase, unused) and one 20-grain
    descriptor per solid voxel (orientations ``O`` (n, G, 4), random seeds). Returns the
    grains' volume fractions (n, G), measured as for the training labels
    (:func:`~polyfe2.surrogate.datagen.grain_fractions`, 16^3 Voronoi grid)."""
    import h5py

    from ..surrogate.datagen import grain_fractions
    from ..surrogate.descriptor import DESCRIPTOR_LAYOUT, make_descriptor, random_seeds

    n, G = O.shape[:2]
    d = np.stack([make_descriptor(random_seeds(G, rng), O[i]) for i in range(n)])
    v = np.stack([grain_fractions(d[i]) for i in range(n)])
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("descriptor", data=np.concatenate([d[:1], d]))
        ds.attrs["layout"] = DESCRIPTOR_LAYOUT
    return v


def write_plate_case(directory: Path, cells=(24, 24, 3), K: int = 4, bands: int = 4,
                     spread_deg: float = 10.0, slot_width: int = 2, slot_depth: int | None = None,
                     free_layer: int = 2, strain: float = 0.02, increments: int = 20,
                     rate: float = 1e-3, backend: str = "taylor", seed: int = 42,
                     solver: dict | None = None) -> Path:
    """Write grid.vti, material.yaml, load.yaml and run.yaml of the plate; return run.yaml.

    With ``backend='gru'`` every solid voxel is a 20-grain VE (K must be 20): its K orientations
    get random Voronoi seeds, ``descriptors.h5`` holds the descriptors by material ID and the
    constituent fractions are the grains' Voronoi volume fractions (so that ``taylor`` on the
    same files is the surrogate's iso-strain reference).
    """
    import damask

    if backend == "gru" and K != 20:
        raise ValueError(f"the gru backend's samples have 20 grains; got K = {K}")

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nx, ny, nz = cells
    if ny <= free_layer + 2 or nx < slot_width + 2:
        raise ValueError(f"grid {cells} too small for the slot and the free layer")
    rng = np.random.default_rng(seed)
    solid_ny = ny - free_layer
    slot_depth = slot_depth if slot_depth is not None else max(1, solid_ny // 3)

    # material IDs: 0 = soft phase, 1.. = one material per solid voxel (its own K orientations)
    x, y = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5, indexing="ij")
    soft = y >= solid_ny
    x0, half = nx / 2.0, slot_width / 2.0
    r_tip = half
    in_slot = (np.abs(x - x0) <= half) & (y <= slot_depth - r_tip)
    tip = (x - x0) ** 2 + (y - (slot_depth - r_tip)) ** 2 <= r_tip**2
    soft |= in_slot | tip
    soft = np.repeat(soft[:, :, None], nz, axis=2)
    material = np.zeros(cells, dtype=int)
    solid = np.argwhere(~soft)  # (n_solid, 3), rows in C order (x slowest)
    material[~soft] = np.arange(1, len(solid) + 1)

    band_of_y = np.minimum((np.arange(ny) * bands) // solid_ny, bands - 1)
    O = np.empty((len(solid), K, 4))
    for b in range(bands):
        sel = band_of_y[solid[:, 1]] == b
        w = 1.0 - b / max(bands - 1, 1)
        O[sel] = band_orientations(int(sel.sum()), K, w, spread_deg, rng)

    soft_phase = {"lattice": "cF", "mechanical": {"output": ["F", "P"], "elastic": {
        "type": "Hooke", **{c: ALUMINIUM["mechanical"]["elastic"][c] * SOFT_FACTOR for c in ("C_11", "C_12", "C_44")}}}}
    config = damask.ConfigMaterial({
        "homogenization": {"Taylor": {"N_constituents": K, "mechanical": {"type": "isostrain", "output": ["F", "P"]}}},
        "phase": {"Aluminum": ALUMINIUM, "Void": soft_phase},
    })
    # the soft phase as a Taylor point too: DADF5 wants one number of constituents per file
    config = config.material_add(O=np.tile([1.0, 0, 0, 0], (1, K, 1)), phase="Void", homogenization="Taylor",
                                 v=np.full((1, K), 1.0 / K))
    v = np.full((len(solid), K), 1.0 / K)
    if backend == "gru":   # every voxel is one 20-grain sample of the surrogate
        v = write_voxel_descriptors(directory / "descriptors.h5", O, rng)
    config = config.material_add(O=O, phase="Aluminum", homogenization="Taylor", v=v)
    config.save(directory / "material.yaml")

    damask.GeomGrid(material, size=np.array(cells, dtype=float) * 1e-5,
                    comments="polyfe2 texture-graded plate with slot").save(directory / "grid.vti")

    load = {"solver": {"mechanical": "spectral_basic"},
            "loadstep": [{"boundary_conditions": {"mechanical": {
                "dot_F": [[rate, 0, 0], [0, "x", 0], [0, 0, "x"]],
                "P": [["x", "x", "x"], ["x", 0, "x"], ["x", "x", 0]]}},
                "discretization": {"t": strain / rate, "N": increments}, "f_out": 1}]}
    (directory / "load.yaml").write_text(yaml.safe_dump(load, sort_keys=False))
    run = {"geometry": "grid.vti", "material": "material.yaml", "load": "load.yaml", "backend": backend,
           "device": "auto", "output": {"directory": "results", "name": "plate"}}
    if backend == "gru":
        run["backend_options"] = {"descriptors": "descriptors.h5"}
    if solver:
        run["solver"] = solver
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(run, sort_keys=False))
    return path
