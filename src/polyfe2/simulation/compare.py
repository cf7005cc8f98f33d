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


def _sigma_xx(path: Path, increment: int | None, time: float | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """σ_xx (Nx,Ny,Nz), the increment and the grid's size of a DADF5 file; the increment by its
    number or by its time t/s (runs with different increment sizes)."""
    try:
        with h5py.File(path, "r") as f:
            incs = sorted(int(k.split("_")[1]) for k in f if k.startswith("increment_"))
            times = {i: float(f[f"increment_{i}"].attrs["t/s"]) for i in incs}
            size = f["geometry"].attrs["size"]
    except (OSError, KeyError) as e:
        raise InputError(f"not a readable DADF5 file ({e})", file=path) from None
    if time is not None:
        at = [i for i in incs if abs(times[i] - time) <= 1e-9 * max(abs(time), 1.0)]
        if not at:
            raise InputError(f"no increment at t = {time:g} s; the file's are at "
                             f"{', '.join(f'{times[i]:g}' for i in incs)} s", file=path, key="time")
        increment = at[0]
    increment = incs[-1] if increment is None else increment
    if increment not in incs:
        raise InputError(f"no increment {increment}; the file has {incs[0]}..{incs[-1]}", file=path, key="increment")
    sigma = stress_Cauchy(read_cell_field(path, increment, "P"), read_cell_field(path, increment, "F"))
    return sigma[..., 0, 0], increment, size


def compare_runs(a: Path, b: Path, png: Path, increment: int | None = None, labels=None,
                 solid: np.ndarray | None = None, time: float | None = None) -> dict:
    """σ_xx of runs ``a`` and ``b`` (DADF5 files of the same grid) at ``increment`` (default: the
    last of ``a``), or at the increments of each whose time is ``time``; writes ``png`` and returns
    the means and the differences in Pa, over the ``solid`` cells when given (e.g. leaving out the
    slot), and the increment of each run."""
    if time is not None and increment is not None:
        raise InputError("give the increment or the time, not both", key="increment")
    sa, increment, size = _sigma_xx(Path(a), increment, time)
    sb, increment_b, _ = _sigma_xx(Path(b), None if time is not None else increment, time)
    if sa.shape != sb.shape:
        raise InputError(f"grids differ: {sa.shape} and {sb.shape}", file=b)
    labels = labels or (str(a), str(b))
    mask = np.ones(sa.shape, bool) if solid is None else solid
    d = (sb - sa)[mask]
    at = f"increment {increment}" if increment_b == increment else f"increments {increment} and {increment_b}"
    plot_slices_compared(sa / 1e6, sb / 1e6, labels, png, cbar_label="σ_xx / MPa", size=np.asarray(size) * 1e3,
                         title=f"Cauchy σ_xx, {at}, mid-thickness slice (lengths in mm)")
    return {"increment": increment, "increment_b": increment_b, "at": at, "mean_a": float(sa[mask].mean()), "mean_b": float(sb[mask].mean()),
            "mean_abs_diff": float(np.abs(d).mean()), "max_abs_diff": float(np.abs(d).max()),
            "rel_mean_abs_diff": float(np.abs(d).mean() / np.abs(sa[mask]).mean())}
