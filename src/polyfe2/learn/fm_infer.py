"""Online use of a fine-tuned foundation-model encoder (paper 000, eq. 12 and Fig. 3b): a voxel
microstructure (DAMASK geometry + material.yaml) -> its quaternion field -> [CLS] -> the head's
output: an ODMN parameter set (the ``odmn`` backend's file) or the stiffness C̄1111, C̄2222, C̄3333.

The encoder takes D³ grids of one orientation per voxel. A cell whose material has several
constituents is represented by its largest one; a grid of other cells than D³ is sampled at the
nearest cell centre of the periodic cube (stated in the log), as a microscope image would be
resampled.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..constitutive.odmn_network import ODMNParameters
from ..errors import InputError
from ..microstructure.descriptor import reduce_to_fz, voronoi_grid
from ..microstructure.materials import aluminium
from ..simulation.config import Geometry, MaterialConfig
from ..simulation.homogenize import homogenized_stiffness
from ..simulation.rve import voronoi_rve
from .fm_train import ODMNHead, STIFFNESS_SCALE, quaternion_batch
from .mae import StiffnessHead, load_encoder
from .odmn_validation import BANDS, TextureResult, compare_curves, loading_unloading, texture_descriptor

__all__ = ["voxel_quaternions", "resample_nearest", "infer", "infer_odmn", "infer_band_parameters", "validate_inferred"]


def voxel_quaternions(geometry: Geometry, material: MaterialConfig) -> np.ndarray:
    """(Nx, Ny, Nz, 4) fundamental-zone quaternions (q0 ≥ 0) of every cell's largest constituent."""
    ids = geometry.material
    if ids.max() >= material.n:
        raise InputError(f"the geometry refers to material {int(ids.max())}, the file has {material.n}",
                         file=material.path or "material", key="material")
    main = np.argmax(material.v, axis=1)
    q = material.O[np.arange(material.n), main]
    return reduce_to_fz(q)[ids]


def resample_nearest(field: np.ndarray, cells: int) -> np.ndarray:
    """(N1, N2, N3, c) -> (cells, cells, cells, c): the value at the nearest cell centre."""
    idx = [np.minimum(((np.arange(cells) + 0.5) * n / cells).astype(int), n - 1) for n in field.shape[:3]]
    return field[np.ix_(*idx)]


def _odmn_head(loaded, encoder: Path) -> ODMNHead:
    if loaded.head.get("task") != "odmn":
        raise InputError("has no fine-tuned ODMN head (polyfe2 fm finetune --task odmn writes one)", file=encoder,
                         key="head")
    head = ODMNHead(loaded.config.enc_dim, int(loaded.normalisation["depth"]))
    head.load_state_dict(loaded.head["state"])
    return head


def infer_odmn(loaded, q: np.ndarray, encoder: Path) -> ODMNParameters:
    """The ODMN parameter set of one (D, D, D, 4) quaternion field by a loaded encoder."""
    head = _odmn_head(loaded, encoder)
    loaded.model.eval()
    with torch.no_grad():
        p = head(loaded.model.encode(quaternion_batch(q[None])))
    return ODMNParameters(z=p.z[0], euler=p.euler[0], theta=p.theta[0], phi=p.phi[0],
                          provenance={"inferred_by": Path(encoder).name, "encoder": loaded.metadata})


def infer(encoder: Path, geometry: Path, material: Path, out: Path, log=print) -> dict:
    """Run the fine-tuned ``encoder`` on a microstructure; write ``out`` and return a summary."""
    loaded = load_encoder(encoder)
    cfg, norm, head_info = loaded.config, loaded.normalisation, loaded.head
    if not head_info:
        raise InputError("has no fine-tuned head (polyfe2 fm finetune writes one)", file=encoder, key="head")
    geo, mat = Geometry.load(geometry), MaterialConfig.load(material)
    q = voxel_quaternions(geo, mat)
    if q.shape[:3] != (cfg.grid,) * 3:
        log(f"polyfe2: {geometry}: {q.shape[:3]} cells sampled at the nearest cell centre to the encoder's "
            f"{cfg.grid}³ grid")
        q = resample_nearest(q, cfg.grid)
    if head_info["task"] == "odmn":
        params = infer_odmn(loaded, q, encoder)
        params.provenance.update(geometry=str(geometry), material=str(material))
        params.save(out)
        C = params.stiffness(*[torch.tensor(x / STIFFNESS_SCALE) for x in _own_triplet(mat)]) * STIFFNESS_SCALE
        return {"task": "odmn", "file": str(out), "depth": params.depth, "C_mandel_Pa": C.numpy().tolist()}
    head = StiffnessHead(cfg.enc_dim, 3)
    head.load_state_dict(head_info["state"])
    loaded.model.eval()
    with torch.no_grad():
        y = head(loaded.model.encode(quaternion_batch(q[None]))).double()[0]
    y = y * torch.tensor(norm["std_Pa"]) + torch.tensor(norm["mean_Pa"])
    result = {"task": "stiffness", **{k: float(v) for k, v in zip(norm["outputs"], y)}}
    Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return dict(result, file=str(out))


def infer_band_parameters(encoder: Path, directory: Path, seed: int = 0) -> dict[int, Path]:
    """One inferred ODMN per texture band of the plate (:mod:`polyfe2.microstructure.plate`): a
    Voronoi RVE of the band's texture on the encoder's grid, with the grain count of its training
    data, through the encoder. Returns band -> parameter file ``odmn_band{b}.pt`` in ``directory``."""
    loaded = load_encoder(encoder)
    _odmn_head(loaded, encoder)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    grains, D = int(loaded.metadata.get("grains", 40)), loaded.config.grid
    out = {}
    for b in range(BANDS):   # the RVE that `odmn validate --encoder --textures band<b>` checks
        material, qg = voronoi_grid(texture_descriptor(f"band{b}", grains, seed), (D,) * 3)
        params = infer_odmn(loaded, reduce_to_fz(qg)[material], encoder)
        params.provenance.update(plate_band=b, cells=D, grains=grains)
        out[b] = params.save(directory / f"odmn_band{b}.pt")
    return out


def _own_triplet(mat: MaterialConfig) -> tuple[float, float, float]:
    el = next(iter(mat.phases.values()))["mechanical"]["elastic"]
    return float(el["C_11"]), float(el["C_12"]), float(el["C_44"])


def validate_inferred(name: str, encoder: Path, directory: Path, grains: int = 40, strain: float = 0.02,
                      increments: int = 20, unload_increments: int = 10, phase: dict | None = None,
                      seed: int = 0) -> TextureResult:
    """As :func:`validate_texture`, with the ODMN inferred by a fine-tuned foundation-model
    ``encoder`` from the RVE's quaternion field (on the encoder's grid) instead of fitted; its
    ``fit_error`` is eq. 13 for the material's own triplet against the RVE's DNS stiffness."""
    phase = phase or aluminium()
    load = loading_unloading(strain, increments, unload_increments)
    loaded = load_encoder(encoder)
    rve = voronoi_rve(texture_descriptor(name, grains, seed), loaded.config.grid, phase, load)
    t = time.perf_counter()
    params = infer_odmn(loaded, voxel_quaternions(rve.geometry, rve.material), encoder)
    time_infer = time.perf_counter() - t
    el = phase["mechanical"]["elastic"]
    C = params.stiffness(*[torch.tensor(el[k] / STIFFNESS_SCALE) for k in ("C_11", "C_12", "C_44")]).numpy()
    C_dns = homogenized_stiffness(rve) / STIFFNESS_SCALE
    params.provenance.update(texture=name, cells=loaded.config.grid, grains=grains)
    path = params.save(Path(directory) / f"odmn_{name}.pt")
    error = float(np.linalg.norm(C - C_dns) / np.linalg.norm(C_dns))
    return compare_curves(name, rve, path, phase, load, error, time_infer)
