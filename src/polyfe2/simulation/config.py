"""The run configuration: what to simulate, read from DAMASK's files or built in memory.

A :class:`RunConfig` holds a :class:`Geometry` (grid and material ID per cell), a
:class:`MaterialConfig` (phases, homogenizations and the constituents of every material), a
:class:`LoadCase` (load steps), the backend choice, the device, the output and the solver
options. :meth:`RunConfig.load` and :meth:`RunConfig.build` validate it once, up front
(:meth:`RunConfig.validate`); :meth:`RunConfig.save` writes DAMASK's files
(``grid.vti``, ``material.yaml``, ``load.yaml``) and the run config, :meth:`RunConfig.load`
reads them back. Run config (YAML), paths relative to it::

    geometry: grid.vti            # DAMASK geometry (material ID per cell)
    material: material.yaml       # DAMASK material configuration
    load: load.yaml               # DAMASK load case (grid solver)
    numerics: numerics.yaml       # optional DAMASK numerics (solver/grid/...): see NUMERICS
    backend: taylor               # constitutive backend of phases with plasticity
    backend_options: {}           # options of that backend
    backends: {}                  # per-phase override, e.g. {Void: elastic}
    device: auto                  # auto | cpu | cuda | cuda:N
    output: {directory: results, name: <config stem>, xdmf: true, plots: true}
    solver: {...}                 # polyfe2.solver.options.SOLVER; wins over numerics.yaml

Every key is declared in a :class:`~polyfe2.schema.Schema` (here, in
:mod:`polyfe2.solver.options`, :mod:`polyfe2.solver.boundary` and
:mod:`polyfe2.constitutive.parameters`); every problem is one
:class:`~polyfe2.errors.InputError` line naming the file, the key and the expected value.
"""
from __future__ import annotations

import dataclasses
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..constitutive import registry
from ..constitutive.parameters import check_phase, has_plasticity
from ..devices import check_device_name
from ..errors import InputError
from ..schema import Field, Schema, document
from ..solver.boundary import LoadStep, check_load_path, make_load_step
from ..solver.grid import Grid
from ..solver.options import SolverOptions

RUN = document(Schema("run config (run.yaml)", {
    "geometry": Field("string", "DAMASK geometry (.vti, cell data 'material'), relative to the run config"),
    "material": Field("string", "DAMASK material configuration (material.yaml)"),
    "load": Field("string", "DAMASK grid load case (load.yaml)"),
    "numerics": Field("string", "DAMASK numerics.yaml (keys below); default: numerics.yaml beside the load "
                      "file when there is one", default=None),
    "backend": Field("string", "backend of the phases with plasticity (polyfe2 backends lists them)",
                     default="taylor"),
    "backend_options": Field("mapping", "options of that backend", default=None),
    "backends": Field("mapping", "per-phase backend, e.g. {Void: elastic}", default=None),
    "device": Field("string", "auto (CUDA when present), cpu, cuda or cuda:N", default="auto"),
    "output": Field("mapping", "where and what to write (below)", default=None),
    "solver": Field("mapping", "solver numerics (below); wins over numerics.yaml", default=None),
}))

OUTPUT = document(Schema("run config: output", {
    "directory": Field("string", "results directory, relative to the run config", default="results"),
    "name": Field("string", "stem of the result files; default: the run config's stem", default=None),
    "xdmf": Field("boolean", "write the XDMF series for ParaView", default=True),
    "plots": Field("boolean", "write the PNG plots", default=True),
}))

MATERIAL_FILE = Schema("material.yaml", {
    "homogenization": Field("mapping", "homogenization schemes by name"),
    "phase": Field("mapping", "phases by name"),
    "material": Field("any", "list of materials: homogenization and constituents; or the name of an HDF5 "
                             "file (relative to material.yaml) with datasets homogenization (n,), phase (n,), "
                             "O (n, K, 4) and v (n, K): one row per material ID, for grids with a material per cell"),
})

#: material.yaml files with more materials than this are saved with their constituents in an HDF5 side file
SIDE_FILE_MATERIALS = 20000

HOMOGENIZATION = document(Schema("material.yaml: homogenization/NAME", {
    "N_constituents": Field("integer", "constituents per material point", low=1),
    "mechanical": Field("mapping", "type pass (one constituent) or isostrain (Taylor)"),
}))

HOMOGENIZATION_MECHANICAL = Schema("material.yaml: homogenization/NAME/mechanical", {
    "type": Field("choice", "homogenization scheme", choices=("pass", "isostrain")),
    "output": Field("any", "DAMASK's output list (F and P are always written)", default=None),
})

MATERIAL = Schema("material.yaml: material[i]", {
    "homogenization": Field("string", "name of a homogenization"),
    "constituents": Field("any", "list of constituents"),
})

CONSTITUENT = document(Schema("material.yaml: material[i]/constituents[j]", {
    "phase": Field("string", "name of a phase"),
    "O": Field("numbers", "orientation: unit quaternion, scalar first (DAMASK's convention)", length=4),
    "v": Field("number", "volume fraction; those of a material sum to 1", low=0.0, high=1.0),
}))

LOAD_FILE = Schema("load.yaml", {
    "solver": Field("mapping", "mechanical: spectral_basic", default=None),
    "loadstep": Field("any", "list of load steps"),
})

#: DAMASK's numerics.yaml keys (solver/grid/...) -> SolverOptions fields
NUMERICS_GRID = document(Schema("numerics.yaml: solver/grid", {
    "N_cutback_max": Field("integer", "-> solver/N_cutback_max", default=None, low=0),
    "N_staggered_iter_max": Field("integer", "staggered iterations of coupled fields (mechanics only: no effect)",
                                  default=None, low=1),
    "PETSc_options": Field("string", "PETSc options added to solver/petsc_options", default=None),
    "mechanical": Field("mapping", "(below)", default=None),
    "FFT": Field("mapping", "(below)", default=None),
}))
NUMERICS_MECHANICAL = document(Schema("numerics.yaml: solver/grid/mechanical", {
    "N_iter_min": Field("integer", "-> solver/N_iter_min", default=None, low=0),
    "N_iter_max": Field("integer", "-> solver/N_iter_max", default=None, low=1),
    "eps_abs_div(P)": Field("number", "-> solver/eps_div_abs", default=None, low=0, open_low=True),
    "eps_rel_div(P)": Field("number", "-> solver/eps_div_rel", default=None, low=0, open_low=True),
    "eps_abs_P": Field("number", "-> solver/eps_stress_abs", default=None, unit="Pa", low=0, open_low=True),
    "eps_rel_P": Field("number", "-> solver/eps_stress_rel", default=None, low=0, open_low=True),
    "update_gamma": Field("choice", "polyfe2 keeps the reference medium of the first increment", default=None,
                          choices=(False,)),
    "PETSc_options": Field("string", "PETSc options added to solver/petsc_options", default=None),
}))
NUMERICS_FFT = document(Schema("numerics.yaml: solver/grid/FFT", {
    "derivative": Field("choice", "-> solver/derivative: continuous, or FWBW_difference (= rotated)",
                        default=None, choices=("continuous", "FWBW_difference")),
    "divergence_correction": Field("choice", "lengths in voxel spacings (polyfe2's only choice)", default=None,
                                   choices=("grid+size", "size+grid")),
    "PETSc_options": Field("string", "PETSc options of DAMASK's FFT solvers (no effect in polyfe2)", default=None),
    "alpha": Field("number", "polarization scheme parameter (spectral_polarization: no effect)", default=None),
    "beta": Field("number", "polarization scheme parameter (spectral_polarization: no effect)", default=None),
    "eps_abs_curl(F)": Field("number", "polarization compatibility tolerance (no effect)", default=None),
    "eps_rel_curl(F)": Field("number", "polarization compatibility tolerance (no effect)", default=None),
    "memory_efficient": Field("boolean", "Γ applied without storing it (polyfe2 always does)", default=None),
    "FFTW_timelimit": Field("number", "FFTW planning time (torch.fft plans itself: no effect)", default=None),
    "FFTW_plan_mode": Field("string", "FFTW planning mode (torch.fft plans itself: no effect)", default=None),
}))
_NUMERICS_TO_SOLVER = {"N_cutback_max": "N_cutback_max", "N_iter_min": "N_iter_min", "N_iter_max": "N_iter_max",
                       "eps_abs_div(P)": "eps_div_abs", "eps_rel_div(P)": "eps_div_rel",
                       "eps_abs_P": "eps_stress_abs", "eps_rel_P": "eps_stress_rel"}


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; a missing, unreadable or malformed file is a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", file=path)
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise InputError(f"not a text file; expected the {what} in YAML", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"malformed YAML{where}: {problem}", file=path) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping at the top level, got {type(data).__name__}", file=path)
    return data


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------
@dataclass
class Geometry:
    """The periodic grid and the material ID of every cell (as ``damask.GeomGrid``)."""

    grid: Grid
    material: np.ndarray  # (Nx, Ny, Nz) material IDs
    path: Path | None = None

    @classmethod
    def from_array(cls, material: np.ndarray, size=None, origin=(0.0, 0.0, 0.0)) -> "Geometry":
        """Material IDs (Nx, Ny, Nz); ``size`` in m (default: one length unit per cell)."""
        material = np.asarray(material)
        if material.ndim != 3 or not np.issubdtype(material.dtype, np.integer) or material.min() < 0:
            raise InputError("expected a 3-D array of non-negative integer material IDs", key="material")
        cells = tuple(int(c) for c in material.shape)
        size = tuple(float(s) for s in (size if size is not None else cells))
        return cls(Grid(cells, size, tuple(float(o) for o in origin)), material)

    @classmethod
    def load(cls, path: Path) -> "Geometry":
        """A DAMASK geometry file (.vti) through ``damask.GeomGrid``."""
        import damask

        path = Path(path)
        if not path.is_file():
            raise InputError("geometry file not found", file=path)
        try:   # VTK logs pages for broken files; a plain XML check answers in one line first
            root = ET.parse(path).getroot()
        except (ET.ParseError, UnicodeDecodeError) as e:
            raise InputError(f"not a VTK XML image (.vti): {e}", file=path) from None
        if root.tag != "VTKFile" or root.get("type") != "ImageData":
            raise InputError(f"expected a VTK XML file of type ImageData, got <{root.tag} type="
                             f"{root.get('type')!r}>", file=path)
        try:
            _quiet_vtk()
            g = damask.GeomGrid.load(path)
        except Exception as e:  # damask/VTK raise various types for unreadable files
            raise InputError(f"not a readable DAMASK geometry (.vti with cell data 'material'): "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=path) from None
        mat = np.asarray(g.material)
        if mat.min() < 0:
            raise InputError(f"negative material ID {mat.min()}", file=path, key="material")
        grid = Grid(tuple(int(c) for c in g.cells), tuple(float(s) for s in g.size),
                    tuple(float(o) for o in g.origin))
        return cls(grid, mat, path)

    def save(self, path: Path, comments: str = "polyfe2") -> Path:
        import damask

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        damask.GeomGrid(self.material, size=np.array(self.grid.size), origin=np.array(self.grid.origin),
                        comments=comments).save(path)
        return path


def _quiet_vtk() -> None:
    """Send VTK's own error log nowhere: polyfe2 reports one line instead."""
    try:
        import vtk

        vtk.vtkObject.GlobalWarningDisplayOff()
    except ImportError:  # pragma: no cover - damask needs vtk
        pass


# ----------------------------------------------------------------------------------------------
# material
# ----------------------------------------------------------------------------------------------
@dataclass
class MaterialConfig:
    """Phases, homogenizations and the constituents of every material, as arrays.

    Attributes
    ----------
    phases : dict
        Phase name -> its material.yaml entry (validated).
    homogenizations : dict
        Homogenization name -> its entry (validated).
    homogenization : (n,) str array
        Homogenization of every material.
    phase : (n,) str array
        Phase of every material (one phase per material).
    O : (n, K, 4) float array
        Unit quaternions of the constituents (scalar first, q0 >= 0); K is the largest
        ``N_constituents``, shorter materials are padded with the identity and fraction 0.
    v : (n, K) float array
        Volume fractions; each row sums to 1.
    """

    phases: dict[str, dict]
    homogenizations: dict[str, dict]
    homogenization: np.ndarray
    phase: np.ndarray
    O: np.ndarray
    v: np.ndarray
    path: Path | None = None

    @property
    def n(self) -> int:
        return int(self.O.shape[0])

    @property
    def K(self) -> int:
        return int(self.O.shape[1])

    def n_constituents(self) -> np.ndarray:
        """(n,) constituents of every material (its homogenization's N_constituents)."""
        N = {h: d["N_constituents"] for h, d in self.homogenizations.items()}
        return np.array([N[h] for h in self.homogenization], dtype=int)

    @classmethod
    def from_arrays(cls, phases: dict, homogenizations: dict, homogenization, phase, O, v) -> "MaterialConfig":
        """Build and validate from arrays (one entry per material; vectorised checks, the same
        rules as :meth:`from_mapping`). ``O`` (n, K, 4), ``v`` (n, K); a material with fewer
        constituents than K has fraction 0 in the padding."""
        skeleton = cls.from_mapping({"homogenization": homogenizations, "phase": phases, "material": [
            {"homogenization": h, "constituents": [{"phase": next(iter(phases)), "O": [1.0, 0, 0, 0],
                                                   "v": 1.0 / d["N_constituents"]}] * d["N_constituents"]}
            for h, d in homogenizations.items()]})
        O = np.array(O, dtype=float)
        n = O.shape[0] if O.ndim == 3 else 0
        v = np.asarray(v, dtype=float)
        if O.ndim != 3 or O.shape[2] != 4 or v.shape != O.shape[:2]:
            raise InputError(f"expected O (n, K, 4) and v (n, K), got {O.shape} and {v.shape}", key="material")
        hom = np.broadcast_to(np.asarray(homogenization, dtype=str), (n,)).copy()
        ph = np.broadcast_to(np.asarray(phase, dtype=str), (n,)).copy()
        for names, defined, key in ((hom, skeleton.homogenizations, "homogenization"), (ph, skeleton.phases, "phase")):
            unknown = sorted(set(np.unique(names)) - set(defined))
            if unknown:
                raise InputError(f"{key} {unknown[0]!r} is not defined; defined: {sorted(defined)}", key=key)
        N = np.array([skeleton.homogenizations[h]["N_constituents"] for h in np.unique(hom)])
        N = N[np.searchsorted(np.unique(hom), hom)]
        used = np.arange(O.shape[1])[None, :] < N[:, None]
        checks = (("orientations must be finite unit quaternions", ~np.isfinite(O).all(-1) |
                   (used & (np.abs(np.linalg.norm(O, axis=-1) - 1.0) > 1e-6))),
                  ("volume fractions must be in [0, 1], 0 beyond N_constituents", ~((v >= 0) & (v <= 1) & (used | (v == 0)))),
                  ("volume fractions of a material must sum to 1", np.abs(v.sum(1) - 1.0)[:, None] > 1e-6))
        for what, bad in checks:
            if bad.any():
                i = int(np.argwhere(bad)[0][0])
                raise InputError(f"{what}; material {i} has O {O[i].tolist()}, v {v[i].tolist()}", key=f"material[{i}]")
        O[~used] = (1.0, 0.0, 0.0, 0.0)
        O = np.where(O[..., :1] < 0, -O, O)
        return cls(skeleton.phases, skeleton.homogenizations, hom, ph, O, v)

    @classmethod
    def load(cls, path: Path) -> "MaterialConfig":
        return cls.from_mapping(read_yaml(path, "material"), file=Path(path))

    @classmethod
    def from_mapping(cls, data: Any, *, file=None) -> "MaterialConfig":
        """Validate a material.yaml mapping (every key; quaternions unit, fractions summing to 1)."""
        top = MATERIAL_FILE.validate(data, file=file)
        homs = {}
        if not top["homogenization"]:
            raise InputError("expected at least one homogenization", file=file, key="homogenization")
        for name, h in top["homogenization"].items():
            k = f"homogenization/{name}"
            h = HOMOGENIZATION.validate(h, file=file, prefix=k)
            mech = HOMOGENIZATION_MECHANICAL.validate(h["mechanical"], file=file, prefix=f"{k}/mechanical")
            if mech["type"] == "pass" and h["N_constituents"] != 1:
                raise InputError(f"type 'pass' needs N_constituents 1, got {h['N_constituents']}", file=file,
                                 key=f"{k}/N_constituents")
            homs[str(name)] = {"N_constituents": h["N_constituents"], "mechanical": {"type": mech["type"]}}
        phases = top["phase"]
        if not phases:
            raise InputError("expected at least one phase", file=file, key="phase")
        for name, p in phases.items():
            check_phase(p, file=file, name=name)
        mats = top["material"]
        if isinstance(mats, str):
            return cls._from_side_file(top, mats, file)
        if not isinstance(mats, list) or not mats:
            raise InputError("expected a non-empty list of materials", file=file, key="material")
        n, K = len(mats), max(h["N_constituents"] for h in homs.values())
        O = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, K, 1))
        v = np.zeros((n, K))
        hom_of, phase_of = [], []
        for i, m in enumerate(mats):
            k = f"material[{i}]"
            m = MATERIAL.validate(m, file=file, prefix=k)
            hom = m["homogenization"]
            if hom not in homs:
                raise InputError(f"homogenization {hom!r} is not defined; defined: {sorted(homs)}", file=file,
                                 key=f"{k}/homogenization")
            consts = m["constituents"]
            N = homs[hom]["N_constituents"]
            if not isinstance(consts, list) or len(consts) != N:
                raise InputError(f"expected a list of {N} constituents (N_constituents of {hom!r}), got "
                                 f"{len(consts) if isinstance(consts, list) else consts!r}", file=file,
                                 key=f"{k}/constituents")
            names = set()
            for j, c in enumerate(consts):
                kc = f"{k}/constituents[{j}]"
                c = CONSTITUENT.validate(c, file=file, prefix=kc)
                if c["phase"] not in phases:
                    raise InputError(f"phase {c['phase']!r} is not defined; defined: {sorted(phases)}",
                                     file=file, key=f"{kc}/phase")
                norm = math.sqrt(sum(q * q for q in c["O"]))
                if abs(norm - 1.0) > 1e-6:
                    raise InputError(f"quaternion has norm {norm:.6g}; expected a unit quaternion", file=file,
                                     key=f"{kc}/O")
                O[i, j] = c["O"] if c["O"][0] >= 0 else [-q for q in c["O"]]
                v[i, j] = c["v"]
                names.add(c["phase"])
            if abs(v[i].sum() - 1.0) > 1e-6:
                raise InputError(f"volume fractions v sum to {v[i].sum():.6g}; expected 1", file=file,
                                 key=f"{k}/constituents")
            if len(names) > 1:
                raise InputError("constituents of different phases in one material are not supported; "
                                 "expected one phase per material", file=file, key=f"{k}/constituents")
            hom_of.append(hom)
            phase_of.append(names.pop())
        return cls({str(k): dict(p) for k, p in phases.items()}, homs, np.array(hom_of), np.array(phase_of), O, v,
                   Path(file) if file is not None else None)

    @classmethod
    def _from_side_file(cls, top: dict, name: str, file) -> "MaterialConfig":
        """material.yaml whose ``material`` names an HDF5 file of constituents (see MATERIAL_FILE)."""
        import h5py

        base = Path(file).parent if file is not None else Path(".")
        path = base / name
        if not path.is_file():
            raise InputError(f"the constituents file {path} does not exist", file=file, key="material")
        try:
            with h5py.File(path, "r") as f:
                missing = [k for k in ("homogenization", "phase", "O", "v") if k not in f]
                if missing:
                    raise InputError(f"expected datasets homogenization, phase, O and v; missing {missing}",
                                     file=path, key=missing[0])
                hom = f["homogenization"].asstr()[()]
                ph = f["phase"].asstr()[()]
                O, v = f["O"][()], f["v"][()]
        except OSError as e:
            raise InputError(f"not a readable HDF5 file ({e})", file=path, key="material") from None
        try:
            config = cls.from_arrays(top["phase"], top["homogenization"], hom, ph, O, v)
        except InputError as e:
            raise InputError(e.message, file=path, key=e.key) from None
        config.path = Path(file) if file is not None else None
        return config

    def to_mapping(self) -> dict:
        """The material.yaml content."""
        N = self.n_constituents()
        materials = [{"homogenization": str(h), "constituents": [
            {"phase": str(p), "O": q, "v": f} for q, f in zip(O[:k], v[:k])]}
            for h, p, O, v, k in zip(self.homogenization, self.phase, self.O.tolist(), self.v.tolist(), N)]
        return {"homogenization": self.homogenizations, "phase": self.phases, "material": materials}

    def save(self, path: Path, side_file: bool | None = None) -> Path:
        """material.yaml as DAMASK writes it; with ``side_file`` (default: more than
        :data:`SIDE_FILE_MATERIALS` materials) the constituents go to ``<stem>.h5`` beside it,
        which ``material`` then names (a list of millions of YAML entries would not fit in memory)."""
        import damask

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if side_file is None:
            side_file = self.n > SIDE_FILE_MATERIALS
        if not side_file:
            damask.ConfigMaterial(self.to_mapping()).save(path)
            return path
        import h5py

        h5 = path.with_suffix(".h5")
        with h5py.File(h5, "w") as f:
            f.create_dataset("homogenization", data=self.homogenization.astype("S"))
            f.create_dataset("phase", data=self.phase.astype("S"))
            f.create_dataset("O", data=self.O, chunks=True, compression="gzip", shuffle=True)
            f.create_dataset("v", data=self.v, chunks=True, compression="gzip", shuffle=True)
        damask.ConfigMaterial({"homogenization": self.homogenizations, "phase": self.phases,
                               "material": h5.name}).save(path)
        return path


# ----------------------------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------------------------
@dataclass
class LoadCase:
    """The load steps of DAMASK's grid solver (``load.yaml``)."""

    steps: list[LoadStep]
    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> "LoadCase":
        return cls.from_mapping(read_yaml(path, "load"), file=Path(path))

    @classmethod
    def from_mapping(cls, data: Any, *, file=None) -> "LoadCase":
        top = LOAD_FILE.validate(data, file=file)
        solver = top["solver"] or {"mechanical": "spectral_basic"}
        if set(solver) - {"mechanical"}:
            raise InputError(f"unsupported field solver(s) {sorted(set(solver) - {'mechanical'})}; polyfe2 solves "
                             "mechanics only (expected 'mechanical')", file=file, key="solver")
        mech = solver.get("mechanical")
        if mech == "spectral_polarization" or mech == "spectral_Galerkin":
            raise InputError(f"'{mech}' is not implemented; expected 'spectral_basic' (the basic scheme, "
                             "accelerated by N-GMRES)", file=file, key="solver/mechanical")
        if mech != "spectral_basic":
            raise InputError(f"expected mechanical solver 'spectral_basic', got {mech!r}", file=file,
                             key="solver/mechanical")
        steps = top["loadstep"]
        if not isinstance(steps, list) or not steps:
            raise InputError("expected a non-empty list of load steps", file=file, key="loadstep")
        steps = [make_load_step(s, file=file, index=i) for i, s in enumerate(steps)]
        check_load_path(steps, file=file)
        return cls(steps, Path(file) if file is not None else None)

    def to_mapping(self) -> dict:
        return {"solver": {"mechanical": "spectral_basic"}, "loadstep": [s.to_mapping() for s in self.steps]}

    def save(self, path: Path) -> Path:
        _write_text(Path(path), yaml.safe_dump(self.to_mapping(), sort_keys=False))
        return Path(path)


def numerics_to_solver(path: Path) -> dict:
    """The SolverOptions fields that a DAMASK numerics.yaml sets (its ``solver/grid`` keys)."""
    data = read_yaml(path, "numerics")
    unknown = sorted(set(data) - {"solver"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}; polyfe2 reads 'solver/grid'", file=path)
    solver = data.get("solver") or {}
    if not isinstance(solver, dict) or set(solver) - {"grid"}:
        raise InputError("expected 'grid' only (polyfe2 is a grid solver)", file=path, key="solver")
    grid = NUMERICS_GRID.validate(solver.get("grid"), file=path, prefix="solver/grid")
    mech = NUMERICS_MECHANICAL.validate(grid["mechanical"], file=path, prefix="solver/grid/mechanical")
    fft = NUMERICS_FFT.validate(grid["FFT"], file=path, prefix="solver/grid/FFT")
    out = {_NUMERICS_TO_SOLVER[k]: v for k, v in {**grid, **mech}.items() if k in _NUMERICS_TO_SOLVER and v is not None}
    if fft["derivative"] is not None:
        out["derivative"] = "continuous" if fft["derivative"] == "continuous" else "rotated"
    extra = " ".join(o for o in (grid["PETSc_options"], mech["PETSc_options"]) if o)   # all go to polyfe2's SNES
    if extra:
        out["petsc_options"] = f"{SolverOptions().petsc_options} {extra}"
    return out


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
@dataclass
class OutputOptions:
    directory: str = "results"
    name: str | None = None
    xdmf: bool = True
    plots: bool = True


@dataclass
class RunConfig:
    """Everything a run needs; validated when made (:meth:`build`, :meth:`load`).

    ``path`` is the run config file when the config was read or saved; relative file options of
    the backend and the output directory start at its folder (else the current directory).
    """

    geometry: Geometry
    material: MaterialConfig
    load: LoadCase
    backend: str = "taylor"
    backend_options: dict = field(default_factory=dict)
    backends: dict = field(default_factory=dict)
    device: str = "auto"
    output: OutputOptions = field(default_factory=OutputOptions)
    solver: SolverOptions = field(default_factory=SolverOptions)
    path: Path | None = None

    # -- derived ------------------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def output_dir(self) -> Path:
        return self.base_dir / self.output.directory

    @property
    def name(self) -> str:
        return self.output.name or (self.path.stem if self.path is not None else "run")

    def backend_of(self, phase: str) -> str:
        """The backend serving ``phase``: its override, the run's backend when it is plastic,
        else ``elastic``."""
        if phase in self.backends:
            return self.backends[phase]
        return self.backend if has_plasticity(self.material.phases[phase]) else "elastic"

    # -- making and checking -----------------------------------------------------------------
    @classmethod
    def build(cls, geometry: Geometry, material: MaterialConfig, load: LoadCase, **options) -> "RunConfig":
        """An in-memory run config, validated like one read from files."""
        config = cls(geometry, material, load, **options)
        config.validate()
        return config

    def validate(self, file=None) -> None:
        """Cross-file checks: IDs against materials, backends, their options, device, output."""
        file = file or self.path
        mat_file = self.material.path or "material"
        if self.geometry.material.max() >= self.material.n:
            raise InputError(f"material ID {self.geometry.material.max()} exceeds the {self.material.n} materials of "
                             f"{mat_file} (IDs must be 0..{self.material.n - 1})",
                             file=self.geometry.path or "geometry", key="material")
        registry.check_name(self.backend, file=file, key="backend")
        for ph, b in self.backends.items():
            if ph not in self.material.phases:
                raise InputError(f"phase {ph!r} is not in {mat_file}; phases: {sorted(self.material.phases)}",
                                 file=file, key=f"backends/{ph}")
            registry.check_name(b, file=file, key=f"backends/{ph}")
        check_device_name(self.device, file=file)
        out = self.output_dir
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} exists and is not a directory", file=file, key="output/directory")
        Ks = self.material.n_constituents()
        if (Ks != Ks.max()).any():
            raise InputError(f"materials with {sorted(set(Ks.tolist()))} constituents; the results (DADF5) need one "
                             "number of constituents for all materials", file=mat_file, key="homogenization")
        phases = np.unique(self.material.phase[np.unique(self.geometry.material)])
        for phase in phases:   # each backend's own option schema (imports its module, and so torch)
            name = self.backend_of(str(phase))
            options, key = (self.backend_options, "backend_options") if name == self.backend else ({}, f"backends/{phase}")
            try:
                registry.get(name).options_schema.validate(options, file=file, prefix="backend_options")
            except InputError as e:
                if name == self.backend:
                    raise
                raise InputError(f"backend {name!r} needs options ({e.message}); backend_options serve only "
                                 f"'{self.backend}': make {name!r} the run's backend", file=file, key=key) from None

    @classmethod
    def load(cls, path: Path, overrides: dict | None = None) -> "RunConfig":
        """Read the run config and everything it points at; validates all of it up front."""
        path = Path(path)
        data = read_yaml(path, "run config")
        data.update(overrides or {})
        run = RUN.validate(data, file=path)
        base = path.parent
        for key in ("geometry", "material", "load", "numerics"):
            if run[key] is not None and not (base / run[key]).is_file():
                raise InputError(f"file not found: {base / run[key]}", file=path, key=key)
        material = MaterialConfig.load(base / run["material"])
        load = LoadCase.load(base / run["load"])
        geometry = Geometry.load(base / run["geometry"])
        numerics = base / run["numerics"] if run["numerics"] else Path(load.path).parent / "numerics.yaml"
        solver = numerics_to_solver(numerics) if (run["numerics"] or numerics.is_file()) else {}
        solver.update(run["solver"] or {})
        output = OUTPUT.validate(run["output"], file=path, prefix="output")
        config = cls(geometry=geometry, material=material, load=load, backend=run["backend"],
                     backend_options=dict(run["backend_options"] or {}), backends=dict(run["backends"] or {}),
                     device=run["device"], output=OutputOptions(**output),
                     solver=SolverOptions.from_mapping(solver, file=path), path=path)
        config.validate()
        return config

    def to_mapping(self, geometry="grid.vti", material="material.yaml", load="load.yaml") -> dict:
        """The run config's content, pointing at files of the given names."""
        out = {"geometry": geometry, "material": material, "load": load, "backend": self.backend}
        if self.backend_options:
            out["backend_options"] = dict(self.backend_options)
        if self.backends:
            out["backends"] = dict(self.backends)
        out["device"] = self.device
        default = OutputOptions()
        out["output"] = {k: getattr(self.output, k) for k in ("directory", "name", "xdmf", "plots")
                         if getattr(self.output, k) != getattr(default, k)}
        if not out["output"]:
            del out["output"]
        out["solver"] = dataclasses.asdict(self.solver)   # all of them: a numerics.yaml beside must not change it
        return out

    def _rebased_options(self, directory: Path) -> dict:
        """backend_options with relative ``file`` and ``files`` options expressed relative to ``directory``."""
        fields = registry.get(self.backend).options_schema.fields

        def rebase(value):
            if isinstance(value, str) and not Path(value).is_absolute():
                return os.path.relpath((self.base_dir / value).resolve(), directory.resolve())
            return value

        out = dict(self.backend_options)
        for key, value in out.items():
            if key in fields and fields[key].kind == "file":
                out[key] = rebase(value)
            elif key in fields and fields[key].kind == "files" and isinstance(value, dict):
                out[key] = {name: rebase(f) for name, f in value.items()}
        return out

    def save(self, directory: Path, name: str = "run.yaml") -> Path:
        """Write grid.vti, material.yaml, load.yaml and the run config into ``directory``;
        the config then refers to them (``path``). Returns the run config's path.

        Relative file options of the backend (e.g. gru's ``descriptors``) of a config read from
        a file are rewritten to point at the same files from ``directory``; those of a config
        built in memory are taken as relative to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.path is not None:   # file options were relative to the old run config: keep them pointing there
            self.backend_options = self._rebased_options(directory)
        self.geometry = replace(self.geometry, path=self.geometry.save(directory / "grid.vti"))
        self.material = replace(self.material, path=self.material.save(directory / "material.yaml"))
        self.load = replace(self.load, path=self.load.save(directory / "load.yaml"))
        self.path = directory / name
        _write_text(self.path, yaml.safe_dump(self.to_mapping(), sort_keys=False))
        return self.path

    def with_options(self, **changes) -> "RunConfig":
        """A copy with some fields replaced (e.g. ``device``), validated."""
        config = replace(self, **changes)
        config.validate()
        return config


def load_run_config(path: Path, overrides: dict | None = None) -> RunConfig:
    """:meth:`RunConfig.load` (the run config file and everything it points at)."""
    return RunConfig.load(path, overrides)
