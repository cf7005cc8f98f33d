"""The ``taylor`` backend (DAMASK phenopowerlaw, iso-strain) against DAMASK itself and physics."""
import copy
import time

import damask
import numpy as np
import pytest
import torch
import yaml

from polyfe2.constitutive import MaterialPoints, get
from polyfe2.constitutive import crystal
from polyfe2.mechanics import ddot42, green_lagrange
from polyfe2.errors import InputError

D = torch.float64
AL = {"lattice": "cF",
      "mechanical": {"output": ["F", "P"],
                     "elastic": {"type": "Hooke", "C_11": 106.75e9, "C_12": 60.41e9, "C_44": 28.34e9},
                     "plastic": {"type": "phenopowerlaw", "N_sl": [12], "a_sl": [2.25], "atol_xi": 1.0,
                                 "dot_gamma_0_sl": [0.001], "h_0_sl-sl": [75.0e6],
                                 "h_sl-sl": [1, 1, 1.4, 1.4, 1.4, 1.4, 1.4], "n_sl": [20],
                                 "output": ["xi_sl", "gamma_sl"], "xi_0_sl": [31.0e6], "xi_inf_sl": [63.0e6]}}}
Q0 = [0.7260798426223689, -0.5022371860699407, -0.27246048309614534, -0.3825325557609954]


def points(q, v=None):
    q = torch.as_tensor(np.asarray(q), dtype=D)
    if q.ndim == 2:
        q = q[:, None]
    if v is None:
        v = torch.full(q.shape[:2], 1.0 / q.shape[1], dtype=D)
    return MaterialPoints(q, torch.as_tensor(v, dtype=D), torch.zeros(q.shape[0], dtype=torch.long))


def stretch(e):
    """Isochoric stretch along lab x (lateral contraction prescribed, not stress-free)."""
    return torch.diag(torch.tensor([1 + e, (1 + e) ** -0.5, (1 + e) ** -0.5], dtype=D))[None]


# ------------------------------------------------------------------------------------------------
def test_against_damask_T1_taylor20(damask_refs):
    T1 = damask_refs / "T1_taylor20_uniaxialx"
    mat = yaml.safe_load((T1 / "material.yaml").read_text())
    cons = mat["material"][0]["constituents"]
    be = get("taylor")(mat["phase"]["Aluminum"], source=str(T1 / "material.yaml"))
    st = be.setup(points([[c["O"] for c in cons]], [[c["v"] for c in cons]]), "cpu", D)
    assert st["F_p"].shape == (1, 20, 3, 3)
    cur = np.genfromtxt(T1 / "curve.csv", delimiter=",", names=True)
    Fc = [f"F_{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)]
    Pc = [f"P_{i}{j}_MPa" for i in (1, 2, 3) for j in (1, 2, 3)]
    F0 = torch.eye(3, dtype=D)[None]
    dev11, devall = [], []
    t = time.perf_counter()
    for r in range(1, len(cur)):
        F = torch.tensor([cur[c][r] for c in Fc], dtype=D).reshape(1, 3, 3)
        dt = cur["t_s"][r] - cur["t_s"][r - 1]
        assert dt == pytest.approx(0.5)
        res = be.evaluate(F, F0, dt, st)
        assert not res.failed.any()
        st, F0 = be.commit(res.state), F
        P = res.P[0].numpy() / 1e6
        Pr = np.array([cur[c][r] for c in Pc]).reshape(3, 3)
        dev11.append(abs(P[0, 0] - Pr[0, 0]) / abs(Pr[0, 0]))
        devall.append(np.abs(P - Pr).max())
    print(f"T1: 40 increments in {time.perf_counter() - t:.2f} s; max rel. dev. P_11 {max(dev11):.2e}, "
          f"max abs. dev. any P_ij {max(devall):.2e} MPa")
    assert len(dev11) == 40
    assert max(dev11) < 1e-2                   # the requirement ...
    assert max(dev11) < 1e-5                   # ... and what the implementation achieves (~7e-8)
    assert max(devall) < 1e-3                  # MPa, all nine components incl. the small shears
    g = np.genfromtxt(T1 / "grains_last.csv", delimiter=",", names=True)
    xi = st["xi_sl"][0].mean(-1).numpy() / 1e6
    gs = st["gamma_sl"][0].sum(-1).numpy()
    assert np.allclose(xi, g["mean_xi_sl_MPa"], rtol=1e-5, atol=0)
    assert np.allclose(gs, g["sum_abs_gamma_sl"], rtol=1e-4, atol=0)
    out = be.constituent_outputs(st, F0)
    Pg = out["P"][0].numpy() / 1e6
    Pgr = np.stack([g[c] for c in Pc], 1).reshape(20, 3, 3)
    assert np.abs(Pg - Pgr).max() < 1e-3      # per-grain P (MPa)


def _single_crystal_run(phase, es, rate=1e-3, q=Q0):
    be = get("taylor")(phase)
    el = get("elastic")(phase)
    mp = points([[q]], [[1.0]])
    st, se = be.setup(mp, "cpu", D), el.setup(mp, "cpu", D)
    d, n = crystal.fcc_slip_systems()
    F0, e0, rows = torch.eye(3, dtype=D)[None], 0.0, []
    for e in es:
        F = stretch(e)
        dt = (e - e0) / rate
        r = be.evaluate(F, F0, dt, st)
        assert not r.failed.any()
        g_prev = st["gamma_sl"][0, 0]
        st = be.commit(r.state)
        Fe = be.constituent_outputs(st, F)["F_e"][0, 0]
        # resolved shear from the returned P: DAMASK's Mandel stress M_p = S (F_i = I),
        # S = Fe⁻¹ (P Fᵀ) Fe⁻ᵀ, on the lattice slip vectors
        iFe = torch.linalg.inv(Fe)
        M = iFe @ (r.P[0] @ F[0].T) @ iFe.T
        tau = torch.einsum("ai,ij,aj->a", d, M, n)
        rows.append(dict(e=e, P=r.P[0], P_el=el.evaluate(F, F0, dt, se).P[0], tau=tau,
                         xi=st["xi_sl"][0, 0].clone(), gdot=(st["gamma_sl"][0, 0] - g_prev) / dt,
                         gsum=float(st["gamma_sl"].sum())))
        F0, e0 = F, e
    return rows


def test_single_crystal_elastic_then_yield_onset():
    rows = _single_crystal_run(AL, np.arange(1, 31) * 1e-4)
    xi0 = 31e6
    # elastic regime: identical to the elastic backend (which applies R directly, not via F_p)
    for r in rows[:4]:
        assert torch.allclose(r["P"], r["P_el"], rtol=0, atol=1e-6 * r["P_el"].abs().max())
    # yield onset: the first step with noticeable slip has max|τ| ≈ ξ_0 (power law n = 20 at
    # γ̇ ~ 1e-4..1e-3 /s: τ/ξ = (γ̇/γ̇_0)^(1/20) in [0.89, 1]); the step before is below ξ_0
    k = next(i for i, r in enumerate(rows) if r["gsum"] > 1e-4)
    assert 3 <= k < len(rows) - 5
    tmax = rows[k]["tau"].abs().max().item()
    assert 0.9 * xi0 < tmax < 1.02 * xi0
    assert rows[k - 1]["tau"].abs().max().item() < xi0
    # the system that yields first is the one with the largest resolved shear
    a = int(rows[k]["tau"].abs().argmax())
    assert int(rows[k]["gdot"].argmax()) == a
    # plastic flow afterwards: the flow rule τ/ξ = (γ̇/γ̇_0)^(1/n) on the active system, using τ
    # from P and γ̇ from the γ increments
    for r in rows[-5:]:
        a = int(r["gdot"].argmax())
        ratio = r["tau"][a].abs().item() / r["xi"][a].item()
        assert ratio == pytest.approx((r["gdot"][a].item() / 1e-3) ** (1 / 20), rel=1e-5)
        assert 0.95 < ratio < 1.05


def test_single_crystal_saturation():
    """Fast hardening (h_0 = 1.5 GPa, a = 1): the active systems saturate at ξ_∞ and the largest
    resolved shear approaches ξ_∞ (within the rate-sensitivity margin)."""
    ph = copy.deepcopy(AL)
    ph["mechanical"]["plastic"].update({"h_0_sl-sl": [1.5e9], "a_sl": [1.0]})
    rows = _single_crystal_run(ph, np.linspace(0.005, 0.1, 20))
    xi_inf = 63e6
    last = rows[-1]
    a = int(last["tau"].abs().argmax())
    assert last["xi"][a].item() == pytest.approx(xi_inf, rel=2e-3)
    assert (torch.stack([r["xi"] for r in rows]) <= xi_inf * (1 + 1e-9)).all()
    tmax = last["tau"].abs().max().item()
    assert 0.93 * xi_inf < tmax < 1.03 * xi_inf
    # hardness increases monotonically on every system under monotonic loading
    xs = torch.stack([r["xi"] for r in rows])
    assert (xs[1:] >= xs[:-1] - 1e-6).all()


def test_newton_jacobian_matches_finite_differences():
    """The analytical 9×9 Jacobian of R(L_p) = L_p − L_p^c (eq. (5) of taylor.py)."""
    be = get("taylor")(AL)
    c = be._constants(torch.zeros(1, dtype=D))
    g = torch.Generator().manual_seed(0)
    A = torch.eye(3, dtype=D) + 1e-3 * torch.randn(1, 3, 3, generator=g, dtype=D)
    xi = torch.full((1, 12), 31e6, dtype=D)
    dt = 0.5
    Lp = 1e-4 * torch.randn(1, 3, 3, generator=g, dtype=D)

    def residual(L):
        Fe = A @ (c["I"] - dt * L)
        tau = torch.einsum("mij,aij->ma", ddot42(c["C"], green_lagrange(Fe)), c["schmid"])
        gd, dgd = be._rates(tau, xi)
        return L - torch.einsum("ma,aij->mij", gd, c["schmid"]), Fe, dgd

    _, Fe, dgd = residual(Lp)
    J = be._jacobian(A, Fe, dgd, dt, c)
    Jfd = torch.zeros(9, 9, dtype=D)
    h = 1e-9
    for k in range(9):
        dL = torch.zeros(9, dtype=D)
        dL[k] = h
        dL = dL.reshape(1, 3, 3)
        Jfd[:, k] = ((residual(Lp + dL)[0] - residual(Lp - dL)[0]) / (2 * h)).reshape(9)
    assert J[0].abs().max() > 1e6                                      # a stiff, non-trivial case
    assert torch.allclose(J[0], Jfd, rtol=0, atol=1e-5 * J[0].abs().max())


def test_purity_and_commit():
    be = get("taylor")(AL)
    st = be.setup(points(damask.Rotation.from_random(6, rng_seed=7).as_quaternion().reshape(3, 2, 4)), "cpu", D)
    F1 = stretch(0.002).repeat(3, 1, 1)
    st = be.commit(be.evaluate(F1, torch.eye(3, dtype=D).expand(3, 3, 3), 2.0, st).state)
    ref = {k: v.clone() for k, v in st.items()}
    F2 = stretch(0.003).repeat(3, 1, 1)
    r1 = be.evaluate(F2, F1, 1.0, st)
    r2 = be.evaluate(F2, F1, 1.0, st)
    for k in ref:
        assert torch.equal(st[k], ref[k]), k
        assert torch.equal(r1.state[k], r2.state[k]), k
    assert torch.equal(r1.P, r2.P)
    assert not torch.equal(r1.state["gamma_sl"], st["gamma_sl"])      # it did evolve
    # mutating the trial must not touch the committed state
    r1.state["xi_sl"].add_(1.0)
    assert torch.equal(st["xi_sl"], ref["xi_sl"])


def test_newton_started_from_an_earlier_trial_gives_the_same_answer_in_fewer_iterations():
    """The solver passes the trial state of the increment's latest evaluation: started from its
    L_p and S (DAMASK's Lpguess and current S) the answer is the cold start's to the Newton's
    tolerance, with fewer Newton iterations; a point that fails keeps its committed state, not
    the start's; ``newton_start: committed`` ignores the start."""
    q = damask.Rotation.from_random(12, rng_seed=11).as_quaternion().reshape(4, 3, 4)
    I = torch.eye(3, dtype=D).expand(4, 3, 3)
    be = get("taylor")(AL)
    st = be.commit(be.evaluate(stretch(0.002).repeat(4, 1, 1), I, 2.0, be.setup(points(q), "cpu", D)).state)
    F_0 = stretch(0.002).repeat(4, 1, 1)
    earlier = be.evaluate(stretch(0.0030).repeat(4, 1, 1), F_0, 1.0, st)   # an N-GMRES iterate
    F = stretch(0.0031).repeat(4, 1, 1)
    F[2, 0, 1] = float("nan")                                                # a failing point

    iterations = []

    def counting(jacobian):
        def wrapped(A, *args):
            iterations.append(A.shape[0])                                  # crystals in this Newton step
            return jacobian(A, *args)
        return wrapped

    be._jacobian = counting(type(be)._jacobian)
    cold = be.evaluate(F, F_0, 1.0, st)
    n_cold, iterations[:] = sum(iterations), []
    warm = be.evaluate(F, F_0, 1.0, st, start=earlier.state)
    n_warm = sum(iterations)
    assert n_warm < 0.8 * n_cold, (n_warm, n_cold)   # 134 against 194 here
    assert cold.failed.tolist() == warm.failed.tolist() == [False, False, True, False]
    ok = ~cold.failed
    assert float((warm.P - cold.P)[ok].abs().max()) < 1e-6 * float(cold.P[ok].abs().max())
    for k in ("L_p", "xi_sl", "gamma_sl", "F_p"):
        scale = float(cold.state[k][ok].abs().max())
        assert float((warm.state[k] - cold.state[k])[ok].abs().max()) <= 1e-5 * scale, k
    assert float(warm.state["gamma_sl"][ok].abs().max()) > 0                 # plastic
    assert not torch.equal(earlier.state["L_p"][2], st["L_p"][2])            # the start differs from the committed
    for k in ("L_p", "S", "xi_sl", "gamma_sl", "F_p"):
        assert torch.equal(warm.state[k][2], st[k][2]), k                    # failed: committed, not the start's
    committed = get("taylor")(AL, {"newton_start": "committed"})
    same = committed.evaluate(F, F_0, 1.0, st, start=earlier.state)
    assert torch.equal(same.P, cold.P)


def test_failure_is_per_point():
    """Points given a non-finite F are reported failed with a finite P and their committed state
    kept; the other points of the batch are unaffected."""
    be = get("taylor")(AL)
    q = damask.Rotation.from_random(8, rng_seed=8).as_quaternion().reshape(4, 2, 4)
    st = be.setup(points(q), "cpu", D)
    I = torch.eye(3, dtype=D).expand(4, 3, 3)
    F = stretch(0.001).repeat(4, 1, 1)
    F[1, 0, 1] = float("nan")
    F[2, 2, 2] = float("inf")
    r = be.evaluate(F, I, 0.5, st)
    assert r.failed.tolist() == [False, True, True, False]
    assert torch.isfinite(r.P).all()
    for k in ("F_p", "xi_sl", "gamma_sl"):
        assert torch.isfinite(r.state[k]).all()
        assert torch.equal(r.state[k][[1, 2]], st[k][[1, 2]])           # failed: committed state kept
    # the good points are unaffected by their neighbours
    for i in (0, 3):
        sti = be.setup(points(q[i:i + 1]), "cpu", D)
        ri = be.evaluate(F[i:i + 1], I[i:i + 1], 0.5, sti)
        assert torch.allclose(ri.P[0], r.P[i], rtol=1e-10, atol=1e-3)


def test_non_positive_jacobian_is_a_failed_point():
    be = get("taylor")(AL)
    q = damask.Rotation.from_random(6, rng_seed=8).as_quaternion().reshape(3, 2, 4)
    st = be.setup(points(q), "cpu", D)
    F = stretch(0.001).repeat(3, 1, 1)
    F[1] = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=D))       # inverted
    F[2] = 0.0                                                        # collapsed
    r = be.evaluate(F, torch.eye(3, dtype=D).expand(3, 3, 3), 0.5, st)
    assert torch.isfinite(r.P).all()
    assert r.failed.tolist() == [False, True, True]


@pytest.mark.parametrize("mutate, key", [
    (lambda p: p["mechanical"]["elastic"].pop("C_44"), "phase/Al/mechanical/elastic/C_44"),
    (lambda p: p["mechanical"]["plastic"].update({"xi_0_sl": [-31e6]}), "phase/Al/mechanical/plastic/xi_0_sl"),
    (lambda p: p["mechanical"]["plastic"].update({"N_sl": [6]}), "phase/Al/mechanical/plastic/N_sl"),
    (lambda p: p["mechanical"]["plastic"].update({"type": "isotropic"}), "phase/Al/mechanical/plastic/type"),
    (lambda p: p["mechanical"]["plastic"].update({"h_sl-sl": [1, 1.4]}), "phase/Al/mechanical/plastic/h_sl-sl"),
    (lambda p: p["mechanical"]["plastic"].pop("n_sl"), "phase/Al/mechanical/plastic/n_sl"),
    (lambda p: p.update(lattice="cI"), "phase/Al/lattice"),
    (lambda p: p["mechanical"]["plastic"].update({"xi_0_twin": [1e6]}), "phase/Al/mechanical/plastic"),
    (lambda p: p["mechanical"]["plastic"].update({"N_tw": [12]}), "phase/Al/mechanical/plastic/N_tw"),
])
def test_bad_phase_raises_input_error(mutate, key):
    p = copy.deepcopy(AL)
    mutate(p)
    with pytest.raises(InputError) as e:
        get("taylor")(p, source="material.yaml", phase_name="Al")
    msg = str(e.value)
    assert f"key '{key}'" in msg and "material.yaml" in msg and ("expected" in msg or "accepted" in msg)
    assert "\n" not in msg


def test_unknown_option_rejected():
    with pytest.raises(InputError):
        get("taylor")(AL, {"max_newtn": 3})
    assert get("taylor")(AL, {"max_newton": 60}).options["max_newton"] == 60


def test_consistent_tangent_matches_finite_differences_along_a_plastic_path():
    """The implicit-function tangent against central differences of the whole update (stress
    Newton and state fixed point), for 6 points × 2 crystals along a general plastic path;
    the elastic stiffness is far off there, so the check sees the plastic part."""
    tight = {"rtol_Lp": 1e-13, "atol_Lp": 1e-14, "rtol_state": 1e-13, "max_newton": 80, "max_state_iter": 80}
    be = get("taylor")(AL, tight)
    q = damask.Rotation.from_random(12, rng_seed=1).as_quaternion().reshape(6, 2, 4)
    st = be.setup(points(q), "cpu", D)
    L = 1e-3 * torch.randn(6, 3, 3, generator=torch.Generator().manual_seed(0), dtype=D)
    dt, h = 0.5, 1e-7
    F0 = torch.eye(3, dtype=D).expand(6, 3, 3)
    for inc in range(6):
        F = F0 + dt * L @ F0
        r = be.evaluate(F, F0, dt, st)
        assert not r.failed.any()
        if inc in (2, 5):
            A = be.tangent(F, dt, st, r)
            A_fd = torch.zeros_like(A)
            for k in range(3):
                for m in range(3):
                    dF = torch.zeros(3, 3, dtype=D)
                    dF[k, m] = h
                    A_fd[..., k, m] = (be.evaluate(F + dF, F0, dt, st).P - be.evaluate(F - dF, F0, dt, st).P) / (2 * h)
            rel = lambda X: ((X - A_fd).flatten(1).norm(dim=1) / A_fd.flatten(1).norm(dim=1)).max()
            assert rel(A) < 1e-5
            assert rel(be.stiffness(st)) > 0.2       # plastic flow: the elastic stiffness is not the tangent
        st, F0 = be.commit(r.state), F
    # below yield the consistent tangent is the elastic one (at F = I exactly)
    st = be.setup(points(q), "cpu", D)
    I = torch.eye(3, dtype=D).expand(6, 3, 3)
    r = be.evaluate(I, I, dt, st)
    assert torch.allclose(be.tangent(I, dt, st, r), be.stiffness(st), rtol=1e-12, atol=1e-3)


def test_written_out_tangent_equals_the_autograd_one():
    """The partial derivatives written out in TaylorBackend._partials against torch.func's forward
    mode of the same implicit system, for 50 × 2 crystals along a plastic path."""
    be = get("taylor")(AL)
    n = 50
    st = be.setup(points(damask.Rotation.from_random(2 * n, rng_seed=3).as_quaternion().reshape(n, 2, 4)), "cpu", D)
    L = 1e-3 * torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    F0 = torch.eye(3, dtype=D).expand(n, 3, 3)
    for _ in range(3):
        F = F0 + 0.5 * L @ F0
        r = be.evaluate(F, F0, 0.5, st)
        Fk, ok = F[:, None].expand(n, 2, 3, 3), ~r.failed[:, None].expand(n, 2)
        A = be.constituent_tangent(Fk, 0.5, st, r.state, ok)
        A_ref = be.constituent_tangent(Fk, 0.5, st, r.state, ok, autograd=True)
        assert ((A - A_ref).flatten(2).norm(dim=2) / A_ref.flatten(2).norm(dim=2)).max() < 1e-12
        st, F0 = be.commit(r.state), F


def test_chunked_update_gives_the_same_answer():
    """Points are updated in chunks of at most chunk_crystals crystals (bounded memory); the
    answer, a failed point included, does not depend on the chunk size (up to the rounding of
    batched linear algebra)."""
    be = get("taylor")(AL)
    st = be.setup(points(damask.Rotation.from_random(21, rng_seed=3).as_quaternion().reshape(7, 3, 4)), "cpu", D)
    F = stretch(0.004).repeat(7, 1, 1)
    F[5] = -torch.eye(3, dtype=D)   # det F < 0: a failed point
    whole = be.evaluate(F, torch.eye(3, dtype=D).expand(7, 3, 3), 4.0, st)
    be.chunk_crystals = 6   # two points per chunk, the last chunk shorter
    chunked = be.evaluate(F, torch.eye(3, dtype=D).expand(7, 3, 3), 4.0, st)
    assert torch.equal(whole.failed, chunked.failed)
    assert whole.failed.tolist() == [False] * 5 + [True, False]
    for a, b in [(whole.P, chunked.P)] + [(whole.state[k], chunked.state[k]) for k in whole.state]:
        assert float((a - b).abs().max()) <= 1e-10 * float(a.abs().max())
    assert float(whole.state["gamma_sl"].abs().max()) > 0   # plastic
    assert chunked.state["R"] is st["R"] and chunked.state["v"] is st["v"]   # unchanged: not copied


def test_a_failing_step_is_substepped_like_the_explicit_substeps():
    """A step too large for one implicit update (1 % in 0.05 s from the virgin state) fails
    without substeps; with them the backend gives what two (four, ...) explicit half (quarter, ...)
    steps give, committed one after the other, and keeps the other points as they were."""
    q = damask.Rotation.from_random(6, rng_seed=5).as_quaternion().reshape(3, 2, 4)
    I = torch.eye(3, dtype=D).expand(3, 3, 3)
    F = torch.cat([stretch(0.0005), stretch(0.01), stretch(0.02)])
    plain = get("taylor")(AL, {"substep_levels": 0})
    st = plain.setup(points(q), "cpu", D)
    r0 = plain.evaluate(F, I, 0.05, st)
    assert r0.failed.tolist() == [False, True, True]
    be = get("taylor")(AL)
    r = be.evaluate(F, I, 0.05, st)
    assert not r.failed.any()
    assert torch.equal(r.P[0], r0.P[0])
    for k in r.state:
        assert torch.equal(r.state[k][0], r0.state[k][0]), k
    be.chunk_crystals = 2   # one point per chunk: the substeps start from each chunk's own F_0
    chunked = be.evaluate(F, I, 0.05, st)
    assert torch.equal(chunked.failed, r.failed) and torch.allclose(chunked.P, r.P, rtol=1e-12, atol=1e-3)
    for i in (1, 2):   # the first number of substeps at which every substep converges
        for level in range(1, 5):
            m = 2**level
            s = {k: t[i:i + 1] for k, t in st.items()}
            ok = True
            for j in range(1, m + 1):
                rj = plain.evaluate(I[:1] + j / m * (F[i:i + 1] - I[:1]), I[:1] + (j - 1) / m * (F[i:i + 1] - I[:1]),
                                    0.05 / m, s)
                ok &= not bool(rj.failed.any())
                s = plain.commit(rj.state)
            if ok:
                break
        assert ok
        assert torch.allclose(r.P[i], rj.P[0], rtol=1e-12, atol=1e-3)
        assert torch.allclose(r.state["xi_sl"][i], s["xi_sl"][0], rtol=1e-12)
    assert float(r.state["gamma_sl"][1:].sum()) > 0   # the substepped points did slip
