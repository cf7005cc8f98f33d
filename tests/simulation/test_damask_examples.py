"""DAMASK 3's own grid example (examples/damask_grid: the 20-grain 16³ geometry, material.yaml,
numerics.yaml and the load cases tensionX, shearXY, shearZX) runs from its unchanged files.

The load cases are run for their first increments (same rates, same increment length) and checked
against what DAMASK's load semantics fix exactly: the prescribed components of the average F,
the stress-free components of P, and numerics.yaml's N_iter_min."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from polyfe2.io import read_curve, read_status
from polyfe2.simulation.config import LoadCase, OutputOptions, load_run_config
from polyfe2.simulation.runner import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "damask_grid"
C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9


def run_first_increments(case: str, tmp_path: Path, n: int = 3):
    config = load_run_config(EXAMPLE / f"run_{case}.yaml", {"device": "cpu"})
    step = config.load.steps[0]
    dt = step.t / step.N
    short = dataclasses.replace(step, N=n, t=n * dt)
    config = dataclasses.replace(config, load=LoadCase([short], config.load.path),
                                 output=OutputOptions(directory=str(tmp_path), name=case, xdmf=False, plots=False))
    summary = run(config, progress=False, log=lambda *a: None)
    return config, summary, read_curve(summary.files["curve (CSV)"]), read_status(summary.files["status (CSV)"])


def average(curve, name, row=-1):
    unit = "" if name == "F" else "_MPa"
    return np.array([[curve[f"{name}_{i}{j}{unit}"][row] for j in (1, 2, 3)] for i in (1, 2, 3)])


def test_numerics_yaml_beside_the_load_file_is_read():
    config = load_run_config(EXAMPLE / "run_tensionX.yaml")
    assert (config.solver.N_iter_min, config.solver.N_iter_max) == (4, 40)   # DAMASK's example numerics
    assert [s.N for s in config.load.steps] == [40, 60]


@pytest.mark.parametrize("case, ij", [("shearXY", (1, 0)), ("shearZX", (0, 2))])
def test_fully_deformation_controlled_shear_follows_the_load(case, ij, tmp_path):
    config, summary, curve, status = run_first_increments(case, tmp_path)
    step = config.load.steps[0]
    assert step.deformation_mask.all() and not step.stress_mask.any()   # no P key: DAMASK's full control
    t = step.t
    F_expected = np.eye(3)
    F_expected[ij] = 1e-3 * t
    np.testing.assert_allclose(average(curve, "F"), F_expected, rtol=0, atol=1e-12)
    assert status and all(int(row["iterations"]) >= 4 for row in status)                   # numerics.yaml: N_iter_min 4
    sigma = average(curve, "sigma")
    shear = sigma[ij]
    G_voigt = (C11 - C12 + 3 * C44) / 5 / 1e6          # MPa; the elastic upper bound of the shear stress
    assert 0.3 * G_voigt * 1e-3 * t < shear < G_voigt * 1e-3 * t
    assert abs(sigma[ij] - sigma[ij[::-1]]) < 1e-3 * abs(shear)          # Cauchy stress symmetric


def test_tension_keeps_the_lateral_stresses_free(tmp_path):
    config, summary, curve, status = run_first_increments("tensionX", tmp_path)
    t = config.load.steps[0].t
    F = average(curve, "F")
    P = average(curve, "P")
    assert F[0, 0] == pytest.approx(1 + 1e-3 * t, abs=1e-12)
    tol = max(1e-3 * np.abs(P).max(), 1e-3)            # the stress-BC tolerance, MPa
    assert abs(P[1, 1]) < tol and abs(P[2, 2]) < tol
    assert F[1, 1] < 1 and F[2, 2] < 1                 # lateral contraction
    assert P[0, 0] > 0
