"""Serve-time gate: the model's variance, a classical baseline's, or a blend, by past losses.

For every symbol a :class:`VarianceGate` keeps, per candidate forecaster, a discounted sum
of its QLIKE losses ``ln h + r**2 / h`` on the returns that have already happened (each
forecast is scored when the next bar arrives: no look-ahead).  The candidates are the edge
model's variance (``vol ** 2``) and the classical one-step forecasts the feature engine keeps
for every bar (:class:`~adapters.features.FeatureRow`): ``anchor`` (the model's own anchor:
GJR-GARCH(1,1) with the parameters fitted at training time, ``scale ** 2``), ``ewma``
(RiskMetrics 0.94), ``range`` (calibrated EWMA of the Parkinson range variance) and ``rv``
(the same of the within-bar realised variance of the trade prints; not on by default).  A
baseline without data yet (no range, no trades) gets no weight and, while absent, is charged
the loss of what was served.

Calibration (``calibrate_half_life``): each candidate's variance is first multiplied by its
own discounted mean of ``r**2 / h`` over the scored past - the QLIKE-optimal scale, shrunk
towards 1 by ``calibrate_prior`` pseudo-observations.  A network whose variance is off by a
factor (the E-mini model's regular-session variance is far too low) is then served at the
right level; every candidate is calibrated alike.

The served log-variance is the weighted mean of the calibrated candidates' log-variances with
weights ``w_j ∝ prior_j * exp(-eta * (S_j - min S))`` (exponentially weighted average
forecaster; ``S_j`` the discounted loss sums, half-life ``half_life`` scored bars; the prior
favours the model, what it was trained and validated to serve, so a short history cannot dilute
a good model).  QLIKE is convex in the log-variance, so the blend's loss is at most the weighted
mean of the candidates' losses, and the weights move to whichever has done best, so when the
model's losses say so it serves the baseline.  (For an exp-concave loss this forecaster's regret
against candidate ``j`` is at most ``ln(1 / prior_j) / eta``; QLIKE is only convex and the sums
are discounted to follow a change of regime, so that is a guide, not a guarantee: the held-out
figures of ``finllm bench edge`` are the evidence.)  Before ``min_scored`` returns have been scored the prior
alone is served.

Quantiles are rescaled consistently with the served variance: in units of their own
standard deviation the model's quantiles are blended with the normal quantiles (the
baselines' shape) by the model's weight, then multiplied by the served standard deviation.
At model weight 1 the forecast is the model's own; at 0 it is the baseline's normal
quantiles.  Then (``interval_rate``) their spread about the median is scaled by a factor that
an adaptive-conformal step moves after each bar by the misses of the central 80% and 90%
intervals, so their coverage tends to the nominal one.

Returns of exactly 0 are not scored for QLIKE (a tick-size artefact of fine bars; their
normalised QLIKE, the product's score, is undefined) but count for coverage; a forecast is
scored only by the bar that follows the one it was made after (``bar_no`` consecutive).
Deterministic: plain float64 arithmetic in bar order per symbol.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import numpy as np

from adapters.features import FeatureConfig, FeatureEngine, FeatureRow

__all__ = [
    "BASELINE_CANDIDATES",
    "GateConfig",
    "GateDecision",
    "SymbolGates",
    "VarianceGate",
    "gated_features",
    "normal_quantiles",
]

BASELINE_CANDIDATES: Final = ("anchor", "ewma", "range", "rv")
_LABELS: Final = {
    "model": "model",
    "anchor": "anchor (GJR-GARCH, training-time parameters)",
    "ewma": "EWMA 0.94",
    "range": "range EWMA (Parkinson, calibrated)",
    "rv": "within-bar realised variance EWMA (calibrated)",
}


class GateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The serve-time gate (module docstring).

    ``enabled``: off serves the model's forecast untouched.  ``baselines``: the classical
    candidates beside the model (of :data:`BASELINE_CANDIDATES`).  ``half_life``: scored bars
    for a past loss's weight to halve.  ``eta``: sharpness of the weights per unit of
    discounted QLIKE difference (large: serve the best alone).  ``prior_model``: the model's
    prior weight (the rest shared by the baselines; below 1 for a baseline ever to be served),
    multiplied into the loss-based weights.  ``min_scored``: scored returns before the losses
    count at all.  ``range_lambda``: decay per bar of the range baseline's EWMA
    (passed to the feature engine).  ``calibrate_half_life``: when > 0, every candidate's variance
    is first multiplied by its own discounted mean of ``r**2 / h`` over the scored past (the
    QLIKE-optimal scale; half-life in scored bars), shrunk towards 1 by ``calibrate_prior``
    pseudo-observations; 0 serves the candidates as they are.  ``interval_rate``: step of the
    online interval calibration (adaptive conformal inference): after each bar the quantiles'
    spread is multiplied by ``exp(rate * (misses - expected))`` over the grid's central 80% and
    90% intervals, so their coverage tends to the nominal one; 0: off.
    """

    enabled: bool = True
    baselines: tuple[str, ...] = ("anchor", "ewma", "range")
    # Defaults chosen on the validation splits only (python -m tools.train_edge --tune-gate):
    # the grid is flat within 0.3% of validation QLIKE except for calibration (on) and the prior.
    half_life: float = 500.0
    eta: float = 0.1
    min_scored: int = 20
    prior_model: float = 0.9
    range_lambda: float = 0.9
    calibrate_half_life: float = 2000.0
    calibrate_prior: float = 100.0
    interval_rate: float = 0.01

    def __post_init__(self) -> None:
        unknown = sorted(set(self.baselines) - set(BASELINE_CANDIDATES))
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(
                f"GateConfig.baselines: {unknown or 'duplicates'}; choose from {BASELINE_CANDIDATES}"
            )
        if not (self.half_life > 0.0 and self.eta >= 0.0 and self.min_scored >= 0):
            raise ValueError("GateConfig: half_life > 0, eta >= 0, min_scored >= 0")
        if not (0.0 <= self.prior_model <= 1.0 and 0.0 < self.range_lambda < 1.0):
            raise ValueError("GateConfig: prior_model in [0, 1], range_lambda in (0, 1)")
        if self.interval_rate < 0.0:
            raise ValueError("GateConfig.interval_rate must be >= 0")
        if self.calibrate_half_life < 0.0 or self.calibrate_prior <= 0.0:
            raise ValueError("GateConfig: calibrate_half_life >= 0 (0: off), calibrate_prior > 0")


class GateDecision(msgspec.Struct, frozen=True, gc=False):
    """What one forecast served: ``variance`` (of the next log return), ``quantiles`` (rescaled),
    ``weights`` per candidate (``names`` order, sum 1), ``losses`` (discounted mean QLIKE minus
    the best's), ``scored`` (returns scored so far), ``factors`` (each candidate's variance
    calibration factor, 1 when off) and ``spread`` (the interval calibration's width factor)."""

    variance: float
    quantiles: tuple[float, ...]
    names: tuple[str, ...]
    weights: tuple[float, ...]
    losses: tuple[float, ...]
    scored: int
    factors: tuple[float, ...] = ()
    spread: float = 1.0

    @property
    def model_weight(self) -> float:
        return self.weights[0]

    @property
    def served(self) -> str:
        """``model`` (weight >= 0.995), ``baseline`` (model weight <= 0.005) or ``blend``."""
        wm = self.weights[0]
        return "model" if wm >= 0.995 else "baseline" if wm <= 0.005 else "blend"

    @property
    def leader(self) -> str:
        """The candidate with the largest weight."""
        return self.names[max(range(len(self.weights)), key=lambda j: (self.weights[j], -j))]

    def explain(self) -> str:
        """One human-readable line: what was served and why."""
        fs = self.factors or (1.0,) * len(self.names)
        parts = [
            f"{w:.2f} {_LABELS[n]}" + (f" x{f:.2f}" if f != 1.0 else "")
            for n, w, f in zip(self.names, self.weights, fs, strict=True)
            if w >= 0.005
        ]
        if self.scored == 0 or len(self.names) == 1:
            why = "no returns scored yet: the prior"
        else:
            per = ", ".join(f"{n} {x:+.3f}" for n, x in zip(self.names, self.losses, strict=True))
            why = f"discounted mean QLIKE over {self.scored} scored bars, relative to the best: {per}"
        what = {
            "model": "served the model's variance",
            "baseline": f"served the baseline (model weight {self.weights[0]:.3f})",
            "blend": "served a blend",
        }[self.served]
        cal = ""
        if self.factors:
            cal = "; xN: variance calibrated by its past mean squared return / forecast"
        if self.spread != 1.0:
            cal += f"; interval widths x{self.spread:.2f} (past 80/90% misses)"
        return f"gate {what}: sigma^2 = {' + '.join(parts)} (log-variance weights); {why}{cal}"


def normal_quantiles(levels: Sequence[float]) -> np.ndarray:
    """Standard normal quantiles at ``levels`` (each in (0, 1))."""
    nd = statistics.NormalDist()
    return np.asarray([nd.inv_cdf(p) for p in levels], dtype=np.float64)


class VarianceGate:
    """The gate's state for one symbol of one model (module docstring).  Not thread-safe.

    Plain Python floats over the handful of candidates: numpy's per-call overhead would cost
    more than the arithmetic (about 50 us per forecast against about 10 us)."""

    __slots__ = (
        "_avail",
        "_cal_decay",
        "_cal_den",
        "_cal_num",
        "_cfg",
        "_decay",
        "_factor",
        "_getters",
        "_iv",
        "_log_spread",
        "_mean_w",
        "_mid",
        "_names",
        "_pending",
        "_pending_no",
        "_pending_q",
        "_pending_raw",
        "_prior",
        "_served",
        "_sums",
        "_z",
        "scored",
    )

    def __init__(self, cfg: GateConfig, levels: Sequence[float]) -> None:
        self._cfg = cfg
        self._names: tuple[str, ...] = ("model", *cfg.baselines)
        n = len(self._names)
        self._getters = tuple(_GETTERS[b] for b in cfg.baselines)
        self._decay = 0.5 ** (1.0 / cfg.half_life)
        self._sums = [0.0] * n
        self._mean_w = 0.0  # discounted count: turns sums into per-bar means for the trace
        self._pending: list[float] | None = None
        self._pending_raw = [1.0] * n
        self._avail = [True] * n
        self._factor = [1.0] * n
        self._served = 1.0
        self._pending_no = -1
        self._cal_decay = 0.5 ** (1.0 / cfg.calibrate_half_life) if cfg.calibrate_half_life else 0.0
        self._cal_num = [0.0] * n
        self._cal_den = 0.0
        self.scored = 0
        nb = len(cfg.baselines)
        self._prior = [cfg.prior_model] + [(1.0 - cfg.prior_model) / nb] * nb if nb else [1.0]
        self._z = normal_quantiles(levels).tolist()
        self._log_spread = 0.0  # online interval calibration (interval_rate)
        self._pending_q: list[float] | None = None
        lv = [round(x, 6) for x in levels]
        self._mid = lv.index(0.5) if 0.5 in lv else len(lv) // 2  # the median's column
        self._iv = tuple(
            (lv.index(round(0.5 - c / 2, 6)), lv.index(round(0.5 + c / 2, 6)), 1.0 - c)
            for c in (0.8, 0.9)
            if round(0.5 - c / 2, 6) in lv and round(0.5 + c / 2, 6) in lv
        )

    def candidates(self, row: FeatureRow, model_var: float) -> tuple[list[float], list[bool]]:
        """The candidates' variance forecasts for the bar after ``row`` and which of them are
        available (a baseline without data yet - no range, no trades - is not; the model always
        is).  An unavailable candidate's entry is the model's (a placeholder, never served)."""
        out = [model_var]
        ok = [True]
        for get in self._getters:
            v = get(row)
            good = v > 0.0 and math.isfinite(v)
            out.append(v if good else model_var)
            ok.append(good)
        return out, ok

    def decide(self, row: FeatureRow, model_quantiles: np.ndarray, model_vol: float) -> GateDecision:
        """Score the pending forecasts with ``row.ret`` (when ``row`` is the bar they were for),
        then serve the forecast for the bar after ``row``."""
        n = len(self._names)
        pend = self._pending
        rate = self._cfg.interval_rate
        pq = self._pending_q
        if rate and pq is not None and row.bar_no == self._pending_no + 1:
            # Every bar counts here (a zero return is inside every interval, as the scoring has it).
            y = row.ret
            step = sum((1.0 if (y < pq[lo] or y > pq[hi]) else 0.0) - miss for lo, hi, miss in self._iv)
            self._log_spread = min(3.0, max(-3.0, self._log_spread + rate * step))
        if pend is not None and row.bar_no == self._pending_no + 1 and row.ret != 0.0:
            r2 = row.ret * row.ret
            d = self._decay
            # A candidate that had no forecast is charged what was served: neither rewarded nor
            # punished for its absence.
            charged = math.log(self._served) + r2 / self._served
            sums = self._sums
            for j in range(n):
                h = pend[j]
                sums[j] = d * sums[j] + (math.log(h) + r2 / h if self._avail[j] else charged)
            self._mean_w = d * self._mean_w + 1.0
            self.scored += 1
            cd = self._cal_decay
            if cd:
                num = self._cal_num
                for j in range(n):
                    ratio = r2 / self._pending_raw[j] if self._avail[j] else self._factor[j]
                    num[j] = cd * num[j] + ratio
                self._cal_den = cd * self._cal_den + 1.0
        h_model = model_vol * model_vol
        raw, avail = self.candidates(row, h_model)
        cands = raw
        if self._cal_decay:
            k = self._cfg.calibrate_prior
            den = self._cal_den + k
            self._factor = [(x + k) / den for x in self._cal_num]
            cands = [h * c for h, c in zip(raw, self._factor, strict=True)]
        best = min(x for x, ok in zip(self._sums, avail, strict=True) if ok)
        if self.scored < self._cfg.min_scored:
            w = [p if ok else 0.0 for p, ok in zip(self._prior, avail, strict=True)]
        else:
            # prior_j * exp(-eta * S_j), shifted by the best so every exponent is <= 0.
            eta = self._cfg.eta
            w = [
                p * math.exp(-eta * (x - best)) if ok else 0.0
                for p, x, ok in zip(self._prior, self._sums, avail, strict=True)
            ]
        tot = sum(w)
        w = [x / tot for x in w]
        var = math.exp(sum(wj * math.log(h) for wj, h in zip(w, cands, strict=True) if wj))
        self._pending_raw = raw
        self._pending = cands
        self._avail = avail
        self._served = var
        self._pending_no = row.bar_no
        wm = w[0]
        mq = model_quantiles.tolist()
        if wm == 1.0 and var == h_model:
            q = mq
        else:
            # The model's shape in units of its own sd, blended with the normal by the baselines'
            # share, times the served sd (plain floats: a dozen values).
            a = wm / model_vol
            b = 1.0 - wm
            sd = math.sqrt(var)
            q = [sd * (a * x + b * zj) for x, zj in zip(mq, self._z, strict=True)]
        if rate:
            # Spread about the median: the location is the model's, the width calibrated.
            mid = q[self._mid]
            f = math.exp(self._log_spread)
            q = [mid + (x - mid) * f for x in q]
            self._pending_q = q
        mw = max(self._mean_w, 1e-12)
        idx = [j for j in range(n) if avail[j]]
        return GateDecision(
            var,
            tuple(q),
            tuple(self._names[j] for j in idx),
            tuple(w[j] for j in idx),
            tuple((self._sums[j] - best) / mw for j in idx),
            self.scored,
            tuple(self._factor[j] for j in idx) if self._cal_decay else (),
            math.exp(self._log_spread) if rate else 1.0,
        )


class SymbolGates(dict[str, VarianceGate]):
    """Symbol -> its :class:`VarianceGate` for one model, each made on first use (a dict:
    ``clear()`` starts every symbol afresh, as after a promotion)."""

    def __init__(self, cfg: GateConfig, levels: Sequence[float]) -> None:
        super().__init__()
        self._cfg = cfg
        self._levels = levels

    def __missing__(self, symbol: str) -> VarianceGate:
        g = self[symbol] = VarianceGate(self._cfg, self._levels)
        return g


def gated_features(cfg: FeatureConfig, gate: GateConfig) -> FeatureEngine:
    """A feature engine for ``cfg`` whose range baseline decays at the gate's ``range_lambda``
    (that baseline feeds the gate only, no model input)."""
    return FeatureEngine(msgspec.structs.replace(cfg, range_lambda=gate.range_lambda))


def _anchor_var(row: FeatureRow) -> float:
    return row.scale * row.scale


def _ewma_var(row: FeatureRow) -> float:
    return row.ewma_var


def _range_var(row: FeatureRow) -> float:
    return row.range_var


def _rv_var(row: FeatureRow) -> float:
    return row.rv_var


_GETTERS: Final[dict[str, Callable[[FeatureRow], float]]] = {
    "anchor": _anchor_var,
    "ewma": _ewma_var,
    "range": _range_var,
    "rv": _rv_var,
}
