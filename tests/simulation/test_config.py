"""Bad input: one clear line naming the file, the key and what was expected; no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import damask
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
from solver_cases import AL_PLASTIC, phase, uniaxial_x, write_case  # noqa: E402

from polyfe2.cli import main  # noqa: E402


@pytest.fixture
def case(tmp_path):
    q = damask.Rotation.from_random(2, rng_seed=1).quaternion
    return write_case(tmp_path, np.array([[[0]], [[1]]]), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [q[0]]), ("Al", [q[1]])], [uniaxial_x(t=1.0, N=1)])


def edit_yaml(path: Path, fn):
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def error_line(capsys, path) -> str:
    code = main(["run", str(path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err
    return err


def test_malformed_yaml(case, capsys):
    (case.parent / "load.yaml").write_text("loadstep:\n  - boundary_conditions: [\n")
    err = error_line(capsys, case)
    assert "load.yaml" in err and "malformed YAML at line" in err


def test_unknown_key_in_run_config(case, capsys):
    edit_yaml(case, lambda d: d.update(solvr={}))
    err = error_line(capsys, case)
    assert "run.yaml" in err and "unknown key(s) ['solvr']" in err


def test_unknown_solver_option(case, capsys):
    edit_yaml(case, lambda d: d.update(solver={"N_iter_maxx": 3}))
    assert "N_iter_maxx" in error_line(capsys, case)


def test_inconsistent_masks(case, capsys):
    def broken(d):
        d["loadstep"][0]["boundary_conditions"]["mechanical"]["P"][1][1] = "x"
    edit_yaml(case.parent / "load.yaml", broken)
    err = error_line(capsys, case)
    assert "load.yaml" in err and "loadstep[0]/boundary_conditions/mechanical" in err
    assert "component [1][1] must be given in exactly one of dot_F and P" in err


def test_fractions_not_summing_to_one(case, capsys):
    def broken(d):
        d["homogenization"]["H"]["N_constituents"] = 2
        d["homogenization"]["H"]["mechanical"]["type"] = "isostrain"
        for m in d["material"]:
            c = dict(m["constituents"][0])
            c["v"] = 0.3
            m["constituents"] = [c, dict(c)]
    edit_yaml(case.parent / "material.yaml", broken)
    err = error_line(capsys, case)
    assert "material.yaml" in err and "material[0]/constituents" in err and "sum to 0.6" in err


def test_missing_file(case, capsys):
    (case.parent / "grid.vti").unlink()
    err = error_line(capsys, case)
    assert "run.yaml, key 'geometry': file not found" in err and "grid.vti" in err


def test_geometry_ids_exceed_material_list(case, capsys):
    damask.GeomGrid(np.array([[[0]], [[5]]]), np.ones(3) * 1e-5).save(case.parent / "grid.vti")
    err = error_line(capsys, case)
    assert "grid.vti" in err and "material ID 5 exceeds the 2 materials" in err


def test_unknown_backend(case, capsys):
    edit_yaml(case, lambda d: d.update(backend="neural-magic"))
    err = error_line(capsys, case)
    assert "run.yaml, key 'backend': unknown backend 'neural-magic'" in err and "taylor" in err and "elastic" in err


def test_bad_phase_parameter(case, capsys):
    edit_yaml(case.parent / "material.yaml",
              lambda d: d["phase"]["Al"]["mechanical"]["plastic"].update({"xi_0_sl": [-5.0]}))
    err = error_line(capsys, case)
    assert "material.yaml" in err and "xi_0_sl" in err


def test_command_line_prints_one_line_without_traceback(case):
    edit_yaml(case, lambda d: d.update(backend="nope"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    p = subprocess.run([sys.executable, "-m", "polyfe2.cli", "run", str(case)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("polyfe2: error:")


def test_run_config_saved_and_loaded_is_the_same_case(tmp_path):
    """An in-memory case written with save() reads back with the same grid, materials, load and
    options (the DAMASK files in between)."""
    from polyfe2.simulation.config import RunConfig
    from polyfe2.simulation.plate import plate_case

    config, _ = plate_case(cells=(6, 8, 2), K=3, increments=3, solver={"derivative": "continuous", "N_iter_max": 50})
    config.backends = {"Void": "elastic"}
    path = config.save(tmp_path / "case")
    back = RunConfig.load(path)
    assert back.geometry.grid == config.geometry.grid
    np.testing.assert_array_equal(back.geometry.material, config.geometry.material)
    np.testing.assert_allclose(back.material.O, config.material.O, rtol=0, atol=1e-15)
    np.testing.assert_allclose(back.material.v, config.material.v, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(back.material.phase, config.material.phase)
    assert back.material.phases == config.material.phases
    assert len(back.load.steps) == 1
    for a, b in zip(back.load.steps, config.load.steps):
        np.testing.assert_array_equal(a.deformation_mask, b.deformation_mask)
        np.testing.assert_array_equal(a.deformation, b.deformation)
        np.testing.assert_array_equal(a.stress_mask, b.stress_mask)
        assert (a.t, a.N, a.r, a.f_out) == (b.t, b.N, b.r, b.f_out)
    assert back.solver == config.solver and back.solver.derivative == "continuous" and back.solver.N_iter_max == 50
    assert back.backends == {"Void": "elastic"} and back.output.name == "plate"


def test_numerics_yaml_maps_damask_keys_and_the_run_config_wins(case, capsys):
    from polyfe2.simulation.config import load_run_config

    edit_yaml(case, lambda d: d.pop("solver"))   # as a user writes it: numerics.yaml alone sets the solver
    (case.parent / "numerics.yaml").write_text(
        "solver:\n  grid:\n    N_cutback_max: 5\n    mechanical:\n      N_iter_min: 2\n      N_iter_max: 30\n"
        "      eps_abs_div(P): 2.0e-4\n      eps_rel_P: 2.0e-3\n    FFT:\n      derivative: continuous\n")
    s = load_run_config(case).solver
    assert (s.N_cutback_max, s.N_iter_min, s.N_iter_max, s.eps_div_abs, s.eps_stress_rel, s.derivative) == \
        (5, 2, 30, 2e-4, 2e-3, "continuous")
    edit_yaml(case, lambda d: d.update(solver={"N_iter_max": 60}))
    assert load_run_config(case).solver.N_iter_max == 60
    (case.parent / "numerics.yaml").write_text("solver:\n  grid:\n    FFT:\n      derivative: central_difference\n")
    err = error_line(capsys, case)
    assert "numerics.yaml" in err and "solver/grid/FFT/derivative" in err


def test_petsc_viewers_and_monitors_are_accepted(case, capsys):
    """Options PETSc reads only while solving (monitors, viewers) are not 'unused'."""
    edit_yaml(case, lambda d: d["solver"].update(petsc_options=d["solver"]["petsc_options"] + " -snes_monitor"))
    assert main(["run", str(case), "--no-progress"]) == 0
    assert "SNES Function norm" in capsys.readouterr().out
