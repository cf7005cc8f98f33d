"""Reading and validating a run: the run config and the DAMASK-style inputs it points at.

Run config (YAML), paths relative to the config file::

    geometry: grid.vti            # DAMASK geometry (material ID per cell)
    material: material.yaml       # DAMASK material configuration
    load: load.yaml               # DAMASK load case (grid solver)
    backend: taylor               # constitutive backend of phases with plasticity
    backend_options: {}           # options of that backend
    backends: {}                  # per-phase override, e.g. {Void: elastic}
    device: auto                  # auto | cpu | cuda | cuda:N
    output: {directory: results, name: <config stem>, xdmf: true, plots: true}
    solver: {...}                 # see polyfe2.solver.spectral.SolverOptions

Every problem is reported as one :class:`~polyfe2.errors.InputError` line naming the file,
the key and the expected value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .devices import check_device_name
from .errors import InputError
from .solver.boundary import LoadStep, make_load_step
from .solver.grid import Grid

RUN_KEYS = {"geometry", "material", "load", "backend", "backend_options", "backends", "device",
            "output", "solver"}
OUTPUT_KEYS = {"directory", "name", "xdmf", "plots"}


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; missing files and syntax errors become one-line InputErrors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", file=path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"malformed YAML{where}: {problem}", file=path) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping at the top level, got {type(data).__name__}", file=path)
    return data


@dataclass
class Constituent:
    phase: str
    O: np.ndarray  # (4,) unit quaternion
    v: float


@dataclass
class Material:
    homogenization: str
    constituents: list[Constituent]

    @property
    def phase(self) -> str:
        return self.constituents[0].phase


@dataclass
class MaterialConfig:
    path: Path
    phases: dict[str, dict]
    homogenizations: dict[str, dict]
    materials: list[Material]
    text: str = ""


def _number(value, *, file, key, positive=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"expected a number, got {value!r}", file=file, key=key)
    if positive and value <= 0:
        raise InputError(f"expected a positive number, got {value!r}", file=file, key=key)
    return float(value)


def load_material(path: Path) -> MaterialConfig:
    """material.yaml: homogenizations (``pass``/``isostrain``), phases, materials."""
    import damask

    data = read_yaml(path, "material")
    config = damask.ConfigMaterial(data)
    for key in ("homogenization", "phase", "material"):
        if key not in config:
            raise InputError(f"missing top-level '{key}'", file=path, key=key)
    unknown = sorted(set(config) - {"homogenization", "phase", "material"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}; expected homogenization, phase, material",
                         file=path)
    homs = config["homogenization"]
    if not isinstance(homs, dict) or not homs:
        raise InputError("expected a mapping of homogenization names", file=path, key="homogenization")
    for name, h in homs.items():
        k = f"homogenization/{name}"
        if not isinstance(h, dict) or "N_constituents" not in h:
            raise InputError("expected 'N_constituents' and 'mechanical: {type: pass|isostrain}'", file=path, key=k)
        n = h["N_constituents"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"expected a positive integer, got {n!r}", file=path, key=f"{k}/N_constituents")
        mtype = (h.get("mechanical") or {}).get("type")
        if mtype not in ("pass", "isostrain"):
            raise InputError(f"expected mechanical type 'pass' or 'isostrain', got {mtype!r}", file=path,
                             key=f"{k}/mechanical/type")
        if mtype == "pass" and n != 1:
            raise InputError(f"type 'pass' needs N_constituents 1, got {n}", file=path, key=f"{k}/N_constituents")
    phases = config["phase"]
    if not isinstance(phases, dict) or not phases:
        raise InputError("expected a mapping of phase names", file=path, key="phase")
    for name, p in phases.items():
        k = f"phase/{name}"
        if not isinstance(p, dict) or not isinstance(p.get("mechanical"), dict):
            raise InputError("expected 'lattice' and 'mechanical: {elastic: ..., plastic: ...}'", file=path, key=k)
        el = p["mechanical"].get("elastic")
        if not isinstance(el, dict) or el.get("type") != "Hooke":
            raise InputError("expected 'elastic: {type: Hooke, C_11, C_12, C_44}'", file=path,
                             key=f"{k}/mechanical/elastic")
        for c in ("C_11", "C_12", "C_44"):
            _number(el.get(c), file=path, key=f"{k}/mechanical/elastic/{c}", positive=True)
    mats = config["material"]
    if not isinstance(mats, list) or not mats:
        raise InputError("expected a non-empty list of materials", file=path, key="material")
    materials = []
    for i, m in enumerate(mats):
        k = f"material[{i}]"
        if not isinstance(m, dict):
            raise InputError("expected a mapping with 'homogenization' and 'constituents'", file=path, key=k)
        unknown = sorted(set(m) - {"homogenization", "constituents"})
        if unknown:
            raise InputError(f"unknown key(s) {unknown}; expected homogenization, constituents", file=path, key=k)
        hom = m.get("homogenization")
        if hom not in homs:
            raise InputError(f"homogenization {hom!r} is not defined; defined: {sorted(homs)}", file=path,
                             key=f"{k}/homogenization")
        consts = m.get("constituents")
        if not isinstance(consts, list) or not consts:
            raise InputError("expected a non-empty list of constituents", file=path, key=f"{k}/constituents")
        if len(consts) != homs[hom]["N_constituents"]:
            raise InputError(f"{len(consts)} constituents, but homogenization {hom!r} has N_constituents "
                             f"{homs[hom]['N_constituents']}", file=path, key=f"{k}/constituents")
        cs = []
        for j, c in enumerate(consts):
            kc = f"{k}/constituents[{j}]"
            if not isinstance(c, dict):
                raise InputError("expected a mapping with phase, O, v", file=path, key=kc)
            unknown = sorted(set(c) - {"phase", "O", "v"})
            if unknown:
                raise InputError(f"unknown key(s) {unknown}; expected phase, O, v", file=path, key=kc)
            if c.get("phase") not in phases:
                raise InputError(f"phase {c.get('phase')!r} is not defined; defined: {sorted(phases)}",
                                 file=path, key=f"{kc}/phase")
            O = c.get("O")
            if not (isinstance(O, (list, tuple)) and len(O) == 4
                    and all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in O)):
                raise InputError(f"expected a quaternion [q0, q1, q2, q3], got {O!r}", file=path, key=f"{kc}/O")
            O = np.asarray(O, dtype=float)
            if abs(np.linalg.norm(O) - 1.0) > 1e-6:
                raise InputError(f"quaternion has norm {np.linalg.norm(O):.6g}; expected a unit quaternion",
                                 file=path, key=f"{kc}/O")
            v = _number(c.get("v"), file=path, key=f"{kc}/v")
            if not 0.0 <= v <= 1.0:
                raise InputError(f"expected a volume fraction in [0, 1], got {v}", file=path, key=f"{kc}/v")
            cs.append(Constituent(c["phase"], O if O[0] >= 0 else -O, v))
        total = sum(c.v for c in cs)
        if abs(total - 1.0) > 1e-6:
            raise InputError(f"volume fractions v sum to {total:.6g}; expected 1", file=path,
                             key=f"{k}/constituents")
        if len({c.phase for c in cs}) > 1:
            raise InputError("constituents of different phases in one material are not supported; "
                             "expected one phase per material", file=path, key=f"{k}/constituents")
        materials.append(Material(hom, cs))
    return MaterialConfig(Path(path), dict(phases), dict(homs), materials, Path(path).read_text())


@dataclass
class LoadCase:
    path: Path
    steps: list[LoadStep]
    text: str = ""


def load_loadcase(path: Path) -> LoadCase:
    """load.yaml of DAMASK's grid solver (``solver: {mechanical: spectral_basic}``, ``loadstep``)."""
    data = read_yaml(path, "load")
    unknown = sorted(set(data) - {"solver", "loadstep"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}; expected solver, loadstep", file=path)
    solver = data.get("solver", {"mechanical": "spectral_basic"})
    mech = solver.get("mechanical") if isinstance(solver, dict) else None
    if mech not in ("spectral_basic", "spectral_polarization"):
        raise InputError(f"expected mechanical solver 'spectral_basic', got {mech!r}", file=path,
                         key="solver/mechanical")
    steps = data.get("loadstep")
    if not isinstance(steps, list) or not steps:
        raise InputError("expected a non-empty list of load steps", file=path, key="loadstep")
    return LoadCase(Path(path), [make_load_step(s, file=path, index=i) for i, s in enumerate(steps)],
                    Path(path).read_text())


@dataclass
class Geometry:
    path: Path
    grid: Grid
    material: np.ndarray  # (Nx, Ny, Nz) material IDs


def load_geometry(path: Path, n_materials: int | None = None, material_file=None) -> Geometry:
    """A DAMASK geometry file (.vti) through ``damask.GeomGrid``."""
    import damask

    path = Path(path)
    if not path.is_file():
        raise InputError("geometry file not found", file=path)
    try:
        g = damask.GeomGrid.load(path)
    except Exception as e:  # damask/VTK raise various types for unreadable files
        raise InputError(f"not a readable DAMASK geometry (.vti with cell data 'material'): "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=path) from None
    mat = np.asarray(g.material)
    if mat.min() < 0:
        raise InputError(f"negative material ID {mat.min()}", file=path, key="material")
    if n_materials is not None and mat.max() >= n_materials:
        raise InputError(f"material ID {mat.max()} exceeds the {n_materials} materials of {material_file} "
                         f"(IDs must be 0..{n_materials - 1})", file=path, key="material")
    grid = Grid(tuple(int(c) for c in g.cells), tuple(float(s) for s in g.size),
                tuple(float(o) for o in g.origin))
    return Geometry(path, grid, mat)


@dataclass
class RunConfig:
    path: Path
    geometry: Geometry
    material: MaterialConfig
    load: LoadCase
    backend: str
    backend_options: dict
    backends: dict[str, str]
    device: str
    output_dir: Path
    name: str
    xdmf: bool
    plots: bool
    solver: dict = field(default_factory=dict)


def load_run_config(path: Path, overrides: dict | None = None) -> RunConfig:
    """Read the run config and everything it points at; validates all of it up front."""
    path = Path(path)
    data = read_yaml(path, "run config")
    data.update(overrides or {})
    unknown = sorted(set(data) - RUN_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; expected some of {sorted(RUN_KEYS)}", file=path)
    for key in ("geometry", "material", "load"):
        if not isinstance(data.get(key), str):
            raise InputError("expected a file name", file=path, key=key)
    base = path.parent
    material = load_material(base / data["material"])
    load = load_loadcase(base / data["load"])
    geometry = load_geometry(base / data["geometry"], len(material.materials), material.path)

    from .constitutive import registry

    def check_backend(name, key):
        if not isinstance(name, str):
            raise InputError(f"expected a backend name, got {name!r}", file=path, key=key)
        try:
            registry.get(name)
        except InputError as e:
            raise InputError(str(e).split(": ", 1)[-1], file=path, key=key) from None

    backend = data.get("backend", "taylor")
    check_backend(backend, "backend")
    backends = data.get("backends") or {}
    if not isinstance(backends, dict):
        raise InputError("expected a mapping phase -> backend name", file=path, key="backends")
    for ph, b in backends.items():
        if ph not in material.phases:
            raise InputError(f"phase {ph!r} is not in {material.path}; phases: {sorted(material.phases)}",
                             file=path, key=f"backends/{ph}")
        check_backend(b, f"backends/{ph}")
    options = data.get("backend_options") or {}
    if not isinstance(options, dict):
        raise InputError("expected a mapping of options", file=path, key="backend_options")
    device = check_device_name(str(data.get("device", "auto")), file=path)
    out = data.get("output") or {}
    if not isinstance(out, dict) or set(out) - OUTPUT_KEYS:
        raise InputError(f"expected a mapping with keys among {sorted(OUTPUT_KEYS)}", file=path, key="output")
    solver = data.get("solver") or {}
    if not isinstance(solver, dict):
        raise InputError("expected a mapping of solver options", file=path, key="solver")
    from .solver.spectral import SolverOptions

    SolverOptions.from_mapping(solver, file=path)  # validate now, before anything runs
    return RunConfig(path=path, geometry=geometry, material=material, load=load, backend=backend,
                     backend_options=options, backends=dict(backends), device=device,
                     output_dir=base / str(out.get("directory", "results")),
                     name=str(out.get("name", path.stem)), xdmf=bool(out.get("xdmf", True)),
                     plots=bool(out.get("plots", True)), solver=solver)
