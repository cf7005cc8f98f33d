"""The demo and component-scale case: the texture-graded plate with a slot as a run config.

Every solid voxel is one material point of K orientations from its band's texture
(:mod:`polyfe2.microstructure.plate`), iso-strain (Taylor); the slot and the free layer are a
soft elastic phase. Uniaxial tension along x: average F_11 at a constant rate, the other normal
stresses zero, off-diagonal deformation held.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..microstructure.descriptor import DESCRIPTOR_LAYOUT, make_descriptor, voronoi_ensemble
from ..microstructure.materials import aluminium, soft_phase
from ..microstructure.plate import graded_orientations, plate_layout
from ..solver.boundary import make_load_step
from ..solver.options import SolverOptions
from .config import Geometry, LoadCase, MaterialConfig, OutputOptions, RunConfig

#: cell edge of the plate, m
CELL_SIZE = 1e-5


def uniaxial_tension_x(strain: float, increments: int, rate: float = 1e-3) -> LoadCase:
    """dot_F_11 = ``rate`` to F_11 = 1 + ``strain``, P_22 = P_33 = 0, off-diagonal F held."""
    step = {"boundary_conditions": {"mechanical": {
        "dot_F": [[rate, 0, 0], [0, "x", 0], [0, 0, "x"]],
        "P": [["x", "x", "x"], ["x", 0, "x"], ["x", "x", 0]]}},
        "discretization": {"t": strain / rate, "N": increments}, "f_out": 1}
    return LoadCase([make_load_step(step, file="uniaxial_tension_x", index=0)])


def plate_case(cells=(24, 24, 3), K: int = 4, bands: int = 4, spread_deg: float = 10.0, slot_width: int = 2,
               slot_depth: int | None = None, free_layer: int = 2, strain: float = 0.02, increments: int = 20,
               rate: float = 1e-3, backend: str = "taylor", seed: int = 42, solver: dict | None = None,
               odmn_parameters: dict | None = None):
    """The plate as an in-memory run config.

    Returns ``(config, descriptors)``: with ``backend='gru'`` every solid voxel is a 20-grain VE
    (K must be 20) with random Voronoi seeds; ``descriptors`` is then the pair of the descriptor
    (n_materials, 20, 7) and the grain volume fractions (n_materials, 20) of every material ID
    (row 0, the soft phase, unused), and the constituent
    fractions are the grains' Voronoi volume fractions, so that ``taylor`` on the same case is
    the surrogate's iso-strain reference. Otherwise ``descriptors`` is None.

    With ``backend='odmn'`` every texture band is one material (ID b + 1 for band b) whose
    network is the parameter file ``odmn_parameters[b]`` (e.g. from
    :func:`polyfe2.learn.odmn_fit.fit_band_parameters`, which samples the band textures itself);
    ``K``, ``spread_deg`` and ``seed`` are not used then.
    """
    if backend == "gru" and K != 20:
        raise ValueError(f"the gru backend's samples have 20 grains; got K = {K}")
    rng = np.random.default_rng(seed)
    soft, band_of_y = plate_layout(cells, bands, slot_width, slot_depth, free_layer)
    if backend == "odmn":
        return _odmn_plate(cells, soft, band_of_y, odmn_parameters, strain, increments, rate, solver), None
    solid = np.argwhere(~soft)  # (n_solid, 3), rows in C order (x slowest)
    material = np.zeros(cells, dtype=int)   # 0 = soft phase, 1.. = one material per solid voxel
    material[~soft] = np.arange(1, len(solid) + 1)
    O = graded_orientations(solid, band_of_y, K, spread_deg, rng)
    v = np.full((len(solid), K), 1.0 / K)
    descriptors = None
    if backend == "gru":   # grain seeds, exact Voronoi fractions on the labels' 16³ grid (vectorised)
        seeds, v = voronoi_ensemble(len(solid), K, rng)
        d = make_descriptor(seeds, O)
        descriptors = (np.concatenate([d[:1], d]), np.concatenate([v[:1], v]))
    al = aluminium()
    # the soft phase as a Taylor point too: DADF5 wants one number of constituents per file
    materials = MaterialConfig.from_arrays(
        phases={"Aluminum": al, "Void": soft_phase(al)},
        homogenizations={"Taylor": {"N_constituents": K, "mechanical": {"type": "isostrain"}}},
        homogenization="Taylor", phase=np.array(["Void"] + ["Aluminum"] * len(solid)),
        O=np.concatenate([np.tile([1.0, 0, 0, 0], (1, K, 1)), O]), v=np.concatenate([np.full((1, K), 1.0 / K), v]))
    geometry = Geometry.from_array(material, size=np.array(cells, dtype=float) * CELL_SIZE)
    config = RunConfig(geometry, materials, uniaxial_tension_x(strain, increments, rate), backend=backend,
                       output=OutputOptions(name="plate"), solver=SolverOptions.from_mapping(solver))
    if backend == "gru":
        config.backend_options = {"descriptors": "descriptors.h5"}
    return config, descriptors


def _odmn_plate(cells, soft, band_of_y, parameters, strain, increments, rate, solver) -> RunConfig:
    bands = int(band_of_y.max()) + 1
    if parameters is None or sorted(parameters) != list(range(bands)):
        raise ValueError(f"the odmn plate needs one parameter file per band 0..{bands - 1}")
    material = np.where(soft, 0, 1 + band_of_y[None, :, None]).astype(int)
    al = aluminium()
    materials = MaterialConfig.from_arrays(
        phases={"Aluminum": al, "Void": soft_phase(al)},
        homogenizations={"ODMN": {"N_constituents": 1, "mechanical": {"type": "pass"}}},
        homogenization="ODMN", phase=np.array(["Void"] + ["Aluminum"] * bands),
        O=np.tile([1.0, 0, 0, 0], (bands + 1, 1, 1)), v=np.ones((bands + 1, 1)))
    geometry = Geometry.from_array(material, size=np.array(cells, dtype=float) * CELL_SIZE)
    return RunConfig(geometry, materials, uniaxial_tension_x(strain, increments, rate), backend="odmn",
                     backend_options={"parameters": {str(b + 1): str(parameters[b]) for b in range(bands)}},
                     output=OutputOptions(name="plate"), solver=SolverOptions.from_mapping(solver))


def write_descriptors(path: Path, descriptors: np.ndarray, fractions: np.ndarray | None = None) -> Path:
    """descriptors.h5 of the gru backend: dataset ``descriptor`` (n_materials, G, 7) and the grains'
    volume fractions ``fractions`` (n_materials, G)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("descriptor", data=descriptors).attrs["layout"] = DESCRIPTOR_LAYOUT
        if fractions is not None:
            f.create_dataset("fractions", data=fractions)
    return path


def write_plate_case(directory: Path, **options) -> Path:
    """Build the plate (:func:`plate_case` options), save its files (and descriptors.h5 for gru)
    into ``directory``, validate, and return the path of run.yaml."""
    directory = Path(directory)
    config, descriptors = plate_case(**options)
    if config.backend == "odmn":   # parameter files relative to run.yaml, so the folder can move
        config.backend_options["parameters"] = {
            k: os.path.relpath(Path(f).resolve(), directory.resolve())
            for k, f in config.backend_options["parameters"].items()}
    if descriptors is not None:
        write_descriptors(directory / "descriptors.h5", *descriptors)
    path = config.save(directory)
    config.validate()
    return path
