"""DADF5 (DAMASK HDF5) result writer.

Writes the layout that DAMASK's grid solver writes, so that ``damask.Result`` (3.1.0) reads
polyfe2 results like DAMASK's own (``add_stress_Cauchy``, ``add_equivalent_Mises``, ``get``,
``place``, ``export_VTK``, ``export_simulation_setup``)::

    /                       attrs DADF5_version_major=1, DADF5_version_minor=0,
                                  creator, created, call
    /geometry               attrs cells (int32, 3), size (float64, 3), origin (float64, 3)
    /cell_to/phase          compound (label S<n>, entry int32), shape (N_cells, K)
    /cell_to/homogenization compound (label S<n>, entry int32), shape (N_cells,)
    /setup/<file name>      the input files, each a 1-element fixed-length byte string
    /increment_<n>          attr t/s
        geometry/u_p        (N_cells, 3)  cell-centre displacements [m]
        geometry/u_n        (N_nodes, 3)  nodal displacements [m] (needed by export_VTK)
        phase/<ph>/mechanical/<F|P|F_p|xi_sl|...>   (N_entries_of_ph, ...)
        homogenization/<ho>/mechanical/<F|P>        (N_entries_of_ho, ...)

Every dataset carries the attributes ``unit``, ``description``, ``creator``, ``created``
(``damask.Result`` reads ``unit`` and ``description`` in ``add_*`` and ``export_VTK`` and
``creator`` in ``add_*``).

Cell order in the file is x fastest (flat index = i + Nx*(j + Ny*k)). The entries of a phase
are numbered in order of first appearance over (cell, constituent), cell outer, constituent
inner, 0-based; the entries of a homogenization in cell order.

Crash safety: by default the file is opened, written and closed for every increment, and an
increment is written into a hidden group (``_incomplete_increment_<n>``, which
``damask.Result`` ignores) that is renamed to ``increment_<n>`` only when complete. A crash
therefore leaves all finished increments readable, and the file can be opened by
``damask.Result`` between increments while the run continues.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np

from .. import __version__
from ._common import flatten_cells, to_numpy, unflatten_cells

__all__ = ["DADF5Writer", "DEFAULT_META"]

DADF5_VERSION = (1, 0)

#: default (unit, description) of well-known datasets, as DAMASK names them
DEFAULT_META: dict[str, tuple[str, str]] = {
    "F": ("1", "deformation gradient"),
    "P": ("Pa", "first Piola-Kirchhoff stress"),
    "S": ("Pa", "second Piola-Kirchhoff stress"),
    "F_e": ("1", "elastic deformation gradient"),
    "F_p": ("1", "plastic deformation gradient"),
    "L_p": ("1/s", "plastic velocity gradient"),
    "O": ("q_0 (q_1 q_2 q_3)", "crystal orientation as quaternion"),
    "xi_sl": ("Pa", "resistance against plastic slip"),
    "gamma_sl": ("1", "plastic shear"),
    "sigma": ("Pa", "Cauchy stress"),
}


def _now() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


def _creator() -> str:
    return f"polyfe2 {__version__}"


def _normalise_materials(materials) -> list[tuple[str, list[str]]]:
    """Accept ``dict(homogenization=, phases=[...])`` or material.yaml style
    ``dict(homogenization=, constituents=[{phase: ...}, ...])``."""
    out = []
    for m, mat in enumerate(materials):
        try:
            hom = str(mat["homogenization"])
            if "phases" in mat:
                phases = [str(p) for p in mat["phases"]]
            else:
                phases = [str(c["phase"]) for c in mat["constituents"]]
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"materials[{m}]: expected dict(homogenization=..., phases=[...]) "
                f"or dict(homogenization=..., constituents=[{{phase: ...}}]), got {mat!r}"
            ) from err
        if not phases:
            raise ValueError(f"materials[{m}] has no constituents")
        out.append((hom, phases))
    return out


class DADF5Writer:
    """Write polyfe2 results as a DADF5 file readable by ``damask.Result``.

    Parameters
    ----------
    path : file name (``.hdf5``).
    cells : (Nx, Ny, Nz).
    size : physical size (3,) [m].
    origin : (3,) [m].
    material_id : int array (Nx, Ny, Nz) indexing ``materials``; default all 0.
    materials : list of ``dict(homogenization=name, phases=[phase per constituent])`` (or
        material.yaml style entries with ``constituents: [{phase: ...}]``). All materials must
        have the same number of constituents K. Default: one material, homogenization
        ``'SX'``, phase ``'phase'``.
    setup_files : ``{file name: text}`` stored under ``/setup`` (material.yaml, load.yaml,
        the grid file name, numerics ...); ``damask.Result.export_simulation_setup`` writes
        them back out.
    mode : ``'w'`` create/truncate, ``'a'`` continue an existing file (restart; geometry
        and mappings must match).
    keep_open : keep the HDF5 file open between increments (flushed after each) instead of
        closing it; faster for many tiny increments, but then other processes cannot read it
        while the run goes on. Default False.
    compression : h5py compression for increment datasets (e.g. ``'gzip'``); default None.
    call : string stored as the root attribute ``call`` (default: ``sys.argv``).
    phase_lattice : ``{phase: lattice}`` (e.g. ``{'Aluminum': 'cF'}``); added as attribute
        ``lattice`` to orientation datasets ``O`` (damask's IPF/pole-figure helpers need it).
    """

    def __init__(
        self,
        path,
        cells: Sequence[int],
        size: Sequence[float],
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        material_id=None,
        materials=None,
        setup_files: Mapping[str, str] | None = None,
        *,
        mode: str = "w",
        keep_open: bool = False,
        compression: str | None = None,
        call: str | None = None,
        phase_lattice: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self.cells = np.asarray(cells, dtype=np.int64).reshape(3)
        self.size = np.asarray(size, dtype=np.float64).reshape(3)
        self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        self.N = int(np.prod(self.cells))
        self.keep_open = keep_open
        self.compression = compression
        self.phase_lattice = dict(phase_lattice or {})
        self._h5: h5py.File | None = None
        self._closed = False

        if materials is None:
            materials = [dict(homogenization="SX", phases=["phase"])]
        mats = _normalise_materials(materials)
        Ks = {len(p) for _, p in mats}
        if len(Ks) != 1:
            raise ValueError(f"all materials must have the same number of constituents, got {sorted(Ks)}")
        self.K = Ks.pop()

        if material_id is None:
            mid = np.zeros(self.N, dtype=np.int64)
        else:
            material_id = to_numpy(material_id)
            if tuple(material_id.shape) != tuple(self.cells):
                raise ValueError(f"material_id has shape {material_id.shape}, expected {tuple(self.cells)}")
            mid = flatten_cells(material_id).astype(np.int64)
        if mid.min() < 0 or mid.max() >= len(mats):
            raise ValueError(f"material_id must lie in [0, {len(mats) - 1}], got [{mid.min()}, {mid.max()}]")
        self.material_id_flat = mid

        # --- mappings -----------------------------------------------------------------
        self.phases = list(dict.fromkeys(p for _, ps in mats for p in ps))
        self.homogenizations = list(dict.fromkeys(h for h, _ in mats))
        ph_of_mat = np.array([[self.phases.index(p) for p in ps] for _, ps in mats], dtype=np.int64)
        ho_of_mat = np.array([self.homogenizations.index(h) for h, _ in mats], dtype=np.int64)
        ph_idx = ph_of_mat[mid]  # (N, K)
        ho_idx = ho_of_mat[mid]  # (N,)

        flat = ph_idx.ravel()  # cell outer, constituent inner
        ph_entry = np.zeros(flat.shape, dtype=np.int32)
        #: per phase: positions into the flattened (N*K) (cell, constituent) array, entry order
        self.phase_positions: dict[str, np.ndarray] = {}
        for p, name in enumerate(self.phases):
            pos = np.nonzero(flat == p)[0]
            ph_entry[pos] = np.arange(pos.size, dtype=np.int32)
            if pos.size:
                self.phase_positions[name] = pos
        ho_entry = np.zeros(self.N, dtype=np.int32)
        #: per homogenization: cell indices (x-fastest flat order), entry order
        self.homogenization_cells: dict[str, np.ndarray] = {}
        for h, name in enumerate(self.homogenizations):
            pos = np.nonzero(ho_idx == h)[0]
            ho_entry[pos] = np.arange(pos.size, dtype=np.int32)
            if pos.size:
                self.homogenization_cells[name] = pos
        # only labels that actually occur (damask.Result expects a group for every label in cell_to)
        self.phases = [p for p in self.phases if p in self.phase_positions]
        self.homogenizations = [h for h in self.homogenizations if h in self.homogenization_cells]

        L_ph = max(len(p.encode()) for p in self.phases)
        L_ho = max(len(h.encode()) for h in self.homogenizations)
        all_phases = list(dict.fromkeys(p for _, ps in mats for p in ps))
        all_homs = list(dict.fromkeys(h for h, _ in mats))
        cell_to_phase = np.empty((self.N, self.K), dtype=[("label", f"S{L_ph}"), ("entry", "<i4")])
        cell_to_phase["label"] = np.array([p.encode() for p in all_phases], dtype=f"S{L_ph}")[ph_idx]
        cell_to_phase["entry"] = ph_entry.reshape(self.N, self.K)
        cell_to_ho = np.empty(self.N, dtype=[("label", f"S{L_ho}"), ("entry", "<i4")])
        cell_to_ho["label"] = np.array([h.encode() for h in all_homs], dtype=f"S{L_ho}")[ho_idx]
        cell_to_ho["entry"] = ho_entry

        # --- file -----------------------------------------------------------------------
        if mode == "w":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(self.path, "w") as f:
                f.attrs["DADF5_version_major"] = np.int32(DADF5_VERSION[0])
                f.attrs["DADF5_version_minor"] = np.int32(DADF5_VERSION[1])
                f.attrs["creator"] = _creator()
                f.attrs["created"] = _now()
                f.attrs["call"] = call if call is not None else " ".join(sys.argv)
                g = f.create_group("geometry")
                g.attrs["cells"] = self.cells.astype(np.int32)
                g.attrs["size"] = self.size
                g.attrs["origin"] = self.origin
                c = f.create_group("cell_to")
                c.attrs["description"] = "mappings to place data in space"
                for name, data, desc in (
                    ("phase", cell_to_phase, "cell ID and constituent ID to phase results"),
                    ("homogenization", cell_to_ho, "cell ID to homogenization results"),
                ):
                    d = c.create_dataset(name, data=data)
                    self._stamp(d, desc, None)
                s = f.create_group("setup")
                for fname, text in (setup_files or {}).items():
                    self._write_setup(s, fname, text)
        elif mode == "a":
            with h5py.File(self.path, "r") as f:
                if not np.array_equal(f["geometry"].attrs["cells"], self.cells):
                    raise ValueError(f"{self.path}: cells {f['geometry'].attrs['cells']} != {self.cells}")
                old = f["cell_to/phase"][()]
                if old.shape != cell_to_phase.shape or not np.array_equal(old["entry"], cell_to_phase["entry"]):
                    raise ValueError(f"{self.path}: phase mapping differs from the given materials")
            if setup_files:
                with h5py.File(self.path, "a") as f:
                    s = f.require_group("setup")
                    for fname, text in setup_files.items():
                        self._write_setup(s, fname, text)
        else:
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _stamp(dset, description: str, unit: str | None):
        dset.attrs["creator"] = _creator()
        dset.attrs["created"] = _now()
        dset.attrs["description"] = description
        if unit is not None:
            dset.attrs["unit"] = unit

    @staticmethod
    def _write_setup(group, fname: str, text: str):
        if fname in group:
            del group[fname]
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        d = group.create_dataset(fname, data=np.array([raw], dtype=f"S{max(1, len(raw))}"))
        d.attrs["description"] = "simulation setup file"

    def _file(self) -> h5py.File:
        if self._closed:
            raise RuntimeError(f"{self.path}: writer is closed")
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "a")
        return self._h5

    def _release(self):
        if self._h5 is not None:
            if self.keep_open:
                self._h5.flush()
            else:
                self._h5.close()
                self._h5 = None

    def _dataset(self, group, name, data, unit, description, extra_attrs=None):
        data = np.ascontiguousarray(data)
        kw = {}
        if self.compression and data.size > 4096:
            kw = dict(compression=self.compression, shuffle=True)
        d = group.create_dataset(name, data=data, **kw)
        self._stamp(d, description, unit)
        for k, v in (extra_attrs or {}).items():
            d.attrs[k] = v
        return d

    def _meta(self, name, units, descriptions):
        base = name.split("/")[-1]
        unit, desc = DEFAULT_META.get(base, ("1", base))
        return (units or {}).get(name, unit), (descriptions or {}).get(name, desc)

    def _check_cell_field(self, name, A, trailing=None):
        A = to_numpy(A)
        if tuple(A.shape[:3]) != tuple(self.cells) or (trailing is not None and tuple(A.shape[3:]) != trailing):
            want = tuple(self.cells) + (trailing if trailing is not None else ("...",))
            raise ValueError(f"{name} has shape {A.shape}, expected {want}")
        return A

    def _check_constituent_field(self, name: str, A: np.ndarray) -> np.ndarray:
        if tuple(A.shape[:4]) != tuple(self.cells) + (self.K,):
            raise ValueError(
                f"constituent field {name!r} has shape {A.shape}, expected {tuple(self.cells) + (self.K,)} + (...)")
        return A

    # ------------------------------------------------------------------ API
    def write_increment(
        self,
        increment: int,
        t: float,
        F,
        P,
        constituent_fields: Mapping[str, np.ndarray] | None = None,
        units: Mapping[str, str] | None = None,
        descriptions: Mapping[str, str] | None = None,
        homogenization_fields: Mapping[str, np.ndarray] | None = None,
        displacements: bool = True,
    ) -> None:
        """Write one increment (and make it durable before returning).

        Parameters
        ----------
        increment : increment number (``increment_<n>``; rewriting an existing one replaces it).
        t : time [s].
        F, P : cell (homogenized) deformation gradient and first Piola-Kirchhoff stress [Pa],
            (Nx, Ny, Nz, 3, 3), numpy or torch.
        constituent_fields : ``{name: (Nx, Ny, Nz, K, ...)}`` per-constituent outputs written to
            ``phase/<ph>/mechanical/<name>`` (a name ``'<group>/<name>'`` picks another group
            than ``mechanical``); a value may be a function that returns the array, called when
            the field is written, so that one field of every crystal at a time is in memory.
            ``F`` defaults to the cell F for every constituent (iso-strain); ``P`` defaults to the
            cell P when K == 1 and is required for K > 1.
        units, descriptions : per-name overrides of :data:`DEFAULT_META` (unknown names get
            unit ``'1'``).
        homogenization_fields : extra ``{name: (Nx, Ny, Nz, ...)}`` written next to the
            homogenization's F and P.
        displacements : write ``geometry/u_p`` and ``geometry/u_n`` (from F via
            ``damask.grid_filters``; ``export_VTK`` needs ``u_n``, point mode ``u_p``).
        """
        import damask

        F = self._check_cell_field("F", F, (3, 3)).astype(np.float64, copy=False)
        P = self._check_cell_field("P", P, (3, 3)).astype(np.float64, copy=False)
        cfields = {k: v if callable(v) else to_numpy(v) for k, v in (constituent_fields or {}).items()}
        for k, v in cfields.items():
            if not callable(v):
                self._check_constituent_field(k, v)
        if "F" not in cfields and "mechanical/F" not in cfields:
            cfields["F"] = np.broadcast_to(F[:, :, :, None], tuple(self.cells) + (self.K, 3, 3))
        if "P" not in cfields and "mechanical/P" not in cfields:
            if self.K != 1:
                raise ValueError("constituent_fields['P'] is required when K > 1")
            cfields["P"] = P[:, :, :, None]

        name = f"increment_{int(increment)}"
        tmp = f"_incomplete_{name}"
        f = self._file()
        try:
            for stale in (tmp,):
                if stale in f:
                    del f[stale]
            inc = f.create_group(tmp)
            inc.attrs["t/s"] = np.float64(t)

            geo = inc.create_group("geometry")
            if displacements:
                u_p = damask.grid_filters.displacement_point(self.size, F)
                u_n = damask.grid_filters.displacement_node(self.size, F)
                self._dataset(geo, "u_p", flatten_cells(u_p), "m",
                              "displacements of the materialpoints (cell centers)")
                self._dataset(geo, "u_n", flatten_cells(u_n), "m",
                              "displacements of the nodes")

            # phases, one field at a time: the reordered copy of a field of every crystal is large
            phase_groups = {ph: inc.create_group(f"phase/{ph}") for ph in self.phases}
            for k, v in cfields.items():
                if callable(v):
                    v = self._check_constituent_field(k, to_numpy(v()))
                fv = flatten_cells(v)  # (N, K, ...)
                fv = fv.reshape((self.N * self.K,) + fv.shape[2:])
                grp, _, dname = k.rpartition("/")
                unit, desc = self._meta(k, units, descriptions)
                for ph, gph in phase_groups.items():
                    g = gph.require_group(grp or "mechanical")
                    extra = {"lattice": self.phase_lattice[ph]} if dname == "O" and ph in self.phase_lattice else None
                    self._dataset(g, dname, fv[self.phase_positions[ph]], unit, desc, extra)
                del v, fv

            # homogenizations
            hfields = {"F": F, "P": P}
            for k, v in (homogenization_fields or {}).items():
                hfields[k] = self._check_cell_field(k, v)
            flat_h = {k: flatten_cells(v) for k, v in hfields.items()}
            for ho in self.homogenizations:
                cells_ho = self.homogenization_cells[ho]
                gho = inc.create_group(f"homogenization/{ho}")
                for k, fv in flat_h.items():
                    grp, _, dname = k.rpartition("/")
                    g = gho.require_group(grp or "mechanical")
                    unit, desc = self._meta(k, units, descriptions)
                    self._dataset(g, dname, fv[cells_ho], unit, desc)

            if name in f:
                del f[name]
            f.move(tmp, name)
            f.flush()
        finally:
            self._release()

    def increments(self) -> list[tuple[int, float]]:
        """(increment, t) of the increments in the file, ascending."""
        with h5py.File(self.path, "r") as f:
            incs = [(int(k.split("_")[1]), float(f[k].attrs["t/s"])) for k in f if k.startswith("increment_")]
        return sorted(incs)

    def drop_increments_after(self, increment: int) -> None:
        """Remove the increments after ``increment`` (a restart recomputes them)."""
        f = self._file()
        try:
            for k in list(f):
                if (k.startswith("increment_") and int(k.split("_")[1]) > increment) or k.startswith("_incomplete_"):
                    del f[k]
            f.flush()
        finally:
            self._release()

    def read_cell_field(self, increment: int, name: str) -> np.ndarray:
        """A homogenization field of one increment as (Nx, Ny, Nz, ...) (:func:`read_cell_field`)."""
        return read_cell_field(self.path, increment, name)

    def write_setup_file(self, name: str, text: str) -> None:
        """Add (or replace) a file under ``/setup``."""
        f = self._file()
        try:
            self._write_setup(f.require_group("setup"), name, text)
        finally:
            self._release()

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            if self._h5 is not None:
                self._h5.close()
        except Exception:
            pass


def read_cell_field(path, increment: int, name: str) -> np.ndarray:
    """A homogenization field (``F``, ``P`` ...) of one increment of a DADF5 file as
    (Nx, Ny, Nz, ...), placed by the file's ``cell_to/homogenization`` mapping."""
    with h5py.File(path, "r") as f:
        nx, ny, nz = (int(c) for c in f["geometry"].attrs["cells"])
        cell_to = f["cell_to/homogenization"][()]
        out = None
        for label in np.unique(cell_to["label"]):
            cells = np.flatnonzero(cell_to["label"] == label)
            data = f[f"increment_{int(increment)}/homogenization/{label.decode()}/mechanical/{name}"][()]
            if out is None:
                out = np.empty((nx * ny * nz,) + data.shape[1:], dtype=data.dtype)
            out[cells] = data[cell_to["entry"][cells]]
    return unflatten_cells(out, (nx, ny, nz))
