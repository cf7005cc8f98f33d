"""Finite-strain spectral (FFT) equilibrium solver on a periodic voxel grid.

* :mod:`.grid` -- the periodic grid (cells, size, origin).
* :mod:`.boundary` -- load steps with mixed deformation/stress boundary conditions (load.yaml).
* :mod:`.options` -- numerical options (schema; no torch, no PETSc).
* :mod:`.green` -- Fourier derivatives, the Green operator, the divergence norm.
* :mod:`.spectral` -- one increment of the basic scheme solved by PETSc SNES (N-GMRES).
"""
