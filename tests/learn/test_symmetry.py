"""The cube's rotations as exact copies of a training sample."""
import numpy as np

from polyfe2.learn import datagen as DG
from polyfe2.learn import loadpath as LP
from polyfe2.learn.symmetry import cube_rotations, rotate_samples


def test_rotated_samples_are_the_labels_of_the_rotated_volume_elements():
    rng = np.random.default_rng(3)
    d = np.stack([DG.sample_descriptor(3, k, 0.4)[0] for k in range(2)])
    F = np.stack([LP.random_monotonic_path(rng, 10, max_strain=0.02, sections=2) for _ in range(2)])
    v = np.stack([DG.grain_fractions(x, 8) for x in d])
    s, _ = DG.taylor_labels(d, v, F, 0.5)
    Qs = cube_rotations()
    assert Qs.shape == (24, 3, 3) and np.allclose(Qs[0], np.eye(3))
    assert np.allclose(np.linalg.det(Qs), 1) and len({tuple(np.round(Q, 6).ravel()) for Q in Qs}) == 24
    for Q in Qs[[7, 13, 22]]:
        d_r, F_r, s_r = rotate_samples(d, F, s, Q)
        v_r = np.stack([DG.grain_fractions(x, 8) for x in d_r])
        np.testing.assert_array_equal(v_r, v)                     # the same grains, moved
        labels, failed = DG.taylor_labels(d_r, v_r, F_r, 0.5)
        assert not failed.any()
        np.testing.assert_allclose(labels, s_r, atol=1e-3)       # Pa, of ~3e7
        assert np.abs(s_r - s).max() > 1e6
        back = rotate_samples(d_r, F_r, s_r, Q.T)                 # and back
        np.testing.assert_allclose(back[1], F, atol=1e-14)
        np.testing.assert_allclose(back[2], s, atol=1e-6)
        np.testing.assert_allclose(back[0][..., :3], d[..., :3], atol=1e-12)
