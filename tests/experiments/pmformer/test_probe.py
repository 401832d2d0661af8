"""probe.py: ridge probes against a hand computation; cross-feature signal detected."""

from __future__ import annotations

import numpy as np

from data import timeseries
from experiments.pmformer import probe


def test_ridge_probe_matches_hand_computation_and_sees_lead_lag():
    data = timeseries.synthetic_data(lookback=32, horizon=8, num_steps=1500, lag=4)
    p = probe.ridge_probe(data, 32, 8)
    # univariate by hand: every feature's window is a row; the picked strength
    x, y = timeseries.windows(data.train, 32, 8)
    xr = np.moveaxis(x, 2, 1).reshape(-1, 32).astype(np.float64)
    yr = np.moveaxis(y, 2, 1).reshape(-1, 8).astype(np.float64)
    w = np.linalg.solve(xr.T @ xr + p["univariate_ridge"] * np.eye(32), xr.T @ yr)
    xt, yt = timeseries.windows(data.test, 32, 8)
    pred = np.moveaxis(xt, 2, 1).reshape(-1, 32) @ w
    hand = np.mean((pred - np.moveaxis(yt, 2, 1).reshape(-1, 8)) ** 2)
    np.testing.assert_allclose(p["univariate_mse"], hand, rtol=1e-6)
    assert p["univariate_ridge"] in probe.RIDGE and p["features"] == 8
    # followers' next 4 steps are their leader's last 4: the other features help
    assert p["multivariate_mse"] < 0.8 * p["univariate_mse"], p
    # independent features only: nothing to gain from the others
    alone = timeseries.synthetic_data(
        lookback=32, horizon=8, num_steps=1500, num_groups=0, num_distractors=4
    )
    q = probe.ridge_probe(alone, 32, 8)
    assert q["multivariate_mse"] > 0.98 * q["univariate_mse"], q
