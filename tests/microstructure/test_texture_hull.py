"""Tests of the discrete texture hull: fundamental orientations, HSS, coverage measures."""
import damask
import numpy as np
import pytest

from polyfe2.microstructure import texture_hull as T

#: Aluminium cubic elastic constants (Pa)
AL = (106.75e9, 60.41e9, 28.34e9)
C11, C12, C44 = AL
ANISO = C11 - C12 - 2.0 * C44          # cubic anisotropy C11 - C12 - 2 C44 (< 0 for Al)
RES = 10.0


@pytest.fixture(scope="module")
def q10():
    return T.fundamental_orientations(RES)


def _orient(q):
    return damask.Orientation(rotation=damask.Rotation(np.asarray(q).reshape(-1, 4)), lattice="cF")


def _disorientation_deg(a, b):
    """(len(a), len(b)) disorientation angles in degrees (cubic symmetry, damask)."""
    a, b = np.asarray(a).reshape(-1, 4), np.asarray(b).reshape(-1, 4)
    A = np.broadcast_to(a[:, None], (len(a), len(b), 4)).reshape(-1, 4)
    B = np.broadcast_to(b[None, :], (len(a), len(b), 4)).reshape(-1, 4)
    return np.degrees(_orient(A).disorientation_angle(_orient(B))).reshape(len(a), len(b))


def _c1111_analytic(q):
    """C_1111 in the lab frame: C11 + 2 A (l^2 m^2 + m^2 n^2 + n^2 l^2) with (l, m, n) the lab
    x axis in crystal coordinates (first column of R, v_c = R v_lab) and A = C11 - C12 - 2 C44."""
    x = damask.Rotation(np.asarray(q).reshape(-1, 4)).as_matrix()[:, :, 0]
    l2 = x ** 2
    return C11 - 2.0 * ANISO * (l2[:, 0] * l2[:, 1] + l2[:, 1] * l2[:, 2] + l2[:, 2] * l2[:, 0])


# --- fundamental orientations -------------------------------------------------------------------

def test_fundamental_orientations_unit_fz_and_count(q10):
    assert T.cubochoric_cells(RES) == 25
    J = q10.shape[0]
    assert q10.shape == (627, 4)                         # stated in the module docstring
    assert 580 <= J <= 680                               # paper 000: J = 618 at 10°
    assert abs(J - 25 ** 3 / 24) / (25 ** 3 / 24) < 0.1  # the FZ is 1/24 of SO(3)
    np.testing.assert_allclose(np.linalg.norm(q10, axis=1), 1.0, atol=1e-12)
    assert np.all(q10[:, 0] >= 0.0)
    assert np.all(_orient(q10).in_FZ)
    # the cube orientation (identity) is the centre cell of the odd grid
    assert np.any(np.all(np.isclose(q10, [1.0, 0.0, 0.0, 0.0], atol=1e-12), axis=1))
    # deterministic, and the cached array is not exposed
    again = T.fundamental_orientations(RES)
    np.testing.assert_array_equal(again, q10)
    again[0] = 0.0
    np.testing.assert_array_equal(T.fundamental_orientations(RES), q10)


def test_resolution_scales_count():
    # J ≈ n^3/24 with n = round(2 π^(2/3)/Δ): 15° -> n = 16, 20° -> n = 12
    assert T.cubochoric_cells(15.0) == 16 and T.cubochoric_cells(20.0) == 12
    j15, j20 = len(T.fundamental_orientations(15.0)), len(T.fundamental_orientations(20.0))
    assert j20 < j15 < 627
    assert abs(j15 - 16 ** 3 / 24) < 0.15 * 16 ** 3 / 24
    with pytest.raises(ValueError):
        T.cubochoric_cells(0.0)


def test_fundamental_orientations_nearly_uniform(q10):
    D = _disorientation_deg(q10, q10)
    np.fill_diagonal(D, np.inf)
    nn = D.min(axis=1)
    p5, p50, p95 = np.percentile(nn, [5, 50, 95])
    # measured: 5 % 5.94°, median 7.47°, 95 % 7.91°, min 2.3° (points just inside opposite FZ faces)
    assert 0.65 * RES < p50 < RES
    assert p5 > 0.5 * RES and p95 < 0.9 * RES
    assert p95 - p5 < 0.25 * RES
    assert nn.min() > 1.0                                 # no duplicated (equivalent) orientations
    # covering: random orientations lie close to some grid point
    # (measured on 20000: median 5.1°, 95 % 8.1°, max 12.5°)
    r = damask.Rotation.from_random(1500, rng_seed=0).quaternion
    near = _disorientation_deg(r, q10).min(axis=1)
    assert np.median(near) < 0.6 * RES and np.percentile(near, 95) < 0.9 * RES
    assert near.max() < 1.4 * RES


def test_uniform_weights_give_isotropic_voigt(q10):
    # orientation average of l^2 m^2 + ... is 1/5: C1111_iso = C11 - 2A/5 = 110.886 GPa; a uniform
    # weight on a nearly uniform FZ grid must come close (single crystals span 106.75-113.6 GPa).
    # Measured: 110.828 GPa (-0.058 GPa; the FZ-boundary cells); the mean over 627 random
    # orientations scatters by 0.072 GPa (std); 15°/5° grids: 110.905/110.868 GPa
    J = q10.shape[0]
    c = T.voigt_c1111(np.full(J, 1.0 / J), q10, *AL)
    assert c.shape == ()
    assert abs(c - (C11 - 0.4 * ANISO)) < 0.1e9


# --- sampling the simplex -----------------------------------------------------------------------

def test_default_levels():
    np.testing.assert_array_equal(T.default_levels(627), [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 627])
    np.testing.assert_array_equal(T.default_levels(8), [1, 2, 4, 8])
    np.testing.assert_array_equal(T.default_levels(1), [1])


def test_hss_on_simplex_with_level_supports():
    J = 627
    w = T.hierarchical_simplex_sample(J, 1100, np.random.default_rng(3))
    assert w.shape == (1100, J)
    assert np.all(w >= 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    support = (w > 0).sum(axis=1)
    levels = T.default_levels(J)
    assert set(np.unique(support)) == set(levels)         # every level drawn, nothing else
    counts = np.array([(support == k).sum() for k in levels])
    assert counts.min() > 60 and counts.max() < 140       # ~100 each (uniform over 11 levels)
    one = T.hierarchical_simplex_sample(J, 50, 0, levels=[1])
    np.testing.assert_array_equal(np.sort(one, axis=1)[:, -1], 1.0)
    assert np.all((one > 0).sum(axis=1) == 1)
    full = T.hierarchical_simplex_sample(J, 5, 0, levels=[J])
    assert np.all(full > 0)
    for bad in ([0], [J + 1], []):
        with pytest.raises(ValueError):
            T.hierarchical_simplex_sample(J, 5, 0, levels=bad)


def test_dirichlet_on_simplex_concentrates_at_random():
    J = 627
    w = T.dirichlet_sample(J, 500, 1)
    assert w.shape == (500, J) and np.all(w > 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # E[J Σ p^2] = 2J/(J+1) ≈ 2
    assert abs(T.texture_index(w).mean() - 2 * J / (J + 1)) < 0.05


def test_sampling_deterministic_with_seed():
    for f in (T.hierarchical_simplex_sample, T.dirichlet_sample):
        a, b, c = f(100, 20, 5), f(100, 20, np.random.default_rng(5)), f(100, 20, 6)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_texture_index_limits():
    J = 10
    assert T.texture_index(np.full(J, 0.1)) == pytest.approx(1.0)
    assert T.texture_index(np.eye(J)[3]) == pytest.approx(J)
    np.testing.assert_allclose(T.texture_index(np.eye(J)), np.full(J, J))


def test_hss_covers_hull_better_than_dirichlet(q10):
    J = q10.shape[0]
    h = T.hierarchical_simplex_sample(J, 2000, 0)
    d = T.dirichlet_sample(J, 2000, 1)
    ch, cd = T.voigt_c1111(h, q10, *AL), T.voigt_c1111(d, q10, *AL)
    assert ch.shape == cd.shape == (2000,)
    # measured: std HSS 0.843 GPa vs Dirichlet 0.0708 GPa (x11.9); 5-95 % range 2.86 vs 0.233 GPa
    # (x12.2); full range 6.77 vs 0.52 GPa; max texture index 627 vs 2.56 (x245)
    assert ch.std() > 8.0 * cd.std()
    r95 = lambda c: np.subtract(*np.percentile(c, [95, 5]))  # noqa: E731
    assert r95(ch) > 8.0 * r95(cd)
    th, td = T.texture_index(h), T.texture_index(d)
    assert th.max() == pytest.approx(J) and td.max() < 3.0
    assert th.max() > 100.0 * td.max()
    # HSS reaches both single-crystal extremes of the grid, Dirichlet stays near isotropic
    single = T.voigt_c1111(np.eye(J), q10, *AL)
    assert ch.min() < single.min() + 0.2e9 and ch.max() > single.max() - 0.2e9
    assert np.all(np.abs(cd - (C11 - 0.4 * ANISO)) < 0.5e9)


def test_single_vertex_c1111_is_rotated_single_crystal(q10):
    J = q10.shape[0]
    idx = np.array([0, 17, 313, J - 1])
    single = T.voigt_c1111(np.eye(J)[idx], q10, *AL)
    np.testing.assert_allclose(single, _c1111_analytic(q10[idx]), rtol=1e-12)
    # the same through damask's tensor rotation: lab frame = inverse of the lab->crystal rotation
    C = np.zeros((3, 3, 3, 3))
    for i in range(3):
        for j in range(3):
            C[i, i, j, j] = C12
            C[i, j, i, j] += C44
            C[i, j, j, i] += C44
        C[i, i, i, i] = C11
    lab = (~damask.Rotation(q10[idx])) @ C
    np.testing.assert_allclose(single, lab[:, 0, 0, 0, 0], rtol=1e-12)
    # cube orientation: C1111 = C11; and mixtures are the weighted sums
    cube = int(np.flatnonzero(np.all(np.isclose(q10, [1, 0, 0, 0], atol=1e-12), axis=1))[0])
    assert T.voigt_c1111(np.eye(J)[cube], q10, *AL) == pytest.approx(C11, rel=1e-12)
    w = np.zeros(J)
    w[idx] = [0.1, 0.2, 0.3, 0.4]
    assert T.voigt_c1111(w, q10, *AL) == pytest.approx(w[idx] @ single, rel=1e-12)
    # HSS level-1 samples equal the single-crystal values of their vertex
    one = T.hierarchical_simplex_sample(J, 30, 4, levels=[1])
    np.testing.assert_allclose(T.voigt_c1111(one, q10, *AL), _c1111_analytic(q10[one.argmax(axis=1)]),
                               rtol=1e-12)
    with pytest.raises(ValueError):
        T.voigt_c1111(np.ones(J - 1) / (J - 1), q10, *AL)


# --- grain orientations from a discrete ODF -----------------------------------------------------

def test_sample_odf_one_hot_without_scatter(q10):
    j = 313
    g = T.sample_odf_orientations(np.eye(len(q10))[j], q10, 40, rng=0)
    assert g.shape == (40, 4)
    np.testing.assert_allclose(g, np.broadcast_to(q10[j], g.shape), atol=1e-12)


def test_sample_odf_one_hot_with_scatter(q10):
    j, s = 100, 5.0
    g = T.sample_odf_orientations(np.eye(len(q10))[j], q10, 300, rng=1, scatter_deg=s)
    assert g.shape == (300, 4)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-12)
    assert np.all(g[:, 0] >= 0.0) and np.all(_orient(g).in_FZ)
    ang = _disorientation_deg(g, q10[j])[:, 0]
    assert ang.max() <= s + 1e-6
    # Haar-uniform in the 5° ball: angle CDF ≈ (ω/s)^3, median ≈ s 2^(-1/3) = 3.97°
    assert ang.max() > 0.9 * s and abs(np.median(ang) - s * 2 ** (-1 / 3)) < 0.4
    np.testing.assert_array_equal(
        g, T.sample_odf_orientations(np.eye(len(q10))[j], q10, 300, rng=1, scatter_deg=s))


def test_sample_odf_categorical_frequencies(q10):
    J = len(q10)
    w = np.zeros(J)
    w[[5, 50, 500]] = [0.6, 0.3, 0.1]
    g = T.sample_odf_orientations(w, q10, 4000, rng=np.random.default_rng(2))
    match = np.all(np.isclose(g[:, None, :], q10[None, [5, 50, 500], :], atol=1e-12), axis=2)
    assert np.all(match.sum(axis=1) == 1)
    freq = match.mean(axis=0)
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.03)
    with pytest.raises(ValueError):
        T.sample_odf_orientations(-w, q10, 5)
    with pytest.raises(ValueError):
        T.sample_odf_orientations(w[:-1], q10, 5)
