"""Negative log-likelihood against token position, and its power-law fit (Gemini 1.5, Fig. 7).

`cumulative_nll(nll_NT)` is the cumulative average NLL up to each position x (the mean
over tokens 1..x of each document, then over documents); `fit_power_law(x, y)` fits
L(x) = alpha * x**beta + gamma by least squares (scipy.optimize.curve_fit; p0 alpha 1,
beta -0.5, gamma min(y)) and reports R^2 = 1 - SS_res / SS_tot.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


def cumulative_nll(nll_NT: np.ndarray) -> np.ndarray:
    """[T]: mean over documents of each one's average NLL over positions 1..x."""
    nll_NT = np.asarray(nll_NT, np.float64)
    counts_T = np.arange(1, nll_NT.shape[1] + 1)
    return (np.cumsum(nll_NT, axis=1) / counts_T).mean(axis=0)


def power_law(x: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """alpha * x**beta + gamma."""
    return alpha * np.power(x, beta) + gamma


def r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    """1 - SS_res / SS_tot."""
    y, fitted = np.asarray(y, np.float64), np.asarray(fitted, np.float64)
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def fit_power_law(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """{alpha, beta, gamma, r2} of the least-squares fit of power_law to (x, y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    params, _ = optimize.curve_fit(power_law, x, y, p0=(1.0, -0.5, float(y.min())), maxfev=20_000)
    alpha, beta, gamma = (float(p) for p in params)
    return dict(alpha=alpha, beta=beta, gamma=gamma, r2=r_squared(y, power_law(x, *params)))
