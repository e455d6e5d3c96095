"""Versioned forecast state for the speculative protocol, and the shadow comparison.

:class:`ForecastStore` holds the current forecast per ``(symbol, horizon)``.  Edge
forecasts (version 1) become current when their basis is at least as new as the
newest basis seen.  A refinement (version >= 2 of an edge forecast's id) is applied
only while its basis is still current, or within the staleness window (at most
``staleness_events`` market events or ``staleness_ns`` behind the newest basis);
otherwise it is recorded as late and never applied.  ``on_adopt`` tells a
strategy (or anyone) about each adopted refinement.

:class:`ShadowEvaluator` scores adopted refinements against the edge forecasts
they refined, on realised returns: CRPS (from the quantiles, or Gaussian from
point and volatility; :mod:`adapters.scoring`, the one scoring module) and
directional hit rate.  Over a rolling window of resolved pairs, a tier whose CRPS
is worse than the edge's by more than the tolerance is switched off
(``on_switch_off`` is called once, with the figures).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import msgspec

from adapters.scoring import crps_forecast
from engine.messages import Forecast

__all__ = [
    "Decision",
    "ForecastStore",
    "ForecastStoreConfig",
    "Outcome",
    "ShadowConfig",
    "ShadowEvaluator",
    "crps",
    "horizon_spec",
]


class ForecastStoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Staleness window of refinements; a refinement within either bound is still applied.

    ``staleness_events``: how many market events (``basis_seq``) its basis may lag the
    newest edge basis; ``staleness_ns``: how far (ns, ``ts_event``) it may lag.  0 disables a bound;
    both 0 means only a refinement of the current forecast is applied.
    """

    staleness_events: int = 0
    staleness_ns: int = 0
    history: int = 256
    """Edge forecasts remembered per key, so a refinement can find its basis."""
    late_log: int = 1000
    """Late refinements kept for inspection (all are counted)."""


class Decision(StrEnum):
    NEW = "new"
    """An edge forecast became current."""
    OLD = "old"
    """An edge forecast older than the current basis: kept for reference, not current."""
    ADOPTED = "adopted"
    LATE = "late"
    """A refinement whose basis fell outside the staleness window, or older than one adopted."""
    DUPLICATE = "duplicate"
    """A version not newer than the one already held for that forecast id."""
    UNKNOWN = "unknown"
    """A refinement of a forecast id this store never saw (or forgot)."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`ForecastStore.offer` did with one forecast.

    ``basis`` is the edge forecast a refinement refines; ``replaced`` the forecast
    that was current before; ``lag_events``/``lag_ns`` how far the refinement's
    basis was behind the newest edge basis when it arrived.
    """

    decision: Decision
    forecast: Forecast
    basis: Forecast | None = None
    replaced: Forecast | None = None
    lag_events: int = 0
    lag_ns: int = 0


class _Key:
    __slots__ = ("current", "edge", "newest_seq", "newest_ts", "versions")

    def __init__(self) -> None:
        self.current: Forecast | None = None
        self.edge: OrderedDict[str, Forecast] = OrderedDict()
        self.versions: dict[str, int] = {}
        """Highest version applied per remembered forecast id (evicted with ``edge``)."""
        self.newest_seq = -1
        self.newest_ts = -1


class ForecastStore:
    """See the module docstring.  Not thread-safe; one per consumer."""

    def __init__(
        self,
        config: ForecastStoreConfig | None = None,
        *,
        on_adopt: Callable[[Outcome], None] | None = None,
        on_late: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.config = config or ForecastStoreConfig()
        self.on_adopt = on_adopt
        self.on_late = on_late
        self._keys: dict[tuple[str, str], _Key] = {}
        self.late: deque[Outcome] = deque(maxlen=self.config.late_log)
        self.counts: dict[str, int] = {d.value: 0 for d in Decision}

    def current(self, symbol: str, horizon: str) -> Forecast | None:
        k = self._keys.get((symbol, horizon))
        return k.current if k else None

    def offer(self, fc: Forecast) -> Outcome:
        """Apply ``fc`` under the protocol's rules; returns what happened (and counts it)."""
        k = self._keys.get((fc.symbol, fc.horizon))
        if k is None:
            k = self._keys[(fc.symbol, fc.horizon)] = _Key()
        out = self._edge(k, fc) if fc.version <= 1 else self._refinement(k, fc)
        self.counts[out.decision.value] += 1
        if out.decision is Decision.ADOPTED and self.on_adopt is not None:
            self.on_adopt(out)
        elif out.decision is Decision.LATE:
            self.late.append(out)
            if self.on_late is not None:
                self.on_late(out)
        return out

    def _edge(self, k: _Key, fc: Forecast) -> Outcome:
        k.edge[fc.forecast_id] = fc
        k.edge.move_to_end(fc.forecast_id)
        while len(k.edge) > self.config.history:
            old, _ = k.edge.popitem(last=False)
            k.versions.pop(old, None)
        k.versions.setdefault(fc.forecast_id, 1)
        if fc.basis_seq < k.newest_seq or (fc.basis_seq == k.newest_seq and fc.ts_event < k.newest_ts):
            return Outcome(decision=Decision.OLD, forecast=fc, replaced=None)
        replaced = k.current
        k.newest_seq, k.newest_ts = fc.basis_seq, fc.ts_event
        k.current = fc
        return Outcome(decision=Decision.NEW, forecast=fc, replaced=replaced)

    def _refinement(self, k: _Key, fc: Forecast) -> Outcome:
        basis = k.edge.get(fc.forecast_id)
        if basis is None:
            return Outcome(decision=Decision.UNKNOWN, forecast=fc)
        if fc.version <= k.versions.get(fc.forecast_id, 1):
            return Outcome(decision=Decision.DUPLICATE, forecast=fc, basis=basis)
        lag_events = max(0, k.newest_seq - basis.basis_seq)
        lag_ns = max(0, k.newest_ts - basis.ts_event)
        cur = k.current
        is_current = cur is not None and cur.forecast_id == fc.forecast_id
        cfg = self.config
        within = is_current or (
            (cfg.staleness_events > 0 and lag_events <= cfg.staleness_events)
            or (cfg.staleness_ns > 0 and lag_ns <= cfg.staleness_ns)
        )
        # Never let older evidence overwrite a refinement built on a newer basis.
        superseded = cur is not None and cur.version >= 2 and cur.basis_seq > basis.basis_seq
        if not within or superseded:
            return Outcome(
                decision=Decision.LATE, forecast=fc, basis=basis, lag_events=lag_events, lag_ns=lag_ns
            )
        k.versions[fc.forecast_id] = fc.version
        k.current = fc
        return Outcome(
            decision=Decision.ADOPTED,
            forecast=fc,
            basis=basis,
            replaced=cur,
            lag_events=lag_events,
            lag_ns=lag_ns,
        )


# --- scoring ----------------------------------------------------------------------

def crps(fc: Forecast, realised: float) -> float:
    """CRPS of ``fc`` for the realised return (lower is better; units of the return).

    :func:`adapters.scoring.crps_forecast`: with quantiles, twice the mean pinball loss
    over the levels (the quantile-grid CRPS); otherwise Gaussian with mean ``point`` and sd
    ``volatility``; with neither, the absolute error of the point.
    """
    return crps_forecast(fc, realised)


def _direction(fc: Forecast) -> int:
    if fc.direction_prob != 0.5:
        return 1 if fc.direction_prob > 0.5 else -1
    return (fc.point > 0) - (fc.point < 0)


_HORIZON = re.compile(r"^(\d+)(s|m|h|d|t|e)$")
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}


def horizon_spec(horizon: str) -> tuple[str, int]:
    """``"5m"`` -> ("ns", 300e9); ``"50t"`` or ``"50e"`` -> ("events", 50) (market events).

    ValueError for anything else.
    """
    m = _HORIZON.match(horizon)
    if m is None:
        raise ValueError(f"horizon must be <n>s|m|h|d|t|e, got {horizon!r}")
    n, unit = int(m.group(1)), m.group(2)
    if n <= 0:
        raise ValueError(f"horizon must be positive, got {horizon!r}")
    return ("events", n) if unit in "te" else ("ns", n * _UNIT_NS[unit])


class ShadowConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Rolling comparison; ``max_crps_ratio``: switch off when refined/edge CRPS exceeds it."""

    window: int = 50
    min_pairs: int = 20
    max_crps_ratio: float = 1.0
    enabled: bool = True
    """False: measure only, never switch off."""
    max_pending: int = 10_000


class _Pending(msgspec.Struct):
    refined: Forecast
    edge: Forecast
    entry_price: float
    target_ts: int
    events_left: int


class ShadowEvaluator:
    """Pairs (refined, edge) resolved on realised log returns; see the module docstring."""

    def __init__(
        self,
        config: ShadowConfig | None = None,
        *,
        on_switch_off: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config or ShadowConfig()
        self.on_switch_off = on_switch_off
        self._last_price: dict[str, float] = {}
        self._entry: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, list[_Pending]] = {}
        self._window: deque[tuple[float, float, int, int]] = deque(maxlen=self.config.window)
        self.disabled_tiers: set[str] = set()
        self.resolved = 0
        self.dropped = 0
        self._sum_ref = self._sum_edge = 0.0
        self._hits_ref = self._hits_edge = self._decided_ref = self._decided_edge = 0

    def tier_enabled(self, tier: str) -> bool:
        return tier not in self.disabled_tiers

    def on_edge(self, fc: Forecast) -> None:
        """Remember the price when an edge forecast was made (its entry price)."""
        price = self._last_price.get(fc.symbol)
        if price is not None:
            self._entry[fc.forecast_id] = price
            while len(self._entry) > self.config.max_pending:
                self._entry.popitem(last=False)

    def on_adopted(self, refined: Forecast, edge: Forecast) -> bool:
        """Queue a pair for scoring; False (counted in ``dropped``) without an entry price."""
        entry = self._entry.get(edge.forecast_id)
        try:
            kind, n = horizon_spec(edge.horizon)
        except ValueError:
            entry = None
        if entry is None or sum(len(v) for v in self._pending.values()) >= self.config.max_pending:
            self.dropped += 1
            return False
        target = edge.ts_event + n if kind == "ns" else 0
        events = n if kind == "events" else 0
        self._pending.setdefault(edge.symbol, []).append(_Pending(refined, edge, entry, target, events))
        return True

    def on_price(self, symbol: str, ts_event: int, price: float) -> int:
        """Feed one market price; resolves due pairs; returns how many resolved."""
        if price <= 0.0 or not math.isfinite(price):
            return 0
        self._last_price[symbol] = price
        pend = self._pending.get(symbol)
        if not pend:
            return 0
        keep: list[_Pending] = []
        done = 0
        for p in pend:
            if p.events_left:
                p.events_left -= 1
                due = p.events_left == 0
            else:
                due = ts_event >= p.target_ts
            if not due:
                keep.append(p)
                continue
            self._score(p, math.log(price / p.entry_price))
            done += 1
        self._pending[symbol] = keep
        return done

    def _score(self, p: _Pending, realised: float) -> None:
        c_ref, c_edge = crps(p.refined, realised), crps(p.edge, realised)
        sign = (realised > 0) - (realised < 0)
        d_ref, d_edge = _direction(p.refined), _direction(p.edge)
        hit_ref = 2 if not sign or not d_ref else int(d_ref == sign)
        hit_edge = 2 if not sign or not d_edge else int(d_edge == sign)
        self._window.append((c_ref, c_edge, hit_ref, hit_edge))
        self.resolved += 1
        self._sum_ref += c_ref
        self._sum_edge += c_edge
        if hit_ref != 2:
            self._decided_ref += 1
            self._hits_ref += hit_ref
        if hit_edge != 2:
            self._decided_edge += 1
            self._hits_edge += hit_edge
        tier = p.refined.tier
        cfg = self.config
        if cfg.enabled and tier not in self.disabled_tiers and len(self._window) >= cfg.min_pairs:
            ratio = self.rolling_ratio()
            if ratio > cfg.max_crps_ratio:
                self.disabled_tiers.add(tier)
                if self.on_switch_off is not None:
                    self.on_switch_off(tier, self.summary())

    def rolling_ratio(self) -> float:
        """Mean refined CRPS / mean edge CRPS over the window (NaN when empty)."""
        if not self._window:
            return math.nan
        ref = sum(w[0] for w in self._window)
        edge = sum(w[1] for w in self._window)
        return ref / edge if edge > 0 else (math.inf if ref > 0 else 1.0)

    def summary(self) -> dict[str, Any]:
        """All-time and rolling figures; CRPS in return units, hit rates in [0, 1]."""
        n = self.resolved
        return {
            "pairs": n,
            "pending": sum(len(v) for v in self._pending.values()),
            "dropped": self.dropped,
            "crps_refined_mean": self._sum_ref / n if n else math.nan,
            "crps_edge_mean": self._sum_edge / n if n else math.nan,
            "crps_ratio": self._sum_ref / self._sum_edge if n and self._sum_edge > 0 else math.nan,
            "crps_ratio_rolling": self.rolling_ratio(),
            "hit_rate_refined": self._hits_ref / self._decided_ref if self._decided_ref else math.nan,
            "hit_rate_edge": self._hits_edge / self._decided_edge if self._decided_edge else math.nan,
            "disabled_tiers": sorted(self.disabled_tiers),
        }
