"""The ``odmn`` backend's online stage against independent references: the single crystal, the
homogeneous network, the offline closed-form stiffness and finite differences."""
import damask
import numpy as np
import pytest
import torch

from polyfe2.constitutive import MaterialPoints, get
from polyfe2.constitutive.odmn import ancestors
from polyfe2.constitutive.odmn_network import ODMNParameters, euler_to_matrix, interaction_coefficients
from polyfe2.errors import InputError
from polyfe2.mechanics import to_mandel

from test_taylor import AL, points

D = torch.float64
TIGHT_LEAVES = {"rtol_Lp": 1e-13, "atol_Lp": 1e-14, "rtol_state": 1e-13, "max_newton": 80, "max_state_iter": 80}
TIGHT = {"rtol": 1e-12, "atol": 1e-3, "leaves": TIGHT_LEAVES}   # P is known to ~1e-5 Pa


def backend(tmp_path, params, phase=AL, **options):
    files = {}
    for key, p in params.items():
        files[key] = str(p.save(tmp_path / f"set_{key}.pt"))
    return get("odmn")(phase, {"parameters": files, **options})


def setup(be, ids):
    ids = np.asarray(ids)
    n = len(ids)
    pts = MaterialPoints(torch.zeros(n, 1, 4, dtype=D), torch.ones(n, 1, dtype=D), torch.as_tensor(ids),
                         be.point_data(ids))
    return be.setup(pts, "cpu", D)


def path(n, increments, seed=0, rate=1e-3, dt=0.5):
    """F at the end of every increment of a general constant-velocity-gradient path."""
    L = rate * torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=D)
    F = torch.eye(3, dtype=D).expand(n, 3, 3)
    out = []
    for _ in range(increments):
        F = F + dt * L @ F
        out.append(F)
    return out


def test_ancestors_are_the_nodes_whose_alpha_is_nonzero():
    p = ODMNParameters.random(4, seed=3)
    alpha = interaction_coefficients(p.weights, 4)
    anc = ancestors(4)
    mask = torch.zeros_like(alpha, dtype=torch.bool).scatter_(1, anc, True)
    assert torch.equal(mask, alpha != 0)


def _compare_with_single_crystal(be, q, n=2, increments=6, atol=1e-3):
    """P̄ of ``be`` along a plastic path against ``taylor`` with the single orientation q."""
    tay = get("taylor")(AL, TIGHT_LEAVES)
    st_t = tay.setup(points(np.repeat(np.asarray(q, dtype=float)[None], n, 0)), "cpu", D)
    st_o = setup(be, np.zeros(n, int))
    F0 = torch.eye(3, dtype=D).expand(n, 3, 3)
    for F in path(n, increments):
        r_t, r_o = tay.evaluate(F, F0, 0.5, st_t), be.evaluate(F, F0, 0.5, st_o)
        assert not r_o.failed.any() and not r_t.failed.any()
        assert torch.allclose(r_o.P, r_t.P, rtol=0, atol=atol)           # Pa, of stresses ~ 1e8
        st_t, st_o, F0 = tay.commit(r_t.state), be.commit(r_o.state), F
    return st_o


def test_depth_0_is_the_single_crystal(tmp_path):
    p = ODMNParameters.random(0, seed=5)
    q = damask.Rotation.from_matrix(euler_to_matrix(p.euler)[0].numpy()).as_quaternion()
    _compare_with_single_crystal(backend(tmp_path, {"default": p}, **TIGHT), q)


def test_equal_leaf_orientations_give_the_homogeneous_answer(tmp_path):
    p = ODMNParameters.random(3, seed=2)
    p.euler[:] = torch.tensor([0.3, 0.7, 1.1], dtype=D)
    q = damask.Rotation.from_Euler_angles([0.3, 0.7, 1.1]).as_quaternion()
    st = _compare_with_single_crystal(backend(tmp_path, {"default": p}, **TIGHT), q)
    assert st["a"].abs().max() < 1e-9              # no interaction: every leaf deforms with F̄


def test_linear_elastic_online_newton_reproduces_the_offline_stiffness(tmp_path):
    """Leaves that cannot yield: central differences of the online P̄(F̄) give the closed-form
    tree stiffness of the offline stage, and so does the condensed tangent."""
    hard = {**AL, "mechanical": {**AL["mechanical"], "plastic": {**AL["mechanical"]["plastic"],
                                                                  "xi_0_sl": [1e15], "xi_inf_sl": [2e15]}}}
    p = ODMNParameters.random(4, seed=7)
    be = backend(tmp_path, {"default": p}, phase=hard, **TIGHT)
    st = setup(be, [0])
    C_offline = to_mandel(be.stiffness(st))[0]
    assert torch.allclose(C_offline, p.stiffness(AL["mechanical"]["elastic"]["C_11"], AL["mechanical"]["elastic"]
                                                 ["C_12"], AL["mechanical"]["elastic"]["C_44"]), rtol=1e-12)
    I = torch.eye(3, dtype=D)[None]
    eps = 1e-6
    C_online = torch.zeros(3, 3, 3, 3, dtype=D)
    for k in range(3):
        for m in range(3):
            dF = torch.zeros(3, 3, dtype=D)
            dF[k, m] = eps
            C_online[..., k, m] = (be.evaluate(I + dF, I, 1.0, st).P - be.evaluate(I - dF, I, 1.0, st).P)[0] / (2 * eps)
    rel = (to_mandel(C_online) - C_offline).norm() / C_offline.norm()
    assert rel < 1e-6
    r = be.evaluate(I, I, 1.0, st)
    assert torch.allclose(to_mandel(be.tangent(I, 1.0, st, r))[0], C_offline, rtol=1e-10, atol=1e-2)
    # the network is not the single-crystal answer (the check can fail)
    assert (C_offline - to_mandel(get("taylor")(AL).stiffness(
        get("taylor")(AL).setup(points([[1.0, 0, 0, 0]]), "cpu", D)))[0]).norm() / C_offline.norm() > 1e-3


def test_condensed_tangent_matches_finite_differences_along_a_plastic_path(tmp_path):
    be = backend(tmp_path, {"default": ODMNParameters.random(3, seed=1)}, **TIGHT)
    st = setup(be, [0, 0, 0])
    C = be.stiffness(st)
    F0 = torch.eye(3, dtype=D).expand(3, 3, 3)
    h = 1e-7
    for inc, F in enumerate(path(3, 6)):
        r = be.evaluate(F, F0, 0.5, st)
        assert not r.failed.any()
        assert r.state["evaluations"].max() <= 8
        if inc in (1, 5):
            A = be.tangent(F, 0.5, st, r)
            A_fd = torch.zeros_like(A)
            for k in range(3):
                for m in range(3):
                    dF = torch.zeros(3, 3, dtype=D)
                    dF[k, m] = h
                    A_fd[..., k, m] = (be.evaluate(F + dF, F0, 0.5, st).P - be.evaluate(F - dF, F0, 0.5, st).P) / (2 * h)
            rel = lambda X: ((X - A_fd).flatten(1).norm(dim=1) / A_fd.flatten(1).norm(dim=1)).max()
            assert rel(A) < 1e-5
            assert rel(C) > 0.1
        st, F0 = be.commit(r.state), F


def test_chunks_give_the_same_answer_and_a_failed_point_keeps_its_state(tmp_path):
    p = ODMNParameters.random(2, seed=4)
    whole = backend(tmp_path, {"default": p})
    chunked = backend(tmp_path, {"default": p}, chunk_points=2)
    st = setup(whole, np.zeros(5, int))
    F = path(5, 1, rate=2e-3)[0]
    F = torch.cat([F[:4], torch.full((1, 3, 3), float("nan"), dtype=D)])
    I = torch.eye(3, dtype=D).expand(5, 3, 3)
    before = {k: t.clone() for k, t in st.items()}
    a, b = whole.evaluate(F, I, 0.5, st), chunked.evaluate(F, I, 0.5, st)
    assert all(torch.equal(st[k], t) for k, t in before.items())          # pure: the committed state stays
    assert torch.equal(a.failed, torch.tensor([False] * 4 + [True]))
    assert torch.allclose(a.P, b.P, rtol=1e-12, atol=1e-6)
    assert torch.equal(a.state["leaf.F_p"][4], st["leaf.F_p"][4]) and torch.equal(a.state["a"][4], st["a"][4])
    assert torch.isfinite(a.P).all()


def test_a_point_whose_newton_fails_keeps_its_state_and_answers_with_the_predictor(tmp_path):
    """One Newton step allowed and an unreachable tolerance: every point fails; the committed
    state stays, P̄ is the elastic predictor of the committed network, the tangent the stiffness."""
    p = ODMNParameters.random(3, seed=6)
    be = backend(tmp_path, {"default": p}, max_newton=1, rtol=1e-300, atol=0.0)
    st = setup(be, [0, 0])
    I = torch.eye(3, dtype=D).expand(2, 3, 3)
    F = path(2, 1, rate=2e-3)[0]
    r = be.evaluate(F, I, 0.5, st)
    assert r.failed.all()
    for k in st:
        if k != "evaluations":
            assert torch.equal(r.state[k], st[k]), k
    assert r.state["evaluations"].tolist() == [2.0, 2.0]          # the start and one Newton step
    W = p.weights
    P_pred = be.leaves.predictor_constituents(F[:, None].expand(2, 8, 3, 3),
                                              {k[5:]: t for k, t in st.items() if k.startswith("leaf.")})
    assert torch.allclose(r.P, torch.einsum("l,nlab->nab", W, P_pred) / W.sum(), rtol=1e-12)
    assert torch.equal(be.tangent(F, 0.5, st, r), be.stiffness(st))


def test_parameter_sets_by_material_id_range_and_default(tmp_path):
    sets = {"3": ODMNParameters.random(2, seed=0), "0-5": ODMNParameters.random(2, seed=1),
            "default": ODMNParameters.random(2, seed=2)}
    be = backend(tmp_path, sets)
    which = be.point_data(np.array([3, 0, 5, 6, 99]))["parameter_set"]
    assert which.tolist() == [0, 1, 1, 2, 2]
    st = setup(be, [3, 0, 6])
    assert not torch.allclose(be.stiffness(st)[0], be.stiffness(st)[1])


@pytest.mark.parametrize("params, key", [
    ({"0": "missing.pt"}, None),
    ({"zero": "x.pt"}, "backend_options/parameters"),
    ({}, "backend_options/parameters"),
])
def test_bad_parameter_options_are_one_line_errors(tmp_path, params, key):
    with pytest.raises(InputError) as e:
        get("odmn")(AL, {"parameters": {k: str(tmp_path / v) for k, v in params.items()}})
    assert "\n" not in str(e.value)
    if key:
        assert e.value.key == key
    else:
        assert str(e.value.file).endswith("missing.pt")


def test_unmapped_material_and_mixed_depths_are_one_line_errors(tmp_path):
    be = backend(tmp_path, {"2": ODMNParameters.random(2)})
    with pytest.raises(InputError, match="material 7 .*no parameter set"):
        be.point_data(np.array([2, 7]))
    with pytest.raises(InputError, match="one depth"):
        backend(tmp_path, {"1": ODMNParameters.random(2), "2": ODMNParameters.random(3)})


def test_saved_run_config_keeps_parameter_files_reachable(tmp_path):
    """The ``files`` option kind: a config read from one folder and saved in another still finds
    its parameter files; a bad value is a one-line error naming the key."""
    import yaml

    from polyfe2.learn.odmn_validation import loading_unloading
    from polyfe2.microstructure.descriptor import make_descriptor
    from polyfe2.simulation.config import load_run_config
    from polyfe2.simulation.rve import voronoi_rve

    ODMNParameters.random(2).save(tmp_path / "net.pt")
    one = make_descriptor(np.full((1, 3), 0.5), np.array([[1.0, 0, 0, 0]]))
    config = voronoi_rve(one, 1, AL, loading_unloading(), backend="odmn",
                         backend_options={"parameters": {"default": str(tmp_path / "net.pt")}})
    config.backend_options = {"parameters": {"default": "net.pt"}}
    config.save(tmp_path / "a")          # built in memory: relative to the folder it is saved in
    (tmp_path / "a" / "net.pt").write_bytes((tmp_path / "net.pt").read_bytes())
    load_run_config(tmp_path / "a" / "run.yaml").save(tmp_path / "b" / "deeper")
    saved = yaml.safe_load((tmp_path / "b" / "deeper" / "run.yaml").read_text())
    assert saved["backend_options"]["parameters"] == {"default": "../../a/net.pt"}
    load_run_config(tmp_path / "b" / "deeper" / "run.yaml")
    with pytest.raises(InputError, match="mapping of names to file names") as e:
        load_run_config(tmp_path / "a" / "run.yaml", {"backend_options": {"parameters": {"default": 3}}})
    assert e.value.key == "backend_options/parameters"


def test_newton_started_from_the_latest_trial_gives_the_same_answer_in_fewer_steps(tmp_path):
    """``newton_start: last``: the node Newton starts from the a of the solver's latest trial and
    every leaf's L_p Newton from its previous evaluation. The answer is the cold start's to the
    node equilibrium's tolerance with fewer network evaluations and leaf Newton steps; a failing
    point keeps its committed state; ``committed`` ignores the start."""
    p = ODMNParameters.random(3, seed=2)
    runs = {}
    for mode in ("committed", "last"):
        be = backend(tmp_path, {"default": p}, newton_start=mode)
        st = setup(be, np.zeros(6, int))
        Fs = path(6, 4, rate=2e-3, seed=1)
        F_0 = torch.eye(3, dtype=D).expand(6, 3, 3)
        for F in Fs[:3]:
            st, F_0 = be.commit(be.evaluate(F, F_0, 0.5, st).state), F
        steps = []
        jacobian = type(be.leaves)._jacobian
        be.leaves._jacobian = lambda A, *args: steps.append(A.shape[0]) or jacobian(A, *args)
        earlier = be.evaluate(Fs[3] * (1 + 2e-5), F_0, 0.5, st)              # an N-GMRES iterate
        F = Fs[3].clone()
        F[4, 0, 1] = float("nan")                                           # a failing point
        steps.clear()
        cold = be.evaluate(F, F_0, 0.5, st)
        n_cold, steps[:] = sum(steps), []
        warm = be.evaluate(F, F_0, 0.5, st, start=earlier.state)
        runs[mode] = (cold, n_cold, warm, sum(steps), st, earlier)
    cold, n_cold, same, n_same, _, _ = runs["committed"]
    assert torch.equal(same.P, cold.P) and n_same == n_cold
    _, n_first, warm, n_warm, st, earlier = runs["last"]
    assert n_first < 0.95 * n_cold and n_warm < 0.5 * n_cold, (n_first, n_warm, n_cold)   # 736, 285 of 840 here
    ok = ~cold.failed
    assert cold.failed.tolist() == warm.failed.tolist() == [False] * 4 + [True, False]
    assert float(warm.state["evaluations"][ok].mean()) < float(cold.state["evaluations"][ok].mean())
    assert float((warm.P - cold.P)[ok].abs().max()) < 1e-6 * float(cold.P[ok].abs().max())
    assert float(warm.state["leaf.gamma_sl"][ok].abs().max()) > 0.01                 # plastic
    assert not torch.equal(earlier.state["a"][4], st["a"][4])
    for k in ("a", "leaf.L_p", "leaf.S", "leaf.F_p", "leaf.gamma_sl"):
        assert torch.equal(warm.state[k][4], st[k][4]), k                    # failed: committed, not the start's
