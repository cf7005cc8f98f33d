"""Restart points: everything a run needs to continue after a crash, written atomically.

A restart point at increment n (DAMASK's ``f_restart`` in load.yaml: every f_restart increments of
a step) holds, per rank, that rank's slab of the committed material state of every backend
(crystal-plasticity state, GRU hidden state, ODMN interaction vectors ...), the F and P fields,
and the position in the load case (step, increment, time, the averages and the rate estimate).

Files: ``<output>/<name>_restart/inc<n>.rank<r>of<K>.pt`` (one per rank, torch's format) and the
marker ``inc<n>.complete`` that rank 0 writes once every rank's file is durable. Every file is
written to a temporary name, flushed to disk and renamed, so a crash while writing leaves the
previous restart point whole; a point without its marker does not exist. Older points are
removed once a newer one is complete.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..errors import InputError

_MARKER = re.compile(r"inc(\d+)\.complete$")


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RestartStore:
    """The restart points of one run (``directory`` = the run's output directory)."""

    def __init__(self, directory, name: str, comm=None):
        self.directory = Path(directory) / f"{name}_restart"
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()

    def _file(self, increment: int) -> Path:
        return self.directory / f"inc{increment}.rank{self.rank}of{self.size}.pt"

    def points(self) -> list[int]:
        """Increments with a complete restart point, ascending."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _MARKER.match(p.name)))

    def write(self, increment: int, payload: dict) -> None:
        """Write this rank's part of the restart point (collective over the ranks)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_save(payload, self._file(increment))
        if self.comm is not None:
            self.comm.Barrier()   # every rank's file is durable before the point is declared whole
        if self.rank == 0:
            _atomic_save({"increment": increment, "ranks": self.size}, self.directory / f"inc{increment}.complete")
            for path in self.directory.iterdir():   # older points, and leftovers of interrupted writes
                m = re.match(r"inc(\d+)\.", path.name)
                if m and int(m.group(1)) < increment:
                    path.unlink(missing_ok=True)
        if self.comm is not None:
            self.comm.Barrier()

    def read(self, increment: int, *, source=None) -> dict:
        """This rank's part of the restart point at ``increment``; a one-line :class:`InputError`
        naming ``source`` (the run config) when there is none or it was written by another
        number of ranks."""
        available = self.points()
        if increment not in available:
            raise InputError(f"no restart point at increment {increment} in {self.directory}; available: "
                             f"{available or 'none (set f_restart in the load case)'}", file=source, key="--restart")
        marker = torch.load(self.directory / f"inc{increment}.complete", weights_only=True)
        if marker["ranks"] != self.size:
            raise InputError(f"the restart point at increment {increment} was written by {marker['ranks']} rank(s); "
                             f"restart with mpiexec -n {marker['ranks']}", file=source, key="--restart")
        # our own file (pickled numpy arrays and backend states), not foreign input
        return torch.load(self._file(increment), weights_only=False, map_location="cpu")
