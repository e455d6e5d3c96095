"""The epistemic-diversity circuit breaker: a brake for when every model agrees for the wrong reasons.

Subscribe it to ``forecast.>`` (edge, baseline, cloud and peer nodes' forecasts), ``bar.>``
(prices) and ``fill.>`` (the strategies' positions).  Per symbol, at each bar (one
*evaluation*), it looks at:

forecasters
    every distinct ``(tier, model_id)`` that forecast the symbol (the cloud tier's
    refinements are forecaster ``cloud:<model>``), plus classical baselines it computes
    online from the bars (``baselines``): ``ewma`` (EWMA of returns, a momentum forecast)
    and ``ar1`` (a first-order autoregression with an exponentially weighted coefficient).
    A GARCH(1,1)-lite volatility (fixed ``garch_alpha``/``garch_beta``, variance-targeted)
    scales each point into a z-score; a forecast within ``flat_z`` of zero votes no direction.
correlation
    the mean pairwise correlation, over the last ``window`` evaluations, of the pipeline's
    forecasters' (not the breaker's own baselines: they are fixed functions of the same bars)
    *excess errors over the random walk* (``(r - p_i) - r = -p_i``).  The raw errors all share
    the realised return, which dwarfs any short-horizon forecast, so their correlation is near
    1 for independent models too; net of that common part, independent models decorrelate and
    herding models do not.
consensus
    the share of the voting forecasters (baselines included) on the majority side, averaged over the window
    (1.0: all agree every time).
crowding
    the strategies' positioning in the symbol: ``|sum of positions| / sum of |positions|`` times
    the share of strategies holding a position (1.0: all of them, all on one side);
    ``crowding_rise`` is its increase over the window (its current value minus the window's
    minimum over the last ``crowding_window`` evaluations).

The breaker *trips* for a symbol when, for ``trip_after`` evaluations in a row, diversity has
collapsed (``correlation >= correlation_trip`` or ``consensus >= consensus_trip``, with at least
``min_forecasters`` forecasters and ``min_samples`` evaluations) while crowding is high and
rising (``crowding >= crowding_trip`` and ``crowding_rise >= crowding_rise_min``).  It then
publishes a :class:`~engine.messages.BreakerState` ``open`` on ``topic`` naming the strategies
positioned with the crowd (the strategy host pauses their new orders in that symbol), logs it
at WARNING and counts ``diversity_breaker_trips_total``.  Hysteresis: it *resets* only after
``reset_after`` evaluations in a row with diversity back (``correlation < correlation_reset``
and ``consensus < consensus_reset``) or crowding gone (``crowding < crowding_reset``), and
publishes ``closed``.  Gauges per symbol: ``diversity_correlation``, ``diversity_consensus``,
``diversity_crowding``, ``diversity_breaker_open``.

Modes: the breaker does the same in every mode (it is cheap: O(window x forecasters^2) per
bar, on bars only).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from engine.actor import Actor
from engine.messages import Bar, BreakerState, Fill, Forecast

__all__ = [
    "DiversityBreaker",
    "DiversityConfig",
    "DiversityFigures",
    "SymbolMonitor",
    "consensus_share",
    "crowding_index",
    "mean_pairwise_correlation",
]


_BASELINE = "classical:"
"""Name prefix of the breaker's own baselines (distinct from ``baseline:<model>``, the pipeline's
baseline forecaster tier)."""


class DiversityConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the breaker (module doc).  Figures are unitless; windows count bars."""

    window: int = 60
    min_samples: int = 30
    min_forecasters: int = 3
    correlation_trip: float = 0.9
    correlation_reset: float = 0.7
    consensus_trip: float = 0.95
    consensus_reset: float = 0.8
    crowding_trip: float = 0.9
    crowding_reset: float = 0.5
    crowding_rise_min: float = 0.3
    crowding_window: int = 240
    """Evaluations over which ``crowding_rise`` is measured (longer than ``window``: crowding
    builds while the correlation window fills with the herd)."""
    trip_after: int = 3
    reset_after: int = 10
    baselines: tuple[Literal["ewma", "ar1"], ...] = ("ewma", "ar1")
    ewma_alpha: float = 0.1
    """Smoothing of the baselines' EWMAs (returns, AR(1) moments, the variance target)."""
    garch_alpha: float = 0.05
    garch_beta: float = 0.9
    flat_z: float = 0.01
    """A point within ``flat_z`` GARCH-lite standard deviations of zero votes no direction."""
    max_forecast_age_bars: int = 5
    """A forecaster whose last forecast is older than this many bars takes no part."""
    horizons: tuple[str, ...] = ()
    """Horizons to consider; empty: all (the figures are scale-free)."""
    bar_kind: str = ""
    """Bars of this kind drive the evaluations; empty: any."""
    topic: str = "control.breaker"
    n_strategies: int = 0
    """How many strategies trade (the crowding's denominator); 0: those seen filling."""
    report_path: str = ""
    """Where :meth:`DiversityBreaker.report` is written (JSON) on stop; empty: nowhere."""

    def __post_init__(self) -> None:
        if self.window < 2 or not 2 <= self.min_samples <= self.window:
            raise ValueError("need window >= 2 and 2 <= min_samples <= window")
        if self.min_forecasters < 2:
            raise ValueError("min_forecasters must be >= 2: diversity needs two views")
        for lo, hi, name in (
            (self.correlation_reset, self.correlation_trip, "correlation"),
            (self.consensus_reset, self.consensus_trip, "consensus"),
            (self.crowding_reset, self.crowding_trip, "crowding"),
        ):
            if not lo < hi:
                raise ValueError(f"{name}_reset must be below {name}_trip (hysteresis)")
        if self.trip_after < 1 or self.reset_after < 1:
            raise ValueError("trip_after and reset_after must be >= 1")
        if not (
            0 < self.ewma_alpha <= 1 and self.garch_alpha >= 0 and self.garch_alpha + self.garch_beta < 1
        ):
            raise ValueError("need 0 < ewma_alpha <= 1 and garch_alpha + garch_beta < 1")


# --- pure figures ----------------------------------------------------------------------


def mean_pairwise_correlation(series: dict[str, list[float | None]], min_samples: int) -> float:
    """Mean Pearson correlation over the pairs of ``series`` with at least ``min_samples`` common
    (non-None) points and non-zero variance; NaN when no pair qualifies."""
    names = sorted(series)
    total = 0.0
    pairs = 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            xs = [
                (x, y) for x, y in zip(series[a], series[b], strict=True) if x is not None and y is not None
            ]
            if len(xs) < min_samples:
                continue
            n = len(xs)
            mx = sum(x for x, _ in xs) / n
            my = sum(y for _, y in xs) / n
            sxx = sum((x - mx) ** 2 for x, _ in xs)
            syy = sum((y - my) ** 2 for _, y in xs)
            if sxx <= 0 or syy <= 0:
                continue
            sxy = sum((x - mx) * (y - my) for x, y in xs)
            total += sxy / math.sqrt(sxx * syy)
            pairs += 1
    return total / pairs if pairs else math.nan


def consensus_share(votes: list[int]) -> float:
    """Share of the non-zero ``votes`` (+1 / -1) on the majority side; NaN without two votes."""
    up = sum(1 for v in votes if v > 0)
    down = sum(1 for v in votes if v < 0)
    n = up + down
    return max(up, down) / n if n >= 2 else math.nan


def crowding_index(positions: dict[str, float], n_strategies: int) -> float:
    """``|net| / gross`` of the strategies' positions times the share of strategies positioned."""
    gross = sum(abs(p) for p in positions.values())
    held = sum(1 for p in positions.values() if p != 0)
    if gross <= 0 or n_strategies <= 0:
        return 0.0
    return abs(sum(positions.values())) / gross * held / n_strategies


class DiversityFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One evaluation of one symbol."""

    correlation: float
    consensus: float
    crowding: float
    crowding_rise: float
    forecasters: int
    samples: int
    collapsed: bool
    crowded: bool


@dataclass
class _Baselines:
    """Online classical forecasters of one symbol (module doc)."""

    last_close: float = 0.0
    last_ret: float = 0.0
    ewma_ret: float = 0.0
    var_target: float = 0.0
    garch_var: float = 0.0
    cov1: float = 0.0
    n: int = 0


@dataclass
class SymbolMonitor:
    """The breaker's state machine for one symbol; :meth:`on_bar` runs one evaluation."""

    cfg: DiversityConfig
    symbol: str
    points: dict[str, tuple[float, int]] = field(default_factory=dict)
    """forecaster -> (last point, bar index it arrived at)."""
    history: deque[dict[str, float]] = field(default_factory=deque)
    crowding_hist: deque[float] = field(default_factory=deque)
    consensus_hist: deque[float] = field(default_factory=deque)
    base: _Baselines = field(default_factory=_Baselines)
    bars: int = 0
    open: bool = False
    streak: int = 0
    calm: int = 0
    _names: dict[str, int] = field(default_factory=dict)
    """Pipeline forecaster -> evaluations in the window it took part in."""
    _shares_sum: float = 0.0
    _shares_n: int = 0
    peak: dict[str, float] = field(
        default_factory=lambda: {"correlation": 0.0, "consensus": 0.0, "crowding": 0.0, "forecasters": 0.0}
    )

    def on_forecast(self, name: str, point: float) -> None:
        if math.isfinite(point):
            self.points[name] = (point, self.bars)

    def _update_baselines(self, close: float) -> None:
        cfg = self.cfg
        b = self.base
        if b.last_close > 0 and close > 0:
            r = math.log(close / b.last_close)
            a = cfg.ewma_alpha
            b.n += 1
            b.var_target = r * r if b.n == 1 else (1 - a) * b.var_target + a * r * r
            omega = (1 - cfg.garch_alpha - cfg.garch_beta) * b.var_target
            b.garch_var = (
                b.var_target if b.n == 1 else omega + cfg.garch_alpha * r * r + cfg.garch_beta * b.garch_var
            )
            b.cov1 = (1 - a) * b.cov1 + a * r * b.last_ret
            b.ewma_ret = (1 - a) * b.ewma_ret + a * r
            b.last_ret = r
        if close > 0:
            b.last_close = close

    def _baseline_points(self) -> dict[str, float]:
        b = self.base
        out: dict[str, float] = {}
        if b.n < 2:
            return out
        for name in self.cfg.baselines:
            if name == "ewma":
                out[_BASELINE + "ewma"] = b.ewma_ret
            elif name == "ar1" and b.var_target > 0:
                phi = max(-0.99, min(0.99, b.cov1 / b.var_target))
                out[_BASELINE + "ar1"] = phi * b.last_ret
        return out

    def on_bar(self, close: float, positions: dict[str, float], n_strategies: int) -> DiversityFigures:
        """Update the baselines with the bar, take this evaluation's figures, step the state machine."""
        cfg = self.cfg
        self._update_baselines(close)
        self.bars += 1
        current = {
            name: p for name, (p, at) in self.points.items() if self.bars - at <= cfg.max_forecast_age_bars
        }
        current.update(self._baseline_points())
        sigma = math.sqrt(self.base.garch_var) if self.base.garch_var > 0 else 0.0
        # Excess error over the random walk: -(point), standardised (module doc).  Only the
        # pipeline's forecasters: the baselines are fixed functions of the same bars (their
        # mutual correlation is structural), so correlation is measured among the forecasters
        # the strategies listen to.
        row = {k: -p / sigma if sigma > 0 else -p for k, p in current.items() if not k.startswith(_BASELINE)}
        self.history.append(row)
        for k in row:
            self._names[k] = self._names.get(k, 0) + 1
        votes = [
            0 if sigma > 0 and abs(p) < cfg.flat_z * sigma else (1 if p > 0 else -1 if p < 0 else 0)
            for p in current.values()
        ]
        share = consensus_share(votes)
        self.consensus_hist.append(share)
        if not math.isnan(share):
            self._shares_sum += share
            self._shares_n += 1
        crowd = crowding_index(positions, n_strategies)
        self.crowding_hist.append(crowd)
        while len(self.history) > cfg.window:
            for k in self.history.popleft():
                left = self._names[k] - 1
                if left:
                    self._names[k] = left
                else:
                    del self._names[k]
        while len(self.consensus_hist) > cfg.window:
            old = self.consensus_hist.popleft()
            if not math.isnan(old):
                self._shares_sum -= old
                self._shares_n -= 1
        while len(self.crowding_hist) > cfg.crowding_window:
            self.crowding_hist.popleft()
        corr = math.nan
        if sum(1 for c in self._names.values() if c >= cfg.min_samples) >= 2:
            series: dict[str, list[float | None]] = {k: [r.get(k) for r in self.history] for k in self._names}
            corr = mean_pairwise_correlation(series, cfg.min_samples)
        consensus = self._shares_sum / self._shares_n if self._shares_n >= cfg.min_samples else math.nan
        rise = crowd - min(self.crowding_hist)
        enough = len(current) >= cfg.min_forecasters
        collapsed = enough and (
            (not math.isnan(corr) and corr >= cfg.correlation_trip)
            or (not math.isnan(consensus) and consensus >= cfg.consensus_trip)
        )
        crowded = crowd >= cfg.crowding_trip and rise >= cfg.crowding_rise_min
        if not self.open:
            self.streak = self.streak + 1 if collapsed and crowded else 0
        else:
            diverse = not enough or (
                (math.isnan(corr) or corr < cfg.correlation_reset)
                and (math.isnan(consensus) or consensus < cfg.consensus_reset)
            )
            self.calm = self.calm + 1 if diverse or crowd < cfg.crowding_reset else 0
        for k, v in (("correlation", corr), ("consensus", consensus), ("crowding", crowd)):
            if not math.isnan(v) and v > self.peak[k]:
                self.peak[k] = v
        self.peak["forecasters"] = max(self.peak["forecasters"], float(len(current)))
        return DiversityFigures(
            correlation=corr,
            consensus=consensus,
            crowding=crowd,
            crowding_rise=rise,
            forecasters=len(current),
            samples=len(self.history),
            collapsed=collapsed,
            crowded=crowded,
        )

    def peaks(self) -> dict[str, float]:
        """Evaluations so far and the highest figures seen (NaN-free, for reports)."""
        return {"evaluations": float(self.bars), **self.peak}

    def decide(self) -> Literal["open", "closed"] | None:
        """``open`` / ``closed`` when the state changes at this evaluation, else None."""
        if not self.open and self.streak >= self.cfg.trip_after:
            self.open, self.streak, self.calm = True, 0, 0
            return "open"
        if self.open and self.calm >= self.cfg.reset_after:
            self.open, self.streak, self.calm = False, 0, 0
            return "closed"
        return None


# --- the actor --------------------------------------------------------------------------


class DiversityBreaker(Actor[DiversityConfig]):
    """See the module docstring."""

    config_type = DiversityConfig

    async def on_start(self) -> None:
        self.monitors: dict[str, SymbolMonitor] = {}
        self.positions: dict[str, dict[str, float]] = {}
        """symbol -> strategy -> signed position (from fills)."""
        self.strategies: set[str] = set()
        self.states: list[BreakerState] = []
        """Every state change published (for reports)."""
        m = self.ctx.metrics
        self._trips = m.counter("diversity_breaker_trips_total", actor=self.ctx.name)
        self._resets = m.counter("diversity_breaker_resets_total", actor=self.ctx.name)
        self._seq = 0

    def _monitor(self, symbol: str) -> SymbolMonitor:
        mon = self.monitors.get(symbol)
        if mon is None:
            mon = self.monitors[symbol] = SymbolMonitor(self.config, symbol)
        return mon

    def on_message(self, msg: Any) -> None:
        if isinstance(msg, Forecast):
            if self.config.horizons and msg.horizon not in self.config.horizons:
                return
            name = f"cloud:{msg.model_id}" if msg.version >= 2 else f"{msg.tier}:{msg.model_id}"
            self._monitor(msg.symbol).on_forecast(name, msg.point)
        elif isinstance(msg, Fill):
            self.strategies.add(msg.strategy_id)
            book = self.positions.setdefault(msg.symbol, {})
            book[msg.strategy_id] = book.get(msg.strategy_id, 0.0) + msg.side * msg.qty
        elif isinstance(msg, Bar):
            if self.config.bar_kind and msg.kind != self.config.bar_kind:
                return
            self._evaluate(msg)

    def _evaluate(self, bar: Bar) -> None:
        mon = self._monitor(bar.symbol)
        book = self.positions.get(bar.symbol, {})
        fig = mon.on_bar(bar.close, book, self.config.n_strategies or len(self.strategies))
        m = self.ctx.metrics
        sym = bar.symbol
        for gauge, value in (
            ("diversity_correlation", fig.correlation),
            ("diversity_consensus", fig.consensus),
            ("diversity_crowding", fig.crowding),
        ):
            m.gauge(gauge, symbol=sym).set(value)
        change = mon.decide()
        if change is None:
            return
        m.gauge("diversity_breaker_open", symbol=sym).set(1.0 if change == "open" else 0.0)
        net = sum(book.values())
        if change == "open":
            self._trips.inc()
            crowd = tuple(sorted(s for s, p in book.items() if p != 0 and (p > 0) == (net > 0)))
            reason = (
                f"diversity collapsed on {sym}: error correlation {fig.correlation:.2f}, consensus "
                f"{fig.consensus:.2f} over {fig.forecasters} forecasters; crowding {fig.crowding:.2f} "
                f"(+{fig.crowding_rise:.2f})"
            )
        else:
            self._resets.inc()
            opened = next(
                (s for s in reversed(self.states) if s.symbols == (sym,) and s.state == "open"), None
            )
            crowd = opened.strategies if opened is not None else ()
            reason = (
                f"diversity back on {sym}: error correlation {fig.correlation:.2f}, consensus "
                f"{fig.consensus:.2f}, crowding {fig.crowding:.2f}"
            )
        self._seq += 1
        state = BreakerState(
            breaker_id=f"{self.ctx.name}:{sym}:{self._seq}",
            ts_event=bar.ts_event,
            state=change,
            strategies=crowd,
            symbols=(sym,),
            correlation=_finite(fig.correlation),
            consensus=_finite(fig.consensus),
            crowding=fig.crowding,
            crowding_rise=fig.crowding_rise,
            forecasters=fig.forecasters,
            reason=reason,
        )
        self.states.append(state)
        self.ctx.log.warning(
            "diversity_breaker", state=change, symbol=sym, strategies=list(crowd), reason=reason
        )
        self.ctx.publish(self.config.topic, state)

    async def on_stop(self) -> None:
        path = self.config.report_path
        if path:
            _write(Path(path), msgspec.json.encode(self.report()))

    def report(self) -> dict[str, Any]:
        """Symbols open now, trip/reset counts, evaluations and the peak figures per symbol, and
        every state change."""
        return {
            "open": sorted(s for s, mon in self.monitors.items() if mon.open),
            "symbols": {s: msgspec.to_builtins(mon.peaks()) for s, mon in sorted(self.monitors.items())},
            "trips": self._trips.value,
            "resets": self._resets.value,
            "states": [msgspec.to_builtins(s) for s in self.states],
        }


def _write(path: Path, data: bytes) -> None:
    # Small, once, at stop: a blocking write is fine (as the strategy host's results).
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
