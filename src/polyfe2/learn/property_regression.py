"""Second-order polynomial regression of a property on principal components of microstructure
features (paper 002, section 4.2), with scikit-learn.

Per output column a ``Pipeline(StandardScaler, PCA(n, whiten=True), PolynomialFeatures(degree),
Ridge(alpha))``: the features (e.g. the concatenated ViT section features of
:func:`~polyfe2.learn.vit.vit_fingerprints`, (n_samples, n_features)) are standardised, reduced
to ``n`` principal components (whitened: unit variance, so that the small ridge penalty treats
every polynomial term alike; the span, hence an unpenalised fit, is the same), expanded into
all monomials up to ``degree`` and fitted by least squares with a small ridge term that only
steadies rank-deficient fits. ``n`` is chosen from a grid by K-fold cross-validated mean
absolute percentage error (MAPE) on the training rows only; the test rows are never seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PropertyRegression", "fit_property_regression", "component_grid", "mape", "r2", "regression_report"]


@dataclass
class PropertyRegression:
    """Fitted pipelines, one per output.

    ``n_components`` (k,) chosen principal components; ``cv_mape`` (k,) their cross-validated
    MAPE in %; ``cv_table`` {n: (k,) cross-validated MAPE in %} over the grid tried."""

    pipelines: list
    n_components: np.ndarray
    cv_mape: np.ndarray
    cv_table: dict = field(default_factory=dict)
    degree: int = 2
    one_output: bool = False

    def predict(self, X) -> np.ndarray:
        """(n, n_features) -> (n, k) predictions in the targets' units ((n,) for 1-D targets)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.stack([p.predict(X) for p in self.pipelines], axis=1)
        return y[:, 0] if self.one_output else y


def _pipeline(n: int, degree: int, alpha: float, seed: int):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=n, whiten=True, random_state=seed)),
                     ("poly", PolynomialFeatures(degree=degree, include_bias=False)), ("fit", Ridge(alpha=alpha))])


def _as_2d(y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def component_grid(components, n_samples: int, n_features: int, folds: int) -> list[int]:
    """The grid clipped to what every fold allows: ``n <= min(smallest training fold - 1,
    n_features)``; sorted, without repeats."""
    smallest_fold = n_samples - -(-n_samples // folds)          # training rows of the largest held-out fold
    cap = max(1, min(smallest_fold - 1, n_features))
    return sorted({max(1, min(int(c), cap)) for c in components})


def fit_property_regression(X_train, y_train, components=(2, 4, 8, 16, 24, 32), degree: int = 2, folds: int = 5,
                            seed: int = 0, alpha: float = 1e-3) -> PropertyRegression:
    """Fit the pipeline per output column, ``n_components`` chosen by ``folds``-fold
    cross-validated MAPE on the training rows (shuffled by ``seed``).

    Parameters
    ----------
    X_train : array, (n, n_features)
    y_train : array, (n,) or (n, k)
        Targets in any units (Pa for a stiffness); MAPE needs them away from zero.
    components : the numbers of principal components tried (clipped by :func:`component_grid`)
    degree : polynomial degree (2, the paper's)
    folds : K of the K-fold cross-validation (at least 2; at most n)
    alpha : ridge penalty on the whitened polynomial terms (small)
    """
    from sklearn.model_selection import KFold, cross_val_score

    X = np.asarray(X_train, dtype=np.float64)
    Y = _as_2d(y_train)
    if X.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"fit_property_regression: X (n, n_features) and y (n,) or (n, k) expected, got "
                         f"{X.shape} and {np.shape(y_train)}")
    folds = min(int(folds), len(X))
    if folds < 2:
        raise ValueError(f"fit_property_regression: at least 2 training rows needed, got {len(X)}")
    grid = component_grid(components, len(X), X.shape[1], folds)
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    table = {n: np.array([-100 * cross_val_score(_pipeline(n, degree, alpha, seed), X, Y[:, j], cv=cv,
                                                 scoring="neg_mean_absolute_percentage_error").mean()
                          for j in range(Y.shape[1])]) for n in grid}
    scores = np.stack([table[n] for n in grid])                   # (len(grid), k)
    best = np.argmin(scores, axis=0)
    chosen = np.array([grid[b] for b in best])
    pipes = [_pipeline(int(n), degree, alpha, seed).fit(X, Y[:, j]) for j, n in enumerate(chosen)]
    return PropertyRegression(pipes, chosen, scores[best, np.arange(Y.shape[1])], table, degree,
                              np.ndim(y_train) == 1)


def mape(pred, true) -> np.ndarray:
    """(k,) mean absolute percentage error per output, in %."""
    from sklearn.metrics import mean_absolute_percentage_error

    return 100 * mean_absolute_percentage_error(_as_2d(true), _as_2d(pred), multioutput="raw_values")


def r2(pred, true) -> np.ndarray:
    """(k,) coefficient of determination per output (1: perfect, 0: the mean of ``true``)."""
    from sklearn.metrics import r2_score

    return r2_score(_as_2d(true), _as_2d(pred), multioutput="raw_values")


def regression_report(X_train, y_train, X_test, y_test, names, **fit_options) -> dict:
    """Fit on the training rows, score on the test rows.

    Returns a dict of plain numbers: per output name ``mape_pct``, ``r2``, ``n_components``,
    ``cv_mape_pct`` and the mean predictor's (the training mean) ``mean_mape_pct`` and
    ``mean_r2`` on the same test rows; and ``n_train``, ``n_test``, ``n_features``, ``degree``, and
    the test rows' ``predictions`` (n_test, outputs) as an array.
    """
    Ytr, Yte = _as_2d(y_train), _as_2d(y_test)
    names = list(names)
    if len(names) != Yte.shape[1]:
        raise ValueError(f"regression_report: {Yte.shape[1]} outputs but {len(names)} names")
    model = fit_property_regression(X_train, y_train, **fit_options)
    pred = _as_2d(model.predict(X_test))
    mean = np.repeat(Ytr.mean(0, keepdims=True), len(Yte), axis=0)
    scores = dict(mape_pct=mape(pred, Yte), r2=r2(pred, Yte), n_components=model.n_components,
                  cv_mape_pct=model.cv_mape, mean_mape_pct=mape(mean, Yte), mean_r2=r2(mean, Yte))
    outputs = {name: {k: (int(v[j]) if k == "n_components" else float(v[j])) for k, v in scores.items()}
               for j, name in enumerate(names)}
    return dict(outputs=outputs, n_train=len(Ytr), n_test=len(Yte), n_features=int(np.shape(X_train)[1]),
                degree=model.degree, predictions=pred)
