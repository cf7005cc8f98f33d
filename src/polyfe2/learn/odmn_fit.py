"""Fit an ODMN parameter set to a microstructure (paper 000, offline stage; eq. 13).

The labels are the microstructure's homogenised elastic stiffness for several single-crystal
stiffness triplets (C11, C12, C44), each computed by the spectral solver
(:func:`polyfe2.simulation.homogenize.homogenized_stiffness`): the material's own triplet and
random cubic ones around it (C11 in [0.75, 1.5] of the material's, C12/C11 in [0.3, 0.8],
C44/C11 in [0.2, 1.0], all positive definite). A share of the triplets is held out; the fit
minimises the relative Frobenius error on the others and reports it on both.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..constitutive.odmn_network import fit, relative_frobenius_loss
from ..errors import InputError
from ..microstructure.descriptor import make_descriptor, random_seeds
from ..microstructure.materials import aluminium
from ..microstructure.plate import band_orientations
from ..simulation.config import RunConfig
from ..simulation.homogenize import homogenized_stiffness
from ..simulation.rve import voronoi_rve


def sample_triplets(c11: float, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) random cubic stiffness triplets around C11 = ``c11`` (module docstring), Pa."""
    rng = np.random.default_rng(seed)
    C11 = c11 * rng.uniform(0.75, 1.5, n)
    return np.column_stack([C11, C11 * rng.uniform(0.3, 0.8, n), C11 * rng.uniform(0.2, 1.0, n)])


def stiffness_labels(config: RunConfig, triplets: np.ndarray, progress=None) -> np.ndarray:
    """(n, 6, 6) homogenised Mandel stiffness of ``config``'s microstructure for each triplet
    (every phase gets the triplet; one phase is the ODMN's setting)."""
    out = []
    for k, (c11, c12, c44) in enumerate(triplets):
        phases = copy.deepcopy(config.material.phases)
        for p in phases.values():
            p["mechanical"]["elastic"].update(C_11=float(c11), C_12=float(c12), C_44=float(c44))
        out.append(homogenized_stiffness(replace(config, material=replace(config.material, phases=phases))))
        if progress is not None:
            progress(k + 1)
    return np.array(out)


def fit_microstructure(config: RunConfig, depth: int = 6, samples: int = 12, held_out: int = 3,
                       steps: int = 1500, lr: float = 0.02, seed: int = 0, progress: bool = True):
    """Labels and fit; returns (parameters, report dict with the errors and the loss history)."""
    if len(config.material.phases) != 1:
        raise InputError(f"the ODMN represents one phase; the material has {sorted(config.material.phases)}",
                         file=config.material.path or "material", key="phase")
    if not (1 <= held_out < samples):
        raise InputError(f"expected 1 <= held-out < samples, got {held_out} and {samples}", key="--held-out")
    from tqdm import tqdm

    el = next(iter(config.material.phases.values()))["mechanical"]["elastic"]
    triplets = np.vstack([[el["C_11"], el["C_12"], el["C_44"]], sample_triplets(el["C_11"], samples - 1, seed)])
    with tqdm(total=samples, desc="DNS stiffness", unit="triplet", disable=not progress) as bar:
        labels = torch.as_tensor(stiffness_labels(config, triplets, progress=lambda k: bar.update(1)))
    T = torch.as_tensor(triplets)
    train, test = slice(0, samples - held_out), slice(samples - held_out, samples)
    with tqdm(total=steps, desc="ODMN fit", unit="step", disable=not progress) as bar:
        def show(step, loss):
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix_str(f"loss {loss:.2e}", refresh=False)
        params, history = fit(labels[train], T[train], depth=depth, steps=steps, lr=lr, seed=seed, progress=show)
    with torch.no_grad():
        err_test = float(relative_frobenius_loss(params.stiffness(T[test, 0], T[test, 1], T[test, 2]), labels[test]))
        err_train = float(relative_frobenius_loss(params.stiffness(T[train, 0], T[train, 1], T[train, 2]),
                                                  labels[train]))
    report = {"depth": depth, "samples": samples, "held_out": held_out, "steps": steps,
              "train_error": err_train, "held_out_error": err_test, "history": history}
    params.provenance = {"fit": {k: v for k, v in report.items() if k != "history"},
                         "geometry": str(config.geometry.path), "material": str(config.material.path)}
    return params, report


def fit_band_parameters(directory: Path, bands: int = 4, cells: int = 8, grains: int = 20, depth: int = 4,
                        spread_deg: float = 10.0, samples: int = 8, steps: int = 800, seed: int = 0,
                        progress: bool = True) -> dict[int, Path]:
    """One ODMN per texture band of the plate (:mod:`polyfe2.microstructure.plate`): a Voronoi RVE
    of ``grains`` grains drawn from the band's texture, fitted with :func:`fit_microstructure`.
    Returns band -> parameter file ``odmn_band{b}.pt`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for b in range(bands):
        q = band_orientations(1, grains, 1.0 - b / max(bands - 1, 1), spread_deg, rng)[0]
        config = voronoi_rve(make_descriptor(random_seeds(grains, rng), q), cells, aluminium())
        params, report = fit_microstructure(config, depth=depth, samples=samples, held_out=max(1, samples // 4),
                                            steps=steps, seed=seed, progress=progress)
        params.provenance.update(plate_band=b, cells=cells, grains=grains, spread_deg=spread_deg)
        out[b] = params.save(directory / f"odmn_band{b}.pt")
    return out


def plot_loss(history: list[float], path: Path, held_out_error: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.arange(1, len(history) + 1), history, label="training (eq. 13)")
    ax.axhline(held_out_error, color="C1", ls="--", label=f"held-out triplets: {100 * held_out_error:.3g} %")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("relative Frobenius error")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
