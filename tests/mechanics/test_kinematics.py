"""polyfe2.mechanics.kinematics: batched routines against single-tensor loops, DAMASK and identities."""
import damask
import numpy as np
import pytest
import scipy.linalg
import torch

from polyfe2.mechanics import kinematics as K


def loop(f, batch, *xs):
    """``f`` applied to one batch entry of every ``x`` at a time, results stacked to ``batch``."""
    out = [np.asarray(f(*(x[i] for x in xs))) for i in np.ndindex(batch)]
    return np.stack(out).reshape(tuple(batch) + out[0].shape)


def test_green_lagrange(at, random):
    F = random.F()
    E = at.numpy(K.green_lagrange(at(F)))
    np.testing.assert_allclose(E, loop(lambda f: 0.5 * (f.T @ f - np.eye(3)), F.shape[:-2], F), rtol=1e-14, atol=1e-15)
    # rigid rotations are strain free
    np.testing.assert_allclose(at.numpy(K.green_lagrange(at(random.rotation()))), 0.0, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# polar decomposition
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_polar_decomposition_identities(at, random, scale):
    F = random.F(scale=scale)
    R, U = (at.numpy(x) for x in K.polar_decomposition(at(F)))
    assert R.shape == U.shape == F.shape
    np.testing.assert_allclose(R @ U, F, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.swapaxes(R, -1, -2) @ R, np.broadcast_to(np.eye(3), F.shape), rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, rtol=1e-13)
    np.testing.assert_array_equal(U, np.swapaxes(U, -1, -2))
    assert (np.linalg.eigvalsh(U) > 0.0).all()


def test_polar_decomposition_equals_damask_and_scipy(at, random):
    F = random.F()
    R, U = (at.numpy(x) for x in K.polar_decomposition(at(F)))
    np.testing.assert_allclose(U, damask.mechanics.stretch_right(F), rtol=0, atol=1e-12)
    np.testing.assert_allclose(R, damask.mechanics.rotation(F).as_matrix(), rtol=0, atol=1e-12)
    # scipy's SVD-based polar decomposition, one matrix at a time
    np.testing.assert_allclose(R, loop(lambda f: scipy.linalg.polar(f, side="right")[0], F.shape[:-2], F),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(U, loop(lambda f: scipy.linalg.polar(f, side="right")[1], F.shape[:-2], F),
                               rtol=0, atol=1e-12)


def test_polar_decomposition_of_rotated_stretch(at, random):
    Q = random.rotation()
    w = np.exp(random.rng.uniform(-0.5, 0.5, Q.shape[:-1]))
    V = random.rotation()
    U_true = np.einsum("...ik,...k,...jk->...ij", V, w, V)
    R, U = (at.numpy(x) for x in K.polar_decomposition(at(Q @ U_true)))
    np.testing.assert_allclose(R, Q, rtol=0, atol=1e-13)
    np.testing.assert_allclose(U, U_true, rtol=0, atol=1e-13)


def test_polar_decomposition_iterations(random):
    F = torch.tensor(random.F())
    R, U = K.polar_decomposition(F)
    # the first iterations without convergence check (the CUDA default) give the same factors
    R5, U5 = K.polar_decomposition(F, unchecked=5)
    torch.testing.assert_close(R5, R, atol=1e-14, rtol=0)
    torch.testing.assert_close(U5, U, atol=1e-14, rtol=0)
    # and the iteration does matter: two Newton steps are not yet converged for 30 % stretches
    R2, _ = K.polar_decomposition(F, max_iter=2)
    assert (R2 - R).abs().max() > 1e-4


def test_polar_decomposition_empty_batch(at):
    R, U = K.polar_decomposition(at(np.zeros((0, 3, 3))))
    assert at.numpy(R).shape == at.numpy(U).shape == (0, 3, 3)


# ----------------------------------------------------------------------------------------------
def test_isochoric(at, random):
    F = random.F()
    F_iso = at.numpy(K.isochoric(at(F)))
    np.testing.assert_allclose(np.linalg.det(F_iso), 1.0, rtol=1e-14)
    np.testing.assert_allclose(F_iso, loop(lambda f: f / np.cbrt(np.linalg.det(f)), F.shape[:-2], F), rtol=1e-14)
    # a pure dilatation has the identity as its isochoric part
    np.testing.assert_allclose(at.numpy(K.isochoric(at(1.7 * np.eye(3)))), np.eye(3), rtol=1e-14)


def test_expm_sym_and_logm_spd_equal_scipy(at, random):
    A = random.tensor()
    A = 0.5 * (A + np.swapaxes(A, -1, -2))
    expA = at.numpy(K.expm_sym(at(A)))
    np.testing.assert_allclose(expA, loop(scipy.linalg.expm, A.shape[:-2], A), rtol=1e-12)
    np.testing.assert_allclose(at.numpy(K.logm_spd(at(expA))), A, rtol=0, atol=1e-13)
    F = random.F()
    S = np.swapaxes(F, -1, -2) @ F                             # SPD, well conditioned for scipy's logm
    np.testing.assert_allclose(at.numpy(K.logm_spd(at(S))), loop(lambda s: scipy.linalg.logm(s).real, S.shape[:-2], S),
                               rtol=0, atol=1e-12)


def test_strain_log_equals_damask(at, random):
    F = random.F()
    eps = at.numpy(K.strain_log(at(F)))
    np.testing.assert_allclose(eps, damask.mechanics.strain(F, "U", 0), rtol=0, atol=1e-13)
    np.testing.assert_allclose(eps, loop(lambda f: 0.5 * scipy.linalg.logm(f.T @ f).real, F.shape[:-2], F),
                               rtol=0, atol=1e-12)


def test_strain_log_of_exponential_stretch(at, random):
    # F = Q exp(N): a rotation after a stretch with ln U = N, so the Hencky strain is N exactly
    N = 0.2 * random.tensor()
    N = 0.5 * (N + np.swapaxes(N, -1, -2))
    F = random.rotation() @ loop(scipy.linalg.expm, N.shape[:-2], N)
    np.testing.assert_allclose(at.numpy(K.strain_log(at(F))), N, rtol=0, atol=1e-14)


def test_strain_log_volume(at, random):
    F = random.F()
    eps = at.numpy(K.strain_log(at(F)))
    np.testing.assert_allclose(np.exp(np.trace(eps, axis1=-2, axis2=-1)), np.linalg.det(F), rtol=1e-13)


def test_float32_stays_float32(random):
    F = torch.tensor(random.F(), dtype=torch.float32)
    for out in (K.green_lagrange(F), *K.polar_decomposition(F, tol=1e-6), K.isochoric(F), K.strain_log(F)):
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_wrong_shape_is_named(at):
    with pytest.raises(ValueError, match=r"F: expected shape \(\.\.\., 3, 3\), got \(4, 9\)"):
        K.polar_decomposition(at(np.zeros((4, 9))))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stays_on_the_device_and_equals_cpu(random):
    from polyfe2 import mechanics as M

    F = torch.tensor(random.F())
    Fc = F.cuda()
    # on CUDA the first five iterations run without a convergence check (no host sync)
    for cpu, gpu in zip(M.polar_decomposition(F), M.polar_decomposition(Fc)):
        assert gpu.device == Fc.device
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-13, rtol=0)
    for f in (M.green_lagrange, M.isochoric, M.strain_log, M.deviatoric, M.tensor_to_voigt,
              M.equivalent_stress_Mises, lambda x: M.ddot42(M.cubic_stiffness(1.0, 0.5, 0.3, device=x.device), x)):
        out = f(Fc)
        assert out.device == Fc.device and out.dtype == torch.float64
        torch.testing.assert_close(out.cpu(), f(F), atol=1e-13, rtol=1e-13)
