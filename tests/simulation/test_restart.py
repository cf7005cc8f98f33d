"""Restart points (f_restart) and --restart: a run killed with SIGKILL and continued gives the
fields of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from polyfe2.io import read_curve
from polyfe2.simulation.plate import write_plate_case
from polyfe2.simulation.restart import RestartStore

BIN = Path(sys.executable).parent


def case(directory, f_restart=1):
    run = write_plate_case(directory, cells=(8, 8, 3), K=2, increments=6, strain=0.012)
    load = yaml.safe_load((directory / "load.yaml").read_text())
    load["loadstep"][0]["f_restart"] = f_restart
    (directory / "load.yaml").write_text(yaml.safe_dump(load))
    return run


def command(run, ranks, *extra):
    cmd = [str(BIN / "polyfe2"), "run", str(run), "--no-progress", *extra]
    cmd = [str(c) for c in cmd]
    return [str(BIN / "mpiexec"), "-n", str(ranks), *cmd] if ranks > 1 else cmd


def last_fields(path):
    with h5py.File(path) as f:
        last = max((k for k in f if k.startswith("increment_")), key=lambda k: int(k.split("_")[1]))
        g = f[f"{last}/homogenization/Taylor/mechanical"]
        return last, g["F"][()], g["P"][()]


def start_and_wait(run, ranks, env, marker, **popen):
    """Start the run and return once ``marker`` exists (or the run ended, or 4 minutes passed)."""
    proc = subprocess.Popen(command(run, ranks), env=env, **popen)
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_killed_run_continues_to_the_uninterrupted_answer(tmp_path, ranks):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = case(tmp_path / "ref")
    assert subprocess.run(command(ref, ranks), env=env, capture_output=True).returncode == 0

    run = case(tmp_path / "killed")
    proc = start_and_wait(run, ranks, env, tmp_path / "killed/results/plate_restart/inc3.complete",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)   # the whole job, as a crashed node would
    proc.wait()
    points = RestartStore(tmp_path / "killed/results", "plate").points()
    assert points and points[-1] >= 3 and points[-1] < 6, points   # killed mid-run
    r = subprocess.run(command(run, ranks, "--restart", points[-1]), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"restarting from increment {points[-1]}" in r.stdout

    inc_ref, F_ref, P_ref = last_fields(tmp_path / "ref/results/plate.hdf5")
    inc, F, P = last_fields(tmp_path / "killed/results/plate.hdf5")
    assert inc == inc_ref == "increment_6"
    assert np.abs(F - F_ref).max() <= 1e-10 * np.abs(F_ref).max()
    assert np.abs(P - P_ref).max() <= 1e-10 * np.abs(P_ref).max()
    curve = read_curve(tmp_path / "killed/results/plate_curve.csv")
    assert list(curve["increment"]) == list(range(7))   # no increment twice, none missing


@pytest.mark.parametrize("ranks", [1, 2])
def test_sigterm_stops_the_run_in_one_line_and_keeps_what_was_written(tmp_path, ranks):
    """A batch system's SIGTERM: status 143, one line per rank that got it, no PETSc error block,
    and the increments and restart points written before it are readable and resume the run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = case(tmp_path)
    proc = start_and_wait(run, ranks, env, tmp_path / "results/plate_restart/inc2.complete",
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGTERM)   # to mpiexec, which forwards it to every rank
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("polyfe2:")]
    assert 1 <= len(lines) <= ranks and all("stopped by SIGTERM" in ln for ln in lines), stderr
    assert all("error" not in ln for ln in lines), stderr
    assert "PETSC ERROR" not in stderr and "Traceback" not in stderr
    points = RestartStore(tmp_path / "results", "plate").points()
    assert points and 2 <= points[-1] < 6, points
    with h5py.File(tmp_path / "results/plate.hdf5") as f:
        assert {f"increment_{i}" for i in range(points[-1] + 1)} <= set(f)
    r = subprocess.run(command(run, ranks, "--restart", points[-1]), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_restart_errors_name_the_point(tmp_path):
    from polyfe2.cli import main

    run = case(tmp_path, f_restart=2)
    assert main(["run", str(run), "--no-progress"]) == 0
    assert RestartStore(tmp_path / "results", "plate").points() == [6]   # older points removed
    assert main(["run", str(run), "--no-progress", "--restart", "3"]) == 2
