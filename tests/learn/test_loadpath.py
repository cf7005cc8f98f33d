import numpy as np
import pytest

from polyfe2.learn import loadpath as LP
from polyfe2.mechanics import strain_log

SEEDS = range(40)


def _smoothness(s):
    return np.abs(np.diff(s, 2)).max() / np.abs(np.diff(s)).max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shape_identity_start_and_unit_det(seed):
    F = LP.random_monotonic_path(np.random.default_rng(seed), steps=100, max_strain=0.05)
    assert F.shape == (101, 3, 3)
    np.testing.assert_array_equal(F[0], np.eye(3))
    assert np.abs(np.linalg.det(F) - 1.0).max() < 1e-12


def test_all_paths_volume_preserving_monotone_fixed_direction_bounded():
    finals = []
    for seed in SEEDS:
        F, info = LP.random_monotonic_path(seed, steps=100, max_strain=0.05, sections=4,
                                           return_info=True)
        assert np.abs(np.linalg.det(F) - 1.0).max() < 1e-12
        E = strain_log(F)
        mag = np.linalg.norm(E, axis=(1, 2))
        np.testing.assert_allclose(mag, info["magnitude"], atol=1e-12)
        # monotone (non-decreasing) Hencky strain magnitude
        assert np.all(np.diff(mag) >= -1e-14)
        # final magnitude in (0, max_strain]
        assert 0.0 < mag[-1] <= 0.05 + 1e-12
        finals.append(mag[-1])
        # fixed direction: normalised log strain identical at every step > 0
        N = info["direction"]
        np.testing.assert_allclose(np.trace(N), 0.0, atol=1e-14)
        np.testing.assert_allclose(np.linalg.norm(N), 1.0, atol=1e-14)
        np.testing.assert_allclose(N, N.T, atol=0)
        dirs = E[1:] / mag[1:, None, None]
        ok = mag[1:] > 1e-6          # below, rounding of logm dominates
        assert ok.sum() >= 50
        np.testing.assert_allclose(dirs[ok], np.broadcast_to(N, dirs[ok].shape), atol=1e-8)
        # PCHIP: no overshoot of section targets (within each section between its end values)
        t = np.arange(101)
        for a, b, sa, sb in zip(info["knots_t"][:-1], info["knots_t"][1:],
                                info["knots_s"][:-1], info["knots_s"][1:]):
            seg = mag[(t >= a) & (t <= b)]
            assert seg.min() >= sa - 1e-14 and seg.max() <= sb + 1e-14
        # section targets are hit at the knots
        np.testing.assert_allclose(mag[info["knots_t"].astype(int)], info["knots_s"], atol=1e-12)
        # smooth: no jumps in the rate (second differences small against first differences)
        assert _smoothness(mag) < 0.25
    # the final magnitude really varies over (0, max]
    assert min(finals) < 0.02 and max(finals) > 0.035


def test_smoothness_check_has_teeth():
    # the same knots joined by straight lines (rate jumps) violate the bound used above
    _, info = LP.random_monotonic_path(3, return_info=True)
    lin = np.interp(np.arange(101), info["knots_t"], info["knots_s"])
    assert _smoothness(lin) > 0.25


def test_reproducible_and_argument_checks():
    np.testing.assert_array_equal(LP.random_monotonic_path(11), LP.random_monotonic_path(11))
    assert not np.allclose(LP.random_monotonic_path(11), LP.random_monotonic_path(12))
    with pytest.raises(ValueError):
        LP.random_monotonic_path(0, steps=3, sections=4)


def test_idealised_paths():
    lam = np.exp(0.05)
    U = LP.idealised_path("uniaxial_tension", 10, 0.05)
    np.testing.assert_allclose(U[-1], np.diag([lam, lam ** -0.5, lam ** -0.5]), rtol=1e-14)
    P = LP.idealised_path("plane_strain", 10, 0.05)
    np.testing.assert_allclose(P[-1], np.diag([lam, 1.0, 1.0 / lam]), rtol=1e-14)
    S = LP.idealised_path("pure_shear", 10, 0.05)
    # symmetric pure shear: principal stretches exp(+-g/2) on the 1-2 diagonals
    np.testing.assert_allclose(S[-1], S[-1].T, atol=1e-15)
    np.testing.assert_allclose(np.linalg.eigvalsh(S[-1]), [np.exp(-0.025), 1.0, np.exp(0.025)],
                               rtol=1e-13)
    np.testing.assert_allclose(S[-1][0, 1], np.sinh(0.025), rtol=1e-13)
    for F in (U, P, S):
        assert F.shape == (11, 3, 3)
        np.testing.assert_array_equal(F[0], np.eye(3))
        assert np.abs(np.linalg.det(F) - 1.0).max() < 1e-13
    # monotone log strain along each path
    for F in (U, P, S):
        mag = np.linalg.norm(strain_log(F), axis=(1, 2))
        assert np.all(np.diff(mag) > 0)
    with pytest.raises(ValueError):
        LP.idealised_path("biaxial")
