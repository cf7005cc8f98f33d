"""DADF5Writer output read back with damask.Result (3.1.0)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import damask
import h5py
import numpy as np
import pytest
from iohelpers import CELLS, N, ORIGIN, SIZE, flat_index, two_phase_materials, uniaxial

from polyfe2.io import DADF5Writer, flatten_cells

SRC = str(Path(__file__).resolve().parents[2] / "src")


def get(r, name, label, inc=-1, kind="phase"):
    """One dataset of one phase/homogenization and increment via damask.Result.get."""
    inc = r.increments[inc]
    return r.view(increments=inc).get(name, flatten=False)[inc][kind][label]["mechanical"][name]


def write_k1(path, mid, mats, n_inc=3):
    setup = {"material.yaml": "phase: {Aluminum: {}}\n", "load.yaml": "solver: {mechanical: spectral_basic}\n",
             "grid.vti": "grid.vti"}
    with DADF5Writer(path, CELLS, SIZE, ORIGIN, mid, mats, setup, phase_lattice={"Aluminum": "cF"}) as w:
        for inc in range(n_inc):
            F, P, _ = uniaxial(inc)
            xi = np.broadcast_to(flat_index()[..., None, None] * 1e6 + inc, CELLS + (1, 12))
            O = np.broadcast_to(np.array([1.0, 0, 0, 0]), CELLS + (1, 4))
            w.write_increment(inc, 0.5 * inc, F, P, {"xi_sl": xi, "O": O})


def test_k1_two_phases(tmp_path):
    mid, mats = two_phase_materials()
    path = tmp_path / "res.hdf5"
    write_k1(path, mid, mats)

    r = damask.Result(path)
    assert r.increments == ["increment_0", "increment_1", "increment_2"]
    assert r.times == [0.0, 0.5, 1.0]
    assert np.array_equal(r.cells, CELLS) and np.allclose(r.size, SIZE) and np.allclose(r.origin, ORIGIN)
    assert sorted(r.phases) == ["Aluminum", "Iron"] and r.homogenizations == ["SX"]
    assert (r.N_materialpoints, r.N_constituents) == (N, 1)
    assert sorted(r.simulation_setup_files) == ["grid.vti", "load.yaml", "material.yaml"]

    # cell order: homogenization data come in x-fastest cell order
    F, P, s = uniaxial(2)
    last = r.view(increments=2)
    assert np.allclose(get(r, "F", "SX", kind="homogenization"), flatten_cells(F))
    # phase entries: order of appearance over cells (x fastest)
    is_al = flatten_cells(mid) != 1
    xi_al = get(r, "xi_sl", "Aluminum")
    assert np.allclose(xi_al[:, 0], np.nonzero(is_al)[0] * 1e6 + 2)
    assert np.allclose(get(r, "F", "Iron"), flatten_cells(F)[~is_al])
    # place merges both phases back into cell order
    placed = last.view(homogenizations=False).place("P")
    assert np.allclose(placed, flatten_cells(P))

    r.add_stress_Cauchy()
    r.add_equivalent_Mises("sigma")
    sigma = get(r, "sigma", "SX", kind="homogenization")
    sigma_hand = np.einsum("nij,nkj->nik", flatten_cells(P), flatten_cells(F)) / np.linalg.det(flatten_cells(F))[:, None, None]
    assert np.allclose(sigma, sigma_hand, rtol=1e-12, atol=1e-6)
    assert np.allclose(sigma[:, 0, 0], flatten_cells(s), rtol=1e-12)
    assert np.allclose(get(r, "sigma_vM", "SX", kind="homogenization"), flatten_cells(s), rtol=1e-12)  # uniaxial: vM = |s|
    assert np.allclose(get(r, "sigma_vM", "Iron"), flatten_cells(s)[~is_al], rtol=1e-12)

    with h5py.File(path, "r") as f:
        assert f["increment_2/phase/Aluminum/mechanical/O"].attrs["lattice"] == "cF"
        assert f["increment_2/geometry/u_n"].shape == (np.prod(np.array(CELLS) + 1), 3)
        assert not [k for k in f if k.startswith("_incomplete")]

    out = tmp_path / "vtk"
    r.export_VTK(target_dir=out, parallel=False)
    files = sorted(p.name for p in out.glob("*.vti"))
    assert files == ["res_inc0.vti", "res_inc1.vti", "res_inc2.vti"]
    v = damask.VTK.load(out / "res_inc2.vti")
    assert np.allclose(v.get("homogenization/mechanical/sigma_vM / Pa"), flatten_cells(s))
    assert np.allclose(v.get("phase/mechanical/F / 1").reshape(-1, 3, 3), flatten_cells(F))
    u = v.get("u")  # nodal displacements from F
    assert u.shape == (np.prod(np.array(CELLS) + 1), 3)
    assert np.allclose(u, flatten_cells(damask.grid_filters.displacement_node(SIZE, F)))

    r.export_simulation_setup(target_dir=tmp_path / "setup")
    assert (tmp_path / "setup" / "load.yaml").read_text() == "solver: {mechanical: spectral_basic}\n"


def test_k3_iso_strain_and_general_cauchy(tmp_path):
    rng = np.random.default_rng(0)
    mid = (flat_index() % 2)
    mats = [dict(homogenization="Taylor", phases=["A", "A", "B"]),
            dict(homogenization="Taylor", phases=["B", "A", "B"])]
    F = np.eye(3) + 0.05 * rng.standard_normal(CELLS + (3, 3))
    Pk = 1e8 * rng.standard_normal(CELLS + (3, 3, 3))
    P = Pk.mean(axis=3)
    path = tmp_path / "taylor.hdf5"
    with DADF5Writer(path, CELLS, SIZE, ORIGIN, mid, mats) as w:
        w.write_increment(0, 0.0, np.broadcast_to(np.eye(3), CELLS + (3, 3)), np.zeros(CELLS + (3, 3)),
                          {"P": np.zeros(CELLS + (3, 3, 3))})
        w.write_increment(1, 1.0, F, P, {"P": Pk})
        with pytest.raises(ValueError, match="required when K > 1"):
            w.write_increment(2, 2.0, F, P)

    r = damask.Result(path)
    assert (r.N_materialpoints, r.N_constituents) == (N, 3)
    r.add_stress_Cauchy()
    r.add_equivalent_Mises("sigma")

    # entries of phase A: (cell, constituent) in order of appearance, cell outer
    Pk_flat = flatten_cells(Pk)  # (N, 3, 3, 3)
    ph = np.array([["A", "A", "B"], ["B", "A", "B"]])[flatten_cells(mid)]
    assert np.allclose(get(r, "P", "A"), Pk_flat[ph == "A"])
    assert np.allclose(get(r, "F", "B"), np.repeat(flatten_cells(F)[:, None], 3, 1)[ph == "B"])

    # sigma = sym(P F^T / det F), Mises by hand, per constituent
    Ff = flatten_cells(F)
    sig = np.einsum("nkij,nlj->nkil", Pk_flat, Ff) / np.linalg.det(Ff)[:, None, None, None]
    sig = 0.5 * (sig + np.swapaxes(sig, -1, -2))
    dev = sig - np.trace(sig, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3
    vm = np.sqrt(1.5 * np.sum(dev**2, axis=(-2, -1)))
    assert np.allclose(get(r, "sigma", "B"), sig[ph == "B"], rtol=1e-10)
    assert np.allclose(get(r, "sigma_vM", "A"), vm[ph == "A"], rtol=1e-10)

    out = tmp_path / "vtk"
    r.view(increments=1).export_VTK(target_dir=out, parallel=False)
    v = damask.VTK.load(out / "taylor_inc1.vti")
    for c in range(3):
        # damask.VTK stores floats as float32
        assert np.allclose(v.get(f"phase/mechanical/sigma_vM#{c} / Pa"), vm[:, c], rtol=1e-6)
        assert np.allclose(v.get(f"phase/mechanical/P#{c} / Pa").reshape(-1, 3, 3), Pk_flat[:, c])
    assert np.allclose(v.get("homogenization/mechanical/P / Pa").reshape(-1, 3, 3), flatten_cells(P))


CRASH = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path[:0] = [{src!r}, {tests!r}]
    from iohelpers import CELLS, SIZE, uniaxial
    from polyfe2.io import DADF5Writer
    w = DADF5Writer({path!r}, CELLS, SIZE, keep_open={keep_open})
    for inc in range(4):
        F, P, _ = uniaxial(inc)
        w.write_increment(inc, float(inc), F, P)
    if {mid_write}:      # die in the middle of increment 4
        def die(*a, **k):
            os._exit(3)
        w._dataset = die
        w.write_increment(4, 4.0, *uniaxial(4)[:2])
    os._exit(3)          # no close(), no atexit, no finalisers
""")


@pytest.mark.parametrize("keep_open,mid_write", [(False, True), (True, False)])
def test_crash_after_increment_3(tmp_path, keep_open, mid_write):
    path = tmp_path / "crash.hdf5"
    code = CRASH.format(src=SRC, tests=str(Path(__file__).parent), path=str(path),
                        keep_open=keep_open, mid_write=mid_write)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    r = damask.Result(path)
    assert r.increments == [f"increment_{i}" for i in range(4)]
    F, _, _ = uniaxial(3)
    assert np.allclose(get(r, "F", "SX", kind="homogenization"), flatten_cells(F))


def test_restart_append_and_torch_input(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "restart.hdf5"
    with DADF5Writer(path, CELLS, SIZE) as w:
        for inc in range(2):
            w.write_increment(inc, float(inc), *uniaxial(inc)[:2])
    with pytest.raises(ValueError, match="cells"):
        DADF5Writer(path, (2, 2, 2), SIZE, mode="a")
    F, P, _ = uniaxial(2)
    with DADF5Writer(path, CELLS, SIZE, mode="a", setup_files={"load.yaml": "x: 1\n"}) as w:
        w.write_increment(2, 2.0, torch.from_numpy(F), torch.from_numpy(P).float())
    r = damask.Result(path)
    assert r.increments == ["increment_0", "increment_1", "increment_2"]
    assert r.simulation_setup_files == ["load.yaml"]
    assert np.allclose(get(r, "P", "SX", kind="homogenization"), flatten_cells(P), rtol=1e-6)
