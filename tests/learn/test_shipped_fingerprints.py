"""The shipped fingerprint models (vae_small_v1, vit_small_v1) on RVEs they never saw: RVEs
3000-3039 of the generator of their data set (which holds RVEs 0-2999)."""
import numpy as np
import pytest

from polyfe2.cli import main
from polyfe2.learn.fingerprint import fingerprinter, shipped_model
from polyfe2.learn.fm_data import FMDataSpec, rve, rve_config, voigt_diagonal
from polyfe2.learn.property_regression import regression_report
from polyfe2.learn.vae import load_vae, mean_misorientation, quaternions_from_channels, reconstruct
from polyfe2.microstructure.descriptor import reduce_to_fz, voronoi_grid

SPEC = FMDataSpec(n_rve=3000, labelled=500, cells=16, grains=40, triplets=3, chunk=50)   # the shipped data set
AL = (106.75e9, 60.41e9, 28.34e9)


@pytest.fixture(scope="module")
def unseen():
    """(40, 16, 16, 16, 4) quaternion fields of RVEs outside the training set."""
    fields = []
    for r in range(3000, 3040):
        material, q = voronoi_grid(rve(SPEC, r)[1], (16,) * 3)
        fields.append(reduce_to_fz(q)[material])
    return np.stack(fields).astype(np.float32)


def test_vae_reconstructs_unseen_rves_better_than_the_constant_field(unseen):
    loaded = load_vae(shipped_model("vae_small_v1.pt"))
    assert loaded.metadata["version"] == "vae_small_v1" and loaded.config.latent == 256
    phi = mean_misorientation(unseen, reconstruct(loaded.model.eval(), unseen))
    constant = quaternions_from_channels(np.broadcast_to(
        np.asarray(loaded.metadata["baseline_channels"], np.float32)[:, None, None, None], (3, 16, 16, 16)))
    phi_const = mean_misorientation(unseen, np.broadcast_to(constant, unseen.shape))
    # measured on the 500 held-out training RVEs: 0.059 against 0.099 for the constant field
    assert phi.mean() < 0.07 and phi.mean() < 0.75 * phi_const.mean()


def test_vit_features_predict_the_texture_stiffness_better_than_the_mean(unseen):
    fp = fingerprinter("vit")
    assert fp.dim == 576 and fp.metadata["version"] == "vit_small_v1"
    Z = fp.encode_batch(unseen)
    np.testing.assert_array_equal(Z[:3], fp.encode_batch(unseen[:3]))   # deterministic, batch independent
    y = voigt_diagonal(unseen, *AL)[:, :1] / 1e9
    rep = regression_report(Z[:30], y[:30], Z[30:], y[30:], ["C1111"], components=(2, 4, 8))["outputs"]["C1111"]
    assert rep["mape_pct"] < 0.8 * rep["mean_mape_pct"]


@pytest.mark.parametrize("method", ["vae", "vit"])
def test_cli_fingerprint_of_damask_files(method, tmp_path, capsys):
    config = rve_config(SPEC, 3001)
    config.save(tmp_path)
    assert main(["fingerprint", str(tmp_path), "--method", method, "--out", str(tmp_path / "z.npy")]) == 0
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (fingerprinter(method).dim,) and np.isfinite(z).all()
