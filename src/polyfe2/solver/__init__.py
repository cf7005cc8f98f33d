"""Finite-strain spectral (FFT) equilibrium solver on a periodic voxel grid."""
from .green import GreenOperator
from .grid import Grid

__all__ = ["GreenOperator", "Grid"]
