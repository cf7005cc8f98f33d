import numpy as np
import pytest
import torch

from polyfe2.errors import InputError
from polyfe2.kernels import FusedGRU
from polyfe2.microstructure import descriptor as D
from polyfe2.learn import loadpath as LP
from polyfe2.constitutive.gru_network import CHECKPOINT_VERSION, STRESS_ORDER, GRUSurrogate


def _data(B=3, T=12, seed=0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    d = np.stack([D.random_texture(20, rng) for _ in range(B)])
    F = np.stack([LP.random_monotonic_path(rng, steps=T, sections=3)[1:] for _ in range(B)])
    F[0] *= 1.01   # one path with a volume change: the model must see only its isochoric part
    return torch.tensor(d, dtype=dtype), torch.tensor(F, dtype=dtype)


def _model(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("hidden", 32)
    kw.setdefault("mlp_width", 16)
    m = GRUSurrogate(**kw).to(dtype)
    d, F = _data(4, 12, seed=99, dtype=dtype)
    s = torch.randn(4, 12, 6, dtype=dtype) * 50e6     # Pa
    m.fit_scaling(d, F, s)
    return m


def test_shapes_and_scaling_buffers():
    m = _model()
    d, F = _data()
    out = m(d, F)
    assert out.shape == (3, 12, 6)
    assert STRESS_ORDER == ("11", "22", "33", "23", "13", "12")
    h0, mv = m.initial_state(d)
    assert h0.shape == (2, 3, 32) and mv.shape == (3, 32)
    assert torch.all(h0.abs() < 1)
    # scaling buffers hold real statistics and round-trip
    assert torch.all(m.s_max > m.s_min) and m.s_max.max() > 1e6
    s = torch.randn(5, 6, dtype=torch.float64) * 1e7
    torch.testing.assert_close(m.unscale_stress(m.scale_stress(s)), s)
    # the output is in Pa: unscaled forward == unscale(forward_scaled)
    torch.testing.assert_close(out, m.unscale_stress(m.forward_scaled(d, F)))


def test_only_isochoric_F_matters():
    m = _model()
    d, F = _data()
    torch.testing.assert_close(m(d, F * 1.05), m(d, F), atol=1e-6, rtol=1e-9)


def test_forward_equals_repeated_step():
    m = _model()
    d, F = _data(T=15)
    full = m(d, F)
    h, mv = m.initial_state(d)
    outs = []
    for t in range(F.shape[1]):
        s, h = m.step(F[:, t], mv, h)
        outs.append(s)
    stepped = torch.stack(outs, 1)
    assert (stepped - full).abs().max().item() < 1e-6
    assert full.abs().max().item() > 1e5      # non-trivial values (Pa)


def test_step_does_not_modify_committed_state():
    m = _model()
    d, F = _data()
    h, mv = m.initial_state(d)
    h_ref = h.clone()
    a, _ = m.step(F[:, 0], mv, h)
    b, _ = m.step(F[:, 0] * 1.0, mv, h)      # re-evaluation from the same committed state
    torch.testing.assert_close(h, h_ref, rtol=0, atol=0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_grain_permutation_invariance():
    m = _model()
    d, F = _data()
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    a = m(d, F)
    b = m(d[:, perm], F)
    assert (a - b).abs().max().item() < 1e-6 * a.abs().max().item()
    # ...but the descriptor does matter
    d2, _ = _data(seed=5)
    assert (m(d2, F) - a).abs().max().item() > 1e-3 * a.abs().max().item()


def test_save_load_round_trip(tmp_path):
    m = _model()
    d, F = _data()
    p = tmp_path / "gru.pt"
    m.save(p, meta={"material": "Al", "epochs": 3})
    m2 = GRUSurrogate.load(p)
    assert m2.arch == m.arch and m2.meta == {"material": "Al", "epochs": 3}
    assert m2.output_layer.weight.dtype == torch.float64
    torch.testing.assert_close(m2(d, F), m(d, F), rtol=0, atol=0)
    torch.testing.assert_close(m2.s_min, m.s_min, rtol=0, atol=0)
    ckpt = torch.load(p, weights_only=True)
    assert ckpt["version"] == CHECKPOINT_VERSION and ckpt["layout"] == D.DESCRIPTOR_LAYOUT
    assert set(ckpt["scaling"]) == {"F_min", "F_max", "d_min", "d_max", "s_min", "s_max"}


@pytest.mark.parametrize("key,value", [("version", CHECKPOINT_VERSION + 1), ("version", 0),
                                       ("layout", "euler[3]+seed[3]"),
                                       ("format", "something.else")])
def test_load_rejects_wrong_version_or_layout(tmp_path, key, value):
    m = _model()
    p = tmp_path / "gru.pt"
    m.save(p)
    ckpt = torch.load(p, weights_only=True)
    ckpt[key] = value
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(InputError) as exc:
        GRUSurrogate.load(bad)
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg and f"key '{key}'" in msg
    assert exc.value.key == key


def test_load_missing_and_garbage(tmp_path):
    with pytest.raises(InputError, match="not found"):
        GRUSurrogate.load(tmp_path / "nope.pt")
    g = tmp_path / "garbage.pt"
    g.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pt"):
        GRUSurrogate.load(g)


def test_fused_gru_matches_step_default_architecture():
    torch.manual_seed(1)
    m = GRUSurrogate()                      # hidden 256, 2 layers, m 32 (float32)
    assert m.gru.hidden_size == 256 and m.gru.num_layers == 2
    assert m.input_layer.in_features == 9 + 32
    d, F = _data(B=5, T=3, dtype=torch.float32)
    m.fit_scaling(d, F, torch.randn(5, 3, 6) * 30e6)
    with torch.no_grad():
        h, mv = m.initial_state(d)
        fg = FusedGRU(m.gru, m.input_layer, m.output_layer, n_f=9)
        fg2 = m.fused()
        for t in range(F.shape[1]):
            ref, h_ref = m.step(F[:, t], mv, h)
            pre = fg.precompute(h.contiguous(), mv.contiguous())
            h_new, y = fg.step(m.step_features(F[:, t]).contiguous(), h.contiguous(), pre)
            got = m.unscale_stress(y)
            scale = ref.abs().max().item()
            assert scale > 1e5
            assert (got - ref).abs().max().item() < 1e-5 * scale
            assert (h_new - h_ref).abs().max().item() < 1e-5
            pre2 = fg2.precompute(h.contiguous(), mv.contiguous())
            _, y2 = fg2.step(m.step_features(F[:, t]).contiguous(), h.contiguous(), pre2)
            torch.testing.assert_close(y2, y)
            h = h_ref


# ----------------------------------------------------------------------------- F+dF+dt, volume pooling
def _fractions(B=3, seed=0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    v = rng.dirichlet(np.ones(20), size=B)
    return torch.tensor(v, dtype=dtype)


def _dt(B=3, seed=0, dtype=torch.float64):
    return torch.tensor(np.random.default_rng(seed).choice([0.125, 0.5, 2.0], size=B), dtype=dtype)


def _model_v2(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    m = GRUSurrogate(hidden=32, mlp_width=16, features="F+dF+dt", pooling="volume", **kw).to(dtype)
    d, F = _data(4, 12, seed=99, dtype=dtype)
    m.fit_scaling(d, F, torch.randn(4, 12, 6, dtype=dtype) * 50e6, _dt(4, seed=98, dtype=dtype))
    return m


def test_standardised_features_have_zero_mean_unit_variance():
    m = _model_v2()
    d, F = _data(4, 12, seed=99)
    x = m.scale_path(F, _dt(4, seed=98)).reshape(-1, 19)
    torch.testing.assert_close(x.mean(0), torch.zeros(19, dtype=x.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(19, dtype=x.dtype), atol=1e-9, rtol=0)
    # the increment columns are the difference of consecutive isochoric F
    raw = m.path_features(F, 0.5)
    torch.testing.assert_close(raw[:, 1:, 9:18], raw[:, 1:, :9] - raw[:, :-1, :9])
    torch.testing.assert_close(raw[..., 18], torch.full_like(raw[..., 18], np.log(0.5)))


def test_forward_equals_repeated_step_with_increments_and_dt():
    m = _model_v2()
    d, F = _data(T=10)
    v, dt = _fractions(), _dt()
    full = m(d, F, dt, v)
    h, mv = m.initial_state(d, v)
    F_prev = torch.eye(3, dtype=F.dtype).expand(3, 3, 3)
    outs = []
    for t in range(F.shape[1]):
        s, h = m.step(F[:, t], mv, h, F_prev, dt)
        F_prev = F[:, t]
        outs.append(s)
    assert (torch.stack(outs, 1) - full).abs().max().item() < 1e-6
    assert full.abs().max().item() > 1e5


def test_step_time_and_increment_change_the_prediction():
    m = _model_v2()
    d, F = _data()
    v = _fractions()
    a = m(d, F, 0.5, v)
    assert (m(d, F, 2.0, v) - a).abs().max().item() > 1e-4 * a.abs().max().item()
    with pytest.raises(ValueError, match="F_prev and dt"):
        m(d, F, None, v)


def test_volume_pooling_sees_one_grains_volume_and_stays_permutation_invariant():
    m = _model_v2()
    d, F = _data()
    v, dt = _fractions(), _dt()
    a = m(d, F, dt, v)
    v2 = v.clone()
    v2[:, 0] *= 2.0                       # one grain twice as large, the others shrink
    v2 /= v2.sum(1, keepdim=True)
    assert (m(d, F, dt, v2) - a).abs().max().item() > 1e-4 * a.abs().max().item()
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    b = m(d[:, perm], F, dt, v[:, perm])
    assert (a - b).abs().max().item() < 1e-9 * a.abs().max().item()
    with pytest.raises(ValueError, match="volume fractions"):
        m(d, F, dt)


def test_with_inputs_keeps_the_function_of_an_F_model():
    m = _model()
    d, F = _data()
    dt = _dt()
    equal = torch.full((3, 20), 1 / 20, dtype=F.dtype)
    for pooling in ("mean", "volume"):
        n = m.with_inputs("F+dF+dt", pooling, F, dt)
        assert n.arch["features"] == "F+dF+dt" and n.input_layer.in_features == 19 + 32
        torch.testing.assert_close(n(d, F, dt, equal), m(d, F), atol=1e-3, rtol=1e-9)   # Pa
    # with unequal fractions the volume-pooled copy answers differently
    v = _fractions()
    n = m.with_inputs("F+dF+dt", "volume", F, dt)
    assert (n(d, F, dt, v) - m(d, F)).abs().max().item() > 1e3


def test_fused_gru_matches_step_with_19_features():
    m = _model_v2(dtype=torch.float32)
    d, F = _data(B=5, T=3, dtype=torch.float32)
    v, dt = _fractions(5, dtype=torch.float32), 0.25
    with torch.no_grad():
        h, mv = m.initial_state(d, v)
        fg = m.fused()
        F_prev = torch.eye(3).expand(5, 3, 3)
        for t in range(F.shape[1]):
            ref, h_ref = m.step(F[:, t], mv, h, F_prev, dt)
            f = m.step_features(F[:, t], F_prev, dt).contiguous()
            assert f.shape == (5, 19)
            h_new, y = fg.step(f, h.contiguous(), fg.precompute(h.contiguous(), mv.contiguous()))
            assert (m.unscale_stress(y) - ref).abs().max().item() < 1e-5 * ref.abs().max().item()
            h, F_prev = h_ref, F[:, t]


def test_version_1_files_read_as_F_features_and_mean_pooling(tmp_path):
    m = _model()
    p = tmp_path / "v1.pt"
    m.save(p)
    ckpt = torch.load(p, weights_only=True)
    ckpt["version"] = 1
    for key in ("features", "pooling"):
        del ckpt["arch"][key]
    torch.save(ckpt, p)
    m1 = GRUSurrogate.load(p)
    assert (m1.features, m1.pooling) == ("F", "mean")
    d, F = _data()
    torch.testing.assert_close(m1(d, F), m(d, F), rtol=0, atol=0)


def test_save_load_round_trip_v2(tmp_path):
    m = _model_v2()
    m.save(tmp_path / "m.pt")
    m2 = GRUSurrogate.load(tmp_path / "m.pt")
    d, F = _data()
    v, dt = _fractions(), _dt()
    torch.testing.assert_close(m2(d, F, dt, v), m(d, F, dt, v), rtol=0, atol=0)
    assert set(torch.load(tmp_path / "m.pt", weights_only=True)["scaling"]) == {
        "x_mean", "x_std", "d_min", "d_max", "s_min", "s_max"}


def test_a_constant_feature_gets_no_weight_and_pooling_alone_can_change():
    """Trained on one step time, ln dt is scaled to 0 and learns nothing: its weights are zero, so
    another dt at run time does not act through random ones. A change of pooling keeps all weights."""
    torch.manual_seed(0)
    m = GRUSurrogate(hidden=32, mlp_width=16, features="F+dF+dt").double()
    d, F = _data(4, 12, seed=99)
    m.fit_scaling(d, F, torch.randn(4, 12, 6, dtype=torch.float64) * 50e6, 0.5)
    assert float(m.x_std[18]) == 0 and m.input_layer.weight[:, 18].abs().max() == 0
    assert m.input_layer.weight[:, :18].abs().min() > 0
    torch.testing.assert_close(m(d, F, 2.0), m(d, F, 0.5), rtol=0, atol=0)
    v = m.with_inputs("F+dF+dt", "volume", F, 0.5)
    torch.testing.assert_close(v(d, F, 0.5, torch.full((4, 20), 0.05, dtype=torch.float64)), m(d, F, 0.5))
    with pytest.raises(ValueError, match="converts 'F' features"):
        v.with_inputs("F", "mean", F, 0.5)


def test_without_positions_moving_the_ve_changes_nothing(tmp_path):
    """A periodic VE moved as a whole is the same VE: without the seed positions as an input the
    prediction is exactly the same, with them it is not; the switch survives a checkpoint."""
    d, F = _data()
    moved = d.clone()
    moved[..., :3] = (moved[..., :3] + torch.tensor([0.31, 0.72, 0.05], dtype=d.dtype)) % 1.0
    with_positions = _model()
    assert (with_positions(moved, F) - with_positions(d, F)).abs().max() > 1e-4 * with_positions(d, F).abs().max()
    m = _model(positions=False)
    torch.testing.assert_close(m(moved, F), m(d, F), rtol=0, atol=0)
    m.save(tmp_path / "m.pt")
    loaded = GRUSurrogate.load(tmp_path / "m.pt")
    assert loaded.positions is False
    torch.testing.assert_close(loaded(moved, F), m(d, F), rtol=0, atol=0)
    with pytest.raises(ValueError, match="grain rows"):
        GRUSurrogate(descriptor_width=16, positions=False)


def test_squashed_features_are_c_asinh_of_the_standardised_ones_and_round_trip(tmp_path):
    """``squash c``: c asinh(z / c) of the standardised step features z -- about z within c
    standard deviations, logarithmic far beyond (a crack tip's 40-sigma steps reach the network
    as 11.99 with c = 4), odd and increasing; a model without it keeps plain z."""
    plain = _model_v2()
    squashed = plain.with_inputs("F+dF+dt", "volume", None, squash=4.0)
    assert plain.squash is None and "squash" not in plain.arch and squashed.arch["squash"] == 4.0
    d, F = _data()
    z, f = plain.scale_path(F, 0.5), squashed.scale_path(F, 0.5)
    torch.testing.assert_close(f, 4.0 * torch.asinh(z / 4.0))
    small = z.abs() < 0.5
    assert (f[small] - z[small]).abs().max() < 0.005 * 0.5
    far = squashed.scale_features(squashed.x_mean + 40 * squashed.x_std)   # 40 sigma out
    torch.testing.assert_close(far, torch.full_like(far, 4 * np.arcsinh(10.0)))   # 11.99
    squashed.save(tmp_path / "s.pt")
    back = GRUSurrogate.load(tmp_path / "s.pt")
    assert back.squash == 4.0
    v, dt = _fractions(), _dt()
    torch.testing.assert_close(back(d, F, dt, v), squashed(d, F, dt, v), rtol=0, atol=0)
    # the fused kernels take the squashed features as they come
    m32 = GRUSurrogate.load(tmp_path / "s.pt").float()
    with torch.no_grad():
        h, mv = m32.initial_state(d.float(), v.float())
        F1, I = F[:, 0].float(), torch.eye(3).expand(3, 3, 3)
        ref, _ = m32.step(F1, mv, h, I, 0.5)
        fg = m32.fused()
        _, y = fg.step(m32.step_features(F1, I, 0.5).contiguous(), h.contiguous(),
                       fg.precompute(h.contiguous(), mv.contiguous()))
        assert (m32.unscale_stress(y) - ref).abs().max() < 1e-5 * ref.abs().max()
    with pytest.raises(ValueError, match="squash"):
        GRUSurrogate(features="F", squash=4.0)


def _equivalents(q: np.ndarray) -> np.ndarray:
    """All 24 cubic equivalents (24, ..., 4) of quaternions q (..., 4), not reduced."""
    import damask
    ops = damask.Orientation(lattice="cF").symmetry_operations.quaternion
    eq = (damask.Rotation(ops.reshape((24,) + (1,) * (q.ndim - 1) + (4,))) * damask.Rotation(q[None])).quaternion
    return np.where(eq[..., :1] < 0, -eq, eq)


def test_cubic_orientation_tensor_is_the_anisotropic_part_of_the_rotated_stiffness_and_symmetric():
    """A = sum_k r_k^4 over the crystal's cube axes: the lab-frame cubic stiffness (rotated by the
    package's own rotate_stiffness) is C_12 I(x)I + 2 C_44 I_sym + (C_11 - C_12 - 2 C_44) A; A is
    the same for the 24 equivalents of an orientation and differs between orientations."""
    import damask
    from polyfe2.constitutive.gru_network import cubic_orientation_tensor
    from polyfe2.constitutive.crystal import orientation_matrices
    from polyfe2.mechanics.elasticity import cubic_stiffness, rotate_stiffness
    q = damask.Rotation.from_random(6, rng_seed=3).quaternion
    a = cubic_orientation_tensor(torch.tensor(q))
    assert a.shape == (6, 15)
    full = torch.zeros(6, 3, 3, 3, 3, dtype=torch.float64)   # A from its 15 components
    from itertools import combinations_with_replacement, permutations
    for n, idx in enumerate(combinations_with_replacement(range(3), 4)):
        for p in set(permutations(idx)):
            full[(slice(None),) + p] = a[:, n]
    c11, c12, c44 = 106.75e9, 60.41e9, 28.34e9
    C = rotate_stiffness(cubic_stiffness(c11, c12, c44), orientation_matrices(torch.tensor(q), None, device="cpu",
                                                                               dtype=torch.float64))
    I = torch.eye(3, dtype=torch.float64)
    iso = c12 * torch.einsum("ij,kl->ijkl", I, I) + c44 * (torch.einsum("ik,jl->ijkl", I, I)
                                                          + torch.einsum("il,jk->ijkl", I, I))
    torch.testing.assert_close(C, iso + (c11 - c12 - 2 * c44) * full, rtol=1e-12, atol=1e-3)
    eq = _equivalents(q)
    torch.testing.assert_close(cubic_orientation_tensor(torch.tensor(eq)), a.expand(24, 6, 15), rtol=0, atol=1e-12)
    assert torch.cdist(a, a).fill_diagonal_(1).min() > 0.05


def test_cubic_orientation_input_sees_one_orientation_in_all_its_forms_and_is_continuous(tmp_path):
    """With orientation='cubic' a VE whose grains are given as any of their 24 equivalents gets
    the same answer, and a grain turned by 0.01 degree across a face of the fundamental zone
    changes it by little; with reduced quaternions the same turn makes the answer jump. The
    input survives a checkpoint; files without it read as quaternion models."""
    import damask
    d, F = _data()
    v, dt = _fractions(), _dt()
    cubic = _model_v2(orientation="cubic")
    assert cubic.arch["orientation"] == "cubic" and "orientation" not in _model_v2().arch
    ref = cubic(d, F, dt, v)
    eq = torch.tensor(_equivalents(d[..., 3:].numpy()))
    for k in (1, 7, 19):
        other = d.clone()
        other[..., 3:] = eq[k]
        torch.testing.assert_close(cubic(other, F, dt, v), ref, rtol=0, atol=1e-6 * ref.abs().max().item())
    # the face of the zone at 45 degrees about z: one grain at 44.995 and at 45.005 degrees
    sides = []
    for angle in (44.995, 45.005):
        q = damask.Rotation.from_axis_angle([0, 0, 1, angle], degrees=True).quaternion
        turned = d.clone()
        turned[:, 0, 3:] = torch.tensor(D.reduce_to_fz(q))
        sides.append(turned)
    assert (sides[0][0, 0, 3:] - sides[1][0, 0, 3:]).abs().max() > 0.1   # the reduced quaternion jumps
    quaternion = _model_v2()
    jump = (quaternion(sides[0], F, dt, v) - quaternion(sides[1], F, dt, v)).abs().max()
    step = (cubic(sides[0], F, dt, v) - cubic(sides[1], F, dt, v)).abs().max()
    assert step < 1e-3 * jump
    cubic.save(tmp_path / "c.pt")
    back = GRUSurrogate.load(tmp_path / "c.pt")
    assert back.orientation == "cubic" and back.d_min.shape == (18,)
    torch.testing.assert_close(back(d, F, dt, v), ref, rtol=0, atol=0)
    assert GRUSurrogate.load(_save(_model_v2(), tmp_path / "q.pt")).orientation == "quaternion"
    with pytest.raises(ValueError, match="grain rows"):
        GRUSurrogate(descriptor_width=16, orientation="cubic")


def _save(m, path):
    m.save(path)
    return path


def test_a_new_orientation_input_keeps_every_weight_but_the_grain_networks_first_layers():
    m = _model_v2()
    d, F = _data()
    with pytest.raises(ValueError, match="descriptors"):
        m.with_inputs("F+dF+dt", "volume", None, orientation="cubic")
    c = m.with_inputs("F+dF+dt", "volume", None, orientation="cubic", descriptors=d)
    assert c.orientation == "cubic" and c.h0_net.phi[0].weight.shape == (16, 18)
    old, new = m.state_dict(), c.state_dict()
    for k in old:
        if k.startswith(("h0_net.phi.0.", "m_net.phi.0.", "d_min", "d_max")):
            continue
        torch.testing.assert_close(new[k], old[k], rtol=0, atol=0)
    rows = c.scale_descriptor(d)   # the rows' ranges come from the descriptors given
    assert rows[..., 3:].min() >= 0 and rows[..., 3:].max() <= 1 and rows[..., 3:].amax((0, 1)).max() == 1
