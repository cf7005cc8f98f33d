"""Two runs of the same grid compared: their Cauchy σ_xx at one increment, as numbers and a PNG
(both slices on one colour scale and their difference), e.g. a surrogate against crystal
plasticity on the plate."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..io import plot_slices_compared, read_cell_field
from ..mechanics import stress_Cauchy


def _sigma_xx(path: Path, increment: int | None) -> tuple[np.ndarray, int, np.ndarray]:
    """σ_xx (Nx,Ny,Nz), the increment and the grid's size of a DADF5 file."""
    try:
        with h5py.File(path, "r") as f:
            incs = sorted(int(k.split("_")[1]) for k in f if k.startswith("increment_"))
            size = f["geometry"].attrs["size"]
    except OSError as e:
        raise InputError(f"not a readable DADF5 file ({e})", file=path) from None
    increment = incs[-1] if increment is None else increment
    if increment not in incs:
        raise InputError(f"no increment {increment}; the file has {incs[0]}..{incs[-1]}", file=path, key="increment")
    sigma = stress_Cauchy(read_cell_field(path, increment, "P"), read_cell_field(path, increment, "F"))
    return sigma[..., 0, 0], increment, size


def compare_runs(a: Path, b: Path, png: Path, increment: int | None = None, labels=None,
                 solid: np.ndarray | None = None) -> dict:
    """σ_xx of runs ``a`` and ``b`` (DADF5 files of the same grid) at ``increment`` (default: the
    last of ``a``); writes ``png`` and returns the means and the differences in Pa, over the
    ``solid`` cells when given (e.g. leaving out the slot)."""
    sa, increment, size = _sigma_xx(Path(a), increment)
    sb, _, _ = _sigma_xx(Path(b), increment)
    if sa.shape != sb.shape:
        raise InputError(f"grids differ: {sa.shape} and {sb.shape}", file=b)
    labels = labels or (str(a), str(b))
    mask = np.ones(sa.shape, bool) if solid is None else solid
    d = (sb - sa)[mask]
    plot_slices_compared(sa / 1e6, sb / 1e6, labels, png, cbar_label="σ_xx / MPa", size=np.asarray(size) * 1e3,
                         title=f"Cauchy σ_xx, increment {increment}, mid-thickness slice (lengths in mm)")
    return {"increment": increment, "mean_a": float(sa[mask].mean()), "mean_b": float(sb[mask].mean()),
            "mean_abs_diff": float(np.abs(d).mean()), "max_abs_diff": float(np.abs(d).max()),
            "rel_mean_abs_diff": float(np.abs(d).mean() / np.abs(sa[mask]).mean())}
