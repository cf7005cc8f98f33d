"""Microstructures: grids, grains, orientations and textures (built on the ``damask`` package)."""
