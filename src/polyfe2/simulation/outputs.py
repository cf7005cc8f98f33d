"""Everything a run writes: DADF5 (``damask.Result``), XDMF (ParaView), curve and status
tables (CSV), and PNG plots (stress-strain curve, σ_xx slice).

On several MPI ranks every rank hands in its z-slab; rank 0 gathers the slabs and writes files
with the layout of a one-rank run (:func:`.parallel.gather_slabs`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from ..errors import InputError
from ..io import CurveWriter, DADF5Writer, StatusWriter, XDMFSeriesWriter, plot_slice, plot_stress_strain
from ..io.tables import truncate_rows
from ..mechanics import stress_Cauchy
from .parallel import gather_slabs


def _listed_outputs(phase: dict) -> set[str] | None:
    """The constituent fields a phase asks for with DAMASK's ``output`` lists (mechanical and
    plastic), always with F and P; None (everything the backend offers) when it lists none."""
    mech = phase.get("mechanical") or {}
    lists = [mech.get("output"), (mech.get("plastic") or {}).get("output")]
    if all(not isinstance(lst, list) for lst in lists):
        return None
    return {"F", "P"} | {str(n) for lst in lists if isinstance(lst, list) for n in lst}


class RunOutputs:
    """Writers of one run, all under ``config.output_dir`` named after ``config.name``.

    ``comm``/``z_range``: the run's communicator and this rank's z-planes (fields handed in are
    slabs; rank 0 writes). ``restart``: continue the files of an earlier run from that increment
    (later increments are dropped; the XDMF series is rebuilt from the DADF5 file)."""

    def __init__(self, config, grid, *, comm=None, z_range=None, restart: int | None = None):
        self.directory = Path(config.output_dir)
        self.comm = comm
        self.root = comm is None or comm.Get_rank() == 0
        z0, z1 = z_range or (0, grid.cells[2])
        self.local_cells = (grid.cells[0], grid.cells[1], z1 - z0)
        name = config.name
        self.grid = grid
        self.cells = grid.cells
        self.files = {"results (DADF5)": self.directory / f"{name}.hdf5"}
        if config.output.xdmf:
            self.files["ParaView (XDMF)"] = self.directory / f"{name}.xdmf"
        self.files["curve (CSV)"] = self.directory / f"{name}_curve.csv"
        self.files["status (CSV)"] = self.directory / f"{name}_status.csv"
        self.files["status (text)"] = self.directory / f"{name}_status.txt"
        self.plots = config.output.plots
        self._groups_index = None
        self._last = None
        mat = config.material
        self.K = int(mat.n_constituents().max())
        self._wanted = {ph: _listed_outputs(entry) for ph, entry in mat.phases.items()}
        self.dadf5 = self.xdmf = self.curve = self.status = None
        if not self.root:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the results directory {self.directory}: {e.strerror}",
                             file=config.path, key="output/directory") from None
        K = self.K
        self.material_id = config.geometry.material
        materials = [dict(homogenization=str(h), phases=[str(p)] * K) for h, p in zip(mat.homogenization, mat.phase)]
        def text(path, content):   # the file as the user wrote it, else as polyfe2 would write it
            return Path(path).read_text() if path is not None else yaml.safe_dump(content(), sort_keys=False)

        setup = {Path(mat.path or "material.yaml").name: text(mat.path, mat.to_mapping),
                 Path(config.load.path or "load.yaml").name: text(config.load.path, config.load.to_mapping),
                 Path(config.path or f"{name}.yaml").name: text(config.path, config.to_mapping)}
        lattice = {ph: p.get("lattice", "cF") for ph, p in config.material.phases.items()}
        resuming = restart is not None
        if resuming and not self.files["results (DADF5)"].is_file():
            raise InputError(f"cannot restart: the results file {self.files['results (DADF5)']} is missing",
                             file=config.path, key="--restart")
        self.dadf5 = DADF5Writer(self.files["results (DADF5)"], grid.cells, grid.size, grid.origin,
                                 material_id=self.material_id, materials=materials, setup_files=setup,
                                 phase_lattice=lattice, mode="a" if resuming else "w")
        if resuming:
            self.dadf5.drop_increments_after(restart)
            for table in ("curve (CSV)", "status (CSV)"):
                truncate_rows(self.files[table], restart)
        if config.output.xdmf:
            self.xdmf = XDMFSeriesWriter(self.files["ParaView (XDMF)"], grid.cells, grid.size, grid.origin,
                                         material_id=self.material_id)
            for inc, t in (self.dadf5.increments() if resuming else []):   # the series up to the restart point
                self.xdmf.write(t, {"F": self.dadf5.read_cell_field(inc, "F"),
                                    "P": self.dadf5.read_cell_field(inc, "P")})
        self.curve = CurveWriter(self.files["curve (CSV)"], append=resuming)
        self.status = StatusWriter(self.files["status (CSV)"], self.files["status (text)"], append=resuming)

    def bind(self, model) -> None:
        """Know which cells each phase group holds (to assemble constituent fields)."""
        self._groups_index = {g.name: g.index.cpu().numpy() for g in model.groups}

    def _constituent_fields(self, outputs: dict, P: np.ndarray) -> dict:
        """The grid's constituent fields, each as a function that assembles it from the phases'
        outputs when it is written; it consumes them, so that one field of every crystal at a time
        is held beside the material state. Phases without a ``P`` of their own get the cell's P."""
        N, K = int(np.prod(self.local_cells)), self.K
        for ph, out in outputs.items():
            for n in [n for n in out if self._wanted.get(ph) is not None and n not in self._wanted[ph]]:
                del out[n]
        with_P = {ph for ph, out in outputs.items() if "P" in out}
        shapes = {"P": (3, 3)} | {n: tuple(t.shape[2:]) for out in outputs.values() for n, t in out.items()}
        if self.comm is not None:   # a rank without cells of a phase has none of its fields: agree on all
            shapes = {n: s for every in self.comm.allgather(shapes) for n, s in every.items()}

        def assemble(name: str) -> np.ndarray:
            full = np.zeros((N, K) + shapes[name])
            for phase, out in outputs.items():
                if name in out:
                    full[self._groups_index[phase]] = out.pop(name).detach().cpu().numpy()
            if name == "P":
                for phase, idx in (self._groups_index or {}).items():
                    if phase not in with_P:
                        full[idx] = P.reshape(N, 1, 3, 3)[idx]
            return full.reshape(*self.local_cells, *full.shape[1:])

        return {name: (lambda name=name: assemble(name)) for name in sorted(shapes)}   # one order on all ranks

    def write_increment(self, increment: int, t: float, F: torch.Tensor, P: torch.Tensor, outputs: dict) -> None:
        """Write increment ``increment``; ``outputs`` (the model's per-phase outputs) is consumed.
        On one rank the writer assembles the constituent fields one at a time; on several, rank 0
        gathers them field by field."""
        Fn, Pn = F.detach().cpu().numpy(), P.detach().cpu().numpy()
        fields = self._constituent_fields(outputs, Pn)
        if self.comm is not None:
            cell = gather_slabs(self.comm, {"F": Fn, "P": Pn})
            fields = {name: gather_slabs(self.comm, {name: make()}) for name, make in fields.items()}
            if not self.root:
                return
            Fn, Pn = cell["F"], cell["P"]
            fields = {name: g[name] for name, g in fields.items()}
        self.dadf5.write_increment(increment, t, Fn, Pn, fields)
        if self.xdmf is not None:
            self.xdmf.write(t, {"F": Fn, "P": Pn})
        self.curve.write(increment, t, Fn, Pn)
        self._last = (Fn, Pn)

    def status_row(self, increment, t, dt, level, res) -> None:
        if self.root:
            self.status.write(increment, t, dt, level, res.converged, res.iterations, res.evaluations,
                              res.err_div, res.err_bc, res.wall, res.reason)

    def finish(self, summary) -> None:
        if not self.root:
            return
        for w in (self.dadf5, self.xdmf, self.curve, self.status):
            if w is not None:
                w.close()
        if self.plots and self._last is not None:
            png = self.files["stress-strain (PNG)"] = self.directory / f"{self.files['curve (CSV)'].stem}.png"
            plot_stress_strain(self.files["curve (CSV)"], png)
            Fn, Pn = self._last
            sigma = stress_Cauchy(Pn, Fn)
            png = self.files["sigma_xx slice (PNG)"] = self.directory / "sigma_xx_slice.png"
            plot_slice(sigma[..., 0, 0] / 1e6, png, axis="z", title="Cauchy stress σ_xx, last increment",
                       cbar_label="σ_xx / MPa", size=self.grid.size, origin=self.grid.origin)


class AverageRecorder:
    """Stands in for a run's outputs when only the averages are wanted (data sets, studies):
    keeps the time, average F and average P of every written increment, in memory."""

    def __init__(self):
        self.files: dict = {}
        self.rows: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}

    def bind(self, model) -> None:
        pass

    def write_increment(self, increment: int, t: float, F: torch.Tensor, P: torch.Tensor, outputs: dict) -> None:
        if increment > 0:
            self.rows[increment] = (t, F.mean(dim=(0, 1, 2)).cpu().numpy(), P.mean(dim=(0, 1, 2)).cpu().numpy())

    def status_row(self, *args) -> None:
        pass

    def finish(self, summary) -> None:
        pass

    def arrays(self, T: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t (T,), F (T,3,3), P (T,3,3)) of increments 1 .. T (default: the last written one);
        increments not written (a run that stopped) are NaN."""
        T = max(self.rows, default=0) if T is None else T
        t, F, P = np.full(T, np.nan), np.full((T, 3, 3), np.nan), np.full((T, 3, 3), np.nan)
        for inc, (ti, Fi, Pi) in self.rows.items():
            if inc <= T:
                t[inc - 1], F[inc - 1], P[inc - 1] = ti, Fi, Pi
        return t, F, P
