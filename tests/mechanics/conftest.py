"""Fixtures of the mechanics tests: the array type under test and seeded random batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

#: leading axes of every random batch (odd on purpose: nothing may assume one batch axis)
BATCH = (4, 3)


class ArrayType:
    """Converts float64 numpy test data to the array type under test and results back."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, x: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        return torch.tensor(x) if self.name == "torch" else x

    def numpy(self, y) -> np.ndarray:
        """``y`` as numpy, after checking it has the type under test and dtype float64."""
        if self.name == "torch":
            assert isinstance(y, torch.Tensor), f"expected a torch.Tensor, got {type(y).__name__}"
            assert y.dtype == torch.float64
            return y.numpy()
        # numpy's reductions give a numpy scalar, not a 0-d array, for a single tensor
        assert isinstance(y, (np.ndarray, np.float64)), f"expected a numpy.ndarray, got {type(y).__name__}"
        assert y.dtype == np.float64
        return np.asarray(y)


@pytest.fixture(params=["numpy", "torch"])
def at(request) -> ArrayType:
    """The array type under test (every test using it runs for numpy and torch)."""
    return ArrayType(request.param)


class Random:
    """Seeded random test data; shapes default to the odd batch :data:`BATCH`."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def tensor(self, shape=BATCH) -> np.ndarray:
        """Second-order tensors, components N(0, 1)."""
        return self.rng.standard_normal(tuple(shape) + (3, 3))

    def F(self, shape=BATCH, scale: float = 0.3) -> np.ndarray:
        """Deformation gradients I + scale N(0, 1), det F > 0.05 checked."""
        F = np.eye(3) + scale * self.rng.standard_normal(tuple(shape) + (3, 3))
        assert (np.linalg.det(F) > 0.05).all()
        return F

    def rotation(self, shape=BATCH) -> np.ndarray:
        """Rotation matrices (orthogonal, det +1), uniformly distributed (QR of Gaussian matrices)."""
        Q, Rq = np.linalg.qr(self.rng.standard_normal(tuple(shape) + (3, 3)))
        Q = Q * np.sign(np.diagonal(Rq, axis1=-2, axis2=-1))[..., None, :]
        return np.where((np.linalg.det(Q) < 0)[..., None, None], -Q, Q)

    def minor_symmetric(self, shape=()) -> np.ndarray:
        """Fourth-order tensors with the minor (not the major) symmetries, otherwise random."""
        C = self.rng.standard_normal(tuple(shape) + (3, 3, 3, 3))
        C = 0.5 * (C + np.swapaxes(C, -4, -3))
        return 0.5 * (C + np.swapaxes(C, -2, -1))

    def stiffness(self, shape=()) -> np.ndarray:
        """Fourth-order tensors with minor and major symmetries (triclinic: no cubic symmetry)."""
        C = self.minor_symmetric(shape)
        return 0.5 * (C + np.moveaxis(C, (-4, -3), (-2, -1)))


@pytest.fixture
def random() -> Random:
    """Seeded random test data (the same in every test)."""
    return Random(20240613)
