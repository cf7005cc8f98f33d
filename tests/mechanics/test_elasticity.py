"""polyfe2.mechanics.elasticity: cubic stiffness, rotation and averaging against loops, DAMASK and
identities."""
import damask
import numpy as np
import pytest
import torch

from polyfe2.mechanics import elasticity as El
from polyfe2.mechanics import tensor as T

C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9            # aluminium, Pa


def loop(f, batch, *xs):
    """``f`` applied to one batch entry of every ``x`` at a time, results stacked to ``batch``."""
    out = [np.asarray(f(*(x[i] for x in xs))) for i in np.ndindex(batch)]
    return np.stack(out).reshape(tuple(batch) + out[0].shape)


def rotate_1(C, R):
    """C_lab_ijkl = R_ai R_bj R_ck R_dl C_abcd, one (3,3,3,3) tensor, written out."""
    out = np.zeros((3, 3, 3, 3))
    for i, j, k, l in np.ndindex(3, 3, 3, 3):
        for a, b, c, d in np.ndindex(3, 3, 3, 3):
            out[i, j, k, l] += R[a, i] * R[b, j] * R[c, k] * R[d, l] * C[a, b, c, d]
    return out


def cubic():
    return El.cubic_stiffness(C11, C12, C44).numpy()


# ----------------------------------------------------------------------------------------------
def test_cubic_stiffness_components():
    C = El.cubic_stiffness(C11, C12, C44)
    assert isinstance(C, torch.Tensor) and C.shape == (3, 3, 3, 3) and C.dtype == torch.float64
    C = C.numpy()
    # the Voigt matrix of a cubic crystal
    V = np.zeros((6, 6))
    V[:3, :3] = C12
    V[np.arange(3), np.arange(3)] = C11
    V[np.arange(3, 6), np.arange(3, 6)] = C44
    for a, (i, j) in enumerate(T.VOIGT_PAIRS):
        for b, (k, l) in enumerate(T.VOIGT_PAIRS):
            for ii, jj in ((i, j), (j, i)):
                for kk, ll in ((k, l), (l, k)):
                    assert C[ii, jj, kk, ll] == pytest.approx(V[a, b], abs=1e-3)
    # Mandel eigenvalues: 3K once, C11 - C12 twice, 2 C44 three times
    np.testing.assert_allclose(np.linalg.eigvalsh(T.to_mandel(C)),
                               sorted([C11 + 2 * C12] + [C11 - C12] * 2 + [2 * C44] * 3), rtol=1e-14)


def test_cubic_stiffness_device_and_dtype():
    C = El.cubic_stiffness(C11, C12, C44, device="cpu", dtype=torch.float32)
    assert C.dtype == torch.float32 and C.device.type == "cpu"
    assert float(C[0, 0, 0, 0]) == pytest.approx(C11, rel=1e-7)


def test_rotate_by_identity_is_a_no_op(at, random):
    C = random.stiffness()
    np.testing.assert_allclose(at.numpy(El.rotate_stiffness(at(C), at(np.eye(3)))), C, rtol=0, atol=1e-15)


def test_rotate_by_90_degrees_about_z(at, random):
    C = random.stiffness()                                  # triclinic: C1111 != C2222
    assert abs(C[0, 0, 0, 0] - C[1, 1, 1, 1]) > 0.1
    R = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])   # v_c = R v_lab: x_c = y_lab
    C_lab = at.numpy(El.rotate_stiffness(at(C), at(R)))
    assert C_lab[0, 0, 0, 0] == pytest.approx(C[1, 1, 1, 1], rel=1e-14)
    assert C_lab[1, 1, 1, 1] == pytest.approx(C[0, 0, 0, 0], rel=1e-14)
    assert C_lab[2, 2, 2, 2] == pytest.approx(C[2, 2, 2, 2], rel=1e-14)
    assert C_lab[0, 0, 2, 2] == pytest.approx(C[1, 1, 2, 2], rel=1e-14)
    # every component: lab axis 1 is crystal axis 2 with a sign flip, lab axis 2 is crystal axis 1
    perm, sign = (1, 0, 2), (-1.0, 1.0, 1.0)
    for i, j, k, l in np.ndindex(3, 3, 3, 3):
        expected = sign[i] * sign[j] * sign[k] * sign[l] * C[perm[i], perm[j], perm[k], perm[l]]
        assert C_lab[i, j, k, l] == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_rotate_stiffness_equals_loop(at, random):
    C = random.stiffness()
    R = random.rotation((4, 3))
    C_lab = at.numpy(El.rotate_stiffness(at(C), at(R)))
    assert C_lab.shape == (4, 3, 3, 3, 3, 3)
    np.testing.assert_allclose(C_lab, loop(lambda r: rotate_1(C, r), R.shape[:-2], R), rtol=0, atol=1e-13)
    # a batch of C with a batch of R
    Cb = random.stiffness((4, 3))
    np.testing.assert_allclose(at.numpy(El.rotate_stiffness(at(Cb), at(R))), loop(rotate_1, R.shape[:-2], Cb, R),
                               rtol=0, atol=1e-13)


def test_rotate_stiffness_equals_damask_passive_rotation(at):
    # R = o.as_matrix() maps lab to crystal; damask brings crystal-frame tensors to the lab with ~o
    o = damask.Rotation.from_random((4, 3), rng_seed=7)
    C = cubic()
    C_lab = (~o) @ np.broadcast_to(C, o.shape + (3, 3, 3, 3))   # one C per rotation, spelled out for damask
    np.testing.assert_allclose(at.numpy(El.rotate_stiffness(at(C), at(o.as_matrix()))), C_lab,
                               rtol=0, atol=1e-12 * C11)


def test_rotation_composition_and_invariants(at, random):
    C = random.stiffness()
    R1, R2 = random.rotation(), random.rotation()
    twice = at.numpy(El.rotate_stiffness(El.rotate_stiffness(at(C), at(R1)), at(R2)))
    np.testing.assert_allclose(twice, at.numpy(El.rotate_stiffness(at(C), at(R1 @ R2))), rtol=0, atol=1e-13)
    # the Mandel eigenvalues do not depend on the frame
    np.testing.assert_allclose(np.linalg.eigvalsh(T.to_mandel(twice)),
                               np.broadcast_to(np.linalg.eigvalsh(T.to_mandel(C)), twice.shape[:-4] + (6,)),
                               rtol=0, atol=1e-13)


def test_average_stiffness(at, random):
    C = cubic()
    R = random.rotation((5, 4))
    v = random.rng.uniform(0.1, 1.0, (5, 4))
    v = v / v.sum(-1, keepdims=True)
    C_avg = at.numpy(El.average_stiffness(at(C), at(R), at(v)))
    assert C_avg.shape == (5, 3, 3, 3, 3)
    expected = loop(lambda r, w: sum(w[k] * rotate_1(C, r[k]) for k in range(4)), (5,), R, v)
    np.testing.assert_allclose(C_avg, expected, rtol=0, atol=1e-12 * C11)
    # the bulk modulus C_iijj / 9 is the same for every orientation, hence for the average
    np.testing.assert_allclose(np.einsum("...iijj->...", C_avg) / 9.0, El.bulk_modulus_cubic(C11, C12), rtol=1e-13)
    # one grain of fraction one is its rotated stiffness
    np.testing.assert_allclose(at.numpy(El.average_stiffness(at(C), at(R[:, :1]), at(np.ones((5, 1))))),
                               at.numpy(El.rotate_stiffness(at(C), at(R[:, 0]))), rtol=0, atol=1e-15 * C11)


def test_average_stiffness_in_chunks_is_the_same(at, random, monkeypatch):
    """Large batches are averaged in chunks of points (bounded temporaries): same answer for a
    crystal-frame C shared by all grains and for one C per grain, with several leading axes."""
    R = random.rotation((3, 7, 4))
    v = random.rng.uniform(0.1, 1.0, (3, 7, 4))
    v = v / v.sum(-1, keepdims=True)
    per_grain = El.rotate_stiffness(cubic(), random.rotation((3, 7, 4)))
    whole = [at.numpy(El.average_stiffness(at(C), at(R), at(v))) for C in (cubic(), per_grain)]
    monkeypatch.setattr(El, "_CHUNK_GRAINS", 10)   # 2 points (8 grains) per chunk, 21 points
    for C, ref in zip((cubic(), per_grain), whole):
        got = at.numpy(El.average_stiffness(at(C), at(R), at(v)))
        assert got.shape == (3, 7, 3, 3, 3, 3)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * C11)


def test_average_stiffness_rejects_mismatched_fractions(at, random):
    with pytest.raises(ValueError, match=r"v: expected shape \(\.\.\., K\) with K = 4 rotations, got \(5, 3\)"):
        El.average_stiffness(at(cubic()), at(random.rotation((5, 4))), at(np.ones((5, 3))))


def test_bulk_modulus_cubic(at):
    K = El.bulk_modulus_cubic(C11, C12)
    assert K == pytest.approx(75.856666666e9, rel=1e-9)
    # a hydrostatic strain e I gives the stress 3 K e I
    e = 1e-3
    sigma = at.numpy(T.ddot42(at(cubic()), at(e * np.eye(3))))
    np.testing.assert_allclose(sigma, 3.0 * K * e * np.eye(3), rtol=1e-14, atol=1e-6)
    # arrays of constants
    np.testing.assert_allclose(at.numpy(El.bulk_modulus_cubic(at(np.array([C11, 2 * C11])), at(np.array([C12, 0.0])))),
                               [K, 2 * C11 / 3], rtol=1e-15)
