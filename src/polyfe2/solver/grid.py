"""The periodic voxel grid (its Fourier frequencies and derivatives are in :mod:`.green`).

Fields live as ``(Nx, Ny, Nz, 3, 3)`` tensors, ``T[i, j, k]`` being the cell at x=i, y=j, z=k.
Fourier transforms are real-to-complex over the three grid axes, so the last grid axis (z)
is halved: ``(Nx, Ny, Nz//2 + 1)`` frequencies. A later z-slab MPI decomposition keeps whole
x-y planes on each rank.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Cells, physical size and origin of a periodic box (as ``damask.GeomGrid``)."""

    cells: tuple[int, int, int]
    size: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def N(self) -> int:
        return int(np.prod(self.cells))

    @property
    def fft_shape(self) -> tuple[int, int, int]:
        return (self.cells[0], self.cells[1], self.cells[2] // 2 + 1)
