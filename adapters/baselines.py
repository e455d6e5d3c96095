"""Classical one-step-ahead forecasts that every edge model is scored against.

Given a symbol's bars in time order (closes, and highs/lows where the data have them),
:func:`baseline_forecasts` returns, for every return ``r[i] = ln(c[i+1] / c[i])`` with
``i >= start``, each baseline's variance forecast and its quantiles on a grid, made with
returns ``r[:i]`` only (no look-ahead: a refit at step ``i`` sees ``r[:i]``):

``rw``
    the rolling random walk: the empirical quantiles of the trailing ``rw_window`` returns
    (250 days; 390 minutes intraday) and their mean square as the variance.
``ewma``
    RiskMetrics EWMA(0.94) variance, seeded with the mean square of the first 20 returns.
``garch`` / ``gjr``
    GARCH(1,1) and GJR-GARCH(1,1) with a zero mean and normal innovations, estimated by
    ``arch`` on an expanding window (at most ``max_window`` returns), refitted every
    ``refit_every`` steps; between refits the fitted recursion is filtered forward through
    each new return.  The first fit uses ``r[:start]``.
``har``
    (only with highs and lows) a HAR regression of the next squared return on the daily,
    weekly (5) and monthly (22) means of the Parkinson range variance
    ``ln(h/l)^2 / (4 ln 2)``, by least squares on an expanding window refitted every
    ``refit_every`` steps; forecasts are floored at 5% of the window's mean square.

Quantiles of the variance baselines are normal: ``sqrt(h) * z_level`` (the usual way these
models are quoted); the random walk's are empirical.  Units: log returns and their squares.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["BASELINES", "Baseline", "baseline_forecasts", "parkinson_variance"]

BASELINES: Final = ("rw", "ewma", "garch", "gjr", "har")

Array = npt.NDArray[np.float64]
_LN2x4: Final = 4.0 * math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One baseline's forecasts of ``r[start:]``: ``variance`` (n,), ``quantiles`` (n, k)."""

    name: str
    variance: Array
    quantiles: Array


def parkinson_variance(high: npt.ArrayLike, low: npt.ArrayLike) -> Array:
    """Per-bar Parkinson range variance ``ln(high/low)^2 / (4 ln 2)``; 0 where the range is empty."""
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    ok = (h > 0) & (lo > 0) & (h >= lo)
    out: Array = np.zeros(len(h))
    out[ok] = np.log(h[ok] / lo[ok]) ** 2 / _LN2x4
    return out


def _z(levels: Array) -> Array:
    from scipy.stats import norm

    z: Array = norm.ppf(levels)
    return z


def _ewma(r: Array, start: int, lam: float = 0.94) -> Array:
    v = float(np.mean(r[:20] ** 2))
    out = np.empty(len(r))
    for i, x in enumerate(r):
        out[i] = v
        v = lam * v + (1.0 - lam) * x * x
    res: Array = out[start:]
    return res


def _rw(r: Array, start: int, window: int, levels: Array) -> tuple[Array, Array]:
    n = len(r) - start
    q = np.empty((n, len(levels)))
    var = np.empty(n)
    for j, i in enumerate(range(start, len(r))):
        w = r[max(0, i - window) : i]
        q[j] = np.quantile(w, levels)
        var[j] = float(np.mean(w * w))
    return var, q


def _garch(r: Array, start: int, o: int, refit_every: int, max_window: int) -> Array:
    """One-step variances of r[start:] from (GJR-)GARCH(1,1) refitted every ``refit_every`` steps."""
    from arch import arch_model

    n = len(r)
    out = np.empty(n - start)
    for block in range(start, n, refit_every):
        lo = max(0, block - max_window)
        past = r[lo:block]
        sd = float(np.std(past))
        scale = 1.0 / sd if sd > 0 else 1.0
        model: Any = arch_model(past * scale, mean="Zero", vol="GARCH", p=1, o=o, q=1, rescale=False)
        with warnings.catch_warnings():
            # A fit that stops short of convergence still gives a usable baseline; the warning is
            # arch's, not the caller's concern.
            warnings.simplefilter("ignore")
            res = model.fit(disp="off", options={"maxiter": 200})
        p = res.params
        omega = float(p["omega"]) / (scale * scale)
        alpha = float(p["alpha[1]"])
        gamma = float(p["gamma[1]"]) if o else 0.0
        beta = float(p["beta[1]"])
        # Filter from the window's start: h0 is the window's mean square (arch's backcast is
        # similar), and the recursion has forgotten it long before the block begins.
        h = float(np.mean(past[: min(75, len(past))] ** 2))
        stop = min(n, block + refit_every)
        for i in range(lo, stop):
            if i >= block:
                out[i - start] = h
            x = r[i]
            h = omega + (alpha + (gamma if x < 0.0 else 0.0)) * x * x + beta * h
    return out


def _har(r: Array, pk: Array, start: int, refit_every: int) -> Array:
    """HAR on Parkinson variance: r[i]^2 ~ 1 + pk_d + pk_w + pk_m, all known at i - 1."""
    n = len(r)
    # Regressors for target r[i] are built from bars up to i (bar i's range is known when
    # r[i] = ln(c[i+1]/c[i]) is forecast): pk index i is the bar that closes at c[i].
    cs = np.concatenate([[0.0], np.cumsum(pk)])

    def mean_to(i: int, k: int) -> float:
        a = max(0, i + 1 - k)
        return float((cs[i + 1] - cs[a]) / (i + 1 - a))

    x = np.ones((n, 4))
    for i in range(n):
        x[i, 1] = pk[i]
        x[i, 2] = mean_to(i, 5)
        x[i, 3] = mean_to(i, 22)
    y = r * r
    out = np.empty(n - start)
    for block in range(start, n, refit_every):
        first = 22
        beta, *_ = np.linalg.lstsq(x[first:block], y[first:block], rcond=None)
        floor = 0.05 * float(np.mean(y[max(0, block - 250) : block]))
        stop = min(n, block + refit_every)
        out[block - start : stop - start] = np.maximum(x[block:stop] @ beta, floor)
    return out


def baseline_forecasts(
    close: npt.ArrayLike,
    start: int,
    levels: npt.ArrayLike,
    *,
    high: npt.ArrayLike | None = None,
    low: npt.ArrayLike | None = None,
    rw_window: int = 250,
    refit_every: int = 20,
    max_window: int = 2500,
    which: tuple[str, ...] = BASELINES,
) -> dict[str, Baseline]:
    """Baselines for the returns ``ln(c[i+1]/c[i])``, ``i >= start`` (module docstring).

    ``close`` (and ``high``/``low``) are per bar in time order; ``start`` >= 30 so every
    model has data to fit.  Returns name -> :class:`Baseline`; ``har`` only when highs and
    lows are given and not all ranges are empty.
    """
    c = np.asarray(close, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    r = np.log(c[1:] / c[:-1])
    if not 30 <= start < len(r):
        raise ValueError(f"baseline_forecasts: start {start} out of range for {len(r)} returns")
    z = _z(lv)
    out: dict[str, Baseline] = {}

    def normal(name: str, var: Array) -> None:
        out[name] = Baseline(name, var, np.sqrt(var)[:, None] * z[None, :])

    if "rw" in which:
        var, q = _rw(r, start, rw_window, lv)
        out["rw"] = Baseline("rw", var, q)
    if "ewma" in which:
        normal("ewma", _ewma(r, start))
    if "garch" in which:
        normal("garch", _garch(r, start, 0, refit_every, max_window))
    if "gjr" in which:
        normal("gjr", _garch(r, start, 1, refit_every, max_window))
    if "har" in which and high is not None and low is not None:
        pk = parkinson_variance(high, low)[: len(r)]
        if np.any(pk > 0):
            normal("har", _har(r, pk, start, refit_every))
    return out
