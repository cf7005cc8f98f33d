"""The incremental-response probe: steps of growing size from one committed state."""
import numpy as np
import pytest

from polyfe2.constitutive.gru import shipped_model_path
from polyfe2.constitutive.gru_network import GRUSurrogate
from polyfe2.learn.incremental import UNIAXIAL, _levels_path, _stretch, incremental_response


def test_the_probe_path_is_the_uniaxial_log_strain():
    np.testing.assert_allclose(np.linalg.norm(UNIAXIAL), 1.0)
    F = _stretch(0.3)
    np.testing.assert_allclose(np.linalg.det(F), 1.0, rtol=1e-14)   # isochoric
    np.testing.assert_allclose(np.linalg.norm(np.log(np.diag(F))), 0.3, rtol=1e-14)
    path = _levels_path((0.01, 0.05), 0.004)
    assert path[-1] == 0.05 and 0.01 in path and np.all(np.diff(path) > 0) and np.diff(path).max() <= 0.004 + 1e-15


@pytest.fixture(scope="module")
def shipped():
    return incremental_response(GRUSurrogate.load(shipped_model_path()), levels=(0.01, 0.05, 0.2), n_ve=4,
                                alphas=np.linspace(0, 0.012, 7))


def test_crystal_plasticity_is_monotone_at_every_strain(shipped):
    """The reference (rate-dependent crystal plasticity): a longer step along D gives a larger
    sigma_dev : D at every committed strain, and at a step of 0 the stress relaxes below the
    flow stress of the loading (n = 20)."""
    r = np.asarray(shipped["taylor"])
    assert shipped["falling_taylor"] == [0.0, 0.0, 0.0]
    assert np.all(np.diff(r, axis=1) > 0)
    assert 0.3 < min(shipped["slope_taylor_GPa"]) and max(shipped["slope_taylor_GPa"]) < 5   # GPa
    assert np.all(r[:, 0] < r[:, 1] - 2)   # MPa


def test_the_shipped_surrogate_is_monotone_to_large_strain(shipped):
    """The default model is trained on paths to ||ln U|| = 1: its response to a longer step
    grows as the reference's at every committed strain, also at 0.2, where v5 (trained to 0.05)
    answers a longer step with a lower stress for most VEs."""
    assert GRUSurrogate.load(shipped_model_path()).meta["max_strain"] >= 0.2
    assert shipped["falling_gru"] == [0.0, 0.0, 0.0]
    assert np.all(np.diff(np.asarray(shipped["gru"]), axis=1) > 0)
    assert shipped["slope_gru_GPa"][0] > 0.3 and shipped["slope_gru_GPa"][2] > 0.1
    v5 = incremental_response(GRUSurrogate.load(shipped_model_path("gru_aluminium_v5.pt")), levels=(0.05, 0.2),
                              n_ve=4, alphas=np.linspace(0, 0.012, 7), reference=False)
    assert v5["falling_gru"][0] == 0.0 and v5["falling_gru"][1] >= 0.5
