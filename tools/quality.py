"""Forecast-quality statistics: pinball / CRPS, QLIKE, Pesaran-Timmermann, Diebold-Mariano.

All functions take numpy arrays of one-step-ahead forecasts aligned with the
realised values they forecast (row ``i`` of a forecast is for ``y[i]``).

Conventions (so figures are comparable across datasets and baselines):

* :func:`crps_quantiles` is the quantile-grid approximation of CRPS: twice the
  mean pinball loss over the given levels.  It is exact in the limit of a dense
  uniform grid; on a fixed grid it ranks forecasts the same way for every model
  evaluated on that grid, which is how it is used here (same grid for model and
  baselines).  Units are those of ``y`` (log returns).
* :func:`qlike` is the QLIKE loss of a variance forecast ``h`` against the
  squared return ``y**2`` as the variance proxy, in the form
  ``log h + y**2 / h``: Patton's (2011) robust loss, up to a term that does not
  depend on the forecast (so differences between models are the same, and it
  stays finite when ``y == 0``, which one-minute futures returns often are).
* :func:`pesaran_timmermann` drops rows where the outcome is exactly zero
  (no direction to hit); it returns the one-sided p-value of "better than
  independent" directional accuracy.
* :func:`diebold_mariano` uses a Newey-West long-run variance with
  ``h - 1`` lags and the Harvey-Leybourne-Newbold small-sample correction,
  with a Student t reference; the p-value is two-sided.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = [
    "brier",
    "crps_quantiles",
    "diebold_mariano",
    "ewma_variance",
    "garch_variance",
    "hit_rate",
    "pesaran_timmermann",
    "pinball",
    "qlike",
    "rolling_empirical_quantiles",
]


def pinball(y: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per-row pinball loss averaged over levels.  ``y`` (n,), ``q`` (n, k), ``levels`` (k,)."""
    y = np.asarray(y, dtype=np.float64)[:, None]
    q = np.asarray(q, dtype=np.float64)
    tau = np.asarray(levels, dtype=np.float64)[None, :]
    if q.ndim != 2 or q.shape[1] != tau.shape[1] or q.shape[0] != y.shape[0]:
        raise ValueError(f"shape mismatch: y {y.shape[0]}, q {q.shape}, levels {tau.shape[1]}")
    d = y - q
    out: np.ndarray = np.mean(np.maximum(tau * d, (tau - 1.0) * d), axis=1)
    return out


def crps_quantiles(y: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per-row CRPS approximated on a quantile grid (2 x mean pinball); see the module docstring."""
    return 2.0 * pinball(y, q, levels)


def qlike(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per-row QLIKE ``log h + y**2 / h`` of variance forecasts ``h`` (> 0) for returns ``y``."""
    y = np.asarray(y, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    if np.any(~(h > 0.0)):
        raise ValueError("qlike: every variance forecast must be > 0")
    out: np.ndarray = np.log(h) + y * y / h
    return out


def hit_rate(y: np.ndarray, prob_up: np.ndarray) -> float:
    """Share of non-zero outcomes whose sign the forecast (``prob_up > 0.5``) got right."""
    y = np.asarray(y, dtype=np.float64)
    keep = y != 0.0
    if not np.any(keep):
        return math.nan
    pred = np.asarray(prob_up)[keep] > 0.5
    return float(np.mean(pred == (y[keep] > 0.0)))


def brier(y: np.ndarray, prob_up: np.ndarray) -> float:
    """Brier score of ``prob_up`` against the sign of the non-zero outcomes (0.25 = a coin)."""
    y = np.asarray(y, dtype=np.float64)
    keep = y != 0.0
    if not np.any(keep):
        return math.nan
    p = np.asarray(prob_up, dtype=np.float64)[keep]
    return float(np.mean((p - (y[keep] > 0.0)) ** 2))


def pesaran_timmermann(y: np.ndarray, prob_up: np.ndarray) -> tuple[float, float]:
    """Pesaran-Timmermann (1992) test of directional accuracy.

    Returns ``(statistic, p_value)``, the p-value one-sided (H1: the forecast
    has directional skill).  Degenerate cases (all forecasts or all outcomes
    one way) return ``(nan, nan)``: the test is undefined there.
    """
    y = np.asarray(y, dtype=np.float64)
    keep = y != 0.0
    x = (np.asarray(prob_up)[keep] > 0.5).astype(np.float64)
    a = (y[keep] > 0.0).astype(np.float64)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    p_hat = float(np.mean(x == a))
    py = float(np.mean(a))
    px = float(np.mean(x))
    p_star = py * px + (1 - py) * (1 - px)
    var_hat = p_star * (1 - p_star) / n
    var_star = (
        (2 * py - 1) ** 2 * px * (1 - px) / n
        + (2 * px - 1) ** 2 * py * (1 - py) / n
        + 4 * py * px * (1 - py) * (1 - px) / n**2
    )
    denom = var_hat - var_star
    if denom <= 0.0:
        return math.nan, math.nan
    stat = (p_hat - p_star) / math.sqrt(denom)
    return stat, float(stats.norm.sf(stat))


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal predictive accuracy of losses ``a`` and ``b``.

    Returns ``(statistic, p_value)``; a negative statistic means ``a`` has the
    lower loss.  Two-sided p-value, HLN-corrected, t with n-1 degrees of freedom.
    """
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = len(d)
    if n < 3:
        return math.nan, math.nan
    dbar = float(np.mean(d))
    dc = d - dbar
    lrv = float(np.dot(dc, dc) / n)
    for lag in range(1, horizon):
        w = 1.0 - lag / horizon
        lrv += 2.0 * w * float(np.dot(dc[lag:], dc[:-lag]) / n)
    if lrv <= 0.0:
        return math.nan, math.nan
    stat = dbar / math.sqrt(lrv / n)
    k = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat *= k
    return stat, float(2.0 * stats.t.sf(abs(stat), df=n - 1))


def ewma_variance(returns: np.ndarray, lam: float = 0.94, init: float | None = None) -> np.ndarray:
    """RiskMetrics one-step variance forecasts: out[i] forecasts returns[i].

    ``init`` seeds the recursion (default: the mean squared return of the
    first 20 observations); out[0] is ``init``.
    """
    r = np.asarray(returns, dtype=np.float64)
    out = np.empty(len(r))
    v = float(np.mean(r[:20] ** 2)) if init is None else float(init)
    for i, x in enumerate(r):
        out[i] = v
        v = lam * v + (1.0 - lam) * x * x
    return out


def garch_variance(returns: np.ndarray, fit_end: int, scale: float | None = None) -> np.ndarray:
    """GARCH(1,1) one-step variance forecasts from the ``arch`` package.

    Parameters are estimated on ``returns[:fit_end]`` only (no look-ahead);
    the result has one entry per ``i >= fit_end`` forecasting ``returns[i]``
    with information up to ``i - 1``.  ``scale`` rescales returns for the
    optimiser (default: so the training standard deviation is about 1) and
    is undone on the way out.
    """
    from arch import arch_model

    r = np.asarray(returns, dtype=np.float64)
    if not 10 < fit_end < len(r):
        raise ValueError(f"garch_variance: fit_end {fit_end} out of range for {len(r)} returns")
    if scale is None:
        sd = float(np.std(r[:fit_end]))
        scale = 1.0 / sd if sd > 0 else 1.0
    model = arch_model(r * scale, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    res = model.fit(last_obs=fit_end, disp="off")
    # forecast(start=t) row t holds the variance of t+1 given data through t.
    fc = res.forecast(horizon=1, start=fit_end - 1, reindex=False)
    var = np.asarray(fc.variance.iloc[:, 0], dtype=np.float64)[: len(r) - fit_end]
    return var / (scale * scale)


def rolling_empirical_quantiles(
    returns: np.ndarray, levels: np.ndarray, start: int, window: int
) -> np.ndarray:
    """Random-walk quantiles from the trailing ``window`` returns: row j forecasts returns[start+j]."""
    r = np.asarray(returns, dtype=np.float64)
    out = np.empty((len(r) - start, len(levels)))
    for j, i in enumerate(range(start, len(r))):
        out[j] = np.quantile(r[max(0, i - window) : i], levels)
    return out
