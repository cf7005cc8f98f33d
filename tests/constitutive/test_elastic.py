"""The ``elastic`` backend: symmetries, small-strain limit, bulk invariance, objectivity."""
import damask
import numpy as np
import pytest
import torch

from polyfe2.microstructure.materials import aluminium

from polyfe2.constitutive import MaterialPoints, get
from polyfe2.mechanics import cubic_stiffness, ddot42, rotate_stiffness
from polyfe2.errors import InputError

C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9
PHASE = aluminium()   # its plastic law is ignored by elastic
D = torch.float64


def points(q, v=None):
    q = torch.as_tensor(np.asarray(q), dtype=D)
    if q.ndim == 2:
        q = q[:, None]
    if v is None:
        v = torch.full(q.shape[:2], 1.0 / q.shape[1], dtype=D)
    return MaterialPoints(q, v, torch.zeros(q.shape[0], dtype=torch.long))


def test_rotated_stiffness_symmetries():
    be = get("elastic")(PHASE)
    st = be.setup(points(damask.Rotation.from_random(5, rng_seed=3).as_quaternion()), "cpu", D)
    C = be.stiffness(st)
    assert C.shape == (5, 3, 3, 3, 3)
    scale = C.abs().max()
    assert torch.allclose(C, C.permute(0, 2, 1, 3, 4), atol=1e-9 * scale)       # minor ij
    assert torch.allclose(C, C.permute(0, 1, 2, 4, 3), atol=1e-9 * scale)       # minor kl
    assert torch.allclose(C, C.permute(0, 3, 4, 1, 2), atol=1e-9 * scale)       # major
    # the identity orientation gives the cubic constants in Voigt positions
    C0 = be.stiffness(be.setup(points([[1.0, 0, 0, 0]]), "cpu", D))[0]
    assert C0[0, 0, 0, 0] == pytest.approx(C11) and C0[0, 0, 1, 1] == pytest.approx(C12)
    assert C0[1, 2, 1, 2] == pytest.approx(C44) and C0[0, 0, 0, 1] == pytest.approx(0.0, abs=1e-3)


def test_identity_orientation_small_strain_is_linear():
    be = get("elastic")(PHASE)
    st = be.setup(points([[1.0, 0, 0, 0]]), "cpu", D)
    g = torch.Generator().manual_seed(0)
    eps = 1e-6 * torch.randn(3, 3, generator=g, dtype=D)
    eps = 0.5 * (eps + eps.T)
    F = (torch.eye(3, dtype=D) + eps)[None]
    P = be.evaluate(F, torch.eye(3, dtype=D)[None], 1.0, st).P[0]
    # C:ε written out with the cubic constants (independent of the backend's tensor code)
    e = eps
    s = torch.zeros(3, 3, dtype=D)
    for i in range(3):
        s[i, i] = C11 * e[i, i] + C12 * (e.trace() - e[i, i])
    for i, j in ((0, 1), (0, 2), (1, 2)):
        s[i, j] = s[j, i] = 2 * C44 * e[i, j]
    assert torch.allclose(P, s, rtol=0, atol=1e-5 * s.abs().max())


def test_voigt_bulk_modulus_is_rotation_invariant():
    be = get("elastic")(PHASE)
    q = damask.Rotation.from_random(8 * 6, rng_seed=11).as_quaternion().reshape(8, 6, 4)
    v = torch.rand(8, 6, generator=torch.Generator().manual_seed(1), dtype=D)
    v = v / v.sum(1, keepdim=True)
    C = be.stiffness(be.setup(points(q, v), "cpu", D))
    K = torch.einsum("niijj->n", C) / 9.0
    assert torch.allclose(K, torch.full_like(K, (C11 + 2 * C12) / 3), rtol=1e-12, atol=0)
    # shear: the Voigt average over many random orientations tends to (C11 - C12 + 3 C44)/5
    qs = damask.Rotation.from_random(4000, rng_seed=5).as_quaternion()[None]
    Cs = be.stiffness(be.setup(points(qs, torch.full((1, 4000), 1 / 4000, dtype=D)), "cpu", D))[0]
    G = (torch.einsum("ijij->", Cs) - torch.einsum("iijj->", Cs) / 3) / 10  # isotropic part: (C_ijij - C_iijj/3)/10
    assert G.item() == pytest.approx((C11 - C12 + 3 * C44) / 5, rel=1e-2)


def test_objectivity_batched_vs_per_point():
    be = get("elastic")(PHASE)
    N, K = 7, 3
    rot = damask.Rotation.from_random(N * K, rng_seed=21)
    q = rot.as_quaternion().reshape(N, K, 4)
    v = torch.tensor(np.random.default_rng(2).dirichlet(np.ones(K), size=N), dtype=D)
    g = torch.Generator().manual_seed(3)
    F = torch.eye(3, dtype=D) + 0.02 * torch.randn(N, 3, 3, generator=g, dtype=D)
    Q = torch.as_tensor(damask.Rotation.from_random(N, rng_seed=4).as_matrix(), dtype=D)
    st = be.setup(points(q, v), "cpu", D)
    P = be.evaluate(F, F, 1.0, st).P
    # rotate the lab frame: x' = Q x, so R' = R Qᵀ, F' = Q F Qᵀ and P' must be Q P Qᵀ
    Rn = st["R"].numpy()
    q2 = damask.Rotation.from_matrix(np.einsum("nkij,njl->nkil", Rn, Q.transpose(1, 2).numpy())).as_quaternion()
    st2 = be.setup(points(q2, v), "cpu", D)
    F2 = Q @ F @ Q.transpose(1, 2)
    P2 = be.evaluate(F2, F2, 1.0, st2).P
    assert torch.allclose(P2, Q @ P @ Q.transpose(1, 2), rtol=0, atol=1e-6 * P.abs().max())
    # superposed rigid rotation F -> Q F gives P -> Q P
    P3 = be.evaluate(Q @ F, F, 1.0, st).P
    assert torch.allclose(P3, Q @ P, rtol=0, atol=1e-6 * P.abs().max())
    # batched equals per point
    for n in range(N):
        stn = be.setup(points(q[n:n + 1], v[n:n + 1]), "cpu", D)
        assert torch.allclose(be.evaluate(F[n:n + 1], F[n:n + 1], 1.0, stn).P[0], P[n], rtol=1e-12, atol=1e-3)


def test_nan_marks_failed_and_void_is_soft():
    be = get("elastic")(PHASE)
    st = be.setup(points(damask.Rotation.from_random(3, rng_seed=1).as_quaternion()), "cpu", D)
    F = torch.eye(3, dtype=D).repeat(3, 1, 1)
    F[:, 0, 0] = 1.001
    F[1, 2, 2] = float("nan")
    r = be.evaluate(F, F, 1.0, st)
    assert r.failed.tolist() == [False, True, False]
    assert torch.isfinite(r.P).all()
    void = {"lattice": "cF", "mechanical": {"elastic": {"type": "Hooke", "C_11": C11 * 1e-6,
                                                        "C_12": C12 * 1e-6, "C_44": C44 * 1e-6}}}
    bv = get("elastic")(void)
    rv = bv.evaluate(F, F, 1.0, bv.setup(points(damask.Rotation.from_random(3, rng_seed=1).as_quaternion()), "cpu", D))
    assert torch.allclose(rv.P[[0, 2]], 1e-6 * r.P[[0, 2]], rtol=1e-9, atol=0)


@pytest.mark.parametrize("mutate, key", [
    (lambda p: p["mechanical"]["elastic"].pop("C_44"), "C_44"),
    (lambda p: p["mechanical"]["elastic"].update(C_11=-1.0), "C_11"),
    (lambda p: p["mechanical"]["elastic"].update(type="Lame"), "type"),
    (lambda p: p.update(lattice="hP"), "lattice"),
])
def test_bad_phase_raises_input_error(mutate, key):
    import copy
    p = copy.deepcopy(PHASE)
    mutate(p)
    with pytest.raises(InputError) as e:
        get("elastic")(p, source="material.yaml")
    msg = str(e.value)
    assert key in msg and "\n" not in msg and "expected" in msg


def test_helpers_consistent():
    C = cubic_stiffness(C11, C12, C44)
    R = torch.as_tensor(damask.Rotation.from_random(1, rng_seed=9).as_matrix(), dtype=D)
    E = torch.tensor([[1e-3, 2e-4, 0], [2e-4, -5e-4, 1e-4], [0, 1e-4, 3e-4]], dtype=D)
    S_lab = ddot42(rotate_stiffness(C, R)[0], E)
    S_via = R[0].T @ ddot42(C, R[0] @ E @ R[0].T) @ R[0]
    assert torch.allclose(S_lab, S_via, rtol=1e-12, atol=1e-3)
