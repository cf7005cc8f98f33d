"""XDMF time series of grid fields for ParaView (through ``meshio.xdmf.TimeSeriesWriter``).

The voxel grid is written once as an unstructured hexahedron mesh (nodes of the grid, cells in
DAMASK's x-fastest order); every step adds cell data (and optionally nodal displacements
``u`` for ParaView's *Warp By Vector*). Tensors are written as ``(N, 9)`` row-major
(T11, T12, T13, T21, ...), which is ParaView's tensor component order; XDMF calls them
``Tensor``. The ``.h5`` heavy-data file lies next to the ``.xdmf`` file.

After every step the ``.h5`` file is flushed and the ``.xdmf`` text rewritten, so a crashed run
leaves a series that opens in ParaView up to its last written step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..mechanics import equivalent_stress_Mises, stress_Cauchy
from ._common import flatten_cells, to_numpy

__all__ = ["XDMFSeriesWriter", "grid_mesh"]


def grid_mesh(cells: Sequence[int], size: Sequence[float], origin: Sequence[float] = (0, 0, 0)):
    """Nodes ``((Nx+1)(Ny+1)(Nz+1), 3)`` and VTK-ordered hexahedra ``(Nx Ny Nz, 8)`` of a voxel
    grid, both with x fastest."""
    import damask

    nx, ny, nz = (int(c) for c in cells)
    nodes = flatten_cells(damask.grid_filters.coordinates0_node((nx, ny, nz), size, origin))
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    i, j, k = (flatten_cells(a) for a in (i, j, k))

    def n(di, dj, dk):
        return (i + di) + (nx + 1) * ((j + dj) + (ny + 1) * (k + dk))

    hexa = np.stack(
        [n(0, 0, 0), n(1, 0, 0), n(1, 1, 0), n(0, 1, 0), n(0, 0, 1), n(1, 0, 1), n(1, 1, 1), n(0, 1, 1)],
        axis=1,
    ).astype(np.int64)
    return nodes, hexa


def _time_series_writer_cls():
    from meshio._common import write_xml
    from meshio.xdmf import TimeSeriesWriter

    class _Writer(TimeSeriesWriter):
        """meshio's writer puts the .h5 file into the *current directory*; put it next to the
        .xdmf file instead, and make every step durable."""

        def __enter__(self):
            import h5py

            self.h5_filename = str(self.filename.with_suffix(".h5"))
            self.h5_file = h5py.File(self.h5_filename, "w")
            return self

        def sync(self):
            self.h5_file.flush()
            write_xml(self.filename, self.xdmf_file)

    return _Writer


class XDMFSeriesWriter:
    """Time series of cell fields on the voxel grid.

    Parameters
    ----------
    path : ``.xdmf`` file name (the heavy data go to the same name with ``.h5``).
    cells, size, origin : the grid.
    material_id : optional int array (Nx, Ny, Nz), written as cell data ``material`` every step.
    displacement : add nodal displacements ``u`` (point data) computed from ``F`` by
        ``damask.grid_filters.displacement_node`` when ``F`` is among the cell data.

    ``write(t, cell_data)``: ``cell_data`` maps names to grid fields ``(Nx, Ny, Nz)``,
    ``(Nx, Ny, Nz, 3)`` or ``(Nx, Ny, Nz, 3, 3)`` (numpy or torch). When both ``F`` and ``P``
    are present, ``sigma`` (Cauchy, ``damask.mechanics.stress_Cauchy``) and ``sigma_vM``
    (``damask.mechanics.equivalent_stress_Mises``) are added. Units are those of the inputs
    (SI: Pa).
    """

    def __init__(
        self,
        path,
        cells: Sequence[int],
        size: Sequence[float],
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        material_id=None,
        displacement: bool = True,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cells = tuple(int(c) for c in cells)
        self.size = np.asarray(size, dtype=np.float64)
        self.origin = np.asarray(origin, dtype=np.float64)
        self.displacement = displacement
        self.material_id = None
        if material_id is not None:
            mid = to_numpy(material_id)
            if mid.shape != self.cells:
                raise ValueError(f"material_id has shape {mid.shape}, expected {self.cells}")
            self.material_id = flatten_cells(mid).astype(np.int32)
        nodes, hexa = grid_mesh(self.cells, self.size, self.origin)
        self._w = _time_series_writer_cls()(self.path)
        self._w.__enter__()
        self._w.write_points_cells(nodes, [("hexahedron", hexa)])
        self._w.sync()
        self.n_steps = 0
        self._closed = False

    def _flat(self, name, A):
        A = to_numpy(A)
        if A.shape[:3] != self.cells:
            raise ValueError(f"cell data {name!r} has shape {A.shape}, expected {self.cells} + (...)")
        a = flatten_cells(A)
        if a.ndim == 3 and a.shape[1:] == (3, 3):
            a = a.reshape(-1, 9)
        elif a.ndim > 2:
            a = a.reshape(a.shape[0], -1)
        if np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64, copy=False)
        elif np.issubdtype(a.dtype, np.integer):
            a = a.astype(np.int32, copy=False)
        return np.ascontiguousarray(a)

    def write(self, t: float, cell_data: Mapping[str, np.ndarray], point_data: Mapping[str, np.ndarray] | None = None):
        """Append one step at time ``t``; see the class docstring."""
        if self._closed:
            raise RuntimeError(f"{self.path}: writer is closed")
        cd = {}
        if self.material_id is not None:
            cd["material"] = self.material_id
        raw = {k: to_numpy(v) for k, v in cell_data.items()}
        for k, v in raw.items():
            cd[k] = self._flat(k, v)
        if "F" in raw and "P" in raw:
            sigma = stress_Cauchy(raw["P"].astype(np.float64), raw["F"].astype(np.float64))
            vm = equivalent_stress_Mises(sigma)
            cd.setdefault("sigma", self._flat("sigma", sigma))
            cd.setdefault("sigma_vM", self._flat("sigma_vM", vm))
        pd = {}
        if self.displacement and "F" in raw:
            import damask

            pd["u"] = flatten_cells(damask.grid_filters.displacement_node(self.size, raw["F"].astype(np.float64)))
        for k, v in (point_data or {}).items():
            pd[k] = np.ascontiguousarray(to_numpy(v))
        self._w.write_data(float(t), point_data=pd or None, cell_data={k: [v] for k, v in cd.items()})
        self._w.sync()
        self.n_steps += 1

    def close(self):
        if not self._closed:
            self._w.__exit__(None, None, None)
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
