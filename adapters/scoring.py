"""Forecast scoring: the one module the benchmarks, the run report and the forecast store use.

Vectorised functions take numpy arrays of one-step-ahead forecasts aligned with the realised
values they forecast (row ``i`` of a forecast is for ``y[i]``); the ``*_one`` and
``*_forecast`` functions score a single forecast in plain Python (the forecast store calls
them per resolved pair, where building arrays would cost more than the arithmetic).

Conventions (so figures are comparable across datasets, models and baselines):

* **CRPS** (:func:`crps_quantiles`, :func:`crps_one`) is the quantile-grid form: twice the
  mean pinball loss over the grid's levels.  It equals the CRPS integral in the limit of a
  dense uniform grid; on a fixed grid it ranks forecasts the same way for every model scored
  on that grid, which is how it is used (the same grid for a model and its baselines).  Units
  are those of ``y`` (log returns).  :func:`crps_gaussian` is the closed form for a normal
  forecast, for forecasts that carry only a point and a volatility.
* **QLIKE** comes in two forms of the same loss (Patton 2011) of a variance forecast ``h``
  against a variance proxy ``s2`` (the squared return, or a realised variance):
  :func:`qlike_norm` is the normalised ``s2/h - ln(s2/h) - 1`` (>= 0, 0 for a perfect
  forecast, lower is better, so a ratio of two models' means is meaningful); :func:`qlike`
  is ``ln h + s2/h``, which differs from it by ``ln s2 + 1`` (a term that does not depend on
  the forecast, so differences between models are the same) and stays finite when
  ``s2 == 0``, as one-minute futures returns often are.  The normalised loss is infinite for
  every forecast where ``s2 == 0``: those rows are NaN (no information about ``h``) and
  :func:`qlike_norm_mean` leaves them out, the same rows for every model.
* **Coverage**: :func:`interval_coverage` is the share of outcomes inside the central
  interval of a nominal probability (``0.9``: between the 5% and 95% quantiles, ends
  included); :func:`level_coverage` is, per level, the share at or below that quantile (a
  calibrated forecaster's equals the level); :func:`quantile_coverage` is the same on
  :class:`~engine.messages.Forecast` messages paired with realised returns
  (:func:`realised_returns`), as the run report computes it from ``forecasts.jsonl``.
* **PIT** (:func:`pit`): the forecast CDF at the outcome, the CDF interpolated linearly
  between the grid's quantiles; an outcome beyond the outermost quantile gets the middle of
  the unresolved tail mass (``levels[0] / 2`` or ``(1 + levels[-1]) / 2``).  A calibrated
  forecaster's PITs are uniform.
* **Direction**: :func:`hit_rate` and :func:`brier` drop rows where the outcome is exactly
  zero (no direction to hit); :func:`pesaran_timmermann` returns the one-sided p-value of
  "better than independent" directional accuracy.
* **Diebold-Mariano** (:func:`diebold_mariano`): the mean loss difference over its HAC
  (Newey-West, Bartlett kernel) standard error, with the Harvey-Leybourne-Newbold
  small-sample correction and a Student t reference with ``n - 1`` degrees of freedom;
  the p-value is two-sided.  The lag truncation defaults to
  ``max(horizon - 1, floor(4 (n / 100) ** (2 / 9)))`` (Newey and West's rule of thumb).
  Identical losses give statistic 0 and p-value 1.
* **Baselines** (one-step-ahead, no look-ahead): :func:`ewma_variance` (RiskMetrics),
  :func:`garch_variance` (GARCH(1,1) from ``arch``, fitted before the evaluated period) and
  :func:`rolling_empirical_quantiles` (the random walk with trailing empirical quantiles); the
  refitted set the benchmarks and the report use is :mod:`adapters.baselines`.
* **A run's output**: :func:`read_forecasts` reads what a run wrote (``forecasts.jsonl``),
  :func:`next_bar_outcomes` pairs each forecast with the *next bar* of its symbol (a daily
  forecast made on a Friday is for Monday's close), and :func:`skill` computes every figure
  above for a forecaster and its baselines on the same rows (:mod:`adapters.report_skill`
  drives it for ``finllm bench edge`` and the report's skill panel).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from engine.messages import Forecast

__all__ = [
    "brier",
    "crps_forecast",
    "crps_gaussian",
    "crps_one",
    "crps_quantiles",
    "diebold_mariano",
    "ewma_variance",
    "garch_variance",
    "hit_rate",
    "horizon_ns",
    "interval_coverage",
    "level_coverage",
    "newey_west_lags",
    "newey_west_variance",
    "next_bar_outcomes",
    "pesaran_timmermann",
    "pinball",
    "pit",
    "qlike",
    "qlike_norm",
    "qlike_norm_mean",
    "quantile_coverage",
    "read_forecasts",
    "realised_returns",
    "rolling_empirical_quantiles",
    "skill",
]

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}


def _f64(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def _stats() -> Any:
    """``scipy.stats``, imported on first use (seconds of import the forecast store never needs)."""
    from scipy import stats

    return stats


# --- quantile forecasts: pinball, CRPS ---------------------------------------------------------


def pinball(y: ArrayLike, q: ArrayLike, levels: ArrayLike) -> Array:
    """Per-row pinball loss averaged over levels.  ``y`` (n,), ``q`` (n, k), ``levels`` (k,)."""
    yy = _f64(y)[:, None]
    qq = _f64(q)
    tau = _f64(levels)[None, :]
    if qq.ndim != 2 or qq.shape[1] != tau.shape[1] or qq.shape[0] != yy.shape[0]:
        raise ValueError(f"shape mismatch: y {yy.shape[0]}, q {qq.shape}, levels {tau.shape[1]}")
    d = yy - qq
    out: Array = np.mean(np.maximum(tau * d, (tau - 1.0) * d), axis=1)
    return out


def crps_quantiles(y: ArrayLike, q: ArrayLike, levels: ArrayLike) -> Array:
    """Per-row CRPS on a quantile grid: 2 x the mean pinball loss (module docstring)."""
    return 2.0 * pinball(y, q, levels)


def crps_one(y: float, levels: Sequence[float], quantiles: Sequence[float]) -> float:
    """CRPS of one quantile forecast for outcome ``y`` (as :func:`crps_quantiles`, plain Python)."""
    if len(levels) != len(quantiles) or not levels:
        raise ValueError(f"{len(levels)} levels for {len(quantiles)} quantiles")
    total = 0.0
    for tau, q in zip(levels, quantiles, strict=True):
        diff = y - q
        total += max(tau * diff, (tau - 1.0) * diff)
    return 2.0 * total / len(levels)


def crps_gaussian(y: float, mu: float, sigma: float) -> float:
    """Closed-form CRPS of a normal forecast N(``mu``, ``sigma``²) for outcome ``y``; ``sigma`` > 0."""
    if not sigma > 0.0:
        raise ValueError(f"crps_gaussian: sigma must be > 0, got {sigma}")
    z = (y - mu) / sigma
    cdf = 0.5 * (1.0 + math.erf(z / _SQRT_2))
    pdf = math.exp(-0.5 * z * z) / _SQRT_2PI
    return sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / _SQRT_PI)


def crps_forecast(fc: Forecast, realised: float) -> float:
    """CRPS of a :class:`~engine.messages.Forecast` for the realised return.

    With quantiles: :func:`crps_one` over its grid; otherwise Gaussian with mean ``point``
    and sd ``volatility`` (:func:`crps_gaussian`); with neither, the absolute error of the point.
    """
    if fc.quantiles and len(fc.quantiles) == len(fc.quantile_levels):
        return crps_one(realised, fc.quantile_levels, fc.quantiles)
    if fc.volatility > 0.0:
        return crps_gaussian(realised, fc.point, fc.volatility)
    return abs(realised - fc.point)


# --- variance forecasts: QLIKE -----------------------------------------------------------------


def qlike(y: ArrayLike, h: ArrayLike) -> Array:
    """Per-row QLIKE ``ln h + y**2 / h`` of variance forecasts ``h`` (> 0) for returns ``y``."""
    yy = _f64(y)
    hh = _f64(h)
    if np.any(~(hh > 0.0)):
        raise ValueError("qlike: every variance forecast must be > 0")
    out: Array = np.log(hh) + yy * yy / hh
    return out


def qlike_norm(s2: ArrayLike, h: ArrayLike) -> Array:
    """Per-row normalised QLIKE ``s2/h - ln(s2/h) - 1`` of variance forecasts ``h`` (> 0).

    ``s2`` is the variance proxy (the squared return, or a realised variance), >= 0; rows
    where it is 0 are NaN (the loss is infinite for every forecast there).
    """
    ss = _f64(s2)
    hh = _f64(h)
    if np.any(~(hh > 0.0)):
        raise ValueError("qlike_norm: every variance forecast must be > 0")
    if np.any(ss < 0.0) or np.any(np.isnan(ss)):
        raise ValueError("qlike_norm: the variance proxy must be >= 0")
    ratio = ss / hh
    out: Array = np.full(ratio.shape, np.nan)
    pos = ratio > 0.0
    out[pos] = ratio[pos] - np.log(ratio[pos]) - 1.0
    return out


def qlike_norm_mean(s2: ArrayLike, h: ArrayLike) -> tuple[float, int]:
    """Mean normalised QLIKE over the rows with a positive proxy, and how many rows that is."""
    losses = qlike_norm(s2, h)
    keep = ~np.isnan(losses)
    n = int(np.count_nonzero(keep))
    return (float(np.mean(losses[keep])) if n else math.nan), n


# --- calibration: coverage, PIT ----------------------------------------------------------------


def _level_index(levels: Array, level: float) -> int:
    hits = np.flatnonzero(np.isclose(levels, level, rtol=0.0, atol=1e-9))
    if not len(hits):
        raise ValueError(f"no quantile level {level:g} in {levels.tolist()}")
    return int(hits[0])


def interval_coverage(y: ArrayLike, q: ArrayLike, levels: ArrayLike, nominal: float) -> float:
    """Share of outcomes inside the central ``nominal`` interval (ends included).

    ``nominal = 0.9`` uses the 0.05 and 0.95 quantiles of the grid; both must be on it.
    NaN when there are no rows.
    """
    if not 0.0 < nominal < 1.0:
        raise ValueError(f"nominal coverage must be in (0, 1), got {nominal}")
    yy = _f64(y)
    qq = _f64(q)
    lv = _f64(levels)
    if qq.ndim != 2 or qq.shape != (len(yy), len(lv)):
        raise ValueError(f"shape mismatch: y {len(yy)}, q {qq.shape}, levels {len(lv)}")
    lo = qq[:, _level_index(lv, (1.0 - nominal) / 2.0)]
    hi = qq[:, _level_index(lv, (1.0 + nominal) / 2.0)]
    if not len(yy):
        return math.nan
    return float(np.mean((yy >= lo) & (yy <= hi)))


def level_coverage(y: ArrayLike, q: ArrayLike, levels: ArrayLike) -> Array:
    """Per level, the share of outcomes at or below that quantile (calibrated: equals the level)."""
    yy = _f64(y)
    qq = _f64(q)
    if qq.ndim != 2 or qq.shape != (len(yy), len(_f64(levels))):
        raise ValueError(f"shape mismatch: y {len(yy)}, q {qq.shape}, levels {len(_f64(levels))}")
    out: Array = np.mean(yy[:, None] <= qq, axis=0)
    return out


def pit(y: ArrayLike, q: ArrayLike, levels: ArrayLike) -> Array:
    """Per-row probability integral transform on a quantile grid (module docstring).

    Quantiles that cross are sorted first (the rearrangement of a non-monotone grid).
    """
    yy = _f64(y)
    qq = np.sort(_f64(q), axis=1)
    lv = _f64(levels)
    if qq.ndim != 2 or qq.shape != (len(yy), len(lv)):
        raise ValueError(f"shape mismatch: y {len(yy)}, q {qq.shape}, levels {len(lv)}")
    left, right = lv[0] / 2.0, (1.0 + lv[-1]) / 2.0
    out: Array = np.empty(len(yy))
    for i in range(len(yy)):
        out[i] = np.interp(yy[i], qq[i], lv, left=left, right=right)
    return out


# --- forecasts as written (forecasts.jsonl) ------------------------------------------------------


def horizon_ns(horizon: str) -> int | None:
    """``"5m"`` -> 300e9 ns; None for an event-count horizon (``"50t"``) or anything else."""
    if len(horizon) < 2 or not horizon[:-1].isdigit() or horizon[-1] not in _UNIT_NS:
        return None
    return int(horizon[:-1]) * _UNIT_NS[horizon[-1]]


def realised_returns(
    forecasts: Iterable[Forecast], prices: Mapping[str, Sequence[Sequence[float]]]
) -> list[tuple[Forecast, float]]:
    """Pair each forecast with its realised log return over its horizon.

    ``prices``: symbol -> [(ts_ns, price), ...] sorted by time (bar closes).  The price at a
    time is the last one at or before it; forecasts whose horizon ends after the series, or
    whose horizon is not a time span, are left out.
    """
    idx: dict[str, tuple[list[int], list[float]]] = {}
    for sym, series in prices.items():
        idx[sym] = ([int(p[0]) for p in series], [float(p[1]) for p in series])
    out: list[tuple[Forecast, float]] = []
    for f in forecasts:
        h = horizon_ns(f.horizon)
        s = idx.get(f.symbol)
        if h is None or s is None or not s[0]:
            continue
        ts, px = s
        end = f.ts_event + h
        if end > ts[-1]:
            continue
        i0 = bisect.bisect_right(ts, f.ts_event) - 1
        i1 = bisect.bisect_right(ts, end) - 1
        if i0 < 0 or px[i0] <= 0 or px[i1] <= 0:
            continue
        out.append((f, math.log(px[i1] / px[i0])))
    return out


def quantile_coverage(pairs: Iterable[tuple[Forecast, float]]) -> dict[float, tuple[float, int]]:
    """For each quantile level: (fraction of realised returns at or below that quantile, n).

    A calibrated forecaster's coverage equals the level.
    """
    hits: dict[float, int] = {}
    counts: dict[float, int] = {}
    for f, r in pairs:
        if len(f.quantiles) != len(f.quantile_levels):
            continue
        for lv, q in zip(f.quantile_levels, f.quantiles, strict=True):
            counts[lv] = counts.get(lv, 0) + 1
            hits[lv] = hits.get(lv, 0) + (r <= q)
    return {lv: (hits[lv] / counts[lv], counts[lv]) for lv in sorted(counts)}


# --- direction: hit rate, Brier, Pesaran-Timmermann --------------------------------------------


def hit_rate(y: ArrayLike, prob_up: ArrayLike) -> float:
    """Share of non-zero outcomes whose sign the forecast (``prob_up > 0.5``) got right."""
    yy = _f64(y)
    keep = yy != 0.0
    if not np.any(keep):
        return math.nan
    pred = np.asarray(prob_up)[keep] > 0.5
    return float(np.mean(pred == (yy[keep] > 0.0)))


def brier(y: ArrayLike, prob_up: ArrayLike) -> float:
    """Brier score of ``prob_up`` against the sign of the non-zero outcomes (0.25 = a coin)."""
    yy = _f64(y)
    keep = yy != 0.0
    if not np.any(keep):
        return math.nan
    p = _f64(prob_up)[keep]
    return float(np.mean((p - (yy[keep] > 0.0)) ** 2))


def pesaran_timmermann(y: ArrayLike, prob_up: ArrayLike) -> tuple[float, float]:
    """Pesaran-Timmermann (1992) test of directional accuracy.

    Returns ``(statistic, p_value)``, the p-value one-sided (H1: the forecast has directional
    skill).  Degenerate cases (all forecasts or all outcomes one way) return ``(nan, nan)``:
    the test is undefined there.
    """
    yy = _f64(y)
    keep = yy != 0.0
    x = (np.asarray(prob_up)[keep] > 0.5).astype(np.float64)
    a = (yy[keep] > 0.0).astype(np.float64)
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
    return stat, float(_stats().norm.sf(stat))


# --- Diebold-Mariano with a HAC variance -------------------------------------------------------


def newey_west_lags(n: int, horizon: int = 1) -> int:
    """The lag truncation :func:`diebold_mariano` uses by default (module docstring)."""
    rule = math.floor(4.0 * math.pow(max(n, 0) / 100.0, 2.0 / 9.0))
    return max(horizon - 1, rule)


def newey_west_variance(x: ArrayLike, lags: int) -> float:
    """Newey-West (Bartlett kernel) long-run variance of ``x``: ``g0 + 2 sum_l (1 - l/(L+1)) g_l``
    (``g_l`` the lag-``l`` autocovariance, ``L`` = ``lags``).

    Autocovariances use divisor ``n``, so the estimate is never negative.
    """
    xx = _f64(x)
    n = len(xx)
    if n == 0:
        return math.nan
    xc = xx - float(np.mean(xx))
    lrv = float(np.dot(xc, xc)) / n
    for lag in range(1, min(lags, n - 1) + 1):
        w = 1.0 - lag / (lags + 1.0)
        lrv += 2.0 * w * float(np.dot(xc[lag:], xc[:-lag])) / n
    return lrv


def diebold_mariano(
    loss_a: ArrayLike, loss_b: ArrayLike, horizon: int = 1, lags: int | None = None
) -> tuple[float, float]:
    """Diebold-Mariano test of equal predictive accuracy of per-row losses ``a`` and ``b``.

    Returns ``(statistic, p_value)``; a negative statistic means ``a`` has the lower loss.
    HAC (Newey-West) variance with ``lags`` (default :func:`newey_west_lags`), HLN-corrected,
    t with n-1 degrees of freedom, two-sided.  Identical losses: ``(0.0, 1.0)``; a constant
    non-zero difference: ``(±inf, 0.0)``; fewer than 3 rows: ``(nan, nan)``.
    """
    d = _f64(loss_a) - _f64(loss_b)
    n = len(d)
    if n < 3:
        return math.nan, math.nan
    dbar = float(np.mean(d))
    if not np.any(d):
        return 0.0, 1.0
    lrv = newey_west_variance(d, newey_west_lags(n, horizon) if lags is None else lags)
    if not lrv > 0.0:
        return math.copysign(math.inf, dbar), 0.0
    stat = dbar / math.sqrt(lrv / n)
    k = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat *= k
    return stat, float(2.0 * _stats().t.sf(abs(stat), df=n - 1))


# --- baselines ---------------------------------------------------------------------------------


def ewma_variance(returns: ArrayLike, lam: float = 0.94, init: float | None = None) -> Array:
    """RiskMetrics one-step variance forecasts: out[i] forecasts returns[i].

    ``init`` seeds the recursion (default: the mean squared return of the first 20
    observations); out[0] is ``init``.
    """
    r = _f64(returns)
    out = np.empty(len(r))
    v = float(np.mean(r[:20] ** 2)) if init is None else float(init)
    for i, x in enumerate(r):
        out[i] = v
        v = lam * v + (1.0 - lam) * x * x
    return out


def garch_variance(returns: ArrayLike, fit_end: int, scale: float | None = None) -> Array:
    """GARCH(1,1) one-step variance forecasts from the ``arch`` package.

    Parameters are estimated on ``returns[:fit_end]`` only (no look-ahead); the result has one
    entry per ``i >= fit_end`` forecasting ``returns[i]`` with information up to ``i - 1``.
    ``scale`` rescales returns for the optimiser (default: so the training standard deviation
    is about 1) and is undone on the way out.
    """
    from arch import arch_model

    r = _f64(returns)
    if not 10 < fit_end < len(r):
        raise ValueError(f"garch_variance: fit_end {fit_end} out of range for {len(r)} returns")
    if scale is None:
        sd = float(np.std(r[:fit_end]))
        scale = 1.0 / sd if sd > 0 else 1.0
    model: Any = arch_model(r * scale, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    res = model.fit(last_obs=fit_end, disp="off")
    # forecast(start=t) row t holds the variance of t+1 given data through t.
    fc = res.forecast(horizon=1, start=fit_end - 1, reindex=False)
    var = np.asarray(fc.variance.iloc[:, 0], dtype=np.float64)[: len(r) - fit_end]
    out: Array = var / (scale * scale)
    return out


def rolling_empirical_quantiles(returns: ArrayLike, levels: ArrayLike, start: int, window: int) -> Array:
    """Random-walk quantiles from the trailing ``window`` returns: row j forecasts returns[start+j]."""
    r = _f64(returns)
    lv = _f64(levels)
    out = np.empty((len(r) - start, len(lv)))
    for j, i in enumerate(range(start, len(r))):
        out[j] = np.quantile(r[max(0, i - window) : i], lv)
    return out


# --- a run's forecasts against the next bar, and against the baselines ------------------------


def read_forecasts(path: str | Path, tier: str = "edge") -> list[dict[str, Any]]:
    """Version-1 forecasts of ``tier`` from a run's ``forecasts.jsonl`` (what the product wrote)."""
    import msgspec

    out: list[dict[str, Any]] = []
    with Path(path).open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            d = msgspec.json.decode(line)
            if d.get("type", "forecast") == "forecast" and d.get("tier") == tier and d.get("version") == 1:
                out.append(d)
    return out


def next_bar_outcomes(
    forecasts: Sequence[Mapping[str, Any]], bar_ts: ArrayLike, close: ArrayLike
) -> tuple[npt.NDArray[np.int64], list[int]]:
    """Pair one symbol's forecasts with the bar they were made after.

    ``bar_ts``/``close``: the symbol's bars in time order.  A forecast made after bar ``i``
    (``ts_event == bar_ts[i]``) forecasts ``ln(close[i + 1] / close[i])`` - the next *bar*,
    not the next calendar span (a daily forecast on a Friday is for Monday's close).
    Returns (bar index per paired forecast, indices into ``forecasts`` of the paired ones);
    forecasts after the last bar or at a time with no bar are left out.
    """
    ts = np.asarray(bar_ts, dtype=np.int64)
    pos = {int(t): i for i, t in enumerate(ts)}
    bars: list[int] = []
    keep: list[int] = []
    for j, f in enumerate(forecasts):
        i = pos.get(int(f["ts_event"]))
        if i is not None and i + 1 < len(ts):
            bars.append(i)
            keep.append(j)
    return np.asarray(bars, dtype=np.int64), keep


def skill(
    y: ArrayLike,
    q: ArrayLike,
    vol: ArrayLike,
    prob_up: ArrayLike,
    levels: ArrayLike,
    baselines: Mapping[str, tuple[ArrayLike, ArrayLike]],
) -> dict[str, float]:
    """Every quality figure of one forecaster against named baselines, on the same rows.

    ``y`` realised returns (n,), ``q`` quantiles (n, k), ``vol`` forecast sd (n,), ``prob_up``
    (n,); ``baselines``: name -> (variance (n,), quantiles (n, k)).  Figures: ``crps``,
    ``qlike_norm`` (normalised QLIKE against the squared return, zero returns left out, the
    same rows for every model), ``coverage_80``/``coverage_90``, ``hit_rate``, ``brier``,
    ``pt_pvalue``, ``pit_ks_pvalue`` (uniformity of the PIT, Kolmogorov-Smirnov) and per
    baseline ``b``: ``crps_b``, ``qlike_norm_b``, ``crps_ratio_vs_b``,
    ``qlike_norm_ratio_vs_b``, ``dm_crps_pvalue_vs_b`` and ``dm_pvalue_vs_b`` (Diebold-Mariano
    on normalised QLIKE, HAC), ``dm_stat_vs_b`` (negative: the forecaster's loss is lower).
    """
    yy = _f64(y)
    qq = _f64(q)
    lv = _f64(levels)
    h = _f64(vol) ** 2
    s2 = yy * yy
    moved = s2 > 0.0
    crps = crps_quantiles(yy, qq, lv)
    ql = qlike_norm(s2[moved], h[moved])
    _, pt_p = pesaran_timmermann(yy, prob_up)
    pits = pit(yy, qq, lv)
    out: dict[str, float] = {
        "n": float(len(yy)),
        "n_qlike": float(int(np.count_nonzero(moved))),
        "crps": float(np.mean(crps)),
        "qlike_norm": float(np.mean(ql)),
        "coverage_80": interval_coverage(yy, qq, lv, 0.8),
        "coverage_90": interval_coverage(yy, qq, lv, 0.9),
        "hit_rate": hit_rate(yy, prob_up),
        "brier": brier(yy, prob_up),
        "pt_pvalue": pt_p,
        "pit_ks_pvalue": float(_stats().kstest(pits, "uniform").pvalue) if len(pits) else math.nan,
    }
    for name, (bvar, bq) in baselines.items():
        bcrps = crps_quantiles(yy, bq, lv)
        bql = qlike_norm(s2[moved], _f64(bvar)[moved])
        out[f"crps_{name}"] = float(np.mean(bcrps))
        out[f"qlike_norm_{name}"] = float(np.mean(bql))
        out[f"crps_ratio_vs_{name}"] = out["crps"] / out[f"crps_{name}"]
        out[f"qlike_norm_ratio_vs_{name}"] = out["qlike_norm"] / out[f"qlike_norm_{name}"]
        out[f"dm_crps_pvalue_vs_{name}"] = diebold_mariano(crps, bcrps)[1]
        stat, p = diebold_mariano(ql, bql)
        out[f"dm_stat_vs_{name}"] = stat
        out[f"dm_pvalue_vs_{name}"] = p
    return out
