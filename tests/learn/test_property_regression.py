"""PCA + second-order polynomial regression of a property (paper 002, section 4.2): skill where
the targets depend on a few latent factors of the features, none on pure noise, and a report on
ViT fingerprints of a tiny labelled RVE set."""
import numpy as np
import pytest

from polyfe2.learn.fm_data import FMDataSpec, generate, read_fm_dataset
from polyfe2.learn.property_regression import (component_grid, fit_property_regression, mape, r2,
                                               regression_report)
from polyfe2.learn.vit import random_vit, vit_fingerprints

GRID = (2, 4, 8, 16, 24, 32)


def _latent_data(n=400, features=300, seed=0):
    """Features: 3 latent factors spread over ``features`` numbers plus noise; two targets
    quadratic in the factors (around 100 and 50, 0.5 % noise)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    X = z @ rng.standard_normal((3, features)) + 0.3 * rng.standard_normal((n, features))
    y = np.stack([100 + 8 * z[:, 0] + 4 * z[:, 1] ** 2 + 3 * z[:, 0] * z[:, 2],
                  50 - 5 * z[:, 2] + 2 * z[:, 1] * z[:, 2]], axis=1)
    return X, y * (1 + 0.005 * rng.standard_normal(y.shape)), rng


def test_quadratic_dependence_on_latent_factors_is_learned():
    X, y, _ = _latent_data()
    model = fit_property_regression(X[:300], y[:300], components=GRID)
    pred = model.predict(X[300:])
    assert pred.shape == (100, 2)
    mean = np.repeat(y[:300].mean(0, keepdims=True), 100, 0)
    assert (mape(pred, y[300:]) < mape(mean, y[300:]) / 5).all(), (mape(pred, y[300:]), mape(mean, y[300:]))
    assert (r2(pred, y[300:]) > 0.9).all()
    assert set(model.n_components) <= set(GRID) and model.n_components.min() >= 2
    assert model.cv_mape.shape == (2,) and (model.cv_mape == [model.cv_table[n][j] for j, n in
                                                                enumerate(model.n_components)]).all()
    one = fit_property_regression(X[:300], y[:300, 0], components=GRID)   # 1-D targets: 1-D predictions
    assert one.predict(X[300:]).shape == (100,)


def test_no_skill_is_invented_on_noise_targets():
    X, _, rng = _latent_data(seed=1)
    y = 100 + rng.standard_normal(len(X))
    report = regression_report(X[:300], y[:300], X[300:], y[300:], ["noise"])
    out = report["outputs"]["noise"]
    assert out["r2"] < 0.05 and out["mape_pct"] > 0.9 * out["mean_mape_pct"], out


def test_component_grid_is_clipped_to_the_folds_and_features():
    assert component_grid(GRID, 400, 300, 5) == list(GRID)
    assert component_grid(GRID, 12, 96, 5) == [2, 4, 8]      # training folds of 9 rows: at most 8
    assert component_grid(GRID, 100, 6, 5) == [2, 4, 6]


def test_report_on_vit_fingerprints_of_a_labelled_set(tmp_path):
    path = tmp_path / "fm.h5"
    generate(path, FMDataSpec(n_rve=14, cells=8, grains=10, labelled=14, triplets=1, chunk=14), workers=1,
             progress=False, log=lambda *a: None)
    data = read_fm_dataset(path, labelled_only=True)
    X = vit_fingerprints(random_vit("tiny", seed=0), data["quaternions"])
    y = np.diagonal(data["stiffness"][:, 0, :3, :3], axis1=-2, axis2=-1)        # C1111, C2222, C3333 in Pa
    names = ["C1111", "C2222", "C3333"]
    report = regression_report(X[:10], y[:10], X[10:], y[10:], names)
    assert report["n_train"] == 10 and report["n_test"] == 4 and report["n_features"] == X.shape[1]
    for name in names:
        out = report["outputs"][name]
        assert set(out) == {"mape_pct", "r2", "n_components", "cv_mape_pct", "mean_mape_pct", "mean_r2"}
        assert np.isfinite([v for v in out.values()]).all()
        assert out["n_components"] in component_grid(GRID, 10, X.shape[1], 5)
    with pytest.raises(ValueError):
        regression_report(X[:10], y[:10], X[10:], y[10:], names[:2])
