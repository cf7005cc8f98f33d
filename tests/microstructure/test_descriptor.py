import damask
import numpy as np
import pytest

from polyfe2.microstructure import descriptor as D


def _in_fz(q):
    return damask.Orientation(rotation=damask.Rotation(q), lattice="cF").in_FZ


def test_random_texture_shape_fz_and_ranges():
    d = D.random_texture(20, np.random.default_rng(0))
    assert d.shape == (20, 7)
    assert np.all(d[:, :3] >= 0.0) and np.all(d[:, :3] < 1.0)
    q = d[:, 3:]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    assert np.all(q[:, 0] >= 0.0)
    assert np.all(_in_fz(q))
    # reduction is idempotent
    np.testing.assert_allclose(D.reduce_to_fz(q), q, atol=1e-12)


def test_reproducible_by_seed():
    a = D.random_texture(20, np.random.default_rng(7))
    b = D.random_texture(20, np.random.default_rng(7))
    c = D.random_texture(20, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(D.texture_component("goss", 20, 5.0, 3),
                                  D.texture_component("goss", 20, 5.0, 3))


@pytest.mark.parametrize("name", ["cube", "goss", "brass", "copper"])
def test_texture_component_close_to_ideal(name):
    d = D.texture_component(name, 20, 5.0, np.random.default_rng(1))
    assert d.shape == (20, 7)
    assert np.all(_in_fz(d[:, 3:]))
    ideal = damask.Orientation.from_Euler_angles(phi=np.array(D.TEXTURE_COMPONENTS[name]),
                                                 degrees=True, lattice="cF")
    grains = damask.Orientation(rotation=damask.Rotation(d[:, 3:]), lattice="cF")
    angle = np.degrees(grains.disorientation(ideal).as_axis_angle()[..., 3])
    assert np.mean(angle < 15.0) >= 0.9
    assert np.median(angle) < 10.0


def test_random_texture_is_not_cube():
    d = D.random_texture(20, np.random.default_rng(2))
    cube = damask.Orientation(lattice="cF")
    grains = damask.Orientation(rotation=damask.Rotation(d[:, 3:]), lattice="cF")
    angle = np.degrees(grains.disorientation(cube).as_axis_angle()[..., 3])
    assert np.mean(angle < 15.0) < 0.5


def test_from_odf_samples_draws_from_pool():
    rng = np.random.default_rng(4)
    pool = D.reduce_to_fz(damask.Rotation.from_random(50, rng_seed=rng).as_quaternion())
    d = D.from_odf_samples(pool, 20, rng)
    assert d.shape == (20, 7)
    dist = np.min(np.linalg.norm(d[:, None, 3:] - pool[None], axis=-1), axis=1)
    assert np.all(dist < 1e-12)
    assert len({tuple(np.round(r, 12)) for r in d[:, 3:]}) == 20   # without replacement
    small = D.from_odf_samples(pool[:3], 20, rng)                   # with replacement
    assert len({tuple(np.round(r, 12)) for r in small[:, 3:]}) <= 3


def test_unknown_component():
    with pytest.raises(ValueError, match="unknown texture component"):
        D.texture_component("s", 20, 5.0, 0)


def test_voronoi_grid_ids_and_orientations():
    d = D.random_texture(20, np.random.default_rng(5))
    mat, ori = D.voronoi_grid(d, (16, 16, 16))
    assert mat.shape == (16, 16, 16)
    assert set(np.unique(mat).tolist()) == set(range(20))
    np.testing.assert_array_equal(ori, d[:, 3:])
    # the cell nearest to a seed (periodic) belongs to that seed's grain
    g = 3
    idx = tuple(np.floor(d[g, :3] * 16).astype(int) % 16)
    centre = (np.array(idx) + 0.5) / 16
    delta = d[:, :3] - centre
    delta -= np.round(delta)
    assert mat[idx] == int(np.argmin(np.linalg.norm(delta, axis=1)))


def test_reduce_to_fz_equals_damask_reduced():
    q = damask.Rotation.from_random(2000, rng_seed=11).as_quaternion()
    ref = damask.Orientation(rotation=damask.Rotation(q), lattice="cF").reduced.as_quaternion()
    got = D.reduce_to_fz(q.reshape(100, 20, 4))
    assert got.shape == (100, 20, 4)
    np.testing.assert_allclose(got.reshape(-1, 4), ref, atol=1e-12)
    assert damask.Orientation(rotation=damask.Rotation(got.reshape(-1, 4)), lattice="cF").in_FZ.all()


def test_voronoi_ensemble_fractions_are_exact_and_seeds_distinct():
    seeds, fractions = D.voronoi_ensemble(400, 20, np.random.default_rng(5), pool=8)
    assert seeds.shape == (400, 20, 3) and fractions.shape == (400, 20)
    assert seeds.min() >= 0 and seeds.max() < 1
    for i in range(0, 400, 40):   # moved by grid symmetries: the tessellation's own fractions
        d = np.concatenate([seeds[i], np.tile([1.0, 0, 0, 0], (20, 1))], axis=1)
        np.testing.assert_array_equal(D.grain_fractions(d), fractions[i])
    assert len({seeds[i].round(12).tobytes() for i in range(400)}) == 400   # 8 pool members, 400 distinct VEs
