"""Data of the polycrystal foundation model (paper 000, sections 2.1 and 3.1): voxel RVEs whose
textures span the texture hull, and the homogenised stiffness labels of some of them.

RVE number r of a set (deterministic in ``(seed, r)``, whatever the chunking or the workers):

1. its texture: ODF weights over the fundamental orientations of
   :func:`~polyfe2.microstructure.texture_hull.fundamental_orientations` drawn by hierarchical
   simplex sampling (``sampling: hss``, the paper's choice) or by a flat Dirichlet
   (``dirichlet``), or a named preset: a texture component (``cube``, ``goss``, ``brass``,
   ``copper``, with ``spread_deg``) or one of the ODMN test textures (``S1``, ``S2``, ``W1``,
   ``W2``, :data:`~polyfe2.learn.odmn_validation.TEXTURES`);
2. ``grains`` orientations drawn from it (scattered by ``scatter_deg`` around the discrete
   orientations), ``grains`` random seeds and their periodic Voronoi tessellation on a
   ``cells``³ grid (``damask``);
3. per voxel its grain's orientation as a fundamental-zone quaternion with q0 ≥ 0, the input of
   the masked autoencoder (the paper's (45, 45, 45, 4) grids; the size is an option);
4. the Voigt (iso-strain) average of the rotated single-crystal stiffness, C̄1111, C̄2222,
   C̄3333 (an upper bound of the labels, and the texture measure of the latent maps);
5. for the first ``labelled`` RVEs: the homogenised Mandel stiffness from the spectral solver
   (:func:`~polyfe2.simulation.homogenize.homogenized_stiffness`) for ``triplets``
   single-crystal stiffness triplets, the material's own first and random cubic ones after it
   (:func:`~polyfe2.learn.odmn_fit.sample_triplets`), as the ODMN head needs.

HDF5 layout (``polyfe2 fm data``): ``quaternions`` (n, D, D, D, 4) float32, ``weights`` (n, J)
(NaN for presets), ``texture_index`` (n,) (J Σ p², NaN for presets), ``voigt`` (n, 3) Pa,
``stiffness`` (n, T, 6, 6) Pa (NaN where unlabelled), ``triplets`` (n, T, 3) Pa, ``grains``
(n,) the grains left after the tessellation, ``chunk_done``; the attributes hold the spec, the
format and its version. Interrupted runs resume (:mod:`.chunked`).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from functools import partial
from pathlib import Path

import damask
import numpy as np
import torch
import yaml

from ..errors import InputError
from ..mechanics import cubic_stiffness, rotate_stiffness
from ..microstructure.descriptor import (TEXTURE_COMPONENTS, make_descriptor, random_seeds, reduce_to_fz,
                                         texture_component, voronoi_grid)
from ..microstructure.materials import aluminium
from ..microstructure.texture_hull import (dirichlet_sample, fundamental_orientations, hierarchical_simplex_sample,
                                           sample_odf_orientations, texture_index)
from ..simulation.rve import voronoi_rve
from .chunked import done_rows, open_chunked, open_to_read, run_chunks
from .odmn_fit import sample_triplets, stiffness_labels
from .odmn_validation import texture_descriptor
from .spec import FMDataSpec

__all__ = ["FMDataSpec", "generate", "compute_chunk", "rve", "rve_config", "read_fm_dataset", "voigt_diagonal",
           "pretraining_quaternions", "FM_DATASET_FORMAT"]

FM_DATASET_FORMAT = "polyfe2.fm_dataset"
FM_DATASET_VERSION = 1
def voigt_diagonal(quaternions: np.ndarray, c11: float, c12: float, c44: float) -> np.ndarray:
    """(..., 3) Voigt average C̄1111, C̄2222, C̄3333 [Pa] of the voxels' rotated cubic stiffness;
    ``quaternions`` (..., D, D, D, 4) per voxel."""
    q = np.asarray(quaternions, dtype=np.float64)
    lead = q.shape[:-4]
    q = q.reshape(lead + (-1, 4))
    C = rotate_stiffness(cubic_stiffness(c11, c12, c44).numpy(), damask.Rotation(q).as_matrix())
    return np.stack([C[..., i, i, i, i].mean(-1) for i in range(3)], -1)


def _texture(spec: FMDataSpec, rng, fz: np.ndarray | None):
    """(weights or None, descriptor (grains, 7)) of an RVE, from its own random source."""
    if spec.sampling in ("hss", "dirichlet"):
        draw = hierarchical_simplex_sample if spec.sampling == "hss" else dirichlet_sample
        w = draw(len(fz), 1, rng)[0]
        q = sample_odf_orientations(w, fz, spec.grains, rng, scatter_deg=spec.scatter_deg or None)
        return w, make_descriptor(random_seeds(spec.grains, rng), q)
    if spec.sampling in TEXTURE_COMPONENTS:
        return None, texture_component(spec.sampling, spec.grains, spec.spread_deg, rng)
    return None, texture_descriptor(spec.sampling, spec.grains, seed=int(rng.integers(2**31)))


def rve(spec: FMDataSpec, r: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(ODF weights or None, Voronoi descriptor (grains, 7)) of RVE number ``r`` of the set."""
    fz = fundamental_orientations(spec.resolution_deg) if spec.sampling in ("hss", "dirichlet") else None
    return _texture(spec, np.random.default_rng([spec.seed, r]), fz)


def rve_config(spec: FMDataSpec, r: int, phase: dict | None = None):
    """RVE number ``r`` of the set as a run config (one crystal per cell; for ``polyfe2 homogenize``,
    ``fm infer`` or a full-field run; ``config.save(dir)`` writes DAMASK's files)."""
    return voronoi_rve(rve(spec, r)[1], spec.cells, phase or aluminium())


def compute_chunk(spec: FMDataSpec, c: int, phase: dict) -> dict:
    """Chunk ``c`` (RVEs ``c*chunk ...``) of ``spec``; deterministic."""
    torch.set_num_threads(1)
    rows = range(c * spec.chunk, min((c + 1) * spec.chunk, spec.n_rve))
    J = len(fundamental_orientations(spec.resolution_deg)) if spec.sampling in ("hss", "dirichlet") else 0
    el = phase["mechanical"]["elastic"]
    own = np.array([el["C_11"], el["C_12"], el["C_44"]], dtype=float)
    D, T, n = spec.cells, spec.triplets, len(rows)
    out = dict(quaternions=np.zeros((n, D, D, D, 4), np.float32), weights=np.full((n, max(J, 1)), np.nan),
               texture_index=np.full(n, np.nan), voigt=np.zeros((n, 3)), stiffness=np.full((n, T, 6, 6), np.nan),
               triplets=np.zeros((n, T, 3)), grains=np.zeros(n, np.int64))
    for i, r in enumerate(rows):
        w, desc = rve(spec, r)
        material, q = voronoi_grid(desc, (D,) * 3)
        voxels = reduce_to_fz(q)[material]
        out["quaternions"][i] = voxels
        out["grains"][i] = len(np.unique(material))
        out["voigt"][i] = voigt_diagonal(voxels, *own)
        if w is not None:
            out["weights"][i], out["texture_index"][i] = w, texture_index(w)
        out["triplets"][i] = np.vstack([own, sample_triplets(own[0], T - 1, [spec.seed, r, 1])])
        if r < spec.labelled:
            out["stiffness"][i] = stiffness_labels(voronoi_rve(desc, D, phase), out["triplets"][i])
    if J == 0:
        out.pop("weights")
    return out


def _open(path: Path, spec: FMDataSpec, phase: dict):
    n, D, T = spec.n_rve, spec.cells, spec.triplets
    J = len(fundamental_orientations(spec.resolution_deg)) if spec.sampling in ("hss", "dirichlet") else 1
    attrs = dict(asdict(spec), format=FM_DATASET_FORMAT, version=FM_DATASET_VERSION, material=yaml.safe_dump(phase))
    return open_chunked(path, attrs, {
        "quaternions": ((n, D, D, D, 4), "f4"), "weights": ((n, J), "f8", np.nan),
        "texture_index": ((n,), "f8", np.nan), "voigt": ((n, 3), "f8"), "stiffness": ((n, T, 6, 6), "f8", np.nan),
        "triplets": ((n, T, 3), "f8"), "grains": ((n,), np.int64)}, spec.n_chunks)


def generate(out: Path, spec: FMDataSpec, phase: dict | None = None, workers: int | None = None,
             progress: bool = True, log=print) -> dict:
    """Generate (or resume) the RVE set ``out``; returns a summary dict."""
    spec.check()
    out, phase = Path(out), phase or aluminium()
    workers = max(1, min(workers or os.cpu_count() or 1, spec.n_chunks))
    f = _open(out, spec, phase)
    try:
        log(f"polyfe2: {out}: {spec.n_rve} RVEs of {spec.cells}³ cells and {spec.grains} grains, texture "
            f"{spec.sampling}, {spec.labelled} labelled x {spec.triplets} stiffness triplets, "
            f"{int((~f['chunk_done'][:]).sum())} of {spec.n_chunks} chunks to compute on {workers} process(es)")
        n = spec.n_rve
        run_chunks(f, partial(compute_chunk, spec, phase=phase),
                   lambda c: slice(c * spec.chunk, min((c + 1) * spec.chunk, n)), workers, progress, "fm data")
        return dict(rves=n, labelled=spec.labelled, file=str(out))
    finally:
        f.close()


def read_fm_dataset(path: Path, labelled_only: bool = False) -> dict:
    """The arrays of the RVEs computed so far (``labelled_only``: those with stiffness labels)."""
    with open_to_read(path, FM_DATASET_FORMAT, "polyfe2 fm data") as f:
        keep = done_rows(f, int(f.attrs["chunk"]), f["quaternions"].shape[0])
        if labelled_only:
            keep &= np.isfinite(f["stiffness"][:, 0, 0, 0])
        data = {k: f[k][:][keep] for k in ("quaternions", "weights", "texture_index", "voigt", "stiffness", "triplets",
                                       "grains")}
        data["index"] = np.flatnonzero(keep)
        data["attrs"] = {k: f.attrs[k] for k in f.attrs}
    return data


def pretraining_quaternions(data: dict, data_file: Path, unlabelled: bool | None = None) -> np.ndarray:
    """The quaternion fields a self-supervised model trains on: only the RVEs without stiffness
    labels (``True``; the labelled ones and their held-out split stay unseen), all of them
    (``False``), or the unlabelled ones when there are at least 2 and all otherwise (``None``)."""
    q = data["quaternions"]
    free = ~np.isfinite(data["stiffness"][:, 0, 0, 0])
    if unlabelled or (unlabelled is None and free.sum() >= 2):
        q = q[free]
    if len(q) < 2:
        raise InputError(f"{len(q)} {'unlabelled ' if unlabelled else ''}finished RVEs; expected at least 2",
                         file=data_file, key="chunk_done")
    return q
