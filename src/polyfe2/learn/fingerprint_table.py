"""Fingerprints side by side on one property-regression task (``polyfe2 fingerprint-table``).

The task of paper 002 (section 4.2), on the labelled RVEs of an ``fm data`` set: each RVE's
fingerprint -> PCA -> second-order polynomial regression (:mod:`.property_regression`) of its
homogenised stiffness C̄1111, C̄2222, C̄3333 (the material's own triplet, the spectral solver's
labels). The held-out RVEs are those the foundation model's fine-tuning holds out
(:func:`~.fm_train.split_rves` with the same fraction and seed), so every method, the shipped
fine-tuned ``fm`` head included, is scored on RVEs it has not seen. Two references go through
the same regression: the mean predictor and the RVE's Voigt average (the texture's iso-strain
stiffness, a physics-based fingerprint of three numbers).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .fingerprint import Fingerprinter
from .fm_data import read_fm_dataset
from .fm_train import split_rves
from .property_regression import regression_report

__all__ = ["OUTPUTS", "stiffness_targets", "compare_fingerprints"]

OUTPUTS = ("C1111", "C2222", "C3333")


def stiffness_targets(data: dict) -> np.ndarray:
    """(n, 3) C̄1111, C̄2222, C̄3333 [GPa] of the material's own triplet (Mandel diagonal 0..2)."""
    C = data["stiffness"][:, 0]
    return np.stack([C[:, i, i] for i in range(3)], -1) / 1e9


def compare_fingerprints(data_file: Path, methods: dict[str, Fingerprinter], out: Path, val_fraction: float = 0.2,
                         seed: int = 0, log=print) -> dict:
    """Score every method of ``methods`` on the regression task; writes ``table.json``,
    ``table.md`` and ``parity.png`` (C̄1111 predicted against the DNS label) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = read_fm_dataset(data_file, labelled_only=True)
    y = stiffness_targets(data)
    tr, te = split_rves(len(y), val_fraction, seed)
    log(f"polyfe2: {data_file}: {len(y)} labelled RVEs, {len(tr)} for the regression, {len(te)} held out")
    features = {}
    rows = {}
    for name, fp in methods.items():
        t = time.perf_counter()
        features[name] = fp.encode_batch(data["quaternions"])
        ms = 1e3 * (time.perf_counter() - t) / len(y)
        rows[name] = dict(regression_report(features[name][tr], y[tr], features[name][te], y[te], OUTPUTS),
                          dim=fp.dim, weights=Path(fp.weights).name, ms_per_rve=ms)
        log(f"polyfe2: {name}: {fp.dim} values per RVE, {ms:.1f} ms per RVE")
    features["voigt"] = data["voigt"] / 1e9
    rows["voigt"] = dict(regression_report(features["voigt"][tr], y[tr], features["voigt"][te], y[te], OUTPUTS),
                         dim=3, weights="", ms_per_rve=float("nan"))
    result = dict(data=str(data_file), rves_labelled=len(y), rves_train=len(tr), rves_held_out=len(te),
                  outputs=list(OUTPUTS), methods=rows)
    predictions = {name: r.pop("predictions") for name, r in rows.items()}
    result["markdown"] = _markdown(rows)
    (out / "table.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "table.md").write_text(result["markdown"])
    _parity(predictions, y[te], out / "parity.png")
    result["files"] = [str(out / f) for f in ("table.json", "table.md", "parity.png")]
    return result


def _markdown(rows: dict) -> str:
    lines = ["| fingerprint | values | PCs | MAPE C̄1111 / C̄2222 / C̄3333 (%) | R² | mean predictor MAPE (%) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        o = [r["outputs"][k] for k in OUTPUTS]
        cell = lambda key, fmt: " / ".join(format(x[key], fmt) for x in o)   # noqa: E731
        lines.append(f"| {name} | {r['dim']} | {cell('n_components', 'd')} | {cell('mape_pct', '.3f')} | "
                     f"{cell('r2', '.3f')} | {cell('mean_mape_pct', '.3f')} |")
    return "\n".join(lines) + "\n"


def _parity(predictions: dict, y_test: np.ndarray, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(predictions), figsize=(3.2 * len(predictions), 3.2), squeeze=False)
    lo, hi = y_test[:, 0].min(), y_test[:, 0].max()
    for ax, (name, pred) in zip(axes[0], predictions.items()):
        ax.scatter(y_test[:, 0], pred[:, 0], s=8)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("C̄1111 DNS (GPa)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("C̄1111 predicted (GPa)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
