"""Accuracy of a GRU surrogate against crystal-plasticity labels (paper 003, eq. 5).

The error of one step is the largest-magnitude eigenvalue of the error tensor
``sigma_dev(GRU) - sigma_dev(CP)`` (paper 003, eq. 5), in Pa. A set's figures:

* ``mean_MPa`` -- the mean of eq. 5 over all steps of all samples;
* ``std_MPa`` -- its spread (standard deviation over the same steps);
* ``peak_MPa`` -- the mean over samples of the sample's peak stress, the largest
  magnitude of an eigenvalue of the reference ``sigma_dev`` along its path;
* ``mean_pct_peak`` -- ``100 * mean_MPa / peak_MPa``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..constitutive.gru_network import GRUSurrogate
from ..constitutive.surrogates import load_surrogate
from ..errors import InputError
from ..mechanics import voigt_to_tensor
from .datagen import read_dataset
from .incremental import incremental_response, plot_incremental_response

__all__ = ["eq5_error", "predict", "error_stats", "evaluate_sets", "plot_error_per_step"]


def eq5_error(pred, true) -> np.ndarray:
    """(..., 6) x2 (Voigt, Pa) -> (...) largest |eigenvalue| of the error tensor (paper eq. 5)."""
    e = voigt_to_tensor(torch.as_tensor(np.asarray(pred) - np.asarray(true), dtype=torch.float64))
    return torch.linalg.eigvalsh(e).abs().amax(-1).numpy()


def peak_stress(true) -> np.ndarray:
    """(S, T, 6) -> (S,) the largest |eigenvalue| of sigma_dev along each path."""
    s = voigt_to_tensor(torch.as_tensor(np.asarray(true), dtype=torch.float64))
    return torch.linalg.eigvalsh(s).abs().amax(-1).amax(-1).numpy()


@torch.no_grad()
def predict(model: GRUSurrogate, descriptors, F_paths, dt=None, fractions=None, batch: int = 512) -> np.ndarray:
    """Stress paths (S, T, 6) in Pa for descriptors (S, G, 7) and F paths (S, T+1, 3, 3)
    (``F_paths[:, 0]`` is the undeformed state that the initial hidden state stands for), step
    times ``dt`` (S,) and grain volume fractions (S, G) (the models that take them)."""
    model.eval()
    dtype = next(model.parameters()).dtype
    out = []
    for i in range(0, len(F_paths), batch):
        d = torch.as_tensor(descriptors[i:i + batch], dtype=dtype)
        F = torch.as_tensor(F_paths[i:i + batch, 1:], dtype=dtype)
        t = torch.as_tensor(dt[i:i + batch], dtype=dtype) if dt is not None else None
        v = torch.as_tensor(fractions[i:i + batch], dtype=dtype) if fractions is not None else None
        out.append(model(d, F, t, v).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, F_paths.shape[1] - 1, 6))


def error_stats(pred, true, weight=None) -> dict:
    """Eq. 5 error of (S, T, 6) stress paths; ``weight`` (S, T) 0/1 leaves labels out (a step
    no sample counts shows NaN in the per-step lists)."""
    err = eq5_error(pred, true)          # (S, T)
    peak = peak_stress(true)
    w = np.ones(err.shape) if weight is None else np.asarray(weight, dtype=float)
    mean = (w * err).sum() / w.sum()
    std = np.sqrt((w * (err - mean) ** 2).sum() / w.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        step_mean = (w * err).sum(0) / w.sum(0)
        step_std = np.sqrt((w * (err - step_mean) ** 2).sum(0) / w.sum(0))
    return dict(samples=int(err.shape[0]), mean_MPa=float(mean / 1e6), std_MPa=float(std / 1e6),
                peak_MPa=float(peak.mean() / 1e6), mean_pct_peak=float(100 * mean / peak.mean()),
                per_step_mean_MPa=(step_mean / 1e6).tolist(), per_step_std_MPa=(step_std / 1e6).tolist())


def plot_error_per_step(sets: dict, path: Path, title: str) -> Path:
    """Mean and spread of the eq. 5 error per step, one line per set; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.4))
    colours = plt.get_cmap("tab20" if len(sets) > 10 else "tab10")   # one colour per set
    for i, (name, st) in enumerate(sets.items()):
        m, s = np.asarray(st["per_step_mean_MPa"]), np.asarray(st["per_step_std_MPa"])
        steps = np.arange(1, m.size + 1)
        c = colours(i % colours.N)
        ax.plot(steps, m, color=c, label=f"{name}: {st['mean_MPa']:.2f} MPa ({st['mean_pct_peak']:.1f} % of peak)")
        ax.fill_between(steps, np.maximum(m - s, 0), m + s, color=c, alpha=0.12)
    ax.set_xlabel("load step")
    ax.set_ylabel("stress error, paper eq. 5 (MPa)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_examples(model: GRUSurrogate, data: dict, path: Path, n: int = 3) -> Path:
    """Predicted vs reference stress paths of the first ``n`` samples; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = predict(model, data["descriptor"][:n], data["F"][:n], data["dt"][:n], data["fractions"][:n])
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 3.4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        for c, name in enumerate(("11", "22", "33", "23", "13", "12")):
            line, = ax.plot(data["sigma_dev"][k, :, c] / 1e6, lw=1.5, label=f"CP {name}")
            ax.plot(pred[k, :, c] / 1e6, "--", color=line.get_color(), lw=1.2)
        ax.set_xlabel("load step")
        ax.set_title(f"sample {k} (dashed: GRU)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("deviatoric Cauchy stress (MPa)")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def label_gap(reference: dict, other: dict, reference_file, other_file) -> dict:
    """Eq. 5 statistics of the labels of ``other`` against those of ``reference`` (two data sets of
    the same VEs and load paths, e.g. iso-strain against full-field labels)."""
    keys = ("F", "descriptor", "dt")
    same = all(reference[k].shape == other[k].shape and np.allclose(reference[k], other[k]) for k in keys)
    if not same:
        raise InputError(f"its VEs, paths or step times differ from those of {reference_file}", file=other_file,
                         key="F")
    keep = ~(reference["failed"] | other["failed"])   # samples both label sets finished
    return dict(error_stats(other["sigma_dev"][keep], reference["sigma_dev"][keep]),
                reference=str(reference_file), other=str(other_file))


def evaluate_sets(model_path: Path, sets: dict[str, Path], out: Path, descriptors=None,
                  label_gaps=()) -> dict:
    """Error report of ``model_path`` on named data sets: ``report.json``, ``errors.png`` and
    one ``examples_<name>.png`` per set in ``out``, and the incremental response beside
    ``taylor`` (:mod:`.incremental`: ``report['incremental']``, ``incremental.png``).
    ``descriptors(grain descriptors) -> inputs``
    gives the model's microstructure inputs where they are not the grain rows (fingerprints).
    ``label_gaps``: pairs ``(reference, other)`` of set names whose labels are compared too
    (``report['label_gaps']['other vs reference']``)."""
    out.mkdir(parents=True, exist_ok=True)
    model = load_surrogate(model_path)
    report = {"model": str(model_path), "checkpoint_version": model.checkpoint_version, "meta": model.meta, "sets": {}}
    for a, b in label_gaps:
        ra, rb = (read_dataset(sets[k], include_failed=True) for k in (a, b))
        report.setdefault("label_gaps", {})[f"{b} vs {a}"] = label_gap(ra, rb, sets[a], sets[b])
    for name, file in sets.items():
        data = read_dataset(file)
        if descriptors is not None:
            data["descriptor"] = descriptors(data["descriptor"])
        st = error_stats(predict(model, data["descriptor"], data["F"], data["dt"], data["fractions"]),
                         data["sigma_dev"])
        st["file"] = str(file)
        report["sets"][name] = st
        plot_examples(model, data, out / f"examples_{name}.png")
    plot_error_per_step(report["sets"], out / "errors.png", f"GRU surrogate {Path(model_path).name}")
    if descriptors is None:   # the probe's VEs are grain rows
        report["incremental"] = incremental_response(model)
        plot_incremental_response(report["incremental"], out / "incremental.png",
                                  f"{Path(model_path).name}: steps from a committed uniaxial state")
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report
