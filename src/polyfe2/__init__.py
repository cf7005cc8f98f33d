"""polyfe2: finite-strain spectral solver with batched constitutive backends for polycrystals."""

__version__ = "0.1.0"
