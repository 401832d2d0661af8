"""Linear probes: how much a forecast gains from the other features, without training.

Ridge regression on the same z-scored windows the runs use, in two forms:
univariate (one map from a feature's own lookback to its horizon, shared by all
features: channel-independent, like S = 1) and complete-multivariate (each
feature's horizon from every feature's lookback: like S = D, but with L*D inputs
per target, so it can over-fit). The ridge strength is chosen on the validation
windows and the test MSE reported, so the probe follows the runs' protocol. A
multivariate probe well below the univariate one says that cross-feature structure
is there to learn; one above it says that, with this much data, using every
feature over-fits. report.py prints both beside the trained models.
"""

from __future__ import annotations

import numpy as np

from data import timeseries

RIDGE = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)  # strengths tried, picked on validation


def _fit(x_NF: np.ndarray, y_NT: np.ndarray):
    """What ridge regression of y on x needs for any strength: an eigenbasis of x'x."""
    gram = x_NF.T @ x_NF
    evals, evecs = np.linalg.eigh(gram)
    return evals, evecs, evecs.T @ (x_NF.T @ y_NT)


def _solve(fit, lam: float) -> np.ndarray:
    evals, evecs, proj = fit
    return evecs @ (proj / (evals + lam)[:, None])


def ridge_probe(data: timeseries.SeriesData, lookback: int, horizon: int) -> dict[str, float]:
    """Test MSE of the univariate and complete-multivariate ridge forecasts (strength
    picked on validation MSE) and the strengths picked."""
    split = {k: timeseries.windows(data.split(k), lookback, horizon) for k in ("train", "val")}
    split["test"] = timeseries.windows(data.test, lookback, horizon)
    d = data.num_features

    def uni(x_NLD):  # every feature's lookback as its own row
        return np.moveaxis(x_NLD, 2, 1).reshape(-1, lookback).astype(np.float64)

    def multi(x_NLD):  # one row per window: every feature's lookback
        return x_NLD.reshape(len(x_NLD), -1).astype(np.float64)

    def uni_y(y_NHD):
        return np.moveaxis(y_NHD, 2, 1).reshape(-1, horizon)

    def multi_y(y_NHD):
        return y_NHD.reshape(len(y_NHD), -1)

    out: dict[str, float] = {}
    for name, rows, target in (("univariate", uni, uni_y), ("multivariate", multi, multi_y)):
        xy = {k: (rows(x), target(y).astype(np.float64)) for k, (x, y) in split.items()}
        fit = _fit(*xy["train"])
        weights = {lam: _solve(fit, lam) for lam in RIDGE}
        mse = {
            (lam, k): float(np.mean((xy[k][0] @ w - xy[k][1]) ** 2))
            for lam, w in weights.items()
            for k in ("val", "test")
        }
        lam = min(RIDGE, key=lambda s: mse[(s, "val")])
        out[f"{name}_mse"] = mse[(lam, "test")]
        out[f"{name}_ridge"] = lam
    out["features"] = d
    return out


def data_from_config(config: dict, lookback: int, horizon: int) -> timeseries.SeriesData:
    """The z-scored splits a run with this (config.json) config trained on, cut into
    windows of `lookback` + `horizon`."""
    from experiments.pmformer import task  # jax and flax: only when a run is probed

    return task.load_data({**config["data"], "lookback": lookback, "horizon": horizon})
