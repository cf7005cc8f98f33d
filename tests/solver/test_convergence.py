"""Acceleration, cutbacks and the failure path of the solver."""
from __future__ import annotations

import damask
import numpy as np
import pytest
from solver_cases import AL_PLASTIC, deformation, phase, run_case, uniaxial_x, write_case


def void_case(tmp_path, petsc_options, n=8):
    """Elastic polycrystal with a void inclusion (stiffness contrast 1e6), uniaxial tension."""
    cells = (n, n, 4)
    mat = np.ones(cells, dtype=int)
    x, y = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    mat[(x - (n - 1) / 2) ** 2 + (y - (n - 1) / 2) ** 2 < 5.0 * (n / 8) ** 2] = 0
    q = damask.Rotation.from_random(4, rng_seed=1).quaternion
    mat[mat == 1] = 1 + np.arange((mat == 1).sum()) % 4
    return write_case(tmp_path, mat, {"Void": phase(scale=1e-6), "Al": phase()},
                      [("Void", [[1, 0, 0, 0]])] + [("Al", [qi]) for qi in q],
                      [uniaxial_x(rate=1e-3, t=0.1, N=1)], backend="elastic",
                      solver={"petsc_options": petsc_options} if petsc_options else None)


def test_default_settings_converge_quickly_with_a_void(tmp_path):
    """DESIGN.md: a void at 1e6 stiffness contrast runs with the default settings (DAMASK's
    defaults need 100+ iterations per increment here)."""
    summary, curve, status = run_case(void_case(tmp_path, None, n=16))
    assert all(r["converged"] for r in status)
    assert summary.iterations < 30


def test_ngmres_needs_far_fewer_evaluations_than_fixed_point_with_a_void(tmp_path):
    """The default acceleration against the plain fixed-point (basic) scheme on the same
    discretization and the same reference medium, so that only the acceleration differs; the
    fixed point needs the stiffest reference medium to converge at all."""
    same = {"reference": "max", "derivative": "rotated"}
    s_ngmres, c_ngmres, st_ngmres = run_case(void_case(tmp_path / "ngmres", None, n=16), solver=same)
    fixed = {**same, "petsc_options": "-snes_type nrichardson -snes_linesearch_type basic", "N_iter_max": 1000}
    s_fixed, c_fixed, st_fixed = run_case(void_case(tmp_path / "fixed", None, n=16), solver=fixed)
    assert all(r["converged"] for r in st_ngmres) and all(r["converged"] for r in st_fixed)
    assert c_ngmres["P_11_MPa"][-1] == pytest.approx(c_fixed["P_11_MPa"][-1], rel=2e-3)  # same answer
    assert s_fixed.evaluations >= 3 * s_ngmres.evaluations, (s_fixed.evaluations, s_ngmres.evaluations)


def test_stress_controlled_unloading_after_plastic_loading(tmp_path):
    """Pull into the plastic range, then unload to P_11 = 0 by stress control: the elastic
    compliance of the average-F correction keeps this stable (no cutbacks)."""
    q = damask.Rotation.from_random(3, rng_seed=21).quaternion
    unload = {"boundary_conditions": {"mechanical": {
        "dot_F": [["x", 0, 0], [0, "x", 0], [0, 0, "x"]],
        "P": [[0, "x", "x"], ["x", 0, "x"], ["x", "x", 0]]}},
        "discretization": {"t": 1.0, "N": 4}}
    path = write_case(tmp_path, np.arange(3).reshape(3, 1, 1), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [qi]) for qi in q], [uniaxial_x(t=6.0, N=6), unload])
    summary, curve, status = run_case(path)
    assert summary.cutbacks == 0 and all(r["converged"] for r in status)
    assert curve["P_11_MPa"][6] > 45.0  # loaded plastically
    assert abs(curve["P_11_MPa"][-1]) < 1e-3 * curve["P_11_MPa"][6]
    # unloading is elastic: slope between Young's moduli of <111> and <100> aluminium
    E_unload = (curve["P_11_MPa"][6] - curve["P_11_MPa"][-1]) / (curve["F_11"][6] - curve["F_11"][-1])
    assert 55e3 < E_unload < 80e3
    assert curve["F_11"][-1] > 1.002  # permanent plastic strain remains


def test_oversized_step_cuts_back_and_finishes(tmp_path):
    q = damask.Rotation.from_random(2, rng_seed=9).quaternion
    path = write_case(tmp_path, np.array([[[0]], [[1]]]), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [q[0]]), ("Al", [q[1]])], [uniaxial_x(rate=1e-2, t=3.0, N=1)],
                      backend_options={"substep_levels": 0}, solver={"N_cutback_max": 5})   # the solver cuts back, not the crystal
    summary, curve, status = run_case(path)
    levels = [r["cutback_level"] for r in status]
    assert summary.cutbacks >= 1 and max(levels) >= 1
    assert not status[0]["converged"]  # the full step failed first
    assert status[-1]["converged"]
    assert curve["F_11"][-1] == pytest.approx(1.03, abs=1e-9)
    assert curve["P_11_MPa"][-1] > 40.0


def test_hopeless_step_stops_with_clear_error_and_keeps_converged_results(tmp_path):
    from polyfe2.errors import SolverError
    from polyfe2.io import read_curve

    q = damask.Rotation.from_random(rng_seed=9).quaternion
    steps = [uniaxial_x(rate=1e-3, t=1.0, N=2), uniaxial_x(rate=1.0, t=1.0, N=1)]  # 100 % in one step
    path = write_case(tmp_path, np.zeros((2, 1, 1), dtype=int), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [q])], steps, solver={"N_cutback_max": 1})
    with pytest.raises(SolverError, match=r"load step 2, increment 1 .* did not converge .* after 1 cutbacks"):
        run_case(path)
    curve = read_curve(tmp_path / "results" / "case_curve.csv")
    assert list(curve["increment"]) == [0, 1, 2]
    r = damask.Result(tmp_path / "results" / "case.hdf5")
    assert r.increments == ["increment_0", "increment_1", "increment_2"]


def test_full_deformation_control_reaches_the_prescribed_average(tmp_path):
    F_target = np.array([[1.002, 0.001, 0], [0, 0.999, 0], [0, 0, 1.0]])
    q = damask.Rotation.from_random(3, rng_seed=4).quaternion
    path = write_case(tmp_path, np.arange(3).reshape(3, 1, 1), {"Al": phase()},
                      [("Al", [qi]) for qi in q], [deformation(F_target, N=2)], backend="elastic")
    summary, curve, status = run_case(path)
    F = np.array([[curve[f"F_{i}{j}"][-1] for j in (1, 2, 3)] for i in (1, 2, 3)])
    np.testing.assert_allclose(F, F_target, atol=1e-12)
