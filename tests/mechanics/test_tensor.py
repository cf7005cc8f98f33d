"""polyfe2.mechanics.tensor: batched routines against single-tensor loops, DAMASK and identities."""
import math

import damask
import numpy as np
import pytest
import torch

from polyfe2.mechanics import tensor as T

SQ2 = math.sqrt(2.0)


def loop(f, batch, *xs):
    """``f`` applied to one batch entry of every ``x`` at a time, results stacked to ``batch``."""
    out = [np.asarray(f(*(x[i] for x in xs))) for i in np.ndindex(batch)]
    return np.stack(out).reshape(tuple(batch) + out[0].shape)


# single-tensor references in plain numpy, written out component by component
def trace_1(A):
    return A[0, 0] + A[1, 1] + A[2, 2]


def transpose_1(A):
    return np.array([[A[j, i] for j in range(3)] for i in range(3)])


def symmetric_1(A):
    return np.array([[0.5 * (A[i, j] + A[j, i]) for j in range(3)] for i in range(3)])


def spherical_1(A):
    return np.diag([trace_1(A) / 3.0] * 3)


def deviatoric_1(A):
    return A - spherical_1(A)


def ddot42_1(C, E):
    out = np.zeros((3, 3))
    for i, j, k, l in np.ndindex(3, 3, 3, 3):
        out[i, j] += C[i, j, k, l] * E[k, l]
    return out


def voigt_1(A):
    return np.array([A[0, 0], A[1, 1], A[2, 2], A[1, 2], A[0, 2], A[0, 1]])


def voigt_batched(E):
    return loop(voigt_1, E.shape[:-2], E)


def isotropic(lam, mu):
    d = np.eye(3)
    return lam * np.einsum("ij,kl->ijkl", d, d) + mu * (np.einsum("ik,jl->ijkl", d, d) + np.einsum("il,jk->ijkl", d, d))


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("f, f_1", [(T.transpose, transpose_1), (T.symmetric, symmetric_1),
                                    (T.spherical, spherical_1), (T.deviatoric, deviatoric_1),
                                    (T.trace, trace_1), (T.tensor_to_voigt, voigt_1)])
def test_batched_equals_loop(at, random, f, f_1):
    A = random.tensor()
    np.testing.assert_allclose(at.numpy(f(at(A))), loop(f_1, A.shape[:-2], A), rtol=1e-14, atol=1e-14)


@pytest.mark.filterwarnings("ignore:tensor.deviatoric will be removed in DAMASK 4.0:DeprecationWarning")
@pytest.mark.parametrize("f, f_damask", [(T.transpose, damask.tensor.transpose),
                                         (T.symmetric, damask.tensor.symmetric),
                                         (T.deviatoric, damask.tensor.deviatoric),
                                         (T.spherical, lambda A: damask.tensor.spherical(A, True))])
def test_equals_damask(at, random, f, f_damask):
    A = random.tensor()
    np.testing.assert_allclose(at.numpy(f(at(A))), f_damask(A), rtol=1e-14, atol=1e-14)


def test_trace_of_parts(at, random):
    A = random.tensor()
    tr = at.numpy(T.trace(at(A)))
    assert tr.shape == A.shape[:-2]
    np.testing.assert_allclose(at.numpy(T.trace(T.deviatoric(at(A)))), 0.0, atol=1e-14)
    np.testing.assert_allclose(at.numpy(T.trace(T.spherical(at(A)))), tr, rtol=1e-14)
    np.testing.assert_allclose(at.numpy(T.spherical(at(A)) + T.deviatoric(at(A))), A, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eye3_follows_like(dtype):
    e = T.eye3(np.zeros((5, 3, 3), dtype=dtype))
    assert isinstance(e, np.ndarray) and e.dtype == np.dtype(dtype) and e.shape == (3, 3)
    np.testing.assert_array_equal(e, np.eye(3))
    t = T.eye3(torch.zeros(5, 3, 3, dtype=getattr(torch, dtype)))
    assert isinstance(t, torch.Tensor) and t.dtype == getattr(torch, dtype) and t.shape == (3, 3)
    np.testing.assert_array_equal(t.numpy(), np.eye(3))
    # and so do the routines that build one
    s = T.deviatoric(torch.ones(2, 3, 3, dtype=getattr(torch, dtype)))
    assert s.dtype == getattr(torch, dtype)


def test_ddot42_single_C_on_a_batch(at, random):
    C = random.rng.standard_normal((3, 3, 3, 3))               # no symmetries: every index counts
    E = random.tensor()
    out = at.numpy(T.ddot42(at(C), at(E)))
    assert out.shape == E.shape
    np.testing.assert_allclose(out, loop(lambda e: ddot42_1(C, e), E.shape[:-2], E), rtol=1e-12, atol=1e-13)


def test_ddot42_batched_C(at, random):
    C = random.rng.standard_normal((4, 3, 3, 3, 3, 3))
    E = random.tensor((4, 3))
    np.testing.assert_allclose(at.numpy(T.ddot42(at(C), at(E))), loop(ddot42_1, E.shape[:-2], C, E),
                               rtol=1e-12, atol=1e-13)
    # a batch of C against one E broadcasts the other way round
    np.testing.assert_allclose(at.numpy(T.ddot42(at(C), at(E[0, 0]))),
                               loop(lambda c: ddot42_1(c, E[0, 0]), C.shape[:-4], C), rtol=1e-12, atol=1e-13)


def test_ddot42_isotropic_is_Hooke(at, random):
    lam, mu = 2.3, 0.7
    C = isotropic(lam, mu)
    eps = random.tensor()
    eps = 0.5 * (eps + np.swapaxes(eps, -1, -2))
    tr = eps[..., 0, 0] + eps[..., 1, 1] + eps[..., 2, 2]
    sigma = lam * tr[..., None, None] * np.eye(3) + 2.0 * mu * eps
    np.testing.assert_allclose(at.numpy(T.ddot42(at(C), at(eps))), sigma, rtol=1e-13, atol=1e-14)


def test_mixed_types_run_in_torch(random):
    C = random.minor_symmetric()
    E = random.tensor()
    out = T.ddot42(torch.tensor(C), E)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), T.ddot42(C, E), rtol=1e-14, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Voigt and Mandel
# ----------------------------------------------------------------------------------------------
def test_voigt_order():
    assert T.STRESS_ORDER == ("11", "22", "33", "23", "13", "12")
    assert all(T.STRESS_ORDER[k] == f"{i + 1}{j + 1}" for k, (i, j) in enumerate(T.VOIGT_PAIRS))
    A = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(T.tensor_to_voigt(A), [0.0, 4.0, 8.0, 5.0, 2.0, 1.0])
    np.testing.assert_array_equal(T.voigt_to_tensor(np.array([1.0, 2, 3, 4, 5, 6])),
                                  [[1, 6, 5], [6, 2, 4], [5, 4, 3]])


def test_voigt_round_trip(at, random):
    A = random.tensor()
    A_sym = 0.5 * (A + np.swapaxes(A, -1, -2))
    s = at.numpy(T.tensor_to_voigt(at(A_sym)))
    assert s.shape == A.shape[:-2] + (6,)
    np.testing.assert_array_equal(at.numpy(T.voigt_to_tensor(at(s))), A_sym)
    v = random.rng.standard_normal((5, 2, 6))
    np.testing.assert_array_equal(at.numpy(T.tensor_to_voigt(T.voigt_to_tensor(at(v)))), v)


def test_voigt_to_tensor_keeps_gradients():
    s = torch.tensor([1.0, 2, 3, 4, 5, 6], dtype=torch.float64, requires_grad=True)
    (T.voigt_to_tensor(s) * torch.arange(9.0, dtype=torch.float64).reshape(3, 3)).sum().backward()
    # d/ds_k of sum_ij A_ij W_ij: W_ii for normal, W_ij + W_ji for shear components
    np.testing.assert_array_equal(s.grad.numpy(), [0.0, 4.0, 8.0, 5.0 + 7.0, 2.0 + 6.0, 1.0 + 3.0])


def test_to_mandel_isotropic(at):
    lam, mu = 60.0, 25.0
    M = at.numpy(T.to_mandel(at(isotropic(lam, mu))))
    expected = np.zeros((6, 6))
    expected[:3, :3] = lam
    expected[:3, :3] += 2.0 * mu * np.eye(3)
    expected[3:, 3:] = 2.0 * mu * np.eye(3)          # sqrt(2) * sqrt(2) * C_2323 = 2 mu
    np.testing.assert_allclose(M, expected, rtol=1e-14, atol=1e-12)
    # Mandel is an orthonormal basis: eigenvalues 3K (volumetric) and 2 mu (five deviatoric modes)
    np.testing.assert_allclose(np.linalg.eigvalsh(M), sorted([3 * lam + 2 * mu] + [2 * mu] * 5), rtol=1e-13)


def test_to_mandel_batched_equals_loop(at, random):
    C = random.minor_symmetric((4, 3))

    def mandel_1(c):
        w = [1.0, 1.0, 1.0, SQ2, SQ2, SQ2]
        return np.array([[w[a] * w[b] * c[i, j, k, l] for b, (k, l) in enumerate(T.VOIGT_PAIRS)]
                         for a, (i, j) in enumerate(T.VOIGT_PAIRS)])

    M = at.numpy(T.to_mandel(at(C)))
    assert M.shape == (4, 3, 6, 6)
    np.testing.assert_allclose(M, loop(mandel_1, C.shape[:-4], C), rtol=1e-15, atol=0)


def test_mandel_contraction_and_norm(at, random):
    C = random.minor_symmetric((4, 3))
    E = random.tensor()
    E = 0.5 * (E + np.swapaxes(E, -1, -2))
    w = np.array([1.0, 1.0, 1.0, SQ2, SQ2, SQ2])
    M = at.numpy(T.to_mandel(at(C)))
    # (C : E) in Mandel = M e
    lhs = w * at.numpy(T.tensor_to_voigt(T.ddot42(at(C), at(E))))
    rhs = np.einsum("...ab,...b->...a", M, w * voigt_batched(E))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-13)
    # the Frobenius norm is kept (orthonormal basis)
    np.testing.assert_allclose(np.linalg.norm(M, axis=(-2, -1)),
                               np.sqrt((C ** 2).sum(axis=(-4, -3, -2, -1))), rtol=1e-13)


def test_mandel_round_trip(at, random):
    C = random.minor_symmetric((4, 3))
    C_back = at.numpy(T.from_mandel(T.to_mandel(at(C))))
    assert C_back.shape == C.shape
    np.testing.assert_allclose(C_back, C, rtol=1e-14, atol=1e-15)
    M = random.rng.standard_normal((2, 5, 6, 6))                  # any 6x6, not even symmetric
    np.testing.assert_allclose(at.numpy(T.to_mandel(T.from_mandel(at(M)))), M, rtol=1e-14, atol=1e-15)


def test_from_mandel_has_minor_symmetries(at, random):
    C = at.numpy(T.from_mandel(at(random.rng.standard_normal((3, 6, 6)))))
    np.testing.assert_array_equal(C, np.swapaxes(C, -4, -3))
    np.testing.assert_array_equal(C, np.swapaxes(C, -2, -1))


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("f, shape, expected", [
    (T.trace, (4, 3, 4), "T: expected shape (..., 3, 3), got (4, 3, 4)"),
    (T.tensor_to_voigt, (3,), "T: expected shape (..., 3, 3), got (3,)"),
    (T.voigt_to_tensor, (2, 9), "s: expected shape (..., 6), got (2, 9)"),
    (T.to_mandel, (5, 3, 3), "C: expected shape (..., 3, 3, 3, 3), got (5, 3, 3)"),
    (T.from_mandel, (6, 3), "M: expected shape (..., 6, 6), got (6, 3)"),
])
def test_wrong_shape_is_named(at, f, shape, expected):
    with pytest.raises(ValueError) as e:
        f(at(np.zeros(shape)))
    assert str(e.value) == expected
