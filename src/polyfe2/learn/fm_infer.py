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
from pathlib import Path

import numpy as np
import torch

from ..constitutive.odmn_network import ODMNParameters
from ..errors import InputError
from ..microstructure.descriptor import reduce_to_fz
from ..simulation.config import Geometry, MaterialConfig
from .fm_train import ODMNHead, STIFFNESS_SCALE, quaternion_batch
from .mae import StiffnessHead, load_encoder

__all__ = ["voxel_quaternions", "resample_nearest", "infer"]


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


def infer(encoder: Path, geometry: Path, material: Path, out: Path, log=print) -> dict:
    """Run the fine-tuned ``encoder`` on a microstructure; write ``out`` and return a summary."""
    model, cfg, norm, meta, head_info = load_encoder(encoder)
    if not head_info:
        raise InputError("has no fine-tuned head (polyfe2 fm finetune writes one)", file=encoder, key="head")
    geo, mat = Geometry.load(geometry), MaterialConfig.load(material)
    q = voxel_quaternions(geo, mat)
    if q.shape[:3] != (cfg.grid,) * 3:
        log(f"polyfe2: {geometry}: {q.shape[:3]} cells sampled at the nearest cell centre to the encoder's "
            f"{cfg.grid}³ grid")
        q = resample_nearest(q, cfg.grid)
    model.eval()
    with torch.no_grad():
        latent = model.encode(quaternion_batch(q[None]))
        if head_info["task"] == "odmn":
            head = ODMNHead(cfg.enc_dim, int(norm["depth"]))
            head.load_state_dict(head_info["state"])
            p = head(latent)
            params = ODMNParameters(z=p.z[0], euler=p.euler[0], theta=p.theta[0], phi=p.phi[0])
            params.provenance = {"inferred_by": Path(encoder).name, "geometry": str(geometry),
                                 "material": str(material), "encoder": meta}
            params.save(out)
            C = params.stiffness(*[torch.tensor(x / STIFFNESS_SCALE) for x in _own_triplet(mat)]) * STIFFNESS_SCALE
            return {"task": "odmn", "file": str(out), "depth": params.depth, "C_mandel_Pa": C.numpy().tolist()}
        head = StiffnessHead(cfg.enc_dim, 3)
        head.load_state_dict(head_info["state"])
        y = head(latent).double()[0] * torch.tensor(norm["std_Pa"]) + torch.tensor(norm["mean_Pa"])
        result = {"task": "stiffness", **{k: float(v) for k, v in zip(norm["outputs"], y)}}
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
        return dict(result, file=str(out))


def _own_triplet(mat: MaterialConfig) -> tuple[float, float, float]:
    el = next(iter(mat.phases.values()))["mechanical"]["elastic"]
    return float(el["C_11"]), float(el["C_12"]), float(el["C_44"])
