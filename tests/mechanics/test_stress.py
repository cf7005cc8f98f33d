"""polyfe2.mechanics.stress: batched routines against single-tensor loops, DAMASK and identities."""
import math

import damask
import numpy as np
import pytest
import torch

from polyfe2.mechanics import stress as S


def loop(f, batch, *xs):
    """``f`` applied to one batch entry of every ``x`` at a time, results stacked to ``batch``."""
    out = [np.asarray(f(*(x[i] for x in xs))) for i in np.ndindex(batch)]
    return np.stack(out).reshape(tuple(batch) + out[0].shape)


def cauchy_1(P, F):
    s = P @ F.T / np.linalg.det(F)
    return 0.5 * (s + s.T)


def pk2_1(P, F):
    s = np.linalg.solve(F, P)
    return 0.5 * (s + s.T)


def mises_1(s):
    # 3 J2 written out in components
    return math.sqrt(0.5 * ((s[0, 0] - s[1, 1]) ** 2 + (s[1, 1] - s[2, 2]) ** 2 + (s[2, 2] - s[0, 0]) ** 2)
                     + 3.0 * (s[0, 1] ** 2 + s[1, 2] ** 2 + s[2, 0] ** 2))


def pk1_1(sigma, F):
    return np.linalg.det(F) * sigma @ np.linalg.inv(F).T


@pytest.fixture
def PF(random):
    return 1e8 * random.tensor(), random.F()


def symmetric_stress(random):
    s = 1e8 * random.tensor()
    return 0.5 * (s + np.swapaxes(s, -1, -2))


# ----------------------------------------------------------------------------------------------
def test_stress_Cauchy(at, PF):
    P, F = PF
    sigma = at.numpy(S.stress_Cauchy(at(P), at(F)))
    np.testing.assert_allclose(sigma, loop(cauchy_1, F.shape[:-2], P, F), rtol=1e-12, atol=1e-4)
    np.testing.assert_allclose(sigma, damask.mechanics.stress_Cauchy(P, F), rtol=1e-12, atol=1e-4)
    np.testing.assert_array_equal(sigma, np.swapaxes(sigma, -1, -2))


def test_stress_second_Piola_Kirchhoff(at, PF):
    P, F = PF
    S2 = at.numpy(S.stress_second_Piola_Kirchhoff(at(P), at(F)))
    np.testing.assert_allclose(S2, loop(pk2_1, F.shape[:-2], P, F), rtol=1e-12, atol=1e-4)
    np.testing.assert_allclose(S2, damask.mechanics.stress_second_Piola_Kirchhoff(P, F), rtol=1e-12, atol=1e-4)


def test_equivalent_stress_Mises(at, random):
    s = symmetric_stress(random)
    vm = at.numpy(S.equivalent_stress_Mises(at(s)))
    assert vm.shape == s.shape[:-2]
    np.testing.assert_allclose(vm, loop(mises_1, s.shape[:-2], s), rtol=1e-13)
    np.testing.assert_allclose(vm, damask.mechanics.equivalent_stress_Mises(s), rtol=1e-13)


@pytest.mark.parametrize("sigma, expected", [
    ([[-250e6, 0, 0], [0, 0, 0], [0, 0, 0]], 250e6),                 # uniaxial: |sigma_11|
    ([[0, 80e6, 0], [80e6, 0, 0], [0, 0, 0]], math.sqrt(3) * 80e6),  # pure shear: sqrt(3) tau
    ([[3e8, 0, 0], [0, 3e8, 0], [0, 0, 3e8]], 0.0),                  # hydrostatic
    ([[1e8, 0, 0], [0, -1e8, 0], [0, 0, 0]], math.sqrt(3) * 1e8),    # pure shear, principal axes
])
def test_equivalent_stress_Mises_analytical(at, sigma, expected):
    vm = at.numpy(S.equivalent_stress_Mises(at(np.array(sigma, dtype=float))))
    assert vm.shape == ()
    assert float(vm) == pytest.approx(expected, rel=1e-14, abs=1e-6)


def test_Mises_is_pressure_independent(at, random):
    s = symmetric_stress(random)
    p = 1e8 * random.rng.standard_normal(s.shape[:-2])
    np.testing.assert_allclose(at.numpy(S.equivalent_stress_Mises(at(s + p[..., None, None] * np.eye(3)))),
                               at.numpy(S.equivalent_stress_Mises(at(s))), rtol=1e-12)


def test_first_Piola_Kirchhoff(at, random):
    sigma, F = symmetric_stress(random), random.F()
    P = at.numpy(S.first_Piola_Kirchhoff(at(sigma), at(F)))
    np.testing.assert_allclose(P, loop(pk1_1, F.shape[:-2], sigma, F), rtol=1e-12, atol=1e-4)
    # the Piola transform and its inverse
    np.testing.assert_allclose(at.numpy(S.stress_Cauchy(at(P), at(F))), sigma, rtol=1e-12, atol=1e-4)
    # S = F^-1 P = J F^-1 sigma F^-T, symmetric without symmetrising
    Finv = np.linalg.inv(F)
    J = np.linalg.det(F)[..., None, None]
    np.testing.assert_allclose(at.numpy(S.stress_second_Piola_Kirchhoff(at(P), at(F))),
                               J * Finv @ sigma @ np.swapaxes(Finv, -1, -2), rtol=1e-12, atol=1e-4)


def test_rigid_rotation_rotates_Cauchy_stress(at, random):
    # F = Q, P = sigma Q: sigma = P Q^T
    Q = random.rotation()
    sigma = symmetric_stress(random)
    np.testing.assert_allclose(at.numpy(S.stress_Cauchy(at(sigma @ Q), at(Q))), sigma, rtol=1e-12, atol=1e-4)


def test_mixed_types_run_in_torch(PF):
    P, F = PF
    out = S.stress_Cauchy(P, torch.tensor(F))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), S.stress_Cauchy(P, F), rtol=1e-12, atol=1e-4)


def test_wrong_shape_is_named(at):
    with pytest.raises(ValueError, match=r"F: expected shape \(\.\.\., 3, 3\), got \(3, 2\)"):
        S.stress_Cauchy(at(np.zeros((3, 3))), at(np.zeros((3, 2))))
