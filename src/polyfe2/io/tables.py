"""CSV tables written row by row (flushed after every row, so a crash loses nothing).

* :class:`CurveWriter` — volume-averaged F, P and the Cauchy stress of the averages, one row per
  increment, with exactly the columns of the DAMASK reference ``curve.csv`` files::

      increment,t_s,F_11..F_33,P_11_MPa..P_33_MPa,sigma_11_MPa..sigma_33_MPa

  (``sigma = P_av F_av^T / det F_av``, symmetrised as ``damask.mechanics.stress_Cauchy``).
* :class:`StatusWriter` — solver status per increment as ``status.csv`` and an aligned,
  human-readable ``status.txt``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..mechanics import stress_Cauchy
from ._common import to_numpy

__all__ = ["CURVE_COLUMNS", "STATUS_COLUMNS", "CurveWriter", "StatusWriter", "read_curve", "read_status", "curve_row"]

_IJ = [f"{i}{j}" for i in range(1, 4) for j in range(1, 4)]
CURVE_COLUMNS = (
    ["increment", "t_s"]
    + [f"F_{ij}" for ij in _IJ]
    + [f"P_{ij}_MPa" for ij in _IJ]
    + [f"sigma_{ij}_MPa" for ij in _IJ]
)


def _average(T) -> np.ndarray:
    T = to_numpy(T, dtype=np.float64)
    if T.shape == (3, 3):
        return T
    if T.shape[-2:] != (3, 3):
        raise ValueError(f"expected a (3,3) tensor or a (..., 3, 3) field, got {T.shape}")
    return T.reshape(-1, 3, 3).mean(axis=0)  # uniform voxels: volume average = mean


def curve_row(increment: int, t: float, F, P) -> dict[str, float]:
    """One curve row from average (3,3) tensors or full fields (volume-averaged here)."""
    F_av, P_av = _average(F), _average(P)
    sigma = stress_Cauchy(P_av, F_av)
    row: dict[str, float] = {"increment": int(increment), "t_s": float(t)}
    for n, ij in enumerate(_IJ):
        i, j = divmod(n, 3)
        row[f"F_{ij}"] = F_av[i, j]
        row[f"P_{ij}_MPa"] = P_av[i, j] * 1e-6
        row[f"sigma_{ij}_MPa"] = sigma[i, j] * 1e-6
    return row


def _fmt(v, fmt: str) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return format(float(v), fmt)
    return str(v)


class _RowWriter:
    columns: list[str]

    def __init__(self, path, append: bool = False, fmt: str = ".10g"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fmt = fmt
        new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self._fh = open(self.path, "w" if new else "a", newline="")
        if new:
            self._fh.write(",".join(self.columns) + "\n")
            self._fh.flush()

    def _write_csv(self, row: Mapping[str, object]):
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise ValueError(f"{self.path}: row lacks columns {missing}")
        self._fh.write(",".join(_fmt(row[c], self.fmt) for c in self.columns) + "\n")
        self._fh.flush()

    def close(self):
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CurveWriter(_RowWriter):
    """``curve.csv``: ``CurveWriter(path, append=False, fmt='.10g')``;
    ``write(increment, t, F, P)`` with F, P the averages (3, 3) or full fields
    (Nx, Ny, Nz, 3, 3) [Pa] (averaged here). ``append=True`` continues an existing file
    (restart) without a second header."""

    columns = CURVE_COLUMNS

    def write(self, increment: int, t: float, F, P) -> dict[str, float]:
        row = curve_row(increment, t, F, P)
        self._write_csv(row)
        return row


def read_curve(path) -> dict[str, np.ndarray]:
    """Read a curve CSV (ours or a DAMASK reference) into ``{column: array}``."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


STATUS_COLUMNS = [
    "increment", "t_s", "dt_s", "cutback_level", "converged", "iterations",
    "residual_evals", "div_residual", "bc_error_Pa", "wall_s", "reason",
]
_STATUS_TXT = {  # column -> (width, format)
    "increment": (9, "d"), "t_s": (13, ".6g"), "dt_s": (11, ".4g"), "cutback_level": (7, "d"),
    "converged": (9, "s"), "iterations": (6, "d"), "residual_evals": (7, "d"),
    "div_residual": (12, ".3e"), "bc_error_Pa": (12, ".3e"), "wall_s": (10, ".2f"), "reason": (-40, "s"),
}
_STATUS_TXT_HEAD = {
    "increment": "inc", "t_s": "t/s", "dt_s": "dt/s", "cutback_level": "cutback",
    "converged": "converged", "iterations": "iter", "residual_evals": "r-evals",
    "div_residual": "div(P) rms", "bc_error_Pa": "BC err/Pa", "wall_s": "wall/s", "reason": "reason",
}


def _justify(text: str, width: int) -> str:
    """Right-aligned in ``width`` characters; a negative width aligns left."""
    return text.ljust(-width) if width < 0 else text.rjust(width)


class StatusWriter(_RowWriter):
    """Solver status per increment: ``StatusWriter(csv_path, txt_path=None, append=False)``
    (``txt_path`` defaults to the CSV name with ``.txt``).

    ``write(increment, t, dt, cutback_level, converged, iterations, residual_evals,
    div_residual, bc_error, wall, reason)``: div_residual is the final RMS(Div P) criterion value,
    bc_error the stress-BC error [Pa], wall the wall time of the increment [s], reason why the
    attempt ended (PETSc's SNES reason, or the material point failure that cut it back). Use one row per attempt
    (a cut-back attempt with ``converged=False`` and the retry) or per increment, as the solver
    prefers.
    """

    columns = STATUS_COLUMNS

    def __init__(self, path, txt_path=None, append: bool = False, fmt: str = ".10g"):
        super().__init__(path, append=append, fmt=fmt)
        self.txt_path = Path(txt_path) if txt_path is not None else self.path.with_suffix(".txt")
        new = not (append and self.txt_path.exists() and self.txt_path.stat().st_size > 0)
        self._txt = open(self.txt_path, "w" if new else "a")
        if new:
            head = " ".join(_justify(_STATUS_TXT_HEAD[c], _STATUS_TXT[c][0]) for c in self.columns)
            self._txt.write(head + "\n" + "-" * len(head) + "\n")
            self._txt.flush()

    def write(self, increment: int, t: float, dt: float, cutback_level: int, converged: bool,
              iterations: int, residual_evals: int, div_residual: float, bc_error: float,
              wall: float, reason: str = "") -> dict[str, object]:
        row = {
            "increment": int(increment), "t_s": float(t), "dt_s": float(dt),
            "cutback_level": int(cutback_level), "converged": bool(converged),
            "iterations": int(iterations), "residual_evals": int(residual_evals),
            "div_residual": float(div_residual), "bc_error_Pa": float(bc_error), "wall_s": float(wall),
            "reason": " ".join(str(reason).split()),
        }
        self._write_csv(row)
        cells = []
        for c in self.columns:
            width, f = _STATUS_TXT[c]
            v = row[c]
            cells.append(_justify(format(str(v) if f == "s" else v, f), width))
        self._txt.write(" ".join(cells) + "\n")
        self._txt.flush()
        return row

    def close(self):
        super().close()
        if not self._txt.closed:
            self._txt.close()


def read_status(path) -> list[dict[str, object]]:
    """Read ``status.csv`` back with typed values."""
    ints = {"increment", "cutback_level", "iterations", "residual_evals"}
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out.append({
                k: (int(v) if k in ints else v == "True" if k == "converged" else v if k == "reason" else float(v))
                for k, v in r.items()
            })
    return out


def truncate_rows(path, last_increment: int) -> None:
    """Keep the header and the rows of increments up to ``last_increment`` of a curve or status
    CSV (a restart continues after them); atomic (written aside, then renamed)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.strip() and int(float(ln.split(",", 1)[0])) <= last_increment]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)
