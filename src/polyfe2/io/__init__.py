"""Result writers: DADF5 (DAMASK HDF5, readable by ``damask.Result``), XDMF time series for
ParaView, CSV tables (stress-strain curve, solver status) and PNG plots.

All grid fields are ``(Nx, Ny, Nz, ...)`` arrays (numpy or torch), ``A[i, j, k]`` = cell
x=i, y=j, z=k; files store cells flat with x fastest (DAMASK's order), see
:func:`flatten_cells`.
"""

from ._common import flatten_cells, unflatten_cells
from .dadf5 import DEFAULT_META, DADF5Writer, read_cell_field
from .plots import plot_slice, plot_slices_compared, plot_stress_strain
from .tables import (
    CURVE_COLUMNS,
    STATUS_COLUMNS,
    CurveWriter,
    StatusWriter,
    curve_row,
    read_curve,
    read_status,
)
from .xdmf import XDMFSeriesWriter, grid_mesh

__all__ = [
    "DADF5Writer",
    "DEFAULT_META",
    "read_cell_field",
    "XDMFSeriesWriter",
    "grid_mesh",
    "CurveWriter",
    "StatusWriter",
    "CURVE_COLUMNS",
    "STATUS_COLUMNS",
    "curve_row",
    "read_curve",
    "read_status",
    "plot_stress_strain",
    "plot_slice",
    "plot_slices_compared",
    "flatten_cells",
    "unflatten_cells",
]
