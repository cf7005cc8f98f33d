"""Training data of the GRU surrogate: labels, file layout, resuming, the command line."""
import h5py
import numpy as np
import pytest

from polyfe2.cli import main
from polyfe2.errors import InputError
from polyfe2.learn import datagen as DG
from polyfe2.learn import loadpath as LP
from polyfe2.mechanics import strain_log
from polyfe2.microstructure.descriptor import make_descriptor, random_seeds

C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9


def _voigt(s):
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def test_average_sigma_dev_recovers_a_known_cauchy_stress():
    rng = np.random.default_rng(0)
    F = np.eye(3) + 0.05 * rng.standard_normal((3, 3))
    A = rng.standard_normal((3, 3)) * 1e7
    sigma = A + A.T
    P = np.linalg.det(F) * sigma @ np.linalg.inv(F).T
    dev = sigma - np.trace(sigma) / 3 * np.eye(3)
    np.testing.assert_allclose(DG.average_sigma_dev(P, F), _voigt(dev), rtol=1e-12, atol=1e-3)


def _single_crystal(n=1, q=(1.0, 0, 0, 0)):
    d = make_descriptor(random_seeds(20, 0), np.tile(q, (20, 1)))
    return np.repeat(d[None], n, 0), np.full((n, 20), 1 / 20)


def test_taylor_labels_elastic_single_crystal_is_cubic_hooke():
    """Far below yield, a VE of 20 identical cube-oriented grains answers with C : eps."""
    F = LP.random_monotonic_path(np.random.default_rng(1), 5, max_strain=2e-4, sections=2)
    d, v = _single_crystal()
    sigma, failed = DG.taylor_labels(d, v, F[None], dt=0.5)
    eps = strain_log(F[-1])
    s = np.zeros((3, 3))
    for i in range(3):
        s[i, i] = C11 * eps[i, i] + C12 * (np.trace(eps) - eps[i, i])
        for j in range(3):
            if i != j:
                s[i, j] = 2 * C44 * eps[i, j]
    dev = s - np.trace(s) / 3 * np.eye(3)
    assert not failed.any()
    np.testing.assert_allclose(sigma[0, -1], _voigt(dev), rtol=0, atol=2e-3 * np.abs(dev).max())


def test_taylor_labels_rotate_with_the_volume_element():
    """Objectivity under the 24 rotations Q of the cube: rotating the seeds about the cell centre,
    the grains (passive R -> R Q^T) and the path (F -> Q F Q^T) rotates the labels (Q sigma Q^T)
    and keeps the Voronoi fractions."""
    import damask

    from polyfe2.microstructure.descriptor import random_texture, reduce_to_fz
    import torch

    from polyfe2.mechanics import VOIGT_PAIRS, voigt_to_tensor

    rng = np.random.default_rng(7)
    d = random_texture(20, rng)                 # rows [x, y, z, q]
    F = LP.random_monotonic_path(rng, 12, max_strain=0.02, sections=3)
    Qs = damask.Orientation(lattice="cF").symmetry_operations.as_matrix()
    pick = [5, 11, 19]                          # a 180, a 120 and a 90 deg rotation
    ds, Fs = [d], [F]
    for Q in Qs[pick]:
        seeds = ((d[:, :3] - 0.5) @ Q.T + 0.5) % 1.0
        R = damask.Rotation.from_quaternion(d[:, 3:]).as_matrix() @ Q.T
        ds.append(make_descriptor(seeds, reduce_to_fz(damask.Rotation.from_matrix(R).as_quaternion())))
        Fs.append(Q @ F @ Q.T)
    frac = np.stack([DG.grain_fractions(x) for x in ds])
    np.testing.assert_array_equal(frac[1:], np.repeat(frac[:1], 3, 0))
    sig, failed = DG.taylor_labels(np.stack(ds), frac, np.stack(Fs), 0.5)
    assert not failed.any() and np.abs(sig[0]).max() > 30e6     # well into plasticity
    i, j = np.array(VOIGT_PAIRS).T
    T = voigt_to_tensor(torch.as_tensor(sig[0])).numpy()
    for Q, s in zip(Qs[pick], sig[1:]):
        np.testing.assert_allclose(s, (Q @ T @ Q.T)[:, i, j], atol=1e-3)   # Pa, of ~5e7
    assert np.abs(sig[1] - sig[0]).max() > 1e6                  # the rotation does change them


def test_fullfield_equals_taylor_for_a_single_crystal():
    """Two independent paths to the labels -- the spectral solver on the Voronoi grid and the
    iso-strain point -- agree when all grains share one orientation (homogeneous field)."""
    F = LP.random_monotonic_path(np.random.default_rng(2), 6, max_strain=0.01, sections=2)
    q = np.array([0.9, 0.3, 0.2, 0.1]) / np.linalg.norm([0.9, 0.3, 0.2, 0.1])
    d, v = _single_crystal(q=q)
    s_t, f_t = DG.taylor_labels(d, v, F[None], dt=0.5)
    s_f, f_f = DG.fullfield_labels(d[0], F, dt=0.5, cells=4)
    assert not f_t.any() and not f_f
    assert np.abs(s_t[0, -1]).max() > 30e6          # plastic by then
    np.testing.assert_allclose(s_f, s_t[0], rtol=0, atol=1e-3 * np.abs(s_t).max())


def test_fullfield_is_softer_than_taylor_for_a_polycrystal():
    """The iso-strain (Taylor) point is the upper bound of the full-field VE: its equivalent
    stress is higher along the same path."""
    spec = DG.DatagenSpec(n_ve=1, paths_per_ve=1, steps=8, max_strain=0.02, sections=2, textured_fraction=0)
    desc, _ = DG.sample_descriptor(spec.seed, 0, 0.0)
    F = LP.random_monotonic_path(np.random.default_rng(5), 8, max_strain=0.02, sections=2)
    s_t, _ = DG.taylor_labels(desc[None], DG.grain_fractions(desc, 8)[None], F[None], dt=0.5)
    s_f, failed = DG.fullfield_labels(desc, F, dt=0.5, cells=8)
    mises = lambda s: np.sqrt(1.5 * (s[..., :3] ** 2).sum(-1) + 3 * (s[..., 3:] ** 2).sum(-1))  # noqa: E731
    assert not failed
    assert mises(s_f[-1]) < mises(s_t[0, -1])
    assert mises(s_f[-1]) > 0.7 * mises(s_t[0, -1])


def _spec(**kw):
    base = dict(n_ve=4, paths_per_ve=2, steps=12, sections=3, chunk=2, seed=3)
    base.update(kw)
    return DG.DatagenSpec(**base)


def test_generate_layout_paths_and_resume(tmp_path):
    out = tmp_path / "d.h5"
    summary = DG.generate(out, _spec(), workers=1, progress=False, log=lambda *a: None)
    assert summary == dict(samples=8, failed=0, file=str(out))
    data = DG.read_dataset(out)
    F, s = data["F"], data["sigma_dev"]
    assert F.shape == (8, 13, 3, 3) and s.shape == (8, 12, 6) and data["descriptor"].shape == (8, 20, 7)
    assert np.isfinite(s).all() and np.abs(s).max() > 10e6
    # the stored paths: volume preserving, monotone and smooth Hencky magnitude
    assert np.abs(np.linalg.det(F) - 1).max() < 1e-12
    mag = np.linalg.norm(strain_log(F), axis=(2, 3))
    assert (np.diff(mag, axis=1) >= -1e-14).all()
    assert (np.abs(np.diff(mag, 2, axis=1)).max(1) / np.abs(np.diff(mag, axis=1)).max(1)).max() < 0.5
    # the VEs of one sample set share the descriptor across their paths
    np.testing.assert_array_equal(data["descriptor"][0], data["descriptor"][1])
    assert not np.array_equal(F[0], F[1])
    # interrupt: forget chunk 1 and resume -> the same numbers
    with h5py.File(out, "a") as f:
        f["chunk_done"][1] = False
        f["sigma_dev"][4:] = np.nan
    assert len(DG.read_dataset(out)["F"]) == 4
    DG.generate(out, _spec(), workers=1, progress=False, log=lambda *a: None)
    np.testing.assert_array_equal(DG.read_dataset(out)["sigma_dev"], s)
    with pytest.raises(InputError, match="steps"):
        DG.generate(out, _spec(steps=10), workers=1, progress=False, log=lambda *a: None)


def test_a_version_1_set_resumes(tmp_path):
    """A set begun before step times were stored (version 1: no dt dataset, no dt_spread or
    dt_levels attributes) continues with the same numbers."""
    out = tmp_path / "v1.h5"
    DG.generate(out, _spec(), workers=1, progress=False, log=lambda *a: None)
    s = DG.read_dataset(out)["sigma_dev"]
    with h5py.File(out, "a") as f:
        del f["dt"]
        for k in ("dt_spread", "dt_levels"):
            del f.attrs[k]
        f.attrs["version"] = 1
        f["chunk_done"][1] = False
    np.testing.assert_array_equal(DG.read_dataset(out)["dt"], np.full(4, 0.5))
    DG.generate(out, _spec(), workers=1, progress=False, log=lambda *a: None)
    data = DG.read_dataset(out)
    np.testing.assert_array_equal(data["sigma_dev"], s)
    np.testing.assert_array_equal(data["dt"], np.full(8, 0.5))


def test_step_times_scale_the_flow_stress_by_the_rate_sensitivity(tmp_path):
    """Paths at 16 times the rate: once the grains flow, phenopowerlaw's (1 + ...) rate law
    (n = 20) raises the stress by 16**(1/20) = 1.149 at the same slip resistance; the data set
    stores each path's dt, drawn from the spec's levels."""
    desc, _ = DG.sample_descriptor(0, 0, 0.0)
    F = LP.random_monotonic_path(np.random.default_rng(5), 20, max_strain=0.03, sections=2)
    v = DG.grain_fractions(desc, 8)[None]
    s, failed = DG.taylor_labels(np.repeat(desc[None], 2, 0), np.repeat(v, 2, 0), np.repeat(F[None], 2, 0),
                                 dt=np.array([0.125, 2.0]))
    mises = lambda s: np.sqrt(1.5 * (s[..., :3] ** 2).sum(-1) + 3 * (s[..., 3:] ** 2).sum(-1))  # noqa: E731
    assert not failed.any()
    assert mises(s[0, -1]) / mises(s[1, -1]) == pytest.approx(16 ** (1 / 20), rel=0.01)
    spec = _spec(dt_spread=4.0, dt_levels=5, n_ve=3, paths_per_ve=2)
    assert spec.dt_choices == pytest.approx([0.125, 0.25, 0.5, 1.0, 2.0])
    out = tmp_path / "dt.h5"
    DG.generate(out, spec, workers=1, progress=False, log=lambda *a: None)
    data = DG.read_dataset(out)
    assert set(data["dt"]) <= set(spec.dt_choices) and len(set(data["dt"])) > 1
    for i in range(len(data["dt"])):   # each sample's labels are the ones of its own dt
        one, _ = DG.taylor_labels(data["descriptor"][i:i + 1], data["fractions"][i:i + 1], data["F"][i:i + 1],
                                  dt=float(data["dt"][i]))
        np.testing.assert_allclose(data["sigma_dev"][i], one[0], rtol=1e-9, atol=1e-3)
    with pytest.raises(InputError, match="dt_spread"):
        _spec(dt_spread=0.5).check()
    _spec(max_strain=0.6).check()   # the strain concentrations of a component (a crack tip)
    with pytest.raises(InputError, match=r"key 'max_strain': expected a number in \(0, 1\]"):
        _spec(max_strain=1.5).check()


def test_idealised_loads_reach_the_strain_bound(tmp_path):
    for kind in LP.IDEALISED_KINDS:
        out = tmp_path / f"{kind}.h5"
        DG.generate(out, _spec(n_ve=2, paths_per_ve=1, load=kind, texture="copper"), workers=1,
                    progress=False, log=lambda *a: None)
        data = DG.read_dataset(out)
        mag = np.linalg.norm(strain_log(data["F"][:, -1]), axis=(1, 2))
        np.testing.assert_allclose(mag, 0.05, rtol=1e-9)
        assert set(data["texture"]) == {"copper"}


def test_command_line(tmp_path, capsys):
    out = tmp_path / "c.h5"
    rc = main(["datagen", "gru", "--out", str(out), "--n-ve", "2", "--paths-per-ve", "1", "--steps", "8",
               "--sections", "2", "--workers", "2", "--chunk", "1", "--no-progress"])
    assert rc == 0 and "2 samples (0 failed)" in capsys.readouterr().out
    rc = main(["datagen", "gru", "--out", str(tmp_path / "x.h5"), "--n-ve", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "key 'n_ve'" in err and len(err.strip().splitlines()) == 1


def test_longer_steps_keep_the_path_and_its_labels(tmp_path, capsys):
    """Every 4th state of a 12-step set: the same proportional paths in 3 steps of 4 dt, whose
    labels are the finer integration's; the labels the solver gives the 3 long steps themselves
    (up to 1.5 % strain each, through yield in the first) agree with them to the time-integration
    error: within 5 % of the peak stress, where a label one fine step early is off by more than 10 %."""
    src, out = tmp_path / "d.h5", tmp_path / "long.h5"
    DG.generate(src, _spec(), workers=1, progress=False, log=lambda *a: None)
    rc = main(["datagen", "longer-steps", str(src), "--every", "4", "--out", str(out)])
    assert rc == 0 and "8 paths of 3 steps" in capsys.readouterr().out
    fine, long = DG.read_dataset(src), DG.read_dataset(out)
    assert int(long["attrs"]["steps"]) == 3 and long["F"].shape == (8, 4, 3, 3)
    np.testing.assert_array_equal(long["F"], fine["F"][:, ::4])
    np.testing.assert_array_equal(long["sigma_dev"], fine["sigma_dev"][:, 3::4])
    np.testing.assert_array_equal(long["dt"], 4 * fine["dt"])
    direct, failed = DG.taylor_labels(long["descriptor"], long["fractions"], long["F"], long["dt"])
    assert not failed.any()
    peak = np.abs(fine["sigma_dev"]).max()
    assert np.abs(direct - long["sigma_dev"]).max() < 0.05 * peak
    assert np.abs(direct - fine["sigma_dev"][:, 2::4]).max() > 0.1 * peak   # one fine step early
    rc = main(["datagen", "longer-steps", str(src), "--every", "5", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "divide" in err and "key 'steps'" in err and len(err.strip().splitlines()) == 1
