"""PNG plots (matplotlib, Agg canvas, no pyplot): stress-strain curves and field slices.

Figures have a fixed pixel size (``figsize * dpi``; no tight bounding box), so callers and
tests know what they get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ._common import to_numpy
from .tables import read_curve

__all__ = ["plot_stress_strain", "plot_slice"]


def _figure(figsize, dpi):
    """A figure on an Agg canvas, independent of pyplot's global state and backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig, png_path, dpi) -> Path:
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=dpi)
    return png_path


def _strain(F_ii: np.ndarray, kind: str) -> np.ndarray:
    if kind == "engineering":
        return F_ii - 1.0
    if kind == "true":
        return np.log(F_ii)
    raise ValueError(f"strain must be 'engineering' or 'true', got {kind!r}")


def plot_stress_strain(
    curve_csv_path,
    png_path,
    component: str = "11",
    reference_csv_path=None,
    label: str = "polyfe2",
    reference_label: str = "DAMASK",
    strain: str = "engineering",
    title: str | None = None,
    figsize: tuple[float, float] = (6.4, 4.8),
    dpi: int = 100,
) -> Path:
    """Plot P_ij and sigma_ij [MPa] against the strain F_ii - 1 (``strain='engineering'``) or
    ln F_ii (``'true'``) from a curve CSV (:class:`polyfe2.io.tables.CurveWriter` columns);
    optionally overlay a reference curve (dashed, with markers) from a CSV with the same columns
    (e.g. DAMASK's ``curve.csv``). For a shear component ``ij`` (i != j) the x axis is F_ij.
    Returns the PNG path."""
    i, j = component[0], component[1]
    xcol = f"F_{i}{j}"

    def xy(data):
        x = data[xcol]
        x = _strain(x, strain) if i == j else x
        return x, data[f"P_{i}{j}_MPa"], data[f"sigma_{i}{j}_MPa"]

    fig, ax = _figure(figsize, dpi)
    try:
        x, p, s = xy(read_curve(curve_csv_path))
        ax.plot(x, p, "-", color="C0", label=f"{label}: $P_{{{i}{j}}}$")
        ax.plot(x, s, "-", color="C1", label=f"{label}: $\\sigma_{{{i}{j}}}$")
        if reference_csv_path is not None:
            xr, pr, sr = xy(read_curve(reference_csv_path))
            ax.plot(xr, pr, "--", marker="o", ms=3, color="C2", label=f"{reference_label}: $P_{{{i}{j}}}$")
            ax.plot(xr, sr, "--", marker="s", ms=3, color="C3", label=f"{reference_label}: $\\sigma_{{{i}{j}}}$")
        if i == j:
            xl = f"$F_{{{i}{i}}} - 1$" if strain == "engineering" else f"$\\ln F_{{{i}{i}}}$"
            xl = f"{strain} strain {xl}"
        else:
            xl = f"$F_{{{i}{j}}}$"
        ax.set_xlabel(xl)
        ax.set_ylabel("stress / MPa")
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        return _save(fig, png_path, dpi)
    finally:
        fig.clear()


def plot_slice(
    field,
    png_path,
    axis: str = "z",
    index: int | None = None,
    title: str = "",
    cbar_label: str = "",
    size: Sequence[float] | None = None,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    figsize: tuple[float, float] = (6.4, 4.8),
    dpi: int = 100,
) -> Path:
    """Plot a slice of a scalar grid field ``(Nx, Ny, Nz)`` (e.g. sigma_xx) normal to ``axis``
    at cell ``index`` (default: the middle). In-plane axes keep the right-handed order with the
    first one to the right and the second up (z: x right, y up; y: x right, z up; x: y right,
    z up). With ``size`` the axes are in physical units, otherwise in cells; equal aspect.
    Returns the PNG path."""
    S, ext, labels, idx = _slice(field, axis, index, size, origin)
    fig, ax = _figure(figsize, dpi)
    try:
        im = ax.imshow(S.T, origin="lower", extent=ext, cmap=cmap, vmin=vmin, vmax=vmax,
                       interpolation="nearest", aspect="equal")
        cb = fig.colorbar(im, ax=ax)
        cb.set_label(cbar_label)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.set_title(title or f"{axis} = cell {idx}")
        return _save(fig, png_path, dpi)
    finally:
        fig.clear()


def _slice(field, axis, index, size, origin):
    """The slice of :func:`plot_slice`: (2-D array, extent, axis labels, index)."""
    A = to_numpy(field, dtype=np.float64)
    if A.ndim != 3:
        raise ValueError(f"field must be (Nx, Ny, Nz), got shape {A.shape}")
    ax_n = {"x": 0, "y": 1, "z": 2}[axis]
    idx = A.shape[ax_n] // 2 if index is None else int(index)
    S = np.take(A, idx, axis=ax_n)  # remaining axes in order (first, second)
    inplane = [a for a in range(3) if a != ax_n]
    if size is None:
        ext = [0, A.shape[inplane[0]], 0, A.shape[inplane[1]]]
        unit = " (cells)"
    else:
        ext = [origin[inplane[0]], origin[inplane[0]] + size[inplane[0]],
               origin[inplane[1]], origin[inplane[1]] + size[inplane[1]]]
        unit = ""
    return S, ext, ["xyz"[inplane[0]] + unit, "xyz"[inplane[1]] + unit], idx


def plot_slices_compared(A, B, labels: tuple[str, str], png_path, axis: str = "z", index: int | None = None,
                         cbar_label: str = "", size: Sequence[float] | None = None,
                         origin: Sequence[float] = (0.0, 0.0, 0.0), title: str = "", dpi: int = 100) -> Path:
    """Two scalar grid fields ``A``, ``B`` (Nx, Ny, Nz) side by side on one colour scale (slices as
    :func:`plot_slice`) and their difference B − A on a symmetric diverging scale."""
    la, lb = labels
    Sa, ext, labels, idx = _slice(A, axis, index, size, origin)
    Sb = _slice(B, axis, index, size, origin)[0]
    lo, hi = min(Sa.min(), Sb.min()), max(Sa.max(), Sb.max())
    diff = Sb - Sa
    dmax = float(np.abs(diff).max()) or 1.0
    fig, _ = _figure((16.0, 4.6), dpi)
    fig.clear()
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 3)
    try:
        for ax, S, label, kw in ((axes[0], Sa, la, dict(cmap="viridis", vmin=lo, vmax=hi)),
                                 (axes[1], Sb, lb, dict(cmap="viridis", vmin=lo, vmax=hi)),
                                 (axes[2], diff, f"{lb} − {la}", dict(cmap="RdBu_r", vmin=-dmax, vmax=dmax))):
            im = ax.imshow(S.T, origin="lower", extent=ext, interpolation="nearest", aspect="equal", **kw)
            fig.colorbar(im, ax=ax, shrink=0.8).set_label(cbar_label)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
            ax.set_title(label)
        fig.suptitle(title or f"{axis} = cell {idx}")
        return _save(fig, png_path, dpi)
    finally:
        fig.clear()
