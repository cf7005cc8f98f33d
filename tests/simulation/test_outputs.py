"""A run's files: damask.Result reads the DADF5 file; XDMF, CSV and PNG are there."""
from __future__ import annotations

import sys
from pathlib import Path

import damask
import meshio
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
from solver_cases import AL_PLASTIC, phase, run_case, uniaxial_x, write_case  # noqa: E402


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    mat = rng.integers(0, 3, size=(4, 3, 2))
    mat[0, 0, 0] = 3  # one void cell
    q = damask.Rotation.from_random(3, rng_seed=2).quaternion
    path = write_case(tmp, mat, {"Al": phase(plastic=AL_PLASTIC), "Void": phase(scale=1e-6)},
                      [("Al", [qi]) for qi in q] + [("Void", [[1, 0, 0, 0]])],
                      [uniaxial_x(t=2.0, N=4, f_out=2)],
                      output={"directory": "out", "name": "case", "xdmf": True, "plots": True})
    summary, curve, status = run_case(path)
    return summary, curve, status, tmp / "out"


def test_damask_result_opens_and_postprocesses(finished_run):
    summary, curve, status, out = finished_run
    r = damask.Result(out / "case.hdf5")
    assert len(r.increments) == 3  # 0, 2, 4 (f_out = 2)
    r.add_stress_Cauchy()
    r.add_equivalent_Mises("sigma")
    last = r.view(increments=-1)
    F = last.get("F", flatten=False)
    P = last.get("P", flatten=False)
    sigma = last.get("sigma", flatten=False)
    inc = next(iter(F))
    F_al, P_al = F[inc]["phase"]["Al"]["mechanical"]["F"], P[inc]["phase"]["Al"]["mechanical"]["P"]
    s_al = sigma[inc]["phase"]["Al"]["mechanical"]["sigma"]
    expected = np.einsum("nij,nkj->nik", P_al, F_al) / np.linalg.det(F_al)[:, None, None]
    np.testing.assert_allclose(s_al, 0.5 * (expected + expected.transpose(0, 2, 1)), rtol=1e-10, atol=1e-3)
    # homogenization average of P equals the curve's last row
    P_h = last.get("P", flatten=False)[inc]["homogenization"]
    P_cells = np.concatenate([v["mechanical"]["P"] for v in P_h.values()])
    assert P_cells.mean(axis=0)[0, 0] / 1e6 == pytest.approx(curve["P_11_MPa"][-1], rel=1e-9)
    r.export_VTK(target_dir=out / "vtk", parallel=False)
    vti = sorted((out / "vtk").glob("*.vti"))
    assert len(vti) == 3
    v = damask.VTK.load(vti[-1])
    labels = v.labels["Cell Data"]
    assert "phase/mechanical/sigma_vM / Pa" in labels and "homogenization/mechanical/P / Pa" in labels
    P_vtk = v.get("phase/mechanical/P / Pa")
    assert np.nanmax(np.abs(P_vtk)) == pytest.approx(np.abs(P_al).max(), rel=1e-6)  # float32 in VTK


def test_paraview_series_csv_and_plots(finished_run):
    summary, curve, status, out = finished_run
    with meshio.xdmf.TimeSeriesReader(out / "case.xdmf") as reader:
        points, cells = reader.read_points_cells()
        assert reader.num_steps == 3
        t, point_data, cell_data = reader.read_data(2)
    assert t == pytest.approx(2.0)
    P = np.asarray(cell_data["P"][0]).reshape(-1, 3, 3)
    assert P[:, 0, 0].mean() / 1e6 == pytest.approx(curve["P_11_MPa"][-1], rel=1e-9)
    assert len(status) == 4 and all(row["converged"] for row in status)
    for png in ("case_curve.png", "sigma_xx_slice.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_the_phase_output_lists_choose_the_constituent_fields(finished_run, tmp_path):
    """DAMASK's `output` lists: without them every field of the backend is written, with them the
    listed ones (F and P always, as damask.Result needs them)."""
    import h5py

    def phase_fields(path):
        with h5py.File(path, "r") as f:
            return set(f["increment_2/phase/Al/mechanical"])

    assert {"F", "P", "F_e", "F_p", "L_p", "xi_sl", "gamma_sl"} <= phase_fields(finished_run[3] / "case.hdf5")
    al = phase(plastic=dict(AL_PLASTIC, output=["xi_sl"]))
    al["mechanical"]["output"] = ["F", "F_p"]
    path = write_case(tmp_path, np.zeros((2, 2, 1), dtype=int), {"Al": al}, [("Al", [[1, 0, 0, 0]])],
                      [uniaxial_x(t=2.0, N=2)], output={"directory": "out", "name": "case"})
    summary = run_case(path)[0]
    assert phase_fields(summary.files["results (DADF5)"]) == {"F", "P", "F_p", "xi_sl"}
    assert len(damask.Result(summary.files["results (DADF5)"]).view(increments=-1).get("P", flatten=False)) > 0


def test_each_crystal_keeps_its_own_stress_in_the_dadf5_file(tmp_path):
    """Several constituents per cell (taylor, iso-strain): every crystal's P is its own (they differ
    by orientation), not the cell's P repeated."""
    from polyfe2.simulation.config import load_run_config
    from polyfe2.simulation.plate import write_plate_case
    from polyfe2.simulation.runner import run

    run(load_run_config(write_plate_case(tmp_path, cells=(6, 6, 2), K=3, increments=1, strain=0.002)),
        progress=False, log=lambda *a: None)
    P = damask.Result(tmp_path / "results/plate.hdf5").view(increments=-1).get("P", flatten=False)
    inc = next(iter(P))
    P_al = P[inc]["phase"]["Aluminum"]["mechanical"]["P"]
    cell_P = np.concatenate([h["mechanical"]["P"] for h in P[inc]["homogenization"].values()])
    assert np.abs(cell_P).max() > 1e6
    assert len(np.unique(P_al.round(3), axis=0)) == len(P_al)
