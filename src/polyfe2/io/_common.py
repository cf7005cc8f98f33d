"""Small helpers shared by the writers (array conversion, DAMASK's flat cell order)."""

from __future__ import annotations

import numpy as np


def to_numpy(x, dtype=None) -> np.ndarray:
    """Return ``x`` as a numpy array (torch tensors on any device are copied to the host)."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def flatten_cells(A: np.ndarray) -> np.ndarray:
    """Grid field ``(Nx,Ny,Nz,...)`` -> ``(Nx*Ny*Nz, ...)`` in DAMASK's order (x fastest).

    Only the first three axes are reordered; trailing (tensor/constituent) axes keep their
    row-major layout.
    """
    A = np.asarray(A)
    if A.ndim < 3:
        raise ValueError(f"grid field needs at least 3 axes, got shape {A.shape}")
    perm = (2, 1, 0) + tuple(range(3, A.ndim))
    return np.ascontiguousarray(A.transpose(perm)).reshape((-1,) + A.shape[3:])


def unflatten_cells(a: np.ndarray, cells) -> np.ndarray:
    """Inverse of :func:`flatten_cells`: ``(N, ...)`` in x-fastest order -> ``(Nx,Ny,Nz,...)``."""
    a = np.asarray(a)
    nx, ny, nz = (int(c) for c in cells)
    A = a.reshape((nz, ny, nx) + a.shape[1:])
    return A.transpose((2, 1, 0) + tuple(range(3, A.ndim)))
