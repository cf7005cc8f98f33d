"""Everything a run writes: DADF5 (``damask.Result``), XDMF (ParaView), curve and status
tables (CSV), and PNG plots (stress-strain curve, σ_xx slice)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from ..errors import InputError
from ..io import CurveWriter, DADF5Writer, StatusWriter, XDMFSeriesWriter, plot_slice, plot_stress_strain
from ..mechanics import stress_Cauchy


class RunOutputs:
    """Writers of one run, all under ``config.output_dir`` named after ``config.name``."""

    def __init__(self, config, grid):
        self.directory = Path(config.output_dir)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the results directory {self.directory}: {e.strerror}",
                             file=config.path, key="output/directory") from None
        name = config.name
        self.grid = grid
        self.cells = grid.cells
        mat = config.material
        Ks = mat.n_constituents()
        self.K = K = int(Ks.max())
        self.material_id = config.geometry.material
        materials = [dict(homogenization=str(h), phases=[str(p)] * K) for h, p in zip(mat.homogenization, mat.phase)]
        def text(path, content):   # the file as the user wrote it, else as polyfe2 would write it
            return Path(path).read_text() if path is not None else yaml.safe_dump(content(), sort_keys=False)

        setup = {Path(mat.path or "material.yaml").name: text(mat.path, mat.to_mapping),
                 Path(config.load.path or "load.yaml").name: text(config.load.path, config.load.to_mapping),
                 Path(config.path or f"{name}.yaml").name: text(config.path, config.to_mapping)}
        lattice = {ph: p.get("lattice", "cF") for ph, p in config.material.phases.items()}
        self.files = {"results (DADF5)": self.directory / f"{name}.hdf5"}
        self.dadf5 = DADF5Writer(self.files["results (DADF5)"], grid.cells, grid.size, grid.origin,
                                 material_id=self.material_id, materials=materials, setup_files=setup,
                                 phase_lattice=lattice)
        self.xdmf = None
        if config.output.xdmf:
            self.files["ParaView (XDMF)"] = self.directory / f"{name}.xdmf"
            self.xdmf = XDMFSeriesWriter(self.files["ParaView (XDMF)"], grid.cells, grid.size, grid.origin,
                                         material_id=self.material_id)
        self.files["curve (CSV)"] = self.directory / f"{name}_curve.csv"
        self.files["status (CSV)"] = self.directory / f"{name}_status.csv"
        self.files["status (text)"] = self.directory / f"{name}_status.txt"
        self.curve = CurveWriter(self.files["curve (CSV)"])
        self.status = StatusWriter(self.files["status (CSV)"], self.files["status (text)"])
        self.plots = config.output.plots
        self._groups_index = None
        self._last = None

    def bind(self, model) -> None:
        """Know which cells each phase group holds (to assemble constituent fields)."""
        self._groups_index = {g.name: g.index.cpu().numpy() for g in model.groups}

    def _constituent_fields(self, outputs: dict, P: np.ndarray) -> dict[str, np.ndarray]:
        N, K = self.grid.N, self.K
        fields: dict[str, np.ndarray] = {}
        names = {n for out in outputs.values() for n in out}
        for name in names:
            sample = next(out[name] for out in outputs.values() if name in out)
            full = np.zeros((N, K) + tuple(sample.shape[2:]))
            for phase, out in outputs.items():
                if name in out:
                    full[self._groups_index[phase]] = out[name].detach().cpu().numpy()
            fields[name] = full
        if "P" not in fields or len(outputs) < len(self._groups_index or {}):
            full = fields.get("P", np.zeros((N, K, 3, 3)))
            Pflat = P.reshape(N, 1, 3, 3)
            for phase, idx in (self._groups_index or {}).items():
                if phase not in outputs or "P" not in outputs[phase]:
                    full[idx] = Pflat[idx]
            fields["P"] = full
        return {n: a.reshape(*self.cells, *a.shape[1:]) for n, a in fields.items()}

    def write_increment(self, increment: int, t: float, F: torch.Tensor, P: torch.Tensor, outputs: dict) -> None:
        Fn, Pn = F.detach().cpu().numpy(), P.detach().cpu().numpy()
        self.dadf5.write_increment(increment, t, Fn, Pn, self._constituent_fields(outputs, Pn))
        if self.xdmf is not None:
            self.xdmf.write(t, {"F": Fn, "P": Pn})
        self.curve.write(increment, t, Fn, Pn)
        self._last = (Fn, Pn)

    def status_row(self, increment, t, dt, level, res) -> None:
        self.status.write(increment, t, dt, level, res.converged, res.iterations, res.evaluations,
                          res.err_div, res.err_bc, res.wall)

    def finish(self, summary) -> None:
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
