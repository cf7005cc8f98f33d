"""Training data for the GRU surrogate (paper 003, section 2): VEs x load paths -> stress paths.

Every sample is one volume element (a 20-grain descriptor, :mod:`.descriptor`) driven along
one random monotonic, isochoric load path (:mod:`.loadpath`); its label is the volume-averaged
deviatoric Cauchy stress after every step. Two labelling methods, both with the project's own
crystal plasticity (``taylor``, DAMASK phenopowerlaw):

``taylor``  (the cheap variant)
    one material point with K = G constituents (the VE's grains, weighted by their Voronoi
    volume fractions on a 16^3 grid), iso-strain. All samples of a chunk are one batch.
``fullfield``
    the spectral solver on the VE's periodic Voronoi grid (default 16^3; the paper used 32^3),
    one constituent per voxel, the whole F prescribed per step.

Either way the average Cauchy stress of the VE is ``P_av F_av^T / det F_av`` (exact for a
periodic cell) and its deviator is stored in Voigt order 11, 22, 33, 23, 13, 12 (Pa).

Every path runs at one step time ``dt``: the spec's ``dt``, or with ``dt_levels > 1`` one of
``dt_levels`` log-spaced times from ``dt / dt_spread`` to ``dt * dt_spread`` (the labels are
rate dependent, and the surrogate's ``'F+dF+dt'`` features see the rate).

HDF5 layout (``polyfe2 datagen gru``)
    ``descriptor`` (n, G, 7), ``fractions`` (n, G), ``F`` (n, T+1, 3, 3), ``sigma_dev``
    (n, T, 6), ``dt`` (n,) s per step, ``ve`` (n,) VE index, ``path`` (n,) path index, ``failed`` (n,) bool,
    ``texture`` (n,) name of the VE's texture, ``chunk_done`` (chunks,) bool; attributes
    ``method``, ``dt``, ``dt_spread``, ``dt_levels``, ``steps``, ``max_strain``, ``sections``, ``seed``, ``path_seed``,
    ``material`` (phase YAML), ``format``/``version``. Chunks are computed independently
    (deterministic per chunk) and written as they finish, so an interrupted run resumes.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from ..constitutive.base import MaterialPoints
from ..constitutive.taylor import TaylorBackend
from ..errors import InputError, SolverError
from ..mechanics import deviatoric, tensor_to_voigt
from ..microstructure.descriptor import (N_GRAINS, TEXTURE_COMPONENTS, grain_fractions, random_texture,
                                         texture_component)
from ..microstructure.materials import aluminium
from ..simulation.config import LoadCase, RunConfig
from ..simulation.outputs import AverageRecorder
from ..simulation.rve import voronoi_rve
from ..simulation.runner import run
from ..solver.boundary import make_load_step
from .chunked import done_rows, open_chunked, open_to_read, run_chunks
from .loadpath import idealised_path, random_monotonic_path
from .spec import DatagenSpec

__all__ = ["DatagenSpec", "generate", "longer_steps", "compute_chunk", "taylor_labels", "fullfield_labels", "average_sigma_dev",
           "sample_descriptor", "grain_fractions", "read_dataset", "DATASET_FORMAT"]

DATASET_FORMAT = "polyfe2.gru_dataset"
DATASET_VERSION = 2   # 2 adds ``dt`` per sample; version 1 sets have the attribute's dt for all
#: ||ln U||_F per unit of the idealised paths' strain parameter (see loadpath.idealised_path)
_IDEALISED_NORM = {"uniaxial_tension": 1.5**0.5, "plane_strain": 2**0.5, "pure_shear": 0.5**0.5}


def default_phase() -> dict:
    """DAMASK's aluminium phenopowerlaw (the material of the demo and of the refs)."""
    return aluminium()


# ------------------------------------------------------------------------------------------
# one VE, one path
# ------------------------------------------------------------------------------------------
def sample_descriptor(seed: int, ve: int, textured_fraction: float, texture: str = "mixed",
                      spread_deg: float = 10.0) -> tuple[np.ndarray, str]:
    """Descriptor of VE number ``ve`` and its texture's name.

    ``texture='mixed'``: random, or (with probability ``textured_fraction``) a random texture
    component with a spread uniform in 5-25 deg; ``'random'``; or a component's name (with
    ``spread_deg``)."""
    rng = np.random.default_rng([seed, ve])
    if texture in TEXTURE_COMPONENTS:
        return texture_component(texture, N_GRAINS, spread_deg=spread_deg, rng=rng), texture
    if texture == "mixed" and rng.random() < textured_fraction:
        name = str(rng.choice(sorted(TEXTURE_COMPONENTS)))
        return texture_component(name, N_GRAINS, spread_deg=float(rng.uniform(5, 25)), rng=rng), name
    return random_texture(N_GRAINS, rng), "random"


def average_sigma_dev(P_av: np.ndarray, F_av: np.ndarray) -> np.ndarray:
    """(..., 6) deviatoric part of ``P_av F_av^T / det F_av`` in :data:`~polyfe2.mechanics.STRESS_ORDER`
    (the upper triangle: the average over a periodic cell is symmetric up to the solver's tolerance)."""
    sigma = P_av @ np.swapaxes(F_av, -1, -2) / np.linalg.det(F_av)[..., None, None]
    return tensor_to_voigt(deviatoric(sigma))


def taylor_labels(descriptors: np.ndarray, fractions: np.ndarray, F_paths: np.ndarray, dt,
                  phase: dict | None = None, substeps_max: int = 3):
    """Cheap labels: every VE as one iso-strain point with its G grains as constituents.

    Parameters
    ----------
    descriptors : (n, G, 7), fractions : (n, G), F_paths : (n, T+1, 3, 3)
    dt : float or (n,) -- s per step; the samples of one dt are one batch

    Returns
    -------
    sigma_dev : (n, T, 6) in Pa
    failed : (n,) bool -- a sample whose update did not converge even with ``2**substeps_max``
        substeps in some step.
    """
    dts = np.broadcast_to(np.asarray(dt, dtype=float), (F_paths.shape[0],))
    if np.unique(dts).size > 1:
        sigma = np.empty((F_paths.shape[0], F_paths.shape[1] - 1, 6))
        failed = np.zeros(F_paths.shape[0], dtype=bool)
        for value in np.unique(dts):
            i = np.flatnonzero(dts == value)
            sigma[i], failed[i] = taylor_labels(descriptors[i], fractions[i], F_paths[i], float(value), phase,
                                                substeps_max)
        return sigma, failed
    dt = float(dts[0]) if dts.size else 1.0
    backend = TaylorBackend(phase or default_phase(), {"substep_levels": substeps_max})
    dtype = torch.float64
    n_samples, T = F_paths.shape[0], F_paths.shape[1] - 1
    points = MaterialPoints(torch.as_tensor(descriptors[..., 3:], dtype=dtype),
                            torch.as_tensor(fractions, dtype=dtype), torch.zeros(n_samples, dtype=torch.long))
    state = backend.setup(points, torch.device("cpu"), dtype)
    Fp = torch.as_tensor(F_paths, dtype=dtype)
    P_out = np.zeros((n_samples, T, 3, 3))
    failed = np.zeros(n_samples, dtype=bool)
    for n in range(T):
        r = backend.evaluate(Fp[:, n + 1], Fp[:, n], dt, state)   # the backend substeps a point that fails
        failed |= r.failed.numpy()
        state = backend.commit(r.state)
        P_out[:, n] = r.P.numpy()
    return average_sigma_dev(P_out, F_paths[:, 1:]), failed


def fullfield_labels(descriptor: np.ndarray, F_path: np.ndarray, dt: float, phase: dict | None = None,
                     cells: int = 16) -> tuple[np.ndarray, bool]:
    """Full-field labels of one VE along one path with the spectral solver, in memory.

    Returns ``(sigma_dev (T, 6), failed)``; a run that stops keeps NaN after the last
    converged step and ``failed=True``.
    """
    T = F_path.shape[0] - 1
    rec = AverageRecorder()
    try:
        run(fullfield_case(descriptor, F_path, dt, phase, cells), progress=False, outputs=rec, log=lambda *a: None)
        failed = False
    except SolverError:
        failed = True
    return average_sigma_dev(rec.arrays(T)[2], F_path[1:]), failed


def fullfield_case(descriptor: np.ndarray, F_path: np.ndarray, dt: float, phase: dict | None = None,
                   cells: int = 16) -> RunConfig:
    """The VE on its periodic Voronoi grid (one crystal per cell, ``taylor`` K = 1) with the whole
    average F prescribed at every step of ``F_path``."""
    free = [["x"] * 3] * 3
    steps = [make_load_step({"boundary_conditions": {"mechanical": {"F": F.tolist(), "P": free}},
                             "discretization": {"t": float(dt), "N": 1}}, file="F_path", index=i)
             for i, F in enumerate(F_path[1:])]
    return voronoi_rve(descriptor, cells, phase or default_phase(), LoadCase(steps))


# ------------------------------------------------------------------------------------------
# the data set
# ------------------------------------------------------------------------------------------
def compute_chunk(spec: DatagenSpec, c: int, phase: dict) -> dict:
    """Compute chunk ``c`` (VEs ``c*chunk ...``) of ``spec``; deterministic."""
    torch.set_num_threads(1)
    ves = range(c * spec.chunk, min((c + 1) * spec.chunk, spec.n_ve))
    path_seed = spec.seed if spec.path_seed is None else spec.path_seed
    d, v, F, ve_ids, path_ids, tex, dts = [], [], [], [], [], [], []
    for ve in ves:
        desc, name = sample_descriptor(spec.seed, ve, spec.textured_fraction, spec.texture, spec.spread_deg)
        frac = grain_fractions(desc, spec.cells)
        for p in range(spec.paths_per_ve):
            if spec.load == "random":
                rng = np.random.default_rng([path_seed, ve, p, 1])
                F.append(random_monotonic_path(rng, spec.steps, spec.max_strain, spec.sections))
            else:   # final ||ln U||_F = max_strain, as the largest random paths
                F.append(idealised_path(spec.load, spec.steps, spec.max_strain / _IDEALISED_NORM[spec.load]))
            choices = spec.dt_choices
            dts.append(choices[np.random.default_rng([path_seed, ve, p, 2]).integers(len(choices))]
                       if len(choices) > 1 else choices[0])
            d.append(desc), v.append(frac), ve_ids.append(ve), path_ids.append(p), tex.append(name)
    d, v, F, dts = np.stack(d), np.stack(v), np.stack(F), np.array(dts)
    if spec.method == "taylor":
        sigma, failed = taylor_labels(d, v, F, dts, phase)
    else:
        out = [fullfield_labels(d[i], F[i], dts[i], phase, spec.cells) for i in range(len(F))]
        sigma = np.stack([o[0] for o in out])
        failed = np.array([o[1] for o in out])
    return dict(descriptor=d, fractions=v, F=F, sigma_dev=sigma, failed=failed, dt=dts,
                ve=np.array(ve_ids), path=np.array(path_ids), texture=np.array(tex, dtype="S16"))


def _open(path: Path, spec: DatagenSpec, phase: dict):
    n, T, G = spec.n_ve * spec.paths_per_ve, spec.steps, N_GRAINS
    attrs = dict(asdict(spec), format=DATASET_FORMAT, version=DATASET_VERSION, material=yaml.safe_dump(phase))
    if spec.dt_levels == 1 and _version(path) == 1:   # a set of one step time, begun before dt was stored
        attrs = {k: v for k, v in attrs.items() if k not in ("dt_spread", "dt_levels")}
        f = open_chunked(path, dict(attrs, version=1), {}, spec.n_chunks)
        if "dt" not in f:
            f.create_dataset("dt", (n,), dtype="f8", fillvalue=float(spec.dt))
        return f
    return open_chunked(path, attrs, {
        "descriptor": ((n, G, 7), "f8"), "fractions": ((n, G), "f8"), "F": ((n, T + 1, 3, 3), "f8"),
        "sigma_dev": ((n, T, 6), "f8", np.nan), "dt": ((n,), "f8", np.nan), "failed": ((n,), bool), "ve": ((n,), np.int64),
        "path": ((n,), np.int64), "texture": ((n,), "S16")}, spec.n_chunks)


def _version(path: Path) -> int | None:
    """The ``version`` attribute of an existing data set, else None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("version", 0))
    except (OSError, ValueError, TypeError):
        return None


def generate(out: Path, spec: DatagenSpec, phase: dict | None = None, workers: int | None = None,
             progress: bool = True, log=print) -> dict:
    """Generate (or resume) the data set ``out``; returns a summary dict."""
    spec.check()
    out = Path(out)
    phase = phase or default_phase()
    workers = max(1, min(workers or os.cpu_count() or 1, spec.n_chunks))
    f = _open(out, spec, phase)
    try:
        todo = int((~f["chunk_done"][:]).sum())
        log(f"polyfe2: {out}: {spec.n_ve} VEs x {spec.paths_per_ve} paths, method {spec.method}, "
            f"{todo} of {spec.n_chunks} chunks to compute on {workers} process(es)")
        per_chunk, n = spec.chunk * spec.paths_per_ve, f["F"].shape[0]
        run_chunks(f, partial(compute_chunk, spec, phase=phase), lambda c: slice(c * per_chunk, min((c + 1) * per_chunk, n)),
                   workers, progress, "datagen", postfix=lambda: f"failed samples {int(f['failed'][:].sum())}")
        return dict(samples=int(f["F"].shape[0]), failed=int(f["failed"][:].sum()), file=str(out))
    finally:
        f.close()


def read_dataset(path: Path, include_failed: bool = False) -> dict:
    """Arrays of a finished data set (only samples of computed chunks, without failed ones);
    ``dt`` (n,) per sample also for a version 1 set (its one ``dt`` attribute)."""
    with open_to_read(path, DATASET_FORMAT, "polyfe2 datagen gru") as f:
        done = done_rows(f, int(f.attrs["chunk"]) * int(f.attrs["paths_per_ve"]), f["F"].shape[0])
        keep = done & (include_failed | ~f["failed"][:])
        data = {k: f[k][:][keep] for k in ("descriptor", "fractions", "F", "sigma_dev", "ve", "path",
                                            "failed", "texture")}
        data["dt"] = f["dt"][:][keep] if "dt" in f else np.full(int(keep.sum()), float(f.attrs["dt"]))
        data["attrs"] = {k: f.attrs[k] for k in f.attrs}
    data["texture"] = np.array([t.decode() for t in data["texture"]])
    return data


def longer_steps(src: Path, out: Path, every: int) -> dict:
    """The paths of a data set in steps ``every`` times as long: every ``every``-th state of each
    path and its label, step time ``every * dt``.

    The set's paths are proportional (a fixed direction of the log strain, :mod:`.loadpath`), so
    the states kept lie on the same path, and their labels are those of the finer integration.
    Teaches a surrogate the longer steps of a component's increments at no labelling cost."""
    every = int(every)
    with open_to_read(src, DATASET_FORMAT, "polyfe2 datagen gru") as f:
        steps = int(f.attrs["steps"])
        if every < 2 or steps % every:
            raise InputError(f"--every {every} must be at least 2 and divide the set's {steps} steps", file=src,
                             key="steps")
        arrays = {k: f[k][:] for k in f}
        attrs = dict(f.attrs)
    arrays["F"] = arrays["F"][:, ::every]
    arrays["sigma_dev"] = arrays["sigma_dev"][:, every - 1::every]
    if "dt" in arrays:
        arrays["dt"] = arrays["dt"] * every
    attrs.update(steps=steps // every, dt=float(attrs["dt"]) * every, longer_steps_of=Path(src).name,
                 longer_steps_every=every)
    tmp = Path(out).with_suffix(".part")
    with h5py.File(tmp, "w") as g:
        for k, v in arrays.items():
            g.create_dataset(k, data=v)
        g.attrs.update(attrs)
    os.replace(tmp, out)
    return dict(file=str(out), samples=int(arrays["F"].shape[0]), steps=steps // every)
