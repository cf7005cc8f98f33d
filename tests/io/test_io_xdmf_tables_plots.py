"""XDMF time series, CSV tables and PNG plots."""

import damask
import matplotlib.image
import meshio
import numpy as np
import pytest
from iohelpers import CELLS, N, ORIGIN, SIZE, flat_index, uniaxial

from polyfe2.io import (
    CURVE_COLUMNS,
    CurveWriter,
    StatusWriter,
    XDMFSeriesWriter,
    flatten_cells,
    grid_mesh,
    plot_slice,
    plot_stress_strain,
    read_curve,
    read_status,
    unflatten_cells,
)


def test_flatten_roundtrip():
    A = np.random.default_rng(1).random(CELLS + (3, 3))
    a = flatten_cells(A)
    assert np.array_equal(a, A.transpose(2, 1, 0, 3, 4).reshape(-1, 3, 3))
    assert np.array_equal(flatten_cells(flat_index()), np.arange(N))
    assert np.array_equal(unflatten_cells(a, CELLS), A)


def test_grid_mesh_geometry():
    nodes, hexa = grid_mesh(CELLS, SIZE, ORIGIN)
    assert nodes.shape == (np.prod(np.array(CELLS) + 1), 3) and hexa.shape == (N, 8)
    # cell centres from the hexahedra = damask's cell centres, x fastest
    centres = nodes[hexa].mean(axis=1)
    assert np.allclose(centres, flatten_cells(damask.grid_filters.coordinates0_point(CELLS, SIZE, ORIGIN)))
    # VTK ordering: positive volume (node 0->1 along x, 0->3 along y, 0->4 along z)
    c = nodes[hexa[0]]
    assert np.linalg.det(np.array([c[1] - c[0], c[3] - c[0], c[4] - c[0]])) > 0


def test_xdmf_series(tmp_path):
    mid = flat_index() % 2
    path = tmp_path / "out" / "series.xdmf"
    with XDMFSeriesWriter(path, CELLS, SIZE, ORIGIN, material_id=mid) as w:
        for step in range(3):
            F, P, s = uniaxial(step)
            w.write(0.5 * step, {"F": F, "P": P, "T": flat_index().astype(float)})
    assert path.with_suffix(".h5").exists()

    with meshio.xdmf.TimeSeriesReader(path) as reader:
        points, cells = reader.read_points_cells()
        assert points.shape == ((CELLS[0] + 1) * (CELLS[1] + 1) * (CELLS[2] + 1), 3)
        assert cells[0].type == "hexahedron" and len(cells[0].data) == N
        assert reader.num_steps == 3
        for step in range(3):
            t, pd, cd = reader.read_data(step)
            F, P, s = uniaxial(step)
            assert t == pytest.approx(0.5 * step)
            assert np.array_equal(cd["material"][0], flatten_cells(mid))
            assert np.array_equal(cd["T"][0], np.arange(N))
            assert cd["F"][0].shape == (N, 9)
            assert np.allclose(cd["F"][0].reshape(-1, 3, 3), flatten_cells(F))
            assert np.allclose(cd["sigma"][0][:, 0], flatten_cells(s))  # sigma_11
            assert np.allclose(cd["sigma_vM"][0], flatten_cells(s))
            assert np.allclose(pd["u"], flatten_cells(damask.grid_filters.displacement_node(SIZE, F)))


def test_xdmf_readable_before_close(tmp_path):
    path = tmp_path / "live.xdmf"
    w = XDMFSeriesWriter(path, CELLS, SIZE)
    w.write(0.0, {"T": np.zeros(CELLS)})
    w.write(1.0, {"T": np.ones(CELLS)})
    text = path.read_text()
    assert text.count("<Time ") == 2
    w.close()


def test_curve_csv_roundtrip(tmp_path, damask_refs):
    path = tmp_path / "curve.csv"
    rows = []
    with CurveWriter(path) as cw:
        for step in range(3):
            F, P, _ = uniaxial(step)
            rows.append(cw.write(step, 0.5 * step, F, P))  # full fields: averaged here
    header = path.read_text().splitlines()[0].split(",")
    assert header == CURVE_COLUMNS
    ref_curve = damask_refs / "F1_full16_uniaxialx" / "curve.csv"
    assert header == ref_curve.read_text().splitlines()[0].split(",")
    data = read_curve(path)
    F, P, _ = uniaxial(2)
    F_av, P_av = F.mean(axis=(0, 1, 2)), P.mean(axis=(0, 1, 2))
    sig = P_av @ F_av.T / np.linalg.det(F_av)
    assert np.array_equal(data["increment"], [0, 1, 2])
    assert data["F_11"][2] == pytest.approx(F_av[0, 0], rel=1e-9)
    assert data["P_11_MPa"][2] == pytest.approx(P_av[0, 0] * 1e-6, rel=1e-9)
    assert data["sigma_11_MPa"][2] == pytest.approx(sig[0, 0] * 1e-6, rel=1e-9)
    # append (restart) keeps a single header
    with CurveWriter(path, append=True) as cw:
        cw.write(3, 1.5, F_av, P_av)
    assert len(read_curve(path)["t_s"]) == 4
    assert path.read_text().count("increment") == 1


def test_status_tables(tmp_path):
    with StatusWriter(tmp_path / "status.csv") as sw:
        sw.write(1, 0.5, 0.5, 0, True, 4, 9, 1.2e-5, 3.0e2, 0.81)
        sw.write(2, 0.75, 0.25, 1, False, 100, 201, 3.4e-2, 1.0e5, 12.5, "material point failure in 3 cells")
    rows = read_status(tmp_path / "status.csv")
    assert rows[1] == dict(increment=2, t_s=0.75, dt_s=0.25, cutback_level=1, converged=False, iterations=100,
                           residual_evals=201, div_residual=3.4e-2, bc_error_Pa=1.0e5, wall_s=12.5,
                           reason="material point failure in 3 cells")
    assert rows[0]["reason"] == ""
    lines = (tmp_path / "status.txt").read_text().splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # aligned columns
    assert "False" in lines[3] and "3.400e-02" in lines[3] and lines[3].rstrip().endswith("in 3 cells")


def test_plots(tmp_path, damask_refs):
    curve = tmp_path / "curve.csv"
    with CurveWriter(curve) as cw:
        for step in range(5):
            F, P, _ = uniaxial(step)
            cw.write(step, step, F, P)
    ref = damask_refs / "F1_full16_uniaxialx" / "curve.csv"
    png = plot_stress_strain(curve, tmp_path / "ss.png", reference_csv_path=ref, reference_label="DAMASK",
                             figsize=(5, 4), dpi=80)
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (320, 400) and img.std() > 0
    png = plot_stress_strain(curve, tmp_path / "ss_true.png", strain="true")
    assert matplotlib.image.imread(png).shape[:2] == (480, 640)

    _, P, _ = uniaxial(2)
    png = plot_slice(P[..., 0, 0] * 1e-6, tmp_path / "slice.png", axis="z", index=1, title="P_xx",
                     cbar_label="MPa", size=SIZE, origin=ORIGIN, figsize=(6, 5), dpi=50)
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (250, 300) and img.std() > 0
    for axis in "xy":
        assert plot_slice(P[..., 0, 0], tmp_path / f"slice_{axis}.png", axis=axis).stat().st_size > 0
