"""The ``gru`` backend: split step from the committed state, stress assembly, solver runs."""
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from polyfe2.constitutive import MaterialPoints, registry
from polyfe2.constitutive.gru import GRUBackend
from polyfe2.errors import InputError
from polyfe2.io import read_status
from polyfe2.microstructure import descriptor as D
from polyfe2.learn import loadpath as LP
from polyfe2.microstructure.descriptor import DESCRIPTOR_LAYOUT
from polyfe2.constitutive.gru_network import GRUSurrogate
from polyfe2.mechanics import voigt_to_tensor

sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
from solver_cases import AL_ELASTIC, AL_PLASTIC, curve_tensor, deformation, phase, run_case, uniaxial_x, write_case  # noqa: E402

AL = phase(plastic=AL_PLASTIC)
K_BULK = (AL_ELASTIC["C_11"] + 2 * AL_ELASTIC["C_12"]) / 3


def small_model(path: Path, seed=0, hidden=32, features="F", pooling="mean") -> Path:
    """A random (untrained) surrogate with realistic scaling ranges, saved to ``path``."""
    torch.manual_seed(seed)
    m = GRUSurrogate(hidden=hidden, mlp_width=16, features=features, pooling=pooling)
    rng = np.random.default_rng(seed)
    d = torch.tensor(np.stack([D.random_texture(20, rng) for _ in range(4)]), dtype=torch.float32)
    F = torch.tensor(np.stack([LP.random_monotonic_path(rng, 10, sections=3)[1:] for _ in range(4)]), dtype=torch.float32)
    m.fit_scaling(d, F, torch.randn(4, 10, 6) * 60e6, torch.tensor([0.25, 0.5, 1.0, 2.0]))
    m.save(path)
    return path


def deviator(s: torch.Tensor) -> torch.Tensor:
    return s - torch.diagonal(s, dim1=-2, dim2=-1).sum(-1)[..., None, None] / 3 * torch.eye(3, dtype=s.dtype)


def descriptors(path: Path, n: int, seed=1, fractions=None) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("descriptor", data=np.stack([D.random_texture(20, rng) for _ in range(n)]))
        f["descriptor"].attrs["layout"] = DESCRIPTOR_LAYOUT
        if fractions is not None:
            f.create_dataset("fractions", data=fractions)
    return path


def backend(tmp_path, n=5, model_kw=None, fractions=None, **options) -> tuple[GRUBackend, dict, torch.Tensor]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = small_model(tmp_path / "m.pt", **(model_kw or {}))
    desc = descriptors(tmp_path / "d.h5", n, fractions=fractions)
    b = registry.get("gru")(AL, {"model": str(model), "descriptors": str(desc), **options})
    ids = np.arange(n)
    pts = MaterialPoints(torch.zeros(n, 1, 4), torch.ones(n, 1), torch.as_tensor(ids), b.point_data(ids))
    return b, b.setup(pts, torch.device("cpu"), torch.float64), pts.extra["descriptor"]


@pytest.mark.parametrize("kernels", ["auto", "reference", "torch"])
def test_step_equals_standalone_model_and_is_pure(tmp_path, kernels):
    b, state, d = backend(tmp_path, kernels=kernels)
    F_path = torch.tensor(np.stack([LP.random_monotonic_path(np.random.default_rng(s), 3, sections=3) for s in range(5)]))
    h_before = state["h"].clone()
    r1 = b.evaluate(F_path[:, 1], F_path[:, 0], 0.5, state)
    r2 = b.evaluate(F_path[:, 1] * 1.0, F_path[:, 0], 0.5, state)   # re-evaluation inside the increment
    torch.testing.assert_close(state["h"], h_before, rtol=0, atol=0)
    torch.testing.assert_close(r1.P, r2.P, rtol=0, atol=0)
    state = b.commit(r1.state)
    r = b.evaluate(F_path[:, 2], F_path[:, 1], 0.5, state)
    # standalone model along the same (symmetric, isochoric) path: sigma = sigma_dev, P = sigma F^-T
    with torch.no_grad():
        s = deviator(voigt_to_tensor(b.model(d.float(), F_path[:, 1:3].float())[:, 1].double()))
    P_ref = s @ torch.linalg.inv(F_path[:, 2]).transpose(-1, -2)
    torch.testing.assert_close(r.P, P_ref, rtol=0, atol=2e-5 * float(P_ref.abs().max()))
    assert not r.failed.any()


def test_trial_hidden_states_reuse_only_memory_nothing_holds(tmp_path):
    """The trial hidden state goes into a buffer of an earlier trial once nothing (no state, no
    view) holds it; a trial state that is still held is never overwritten, so every evaluation
    stays pure, and a reused buffer gives the same answer as fresh memory."""
    b, state, _ = backend(tmp_path)
    F_path = torch.tensor(np.stack([LP.random_monotonic_path(np.random.default_rng(s), 3, sections=3) for s in range(5)]))
    F1, F0 = F_path[:, 1], F_path[:, 0]
    kept = [b.evaluate(F1 * (1 + 1e-3 * k), F0, 0.5, state) for k in range(5)]   # all held: all distinct
    ptrs = {r.state["h"].data_ptr() for r in kept} | {state["h"].data_ptr()}
    assert len(ptrs) == 6
    again = [b.evaluate(F1 * (1 + 1e-3 * k), F0, 0.5, state) for k in range(5)]
    for r, s in zip(kept, again):
        torch.testing.assert_close(r.state["h"], s.state["h"], rtol=0, atol=0)
        torch.testing.assert_close(r.P, s.P, rtol=0, atol=0)
    del kept, again, r, s
    first = b.evaluate(F1, F0, 0.5, state)
    h_first = first.state["h"].clone()
    seen = set()
    for k in range(4):   # the solver's pattern: the latest trial is held while the next is formed
        latest = b.evaluate(F1 * (1 + 1e-3 * k), F0, 0.5, state)
        seen.add(latest.state["h"].data_ptr())
    torch.testing.assert_close(first.state["h"], h_first, rtol=0, atol=0)   # held: untouched
    assert len(seen) == 2 and first.state["h"].data_ptr() not in seen and state["h"].data_ptr() not in seen
    view = latest.state["h"][0]   # a view alone keeps the memory too
    ptr = latest.state["h"].data_ptr()
    del latest
    assert b.evaluate(F1, F0, 0.5, state).state["h"].data_ptr() != ptr
    del view
    torch.testing.assert_close(b.evaluate(F1, F0, 0.5, state).state["h"], h_first, rtol=0, atol=0)


@pytest.mark.parametrize("kernels", ["auto", "torch"])
def test_increment_features_and_volume_pooling_follow_the_standalone_model(tmp_path, kernels):
    """A model with F+dF+dt features and volume pooling: the backend's step sees the committed
    stretch, the increment's dt and the descriptor file's fractions, as the standalone model does."""
    v = np.random.default_rng(4).dirichlet(np.ones(20), size=5)
    b, state, d = backend(tmp_path, model_kw=dict(features="F+dF+dt", pooling="volume"), fractions=v,
                          kernels=kernels)
    F_path = torch.tensor(np.stack([LP.random_monotonic_path(np.random.default_rng(s), 3, sections=3) for s in range(5)]))
    state = b.commit(b.evaluate(F_path[:, 1], F_path[:, 0], 0.25, state).state)
    r = b.evaluate(F_path[:, 2], F_path[:, 1], 0.25, state)
    with torch.no_grad():
        s = b.model(d.float(), F_path[:, 1:3].float(), 0.25, torch.as_tensor(v, dtype=torch.float32))
    P_ref = deviator(voigt_to_tensor(s[:, 1].double())) @ torch.linalg.inv(F_path[:, 2]).transpose(-1, -2)
    torch.testing.assert_close(r.P, P_ref, rtol=0, atol=2e-5 * float(P_ref.abs().max()))
    # the step time and the grains' volumes enter the answer
    assert (b.evaluate(F_path[:, 2], F_path[:, 1], 2.0, state).P - r.P).abs().max() > 1e-4 * r.P.abs().max()
    b2, state2, _ = backend(tmp_path / "other", model_kw=dict(features="F+dF+dt", pooling="volume"),
                            fractions=np.roll(v, 1, axis=1), kernels=kernels)
    state2 = b2.commit(b2.evaluate(F_path[:, 1], F_path[:, 0], 0.25, state2).state)
    assert (b2.evaluate(F_path[:, 2], F_path[:, 1], 0.25, state2).P - r.P).abs().max() > 1e-4 * r.P.abs().max()


def test_missing_fractions_are_measured_and_bad_ones_refused(tmp_path):
    kw = dict(features="F+dF+dt", pooling="volume")
    b, _, d = backend(tmp_path, n=2, model_kw=kw)
    measured = b.point_data(np.array([0, 1]))["fractions"].numpy()
    np.testing.assert_allclose(measured, np.stack([D.grain_fractions(x) for x in d.numpy()]))
    np.testing.assert_allclose(measured.sum(1), 1.0)
    assert "grain fractions measured for 2 materials" in b.describe()
    given, _, _ = backend(tmp_path / "given", n=2, model_kw=kw, fractions=measured)
    given.point_data(np.array([0, 1]))
    assert "measured" not in given.describe()
    with pytest.raises(InputError, match=r"d\.h5.*fractions"):
        backend(tmp_path / "bad", n=2, model_kw=kw, fractions=-np.ones((2, 20)))


def test_volumetric_part_and_objectivity(tmp_path):
    b, state, _ = backend(tmp_path, n=3)
    U = torch.tensor(LP.random_monotonic_path(3, 2, sections=2)[2]).expand(3, 3, 3).clone()
    J = 1.004
    r_iso = b.evaluate(U, U, 0.5, state)
    r_vol = b.evaluate(U * J ** (1 / 3), U, 0.5, state)
    sigma = lambda P, F: P @ F.transpose(-1, -2) / torch.linalg.det(F)[:, None, None]  # noqa: E731
    dsig = sigma(r_vol.P, U * J ** (1 / 3)) - sigma(r_iso.P, U)
    torch.testing.assert_close(dsig, (K_BULK * np.log(J) / J) * torch.eye(3, dtype=U.dtype).expand(3, 3, 3),
                               rtol=1e-6, atol=1e-3 * K_BULK * np.log(J))
    # a rigid rotation of the stretch rotates the Cauchy stress
    c, s = np.cos(0.3), np.sin(0.3)
    Q = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=U.dtype)
    r_rot = b.evaluate(Q @ U, U, 0.5, state)
    torch.testing.assert_close(sigma(r_rot.P, Q @ U), Q @ sigma(r_iso.P, U) @ Q.T, rtol=0, atol=1e-3)


def test_failed_points_are_flagged(tmp_path):
    b, state, _ = backend(tmp_path, n=2)
    F = torch.eye(3, dtype=torch.float64).expand(2, 3, 3).clone()
    F[1] = -F[1]          # det < 0
    r = b.evaluate(F, F, 0.5, state)
    assert r.failed.tolist() == [False, True] and torch.isfinite(r.P).all()


def test_bad_options_and_files_give_one_line_errors(tmp_path):
    model = small_model(tmp_path / "m.pt")
    desc = descriptors(tmp_path / "d.h5", 2)
    cls = registry.get("gru")
    with pytest.raises(InputError, match="backend_options/descriptors"):
        cls(AL, {"model": str(model)})
    with pytest.raises(InputError, match="backend_options/kernels"):
        cls(AL, {"model": str(model), "descriptors": str(desc), "kernels": "fast"})
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="garbage.pt"):
        cls(AL, {"model": str(tmp_path / "garbage.pt"), "descriptors": str(desc)})
    ck = torch.load(model, weights_only=True)
    ck["version"] = 99
    torch.save(ck, tmp_path / "v99.pt")
    with pytest.raises(InputError, match="key 'version'") as e:
        cls(AL, {"model": str(tmp_path / "v99.pt"), "descriptors": str(desc)})
    assert "\n" not in str(e.value)
    b = cls(AL, {"model": str(model), "descriptors": str(desc)})
    with pytest.raises(InputError, match="material ID 5"):
        b.point_data(np.array([0, 5]))
    with h5py.File(tmp_path / "wrong.h5", "w") as f:
        f["descriptor"] = np.zeros((2, 20, 6))
    b = cls(AL, {"model": str(model), "descriptors": str(tmp_path / "wrong.h5")})
    with pytest.raises(InputError, match="wrong.h5"):
        b.point_data(np.array([0]))


def _case(tmp_path, steps, n_cells=(2, 2, 1), per_voxel=False, model="random", **options):
    """A gru run case; ``model``: 'random' (a small untrained one), a path, or None (shipped)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if model == "random":
        model = small_model(tmp_path / "m.pt")
    n = int(np.prod(n_cells)) if per_voxel else 1
    desc = descriptors(tmp_path / "d.h5", n)
    ids = np.arange(n).reshape(n_cells) if per_voxel else np.zeros(n_cells, dtype=int)
    materials = [("Al", [[1.0, 0, 0, 0]])] * n
    options = {"descriptors": str(desc), **options, **({"model": str(model)} if model else {})}
    return write_case(tmp_path / "case", ids, {"Al": AL}, materials, steps, backend="gru",
                      backend_options=options)


def test_homogeneous_grid_run_reproduces_standalone_prediction(tmp_path):
    T = 6
    F_path = LP.random_monotonic_path(np.random.default_rng(7), T, max_strain=0.03)
    path = _case(tmp_path, [deformation(F, t=0.5) for F in F_path[1:]])
    summary, curve, _ = run_case(path)
    model = GRUSurrogate.load(tmp_path / "m.pt")
    with h5py.File(tmp_path / "d.h5") as f:
        d = torch.tensor(f["descriptor"][:1], dtype=torch.float32)
    with torch.no_grad():
        s = deviator(voigt_to_tensor(model(d, torch.tensor(F_path[None, 1:], dtype=torch.float32))[0].double())).numpy()
    P_ref = s @ np.linalg.inv(F_path[1:]).transpose(0, 2, 1)
    P_run = np.stack([curve_tensor(curve, "P_MPa", row) for row in range(1, T + 1)]) * 1e6
    assert summary.increments == T and summary.cutbacks == 0
    np.testing.assert_allclose(P_run, P_ref, rtol=0, atol=1e-4 * np.abs(P_ref).max())


class _FlakyGRU(GRUBackend):
    """Fails every point on the first evaluation of increment 3 (forces one cutback)."""

    def setup(self, points, device, dtype):
        self.commits, self.failed_once = 0, False
        return super().setup(points, device, dtype)

    def commit(self, trial_state):
        self.commits += 1
        return super().commit(trial_state)

    def evaluate(self, F, F_0, dt, state):
        r = super().evaluate(F, F_0, dt, state)
        if self.commits == 3 and not self.failed_once:   # setup's commit + 2 increments
            self.failed_once = True
            r.failed[:] = True
        return r


def test_cutback_equals_run_with_the_smaller_steps(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._CLASSES, "gru_flaky", _FlakyGRU)
    monkeypatch.setitem(registry.BUILTIN_MODULES, "gru_flaky", "gru")
    F_path = LP.random_monotonic_path(np.random.default_rng(3), 4, max_strain=0.02)
    half = 0.5 * (F_path[3] + F_path[2])
    steps = [deformation(F, t=0.5) for F in F_path[1:3]] + [deformation(F_path[3], t=0.5)]
    path = _case(tmp_path / "a", steps)
    summary, curve_a, _ = run_case(path, backend="gru_flaky")
    assert summary.cutbacks == 1
    status = read_status(summary.files["status (CSV)"])   # the status table says why it cut back
    assert [r["reason"] for r in status if not r["converged"]] == ["material point failure in 4 cells"]
    assert all(r["reason"].startswith("CONVERGED") for r in status if r["converged"])
    steps_b = [deformation(F, t=0.5) for F in F_path[1:3]] + [deformation(half, t=0.25), deformation(F_path[3], t=0.25)]
    _, curve_b, _ = run_case(_case(tmp_path / "b", steps_b, model=tmp_path / "a" / "m.pt"))
    # the cut-back increment is two GRU steps from the committed state, like the finer run
    np.testing.assert_allclose(curve_tensor(curve_a, "P_MPa", -1), curve_tensor(curve_b, "P_MPa", -1),
                               rtol=0, atol=1e-6)


def test_mixed_bc_run_with_a_descriptor_per_voxel(tmp_path):
    """Uniaxial tension with the shipped model, every voxel its own VE: converges, the lateral
    stresses vanish. (An untrained model has no elastic range, so no equilibrium to find.)"""
    path = _case(tmp_path, [uniaxial_x(rate=1e-3, t=4.0, N=4)], n_cells=(3, 3, 2), per_voxel=True, model=None)
    summary, curve, _ = run_case(path)
    assert summary.increments == 4 and summary.cutbacks == 0
    P = curve_tensor(curve, "P_MPa")
    assert abs(P[1, 1]) < 1e-3 * abs(P).max() and abs(P[2, 2]) < 1e-3 * abs(P).max()


def test_a_shipped_model_is_found_by_its_name(tmp_path):
    """``model: gru_aluminium_v3.pt`` (no such file next to the run) selects the shipped iso-strain
    model; the default is the shipped one of full-field labels (and iso-strain ones beyond them)."""
    desc = descriptors(tmp_path / "d.h5", 2)
    v3 = registry.get("gru")(AL, {"model": "gru_aluminium_v3.pt", "descriptors": str(desc)}, base_dir=tmp_path)
    assert v3.model_file.name == "gru_aluminium_v3.pt" and v3.model.features == "F"
    assert v3.model.meta["method"] == "taylor"
    default = registry.get("gru")(AL, {"descriptors": str(desc)}, base_dir=tmp_path)
    assert default.model.meta["method"] == "fullfield+taylor" and default.model.pooling == "volume"
    with pytest.raises(InputError, match="not found"):
        registry.get("gru")(AL, {"model": "sub/gru_aluminium_v3.pt", "descriptors": str(desc)}, base_dir=tmp_path)


def test_points_beyond_the_training_strain_are_counted_and_said_in_the_log(tmp_path):
    """The shipped ``gru_aluminium_v5`` was trained to ||dev ln U|| = 0.05 (its file says so):
    committed stretches of 0.01, 0.06 and 0.2 give two points beyond it, the largest 0.2; a volume
    change does not count. A run taken past it says so in its log once the points appear. The
    default model's limit is 1."""
    desc = str(descriptors(tmp_path / "d.h5", 3))
    assert registry.get("gru")(AL, {"descriptors": desc}, base_dir=tmp_path).model.meta["max_strain"] == 1.0
    b = registry.get("gru")(AL, {"descriptors": desc, "model": "gru_aluminium_v5.pt"}, base_dir=tmp_path)
    assert b.model.meta["max_strain"] == 0.05
    e = torch.tensor([1.0, -0.5, -0.5], dtype=torch.float64) / 1.5**0.5   # unit deviatoric direction
    U = torch.stack([torch.diag(torch.exp(a * e + 0.01)) for a in (0.01, 0.06, 0.2)]).float()
    count, largest, limit = b.beyond_range({"U": U})
    assert (count, limit) == (2, 0.05) and largest == pytest.approx(0.2, rel=1e-5)
    assert registry.get("taylor")(AL).beyond_range({}) is None

    from polyfe2.simulation.config import load_run_config
    from polyfe2.simulation.runner import run

    steps = [deformation(np.diag(np.exp(a * e.numpy())), t=1.0) for a in (0.02, 0.04, 0.06)]
    lines = []
    run(load_run_config(_case(tmp_path / "run", steps, model="gru_aluminium_v5.pt")), progress=False, log=lines.append)
    said = [s for s in lines if "beyond the model's training range" in s]
    assert len(said) == 1 and "Al (gru): 4 points (100 %)" in said[0] and "limit 0.05" in said[0]


@pytest.mark.parametrize("kernels", ["auto", "torch"])
def test_stress_of_the_shipped_model_is_resolved_at_steps_of_F_of_1e_8(tmp_path, kernels):
    """The step features are formed in the run's float64 before the network's float32: along a
    uniaxial stretch, 1e-8 steps of F change P of the shipped model by a steady amount each, below
    the elastic one (2 G_Voigt 1e-8 = 525 Pa: flow only lowers the tangent), and no step departs
    from that slope by more than 500 Pa (the network's own float32 rounding; with the stretch
    rounded to float32 first, the increment feature kept three digits and steps jumped by up to 1.7 kPa)."""
    n = 64
    rng = np.random.default_rng(3)
    desc = descriptors(tmp_path / "d.h5", n, fractions=rng.dirichlet(np.ones(20), size=n))
    b = registry.get("gru")(AL, {"descriptors": str(desc), "kernels": kernels}, base_dir=tmp_path)
    ids = np.arange(n)
    pts = MaterialPoints(torch.zeros(n, 1, 4), torch.ones(n, 1), torch.as_tensor(ids), b.point_data(ids))
    state = b.setup(pts, torch.device("cpu"), torch.float64)
    e = torch.tensor([1.0, -0.5, -0.5], dtype=torch.float64)
    stretch = lambda a: torch.diag_embed(torch.exp(a * e)).expand(n, 3, 3)
    for k in range(1, 21):                                                # 0.02 % steps into the plastic range
        state = b.commit(b.evaluate(stretch(2e-4 * k), stretch(2e-4 * (k - 1)), 0.2, state).state)
    P = torch.stack([b.evaluate(stretch(4.2e-3 + t), stretch(4e-3), 0.2, state).P[:, 0, 0]
                     for t in np.linspace(0.0, 1e-6, 101)])
    steps = P[1:] - P[:-1]
    slope = (P[-1] - P[0]) / 100
    C11, C12, C44 = (AL_ELASTIC[k] for k in ("C_11", "C_12", "C_44"))
    elastic = 2 * (C11 - C12 + 3 * C44) / 5 * 1e-8                        # Pa per 1e-8 of isochoric stretch
    assert 20 < float(slope.abs().mean()) < elastic, (float(slope.abs().mean()), elastic)
    assert float((steps - slope).abs().max()) < 500, float((steps - slope).abs().max())
