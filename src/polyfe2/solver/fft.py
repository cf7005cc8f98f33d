"""Fourier transforms of cell fields, on one rank or over z-slabs of many.

A field is a torch tensor ``(Nx, Ny, nz, ...)`` holding this rank's z-slab (``nz`` of the grid's
``Nz`` planes, x fastest in PETSc's DMDA, whose local part is exactly this slab); the trailing
axes are tensor components. The spectral field is ``(Sx, Sy, Sz, ...)`` on the frequencies
:meth:`axis_frequencies` names, one axis of which (``halved``) holds only the non-negative
frequencies of the real-to-complex transform (its inner planes stand for two conjugate
frequencies each).

Three implementations, chosen by :func:`make_fft`:

- ``serial`` (one rank): torch's ``rfftn`` over the three axes on the run device; z is halved.
- ``fftw-slab`` (many ranks, CPU): mpi4py-fft's ``PFFT`` (FFTW) with its slab decomposition:
  r2c along x and c2c along y within the slab, a global transpose (MPI Alltoallw) and c2c along z.
  The spectrum is distributed over y; x is halved.
- ``torch-slab`` (many ranks, a GPU per rank): the same steps with torch's FFTs on the device and
  mpi4py-fft's ``Pencil`` transfer (Alltoallw) for the transpose, staged through host memory. It
  gives the same spectral layout as ``fftw-slab`` and runs on the CPU as well (tested there).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .grid import Grid


def z_slabs(nz: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of every rank's z-planes: as even as possible, the first ranks one more
    (mpi4py-fft's block distribution, which PETSc's DMDA is given as its ownership ranges)."""
    q, r = divmod(nz, size)
    starts = [k * q + min(k, r) for k in range(size + 1)]
    return [(starts[k], starts[k + 1]) for k in range(size)]


class SerialFFT:
    """One rank: torch rfftn over the grid axes (z halved)."""

    name = "serial (torch)"
    halved = 2

    def __init__(self, grid: Grid):
        self.grid = grid
        self.comm = None
        self.z_range = (0, grid.cells[2])

    def axis_frequencies(self) -> list[np.ndarray]:
        """Integer frequencies k of this rank's spectral array, one array per axis."""
        nx, ny, nz = self.grid.cells
        return [np.fft.fftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny), np.fft.rfftfreq(nz, 1.0 / nz)]

    def forward(self, T: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfftn(T, dim=(0, 1, 2))

    def backward(self, T_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(T_hat, s=self.grid.cells, dim=(0, 1, 2))

    def sum(self, value):
        """The sum over all ranks (numbers or numpy arrays)."""
        return value


class _Slab:
    """What the two distributed transforms share: the slab bounds and the reductions."""

    halved = 0

    def __init__(self, grid: Grid, comm):
        self.grid, self.comm = grid, comm
        nx, ny, nz = grid.cells
        if nz < comm.Get_size():
            raise ValueError(f"{comm.Get_size()} ranks need at least as many z-planes; the grid has {nz}")
        if ny < comm.Get_size():
            raise ValueError(f"{comm.Get_size()} ranks need at least as many y-planes; the grid has {ny}")
        rank = comm.Get_rank()
        self.z_range = z_slabs(nz, comm.Get_size())[rank]
        self.y_range = z_slabs(ny, comm.Get_size())[rank]  # the spectrum's slab (same block rule)

    def axis_frequencies(self) -> list[np.ndarray]:
        nx, ny, nz = self.grid.cells
        y0, y1 = self.y_range
        return [np.fft.rfftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny)[y0:y1], np.fft.fftfreq(nz, 1.0 / nz)]

    def sum(self, value):
        from mpi4py import MPI

        if isinstance(value, np.ndarray):
            out = np.empty_like(value)
            self.comm.Allreduce(np.ascontiguousarray(value), out, op=MPI.SUM)
            return out
        return self.comm.allreduce(value, op=MPI.SUM)


class FFTWSlabFFT(_Slab):
    """mpi4py-fft's PFFT (FFTW) on the slab, one transform per tensor component."""

    name = "fftw-slab (mpi4py-fft PFFT, FFTW)"

    def __init__(self, grid: Grid, comm):
        super().__init__(grid, comm)
        from mpi4py_fft import PFFT

        nx, ny, nz = grid.cells
        # arrays in PETSc's memory order (z, y, x): slab over the first axis, r2c along x first
        self.pfft = PFFT(comm, (nz, ny, nx), axes=(0, 1, 2), dtype=np.float64, grid=(-1,))
        z = self.pfft.local_slice(False)[0]
        y = self.pfft.local_slice(True)[1]
        if (z.start, z.stop) != self.z_range or (y.start, y.stop) != self.y_range:
            raise RuntimeError(f"mpi4py-fft's slabs {z}, {y} differ from {self.z_range}, {self.y_range}")
        self._real = np.empty(self.pfft.forward.input_array.shape)
        self._spec = np.empty(self.pfft.forward.output_array.shape, dtype=np.complex128)

    def forward(self, T: torch.Tensor) -> torch.Tensor:
        device, trailing = T.device, T.shape[3:]
        A = T.detach().cpu().reshape(*T.shape[:3], -1).permute(3, 2, 1, 0).numpy()   # (c, z, y, x)
        out = np.empty((A.shape[0],) + self._spec.shape, dtype=np.complex128)
        for c in range(A.shape[0]):
            self._real[...] = A[c]
            out[c] = self.pfft.forward(self._real, self._spec, normalize=False)  # torch's convention
        return torch.from_numpy(out).permute(3, 2, 1, 0).reshape(*out.shape[:0:-1], *trailing).to(device)

    def backward(self, T_hat: torch.Tensor) -> torch.Tensor:
        device, trailing = T_hat.device, T_hat.shape[3:]
        A = T_hat.detach().cpu().reshape(*T_hat.shape[:3], -1).permute(3, 2, 1, 0).numpy()
        out = np.empty((A.shape[0],) + self._real.shape)
        for c in range(A.shape[0]):
            self._spec[...] = A[c]
            out[c] = self.pfft.backward(self._spec, self._real, normalize=True)
        return torch.from_numpy(out).permute(3, 2, 1, 0).reshape(*out.shape[:0:-1], *trailing).to(device)


class TorchSlabFFT(_Slab):
    """torch FFTs within the slab on the run device; the z ↔ y transpose is mpi4py-fft's Pencil
    transfer (MPI Alltoallw with subarray types) on host copies."""

    name = "torch-slab (local torch FFTs, mpi4py-fft transpose staged through the host)"

    def __init__(self, grid: Grid, comm):
        super().__init__(grid, comm)
        self._transfers = {}
        self.transpose_seconds = 0.0   # host staging and Alltoallw, summed

    def _transfer(self, components: int):
        """Pencils of the (Kx, Ny, Nz, c) spectrum: z distributed (y whole) and y distributed."""
        if components not in self._transfers:
            from mpi4py import MPI
            from mpi4py_fft.pencil import Pencil

            nx, ny, nz = self.grid.cells
            self_ = MPI.COMM_SELF
            shape = (nx // 2 + 1, ny, nz, components)
            in_z = Pencil([self_, self_, self.comm, self_], shape, axis=1)
            in_y = in_z.pencil(2)
            self._transfers[components] = (in_z, in_y, in_z.transfer(in_y, np.complex128))
        return self._transfers[components]

    def forward(self, T: torch.Tensor) -> torch.Tensor:
        trailing = T.shape[3:]
        A = T.reshape(*T.shape[:3], -1)
        A = torch.fft.fft(torch.fft.rfft(A, dim=0), dim=1)
        in_z, in_y, transfer = self._transfer(A.shape[-1])
        t0 = time.perf_counter()
        B = np.empty(in_y.subshape, dtype=np.complex128)
        transfer.forward(np.ascontiguousarray(A.cpu().numpy()), B)
        B = torch.from_numpy(B).to(T.device)
        self.transpose_seconds += time.perf_counter() - t0
        B = torch.fft.fft(B, dim=2)
        return B.reshape(*B.shape[:3], *trailing)

    def backward(self, T_hat: torch.Tensor) -> torch.Tensor:
        trailing = T_hat.shape[3:]
        B = torch.fft.ifft(T_hat.reshape(*T_hat.shape[:3], -1), dim=2)
        in_z, in_y, transfer = self._transfer(B.shape[-1])
        t0 = time.perf_counter()
        A = np.empty(in_z.subshape, dtype=np.complex128)
        transfer.backward(np.ascontiguousarray(B.cpu().numpy()), A)
        A = torch.from_numpy(A).to(T_hat.device)
        self.transpose_seconds += time.perf_counter() - t0
        A = torch.fft.irfft(torch.fft.ifft(A, dim=1), n=self.grid.cells[0], dim=0)
        return A.reshape(*A.shape[:3], *trailing)


def make_fft(grid: Grid, comm=None, device: torch.device | None = None):
    """The transform for ``comm`` (an mpi4py communicator; None or one rank: serial): FFTW slabs
    on CPU ranks, torch slabs on GPU ranks. ``POLYFE2_SLAB_FFT=torch`` picks the torch path on
    CPU ranks too."""
    import os

    if comm is None or comm.Get_size() == 1:
        return SerialFFT(grid)
    use_torch = (device is not None and device.type != "cpu") or os.environ.get("POLYFE2_SLAB_FFT") == "torch"
    return TorchSlabFFT(grid, comm) if use_torch else FFTWSlabFFT(grid, comm)
