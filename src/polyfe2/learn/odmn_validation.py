"""Nonlinear validation of fitted ODMNs against full-field crystal plasticity (paper 000,
section 3.3, Table 2 and eqs. 15-16).

For each test texture a periodic Voronoi RVE is built; an ODMN is fitted to its DNS elastic
stiffness only (:func:`polyfe2.learn.odmn_fit.fit_microstructure`); then both the RVE on its
grid (``taylor`` with one crystal per cell, the project's full-field crystal plasticity) and a
one-voxel run of the ODMN (``odmn``) follow the same load: uniaxial tension along x at a constant
rate with the lateral stresses zero, then stress-controlled unloading to P̄ = 0. The errors are
those of the paper on the axial stress over all increments n,

    mean-relative = (1/n) Σ |P_i^DNS − P_i^ODMN| / max |P^DNS|      (eq. 15)
    max-relative  = max |P_i^DNS − P_i^ODMN| / max |P^DNS|          (eq. 16)

Test textures in the spirit of the paper's S1, S2 (one sharp, one broad component), W1 (random)
and W2 (two broad components) are :data:`TEXTURES`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import damask
import numpy as np

from ..microstructure.descriptor import (TEXTURE_COMPONENTS, make_descriptor, random_seeds, random_texture,
                                         texture_component)
from ..microstructure.materials import aluminium
from ..simulation.config import LoadCase, RunConfig
from ..simulation.outputs import AverageRecorder
from ..microstructure.plate import band_orientations
from ..simulation.plate import uniaxial_tension_x
from ..simulation.runner import run
from ..simulation.rve import voronoi_rve
from ..solver.boundary import make_load_step
from .odmn_fit import fit_microstructure
from .spec import PLATE_BANDS

#: name -> (description, component/spread list; an empty list is the random texture)
TEXTURES = {
    "S1": ("one sharp component: copper, 5°", [("copper", 5.0)]),
    "S2": ("one broad component: Goss, 15°", [("goss", 15.0)]),
    "W1": ("random", []),
    "W2": ("two broad components: brass and cube, 20° each", [("brass", 20.0), ("cube", 20.0)]),
}


#: the plate's texture bands (:mod:`polyfe2.simulation.plate`): copper (10° spread) with the
#: band's weight, else random orientations
BANDS = PLATE_BANDS
BAND_TEXTURES = {f"band{b}": (f"plate band {b}: copper 10° with weight {1 - b / (BANDS - 1):.2f}, else random",
                              1 - b / (BANDS - 1)) for b in range(BANDS)}


def texture_descriptor(name: str, grains: int, seed: int = 0) -> np.ndarray:
    """Descriptor (grains, 7) of an RVE with the test texture ``name`` (:data:`TEXTURES`) or a
    plate band's texture (:data:`BAND_TEXTURES`)."""
    if name in BAND_TEXTURES:   # its own random source per band
        rng = np.random.default_rng([seed, int(name[4:])])
        q = band_orientations(1, grains, BAND_TEXTURES[name][1], 10.0, rng)[0]
        return make_descriptor(random_seeds(grains, rng), q)
    rng = np.random.default_rng(seed)
    components = TEXTURES[name][1]
    if not components:
        return random_texture(grains, rng)
    if len(components) == 1:
        return texture_component(components[0][0], grains, components[0][1], rng)
    seeds = random_seeds(grains, rng)
    counts = np.diff(np.linspace(0, grains, len(components) + 1).round().astype(int))
    q = np.concatenate([damask.Rotation.from_spherical_component(
        damask.Rotation.from_Euler_angles(np.array(TEXTURE_COMPONENTS[c]), degrees=True), spread, int(k),
        degrees=True, rng_seed=rng).as_quaternion() for (c, spread), k in zip(components, counts)])
    return make_descriptor(seeds, q)


def loading_unloading(strain: float = 0.02, increments: int = 20, unload_increments: int = 10,
                      rate: float = 1e-3) -> LoadCase:
    """The plate's uniaxial tension along x to ``strain`` at ``rate`` (P_22 = P_33 = 0, shears of F
    held, :func:`polyfe2.simulation.plate.uniaxial_tension_x`), then unloading to P̄ = 0 in
    ``unload_increments`` (F_11 free)."""
    loading = uniaxial_tension_x(strain, increments, rate).steps
    unload = {"dot_F": [["x", 0, 0], [0, "x", 0], [0, 0, "x"]], "P": [[0, "x", "x"], ["x", 0, "x"], ["x", "x", 0]]}
    t = strain / rate * unload_increments / increments
    return LoadCase(loading + [make_load_step({"boundary_conditions": {"mechanical": unload},
                                              "discretization": {"t": t, "N": unload_increments}},
                                             file="loading_unloading", index=1)])


def odmn_config(parameters: Path, phase: dict, load: LoadCase) -> RunConfig:
    """One voxel whose material point is the ODMN of ``parameters``: the RVE's homogenised response
    (the voxel's own orientation is not used by ``odmn``)."""
    one_voxel = make_descriptor(np.full((1, 3), 0.5), np.array([[1.0, 0.0, 0.0, 0.0]]))
    return voronoi_rve(one_voxel, 1, phase, load, backend="odmn",
                       backend_options={"parameters": {"default": str(Path(parameters).resolve())}})


def average_curve(config: RunConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """(F̄ (T,3,3), P̄ (T,3,3), wall time) of every increment of ``config``."""
    rec = AverageRecorder()
    t = time.perf_counter()
    run(config, progress=False, outputs=rec, log=lambda *a: None)
    _, F, P = rec.arrays(sum(s.N for s in config.load.steps))
    return F, P, time.perf_counter() - t


def relative_errors(P_dns: np.ndarray, P_model: np.ndarray) -> tuple[float, float]:
    """(mean-relative, max-relative) errors of eqs. 15-16 for two stress histories (n,)."""
    scale = np.abs(P_dns).max()
    d = np.abs(P_dns - P_model)
    return float(d.mean() / scale), float(d.max() / scale)


@dataclass
class TextureResult:
    name: str
    fit_error: float          # held-out relative Frobenius error of the elastic fit (eq. 13)
    mean_error: float         # eq. 15
    max_error: float          # eq. 16
    F11_dns: np.ndarray
    P11_dns: np.ndarray
    F11_odmn: np.ndarray
    P11_odmn: np.ndarray
    time_fit: float
    time_dns: float
    time_odmn: float


def validate_texture(name: str, directory: Path, cells: int = 16, grains: int = 40, depth: int = 6,
                     samples: int = 10, steps: int = 1500, strain: float = 0.02, increments: int = 20,
                     unload_increments: int = 10, phase: dict | None = None, seed: int = 0,
                     progress: bool = False) -> TextureResult:
    """Fit an ODMN to the RVE of texture ``name`` and compare both under :func:`loading_unloading`;
    the parameter file is written to ``directory``."""
    phase = phase or aluminium()
    load = loading_unloading(strain, increments, unload_increments)
    rve = voronoi_rve(texture_descriptor(name, grains, seed), cells, phase, load)
    t = time.perf_counter()
    params, report = fit_microstructure(rve, depth=depth, samples=samples, held_out=max(1, samples // 4),
                                        steps=steps, seed=seed, progress=progress)
    time_fit = time.perf_counter() - t
    params.provenance.update(texture=name, cells=cells, grains=grains)
    path = params.save(Path(directory) / f"odmn_{name}.pt")
    return compare_curves(name, rve, path, phase, load, report["held_out_error"], time_fit)


def compare_curves(name, rve, path, phase, load, fit_error, time_fit) -> TextureResult:
    """The RVE in full field and the ODMN of the parameter file ``path`` under ``load``."""
    F_d, P_d, time_dns = average_curve(rve)
    F_o, P_o, time_odmn = average_curve(odmn_config(path, phase, load))
    mean, worst = relative_errors(P_d[:, 0, 0], P_o[:, 0, 0])
    return TextureResult(name, fit_error, mean, worst, F_d[:, 0, 0], P_d[:, 0, 0], F_o[:, 0, 0], P_o[:, 0, 0],
                         time_fit, time_dns, time_odmn)


def plot_curves(results: list[TextureResult], path: Path) -> Path:
    """Axial stress-strain curves, DNS and ODMN, one panel per texture (the paper's Fig. 10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.0), squeeze=False)
    for ax, r in zip(axes[0], results):
        ax.plot(np.r_[0.0, r.F11_dns - 1], np.r_[0.0, r.P11_dns / 1e6], "k-", label="full field (taylor, K = 1)")
        ax.plot(np.r_[0.0, r.F11_odmn - 1], np.r_[0.0, r.P11_odmn / 1e6], "C1--", label="ODMN")
        ax.set_title(f"{r.name}: {100 * r.mean_error:.2f} % / {100 * r.max_error:.2f} %", fontsize=9)
        ax.set_xlabel("F_11 − 1")
    axes[0][0].set_ylabel("P_11 (MPa)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
