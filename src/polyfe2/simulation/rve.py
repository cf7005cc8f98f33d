"""A periodic Voronoi RVE as a run config: one crystal per cell (``pass`` homogenization), the
grains of a microstructure descriptor (:mod:`polyfe2.microstructure.descriptor`)."""
from __future__ import annotations

import numpy as np

from ..microstructure.descriptor import voronoi_grid
from .config import Geometry, LoadCase, MaterialConfig, OutputOptions, RunConfig


def voronoi_rve(descriptor: np.ndarray, cells: int, phase: dict, load: LoadCase | None = None,
                backend: str = "taylor", backend_options: dict | None = None) -> RunConfig:
    """The descriptor's periodic Voronoi tessellation on ``cells``³ cells, every grain a material of
    one crystal of ``phase`` (named Aluminum), with ``load`` (none by default) and no file outputs."""
    material, q = voronoi_grid(descriptor, (cells,) * 3)
    mat = MaterialConfig.from_arrays({"Aluminum": phase}, {"SX": {"N_constituents": 1, "mechanical": {"type": "pass"}}},
                                     homogenization="SX", phase="Aluminum", O=q[:, None, :], v=np.ones((len(q), 1)))
    return RunConfig.build(Geometry.from_array(material), mat, load or LoadCase([]), backend=backend, device="cpu",
                           backend_options=backend_options or {}, output=OutputOptions(xdmf=False, plots=False))
