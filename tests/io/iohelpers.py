"""Synthetic data for the io tests (a helper module, not a conftest, so that its name is unique): a small grid with position-dependent uniaxial states."""

import numpy as np

CELLS = (4, 3, 2)
SIZE = (4e-6, 3e-6, 2e-6)
ORIGIN = (1e-6, 0.0, -1e-6)
N = int(np.prod(CELLS))


def flat_index():
    """(Nx,Ny,Nz) array holding the x-fastest flat index i + Nx*(j + Ny*k)."""
    i, j, k = np.meshgrid(*(np.arange(c) for c in CELLS), indexing="ij")
    return i + CELLS[0] * (j + CELLS[1] * k)


def uniaxial(step: int):
    """F = diag(1+e, 1-e/2, 1-e/2) with e depending on the cell, and the P that gives the
    Cauchy stress diag(s, 0, 0): P = J sigma F^-T. Returns F, P, s (all grid fields)."""
    n = flat_index()
    e = 1e-3 * step * (1.0 + n / 10.0)
    s = 1e7 * step * (1.0 + n / 100.0)
    F = np.zeros(CELLS + (3, 3))
    F[..., 0, 0] = 1 + e
    F[..., 1, 1] = 1 - e / 2
    F[..., 2, 2] = 1 - e / 2
    J = np.linalg.det(F)
    P = np.zeros_like(F)
    P[..., 0, 0] = J * s / F[..., 0, 0]
    return F, P, s


def two_phase_materials():
    """Three materials, two phases, K = 1; material id depends on the position."""
    mid = (flat_index() * 7 // 5) % 3
    mats = [
        dict(homogenization="SX", phases=["Aluminum"]),
        dict(homogenization="SX", phases=["Iron"]),
        dict(homogenization="SX", constituents=[{"phase": "Aluminum"}]),  # material.yaml style
    ]
    return mid, mats
