"""Small run cases for the solver tests, built in memory as :class:`RunConfig` objects and saved
as DAMASK's input files (geometry .vti, material.yaml, load.yaml, run.yaml), and DAMASK's
reference cases run from their own files.

The run entry points (polyfe2's run-config loader and ``run``) are imported here only, in
:func:`run_case`."""
from __future__ import annotations

import shutil
from pathlib import Path

import damask
import numpy as np
import yaml

from polyfe2.simulation.config import Geometry, LoadCase, MaterialConfig, OutputOptions, RunConfig
from polyfe2.solver.boundary import make_load_step
from polyfe2.solver.options import SolverOptions

AL_ELASTIC = {"type": "Hooke", "C_11": 106.75e9, "C_12": 60.41e9, "C_44": 28.34e9}
AL_PLASTIC = {"type": "phenopowerlaw", "N_sl": [12], "a_sl": [2.25], "dot_gamma_0_sl": [1e-3],
              "h_0_sl-sl": [75e6], "h_sl-sl": [1, 1, 1.4, 1.4, 1.4, 1.4, 1.4], "n_sl": [20],
              "xi_0_sl": [31e6], "xi_inf_sl": [63e6]}


def phase(elastic=AL_ELASTIC, plastic=None, scale=1.0):
    el = dict(elastic)
    for c in ("C_11", "C_12", "C_44"):
        el[c] = el[c] * scale
    mech = {"elastic": el}
    if plastic:
        mech["plastic"] = dict(plastic)
    return {"lattice": "cF", "mechanical": mech}


def uniaxial_x(rate=1e-3, t=1.0, N=2, f_out=1):
    """F_11 at a constant rate, P_22 = P_33 = 0, off-diagonal F held."""
    return {"boundary_conditions": {"mechanical": {
        "dot_F": [[rate, 0, 0], [0, "x", 0], [0, 0, "x"]],
        "P": [["x", "x", "x"], ["x", 0, "x"], ["x", "x", 0]]}},
        "discretization": {"t": t, "N": N}, "f_out": f_out}


def deformation(F, t=1.0, N=1):
    """Full deformation control: the average F reaches ``F`` at the end of the step."""
    return {"boundary_conditions": {"mechanical": {
        "F": np.asarray(F, dtype=float).tolist(), "P": [["x"] * 3] * 3}},
        "discretization": {"t": t, "N": N}}


def build_case(material_id: np.ndarray, phases: dict, materials: list, steps: list, backend="taylor",
               solver=None, size=None, validate=True, **run_extra) -> RunConfig:
    """An in-memory run config (``validate=False``: checked only when read back, e.g. for a backend
    that only another process can import). materials: list of (phase name, [quaternion, ...]) with equal
    fractions per material; steps: load.yaml entries."""
    cells = np.array(material_id.shape)
    K = len(materials[0][1])
    O = np.array([np.asarray(Os, dtype=float) for _, Os in materials])
    material = MaterialConfig.from_arrays(
        phases, {"H": {"N_constituents": K, "mechanical": {"type": "pass" if K == 1 else "isostrain"}}},
        homogenization="H", phase=[ph for ph, _ in materials], O=O, v=np.full(O.shape[:2], 1.0 / K))
    geometry = Geometry.from_array(material_id, size=size if size is not None else cells * 1e-5)
    load = LoadCase([make_load_step(st, file="load", index=i) for i, st in enumerate(steps)])
    output = OutputOptions(**{"name": "case", "xdmf": False, "plots": False, **run_extra.pop("output", {})})
    config = RunConfig(geometry, material, load, backend=backend, device="cpu", output=output,
                       solver=SolverOptions.from_mapping(solver), **run_extra)
    if validate:
        config.validate()
    return config


def write_case(directory: Path, *args, **kwargs) -> Path:
    """:func:`build_case` saved as DAMASK's files and run.yaml in ``directory``; returns run.yaml."""
    return build_case(*args, **kwargs).save(directory)


def run_case(path: Path, **overrides):
    """Run ``run.yaml`` at ``path``; ``overrides`` replace top-level run keys (e.g. ``solver``).
    Returns (summary, curve table, status rows)."""
    from polyfe2.simulation.config import load_run_config
    from polyfe2.io import read_curve, read_status
    from polyfe2.simulation.runner import run

    config = load_run_config(path, overrides)
    summary = run(config, progress=False, log=lambda *a: None)
    curve = read_curve(summary.files["curve (CSV)"])
    status = read_status(summary.files["status (CSV)"])
    return summary, curve, status


def curve_tensor(curve, name, row=-1):
    """(3,3) tensor of ``name`` ('F', 'P_MPa', 'sigma_MPa') at ``row`` of a curve table."""
    unit = "" if name == "F" else "_MPa"
    base = name.split("_MPa")[0]
    return np.array([[curve[f"{base}_{i}{j}{unit}"][row] for j in (1, 2, 3)] for i in (1, 2, 3)])


def run_damask_reference(ref: Path, directory: Path, solver=None):
    """Run one of DAMASK's reference cases (a folder of shared/refs/damask) from its own,
    unchanged input files with the ``taylor`` backend on the CPU; ``solver``: solver options."""
    directory = Path(directory)
    for f in ("grid.vti", "material.yaml", "load.yaml"):
        shutil.copy(ref / f, directory / f)
    run = {"geometry": "grid.vti", "material": "material.yaml", "load": "load.yaml", "backend": "taylor",
           "device": "cpu", "output": {"xdmf": False, "plots": False}}
    if solver:
        run["solver"] = dict(solver)
    (directory / "run.yaml").write_text(yaml.safe_dump(run))
    return run_case(directory / "run.yaml")


def read_damask_curve(ref: Path):
    return np.genfromtxt(ref / "curve.csv", delimiter=",", names=True)


def last_field(summary, label="P"):
    """Per-cell ``label`` (N,3,3) at the last written increment of a run, in DAMASK's cell
    order (x fastest), read back from the run's DADF5 file."""
    r = damask.Result(summary.files["results (DADF5)"]).view(increments=-1)
    data = r.place(label, flatten=False)
    return np.asarray(next(iter(data.values()))["phase"]["mechanical"][label])


def damask_last_field(ref: Path, label="P"):
    """DAMASK's per-cell ``label`` at the last increment (fields_last.npz), in the same order."""
    A = np.load(ref / "fields_last.npz")[label]  # (Nx,Ny,Nz,3,3)
    return A.transpose(2, 1, 0, 3, 4).reshape(-1, 3, 3)


def relative_rms(A, A_ref):
    """RMS over the cells of |A − A_ref| (Frobenius) over the RMS of |A_ref|."""
    return float(np.sqrt(np.mean(np.sum((A - A_ref) ** 2, axis=(1, 2))) / np.mean(np.sum(A_ref**2, axis=(1, 2)))))
