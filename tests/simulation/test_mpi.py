"""Runs on 2 MPI ranks (the mpich wheel's mpiexec): same answers as 1 rank, errors stop every rank."""
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from polyfe2.simulation.plate import write_plate_case

BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
pytestmark = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside the interpreter (mpich wheel)")


def polyfe2(*args, ranks=1, env=None, timeout=300):
    cmd = [str(BIN / "polyfe2"), *map(str, args), "--no-progress"]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def fields(path, increment):
    with h5py.File(path) as f:
        g = f[f"increment_{increment}/homogenization"]
        return {(h, n): g[h]["mechanical"][n][()] for h in g for n in ("F", "P")}


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    """The plate (taylor, K = 2, a slot and a free layer) on 10×10×5 cells: 5 z-planes do not
    split evenly over 2 ranks."""
    d = tmp_path_factory.mktemp("one")
    run = write_plate_case(d, cells=(10, 10, 5), K=2, increments=3, strain=0.006)
    r = polyfe2("run", run)
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("fft", ["fftw", "torch"])
def test_two_ranks_give_the_fields_of_one(one_rank, tmp_path, fft):
    run = write_plate_case(tmp_path, cells=(10, 10, 5), K=2, increments=3, strain=0.006)
    r = polyfe2("run", run, ranks=2, env={"POLYFE2_SLAB_FFT": fft})
    assert r.returncode == 0, r.stderr
    assert ("fftw-slab" if fft == "fftw" else "torch-slab") in r.stdout and "2 rank(s)" in r.stdout
    assert r.stdout.count("final average P_11") == 1   # rank 0 reports
    ref, got = fields(one_rank / "results/plate.hdf5", 3), fields(tmp_path / "results/plate.hdf5", 3)
    assert ref.keys() == got.keys()
    for key in ref:   # same iterates: the decisions are global, only summation order differs
        scale = np.abs(ref[key]).max()
        assert np.abs(got[key] - ref[key]).max() < 1e-8 * scale, key
    P = ref[("Taylor", "P")]
    assert np.abs(P[..., 0, 0]).max() > 1e7   # a real, loaded answer


def test_an_input_error_on_every_rank_is_reported_once(tmp_path):
    run = write_plate_case(tmp_path, cells=(6, 6, 1), K=1, increments=1)
    t0 = time.perf_counter()
    r = polyfe2("run", run, ranks=2)
    assert r.returncode == 2
    assert time.perf_counter() - t0 < 60
    lines = [ln for ln in r.stderr.splitlines() if "polyfe2: error" in ln]
    assert len(lines) == 1 and "2 ranks need at least as many z-planes" in lines[0], r.stderr


FAILING_RANK = """
import sys
from polyfe2.constitutive import dispatch
from polyfe2.simulation.parallel import world

calls = 0
evaluate = dispatch.MaterialModel.evaluate

def fail_on_rank_1(self, *args):
    global calls
    calls += 1
    if world().Get_rank() == 1 and calls == 3:
        raise RuntimeError("deliberate failure in the constitutive update")
    return evaluate(self, *args)

dispatch.MaterialModel.evaluate = fail_on_rank_1
from polyfe2.cli import main
sys.exit(main(["run", sys.argv[1], "--no-progress"]))
"""


def test_a_failing_rank_stops_the_job_within_seconds(tmp_path):
    """One rank raises in the middle of a residual evaluation while the other waits in the FFT's
    transpose: the job stops (MPI_Abort) with that rank's one-line message, never hangs."""
    run = write_plate_case(tmp_path, cells=(8, 8, 4), K=1, increments=2)
    script = tmp_path / "fail.py"
    script.write_text(FAILING_RANK)
    t0 = time.perf_counter()
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script), str(run)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    assert time.perf_counter() - t0 < 60
    lines = [ln for ln in r.stderr.splitlines() if "polyfe2: error" in ln]
    assert lines == ["polyfe2: error on rank 1 of 2: RuntimeError: deliberate failure in the constitutive update"]


def test_compare_shows_two_runs_and_their_difference(one_rank, tmp_path, capsys):
    """polyfe2 compare on the same file: zero difference; on a missing increment: one-line error."""
    from polyfe2.cli import main

    results = one_rank / "results/plate.hdf5"
    assert main(["compare", str(results), str(results), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "increment 3" in out and "mean |difference| 0.000 MPa" in out and (tmp_path / "c.png").stat().st_size > 0
    assert main(["compare", str(results), str(results), "--increment", "9"]) == 2
    assert "key 'increment': no increment 9; the file has 0..3" in capsys.readouterr().err
    with h5py.File(results) as f:
        t2 = float(f["increment_2"].attrs["t/s"])
    assert main(["compare", str(results), str(results), "--time", repr(t2), "--out", str(tmp_path / "t.png")]) == 0
    assert "polyfe2: increment 2: mean" in capsys.readouterr().out
    assert main(["compare", str(results), str(results), "--time", repr(t2 * 1.01)]) == 2
    assert f"key 'time': no increment at t = {t2 * 1.01:g} s; the file's are at 0, " in capsys.readouterr().err


def test_the_range_notice_counts_over_ranks_also_with_a_rank_without_the_phase(tmp_path):
    """A gru layer (z = 0, 1) on an elastic one (z = 2, 3), 2 ranks: rank 1 holds no gru point, yet
    the notice of points beyond the model's training strain (v5: 0.05) comes once, with the global count,
    and the job does not hang in the reduction."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
    from solver_cases import AL_PLASTIC, deformation, phase, write_case

    with h5py.File(tmp_path / "d.h5", "w") as f:
        from polyfe2.microstructure.descriptor import DESCRIPTOR_LAYOUT, random_texture

        f.create_dataset("descriptor", data=random_texture(20, 3)[None])
        f["descriptor"].attrs["layout"] = DESCRIPTOR_LAYOUT
    e = np.array([1.0, -0.5, -0.5]) / 1.5**0.5
    ids = np.zeros((4, 4, 4), dtype=int)
    ids[:, :, 2:] = 1
    run = write_case(tmp_path / "case", ids, {"Al": phase(plastic=AL_PLASTIC), "Stiff": phase()},
                     [("Al", [[1.0, 0, 0, 0]]), ("Stiff", [[1.0, 0, 0, 0]])],
                     [deformation(np.diag(np.exp(a * e)), t=1.0) for a in (0.03, 0.06, 0.09)], backend="gru",
                     backend_options={"descriptors": str(tmp_path / "d.h5"), "model": "gru_aluminium_v5.pt"})
    r = polyfe2("run", run, ranks=2, timeout=120)
    assert r.returncode == 0, r.stderr
    said = [ln for ln in r.stdout.splitlines() if "beyond the model's training range" in ln]
    assert len(said) == 1 and "Al (gru): 32 points (100 %)" in said[0], r.stdout


def test_constituent_fields_of_a_phase_that_one_rank_does_not_hold(tmp_path):
    """A plastic layer (z = 0, 1) on an elastic one (z = 2, 3), 2 ranks: rank 1 has none of the
    plastic phase's fields (F_p, xi_sl, ...), yet rank 0 writes them as a one-rank run does."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
    from solver_cases import AL_PLASTIC, phase, uniaxial_x, write_case

    ids = np.zeros((4, 4, 4), dtype=int)
    ids[:, :, 2:] = 1
    q = [[1.0, 0, 0, 0], [0.9238795, 0.3826834, 0, 0]]
    files = {}
    for ranks in (1, 2):
        run = write_case(tmp_path / f"r{ranks}", ids, {"Al": phase(plastic=AL_PLASTIC), "Stiff": phase()},
                         [("Al", q), ("Stiff", [[1.0, 0, 0, 0]] * 2)], [uniaxial_x(rate=2e-3, N=2)])
        r = polyfe2("run", run, ranks=ranks, timeout=120)
        assert r.returncode == 0, r.stderr
        files[ranks] = next((tmp_path / f"r{ranks}").rglob("*.hdf5"))
    with h5py.File(files[1]) as one, h5py.File(files[2]) as two:
        g1, g2 = one["increment_2/phase/Al/mechanical"], two["increment_2/phase/Al/mechanical"]
        assert {"F_p", "xi_sl", "P"} <= set(g2) and set(g1) == set(g2)
        assert np.abs(g1["gamma_sl"][()]).max() > 0   # plastic
        for name in g1:
            np.testing.assert_allclose(g2[name][()], g1[name][()], rtol=1e-6, atol=1e-3 * np.abs(g1[name][()]).max())
