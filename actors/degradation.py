"""The degradation controller: turns load signals into a node-wide mode, with hysteresis.

Modes (:class:`~engine.messages.Mode`, a kernel type), from calm to desperate:
``NORMAL`` -> ``CONSERVE`` -> ``DEGRADED`` -> ``SURVIVAL``.  This actor only
*decides*; what each mode means for an actor is that actor's own contract,
documented in a table in its module docstring (edge reasoner, cloud proxy,
narrative ingest, sanity checker) and read from ``ctx.mode`` when it matters.

What the controller itself does in each mode (it is the one actor whose work
never degrades: it must see the load fall to lead the node back):

=========  ================================================================
mode       degradation controller
=========  ================================================================
NORMAL     evaluates every ``interval_ms``; escalates at once when a signal
           crosses an enter threshold
CONSERVE   the same; steps down only after ``min_dwell_s`` and ``cool_down_s``
           of every signal below the exit thresholds
DEGRADED   the same
SURVIVAL   the same (it never sheds its own work)
=========  ================================================================

The core is pure: :func:`evaluate` takes the previous :class:`ControllerState`
and a frozen :class:`LoadSnapshot` and returns a :class:`Decision`.  Every
signal has three *enter* thresholds (:class:`Levels`, one per mode above
NORMAL) and an *exit* threshold ``exit_ratio`` times lower.  The rules:

* escalate at once to the highest mode whose enter threshold any signal
  crosses (the safe direction is never delayed);
* step down one mode at a time, and only after the node has stayed in its
  mode ``min_dwell_s`` *and* every signal has stayed below the exit threshold
  of the current mode for ``cool_down_s`` (both on the engine clock).

A signal that wanders inside the band between exit and enter thresholds
therefore never changes the mode, and down-steps are at least
``max(min_dwell_s, cool_down_s)`` apart: no flapping.

*Load* signals (mailbox fill, shed fractions, demand) ask for at most
``load_ceiling`` (DEGRADED by default): DEGRADED is the answer to more input
than capacity (the front door sheds its oldest input, the edge conflates bars
on the full model), and its own conflation must not read as a reason to leave
the full model.  *Distress* signals (loop lag, handler latency over objective,
cloud errors and latency, an abandoned actor) may ask for any mode.

Signals (per window of ``interval_ms``): each mailbox's fill (depth over
capacity) and shed fraction (mailbox sheds plus the actor's own ``shed_total``
counter over messages offered), each actor's demand (offered rate over its
configured ``capacity_per_s``), event-loop lag, each configured stage's mean
handler latency over its objective, cloud error rate and mean cloud latency
(metric names configurable), the carbon-aware policy (:func:`carbon_advice`:
high grid intensity with calm markets asks for at least CONSERVE), and a
floor of DEGRADED while the engine has abandoned an actor.

The actor :class:`DegradationController` builds the snapshot every
``interval_ms`` from the engine's metrics and the mailbox statistics
(``stats_source``, see :meth:`DegradationController.with_stats_source`),
publishes every change as a :class:`~engine.messages.ModeChange` (with the
reason) on ``control.mode``, logs it, and sets ``ctx.runtime.mode``.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

from actors._stats import StatsReader, StatsSource
from adapters.carbon import CarbonDataError, CarbonFeedConfig, CarbonSeries, load_carbon
from engine.actor import Actor
from engine.clock import LiveClock
from engine.mailbox import MailboxStatistics
from engine.messages import Bar, Forecast, Mode, ModeChange
from engine.metrics import Metrics

__all__ = [
    "MODES",
    "ActorLoad",
    "CarbonAdvice",
    "CarbonPolicyConfig",
    "ControllerState",
    "Decision",
    "DegradationConfig",
    "DegradationController",
    "Levels",
    "LoadSnapshot",
    "SnapshotBuilder",
    "StatsSource",
    "VolatilityConfig",
    "VolatilityRegime",
    "adopt",
    "carbon_advice",
    "evaluate",
    "mode_level",
]

_NS_PER_S: Final = 1_000_000_000


MODES: Final = tuple(m.value for m in Mode)
"""The mode names by severity (index = :attr:`Mode.level`)."""


def mode_level(mode: str) -> int:
    """The severity of a mode name (0 NORMAL .. 3 SURVIVAL); raises ValueError on an unknown name."""
    return Mode.parse(mode).level


# --- configuration -----------------------------------------------------------------


class Levels(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Enter thresholds of one signal for CONSERVE, DEGRADED and SURVIVAL (non-decreasing).

    Use ``inf`` to keep a signal from ever asking for a mode.
    """

    conserve: float
    degraded: float
    survival: float

    def __post_init__(self) -> None:
        if not (self.conserve <= self.degraded <= self.survival):
            raise ValueError(
                f"thresholds must be non-decreasing: {self.conserve}, {self.degraded}, {self.survival}"
            )
        if self.conserve < 0:
            raise ValueError("thresholds must be >= 0")

    def level(self, value: float, scale: float = 1.0) -> int:
        """How many thresholds (times ``scale``) ``value`` reaches: 0..3.  NaN reaches none."""
        if not value >= self.conserve * scale:
            return 0
        if value < self.degraded * scale:
            return 1
        if value < self.survival * scale:
            return 2
        return 3


class CarbonPolicyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """When grid carbon intensity (gCO2e/kWh) should hold cloud work back.

    At or above ``high_g_per_kwh`` with a *low* volatility regime, or above
    ``very_high_g_per_kwh`` with a *normal* one, cloud work is deferred (when
    the series shows a window at most ``greener_ratio`` times today's
    intensity within ``defer_horizon_s``) or else downgraded.  A *high*
    volatility regime always runs: that is when refinements pay.
    ``exit_ratio`` is the hysteresis: the advice lifts below that fraction of
    the thresholds.  ``enabled = false`` turns the policy off.
    """

    enabled: bool = True
    high_g_per_kwh: float = 400.0
    very_high_g_per_kwh: float = 600.0
    greener_ratio: float = 0.8
    defer_horizon_s: float = 3 * 3600.0
    exit_ratio: float = 0.9


class VolatilityConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The volatility regime from forecast volatilities (or absolute bar returns).

    Regime ``high`` when the fast EWMA exceeds ``high_ratio`` times the slow
    one, ``low`` below ``low_ratio`` times; ``normal`` until ``warmup``
    observations.  Half-lives are in observations.
    """

    fast_halflife: float = 20.0
    slow_halflife: float = 500.0
    high_ratio: float = 1.5
    low_ratio: float = 0.75
    warmup: int = 50


class DegradationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The controller's thresholds.  Times on the engine clock; units in the names."""

    interval_ms: float = 250.0
    min_dwell_s: float = 2.0
    cool_down_s: float = 1.0
    exit_ratio: float = 0.6
    """Exit threshold = enter threshold x exit_ratio (0 < exit_ratio <= 1)."""
    mailbox_fill: Levels = Levels(0.5, 0.8, 0.95)
    shed_fraction: Levels = Levels(0.02, 0.10, 0.40)
    min_offered: int = 50
    """Shed fractions divide by at least this many offers, so a quiet mailbox's single shed is no panic."""
    shed_reasons: tuple[str, ...] = ("full", "evicted", "conflated", "overflow")
    """Mailbox shed reasons that count as load shedding (``overflow``: a ``block`` mailbox a sync
    publish found full; ``closed`` is a stopping actor, not load)."""
    actor_shed_counter: str = "shed_total"
    """Counter (labels ``actor``, ``reason``) where actors count work they shed themselves."""
    ignore_actors: list[str] = []
    loop_lag_us: Levels = Levels(5_000.0, 20_000.0, 100_000.0)
    measure_lag: bool = True
    """Also measure the lateness of the controller's own timer (live clock only)."""
    wall_clock_signals: Literal["auto", "on", "off"] = "auto"
    """Loop lag and latencies are wall-clock measurements; ``auto`` ignores them on a simulated
    clock, so a replay's modes (and everything that reads them) stay deterministic."""
    latency_histogram: str = "handler_latency_us"
    latency_objectives_us: dict[str, float] = {}
    """Actor name -> objective for its mean handler latency per message (microseconds)."""
    latency_ratio: Levels = Levels(1.0, 2.0, 4.0)
    capacity_per_s: dict[str, float] = {}
    """Actor name -> messages per second it sustains in NORMAL (from a benchmark or calibration run).

    With it the controller sees *demand* (offered rate over capacity), not only its symptoms: a
    node coping in DEGRADED thanks to a smaller model stays there while demand is still high,
    instead of stepping down into an overload it would at once flee again."""
    demand_ratio: Levels = Levels(0.8, 1.0, 2.0)
    cloud_requests_counter: str = "cloud_requests_total"
    cloud_errors_counter: str = "cloud_errors_total"
    cloud_latency_histogram: str = "cloud_latency_ms"
    cloud_error_rate: Levels = Levels(0.05, 0.25, 0.60)
    cloud_latency_ms: Levels = Levels(3_000.0, 8_000.0, 20_000.0)
    min_cloud_requests: int = 5
    carbon: CarbonPolicyConfig = CarbonPolicyConfig()
    carbon_feed: CarbonFeedConfig | None = None
    volatility: VolatilityConfig = VolatilityConfig()
    abandoned_floor: Mode = Mode.DEGRADED
    load_ceiling: Mode = Mode.DEGRADED
    """The most that *load* signals alone (mailbox fill, shed fractions, demand) may ask for.

    Load is what DEGRADED answers: the front door sheds its oldest input, the edge conflates bars
    per symbol on the full model, the cloud stops escalating.  Those answers are themselves sheds
    and full mailboxes, so letting load escalate further made DEGRADED's own conflation push the
    node into SURVIVAL (the cheaper model) whenever the input outran capacity, although the full
    model was keeping up with the conflated bars.  SURVIVAL is for *distress*: loop lag, handler
    latency over its objective, cloud errors or latency, an abandoned actor.  ``SURVIVAL`` here
    restores the old behaviour (load alone may ask for any mode)."""
    topic: str = "control.mode"

    def __post_init__(self) -> None:
        if not 0.0 < self.exit_ratio <= 1.0:
            raise ValueError(f"exit_ratio must be in (0, 1], got {self.exit_ratio}")
        if self.interval_ms <= 0:
            raise ValueError(f"interval_ms must be > 0, got {self.interval_ms}")
        if self.min_dwell_s < 0 or self.cool_down_s < 0:
            raise ValueError("min_dwell_s and cool_down_s must be >= 0")


# --- the carbon-aware policy -------------------------------------------------------


class CarbonAdvice(enum.StrEnum):
    RUN = "run"
    """Cloud work as usual."""
    DEFER = "defer"
    """Postpone non-urgent cloud work: a greener window is expected soon."""
    DOWNGRADE = "downgrade"
    """No greener window in sight: do less cloud work (smaller budget, smaller model)."""


def carbon_advice(
    g_per_kwh: float | None,
    regime: str,
    cfg: CarbonPolicyConfig,
    *,
    min_ahead: float | None = None,
    scale: float = 1.0,
) -> CarbonAdvice:
    """The carbon-aware policy, pure.

    ``g_per_kwh`` is the grid intensity now (None: unknown, so run);
    ``regime`` the volatility regime (``low``/``normal``/``high``);
    ``min_ahead`` the lowest intensity expected within the defer horizon;
    ``scale`` multiplies the thresholds (the controller passes the exit ratio
    to decide whether advice already given still holds).
    """
    if not cfg.enabled or g_per_kwh is None or regime == "high":
        return CarbonAdvice.RUN
    threshold = cfg.high_g_per_kwh if regime == "low" else cfg.very_high_g_per_kwh
    if g_per_kwh < threshold * scale:
        return CarbonAdvice.RUN
    if min_ahead is not None and min_ahead <= g_per_kwh * cfg.greener_ratio:
        return CarbonAdvice.DEFER
    return CarbonAdvice.DOWNGRADE


# --- snapshot, state, decision -----------------------------------------------------


class ActorLoad(msgspec.Struct, frozen=True, kw_only=True):
    """One actor's load over the last window.

    ``offered``/``shed`` are counts within the window; ``latency_us`` the mean
    handler latency per message in the window (NaN when it handled nothing);
    ``objective_us`` its latency objective (0: none); ``offered_per_s`` the
    window's offered rate and ``capacity_per_s`` what the actor sustains (0: unknown).
    """

    name: str
    depth: int = 0
    capacity: int = 0
    offered: int = 0
    shed: int = 0
    latency_us: float = math.nan
    objective_us: float = 0.0
    offered_per_s: float = 0.0
    capacity_per_s: float = 0.0


class LoadSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything :func:`evaluate` looks at, frozen at ``ts_ns`` (engine clock, ns)."""

    ts_ns: int
    actors: tuple[ActorLoad, ...] = ()
    loop_lag_us: float = 0.0
    cloud_requests: int = 0
    cloud_errors: int = 0
    cloud_latency_ms: float = math.nan
    carbon_g_per_kwh: float | None = None
    carbon_min_ahead: float | None = None
    volatility_regime: Literal["low", "normal", "high"] = "normal"
    abandoned: int = 0


class ControllerState(msgspec.Struct, frozen=True, kw_only=True):
    """What the controller remembers between evaluations.

    ``since_ns``: when the current mode began; ``calm_since_ns``: since when
    every signal has been below the current mode's exit threshold (-1: not calm).
    """

    mode: int = 0
    since_ns: int = 0
    calm_since_ns: int = -1
    changes: int = 0


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one evaluation.  ``pressure``/``hold`` are the enter/exit levels seen."""

    state: ControllerState
    previous: int
    changed: bool
    pressure: int
    hold: int
    reasons: tuple[str, ...] = ()
    carbon: CarbonAdvice = CarbonAdvice.RUN

    @property
    def mode(self) -> Mode:
        return Mode.at_level(self.state.mode)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "no pressure"


_ANY: Final = 3
"""The ceiling of a distress signal: it may ask for any mode."""


def _signals(cfg: DegradationConfig, snap: LoadSnapshot) -> list[tuple[str, float, Levels, int]]:
    """(description, value, thresholds, the highest mode level the signal may ask for)."""
    load = cfg.load_ceiling.level
    out: list[tuple[str, float, Levels, int]] = []
    for a in snap.actors:
        if a.capacity > 0:
            out.append(
                (
                    f"mailbox {a.name} fill {a.depth}/{a.capacity}",
                    a.depth / a.capacity,
                    cfg.mailbox_fill,
                    load,
                )
            )
        if a.shed > 0:
            frac = a.shed / max(a.offered, cfg.min_offered)
            out.append((f"{a.name} shed {a.shed} of {a.offered} offered", frac, cfg.shed_fraction, load))
        if a.capacity_per_s > 0:
            out.append(
                (
                    f"{a.name} demand {a.offered_per_s:,.0f}/s vs capacity {a.capacity_per_s:,.0f}/s",
                    a.offered_per_s / a.capacity_per_s,
                    cfg.demand_ratio,
                    load,
                )
            )
        if a.objective_us > 0 and not math.isnan(a.latency_us):
            out.append(
                (
                    f"{a.name} latency {a.latency_us:.0f} us vs objective {a.objective_us:.0f} us",
                    a.latency_us / a.objective_us,
                    cfg.latency_ratio,
                    _ANY,
                )
            )
    out.append((f"loop lag {snap.loop_lag_us:.0f} us", snap.loop_lag_us, cfg.loop_lag_us, _ANY))
    if snap.cloud_requests > 0 or snap.cloud_errors > 0:
        rate = snap.cloud_errors / max(snap.cloud_requests, cfg.min_cloud_requests)
        out.append(
            (f"cloud errors {snap.cloud_errors} of {snap.cloud_requests}", rate, cfg.cloud_error_rate, _ANY)
        )
        if not math.isnan(snap.cloud_latency_ms):
            out.append(
                (
                    f"cloud latency {snap.cloud_latency_ms:.0f} ms",
                    snap.cloud_latency_ms,
                    cfg.cloud_latency_ms,
                    _ANY,
                )
            )
    return out


def evaluate(cfg: DegradationConfig, state: ControllerState, snap: LoadSnapshot) -> Decision:
    """One step of the controller; pure (same inputs, same decision)."""
    now = snap.ts_ns
    signals = _signals(cfg, snap)
    enter = 0
    hold = 0
    named: list[tuple[int, int, str]] = []
    for desc, value, levels, ceiling in signals:
        e = min(levels.level(value), ceiling)
        h = min(levels.level(value, cfg.exit_ratio), ceiling)
        enter = max(enter, e)
        hold = max(hold, h)
        if h:
            named.append((e, h, desc))
    advice = carbon_advice(
        snap.carbon_g_per_kwh, snap.volatility_regime, cfg.carbon, min_ahead=snap.carbon_min_ahead
    )
    advice_hold = carbon_advice(
        snap.carbon_g_per_kwh,
        snap.volatility_regime,
        cfg.carbon,
        min_ahead=snap.carbon_min_ahead,
        scale=cfg.carbon.exit_ratio,
    )
    carbon_desc = (
        f"carbon {snap.carbon_g_per_kwh} gCO2e/kWh, volatility {snap.volatility_regime}: "
        f"{advice_hold.value} cloud work"
    )
    if advice is not CarbonAdvice.RUN:
        enter = max(enter, 1)
        named.append((1, 1, carbon_desc))
    if advice_hold is not CarbonAdvice.RUN:
        hold = max(hold, 1)
        if advice is CarbonAdvice.RUN:
            named.append((0, 1, carbon_desc))
    if snap.abandoned > 0:
        floor = mode_level(cfg.abandoned_floor)
        enter = max(enter, floor)
        hold = max(hold, floor)
        if floor:
            named.append((floor, floor, f"{snap.abandoned} actor(s) abandoned by their supervisor"))

    mode = state.mode
    if enter > mode:
        reasons = tuple(d for e, _, d in named if e > mode)
        new = ControllerState(mode=enter, since_ns=now, calm_since_ns=-1, changes=state.changes + 1)
        return Decision(
            state=new, previous=mode, changed=True, pressure=enter, hold=hold, reasons=reasons, carbon=advice
        )
    if hold >= mode:
        reasons = tuple(d for _, h, d in named if h >= mode) if mode else ()
        new = msgspec.structs.replace(state, calm_since_ns=-1)
        return Decision(
            state=new, previous=mode, changed=False, pressure=enter, hold=hold, reasons=reasons, carbon=advice
        )
    calm_since = state.calm_since_ns if state.calm_since_ns >= 0 else now
    dwell_ok = now - state.since_ns >= int(cfg.min_dwell_s * _NS_PER_S)
    calm_ok = now - calm_since >= int(cfg.cool_down_s * _NS_PER_S)
    if dwell_ok and calm_ok:
        below = MODES[mode]
        reasons = (
            f"every signal below the {below} exit thresholds for {(now - calm_since) / _NS_PER_S:.1f} s",
            *(d for _, h, d in named if h),
        )
        new = ControllerState(mode=mode - 1, since_ns=now, calm_since_ns=now, changes=state.changes + 1)
        return Decision(
            state=new, previous=mode, changed=True, pressure=enter, hold=hold, reasons=reasons, carbon=advice
        )
    new = msgspec.structs.replace(state, calm_since_ns=calm_since)
    return Decision(state=new, previous=mode, changed=False, pressure=enter, hold=hold, carbon=advice)


def adopt(state: ControllerState, mode: str, now_ns: int) -> ControllerState:
    """The state after someone else (the engine, on an abandoned actor) set ``mode``."""
    level = mode_level(mode)
    if level == state.mode:
        return state
    return ControllerState(mode=level, since_ns=now_ns, calm_since_ns=-1, changes=state.changes + 1)


# --- building snapshots from the engine --------------------------------------------


class SnapshotBuilder:
    """Turns cumulative engine counters into per-window figures (stateful; not thread-safe)."""

    def __init__(
        self, cfg: DegradationConfig, *, ignore: tuple[str, ...] = (), wall_clock: bool = True
    ) -> None:
        self.cfg = cfg
        self.wall_clock = wall_clock
        self._ignore = frozenset((*cfg.ignore_actors, *ignore))
        self._reasons = frozenset(cfg.shed_reasons)
        self._prev_mb: dict[str, tuple[int, int]] = {}
        self._prev_hist: dict[tuple[str, str], tuple[int, float]] = {}
        self._prev_counter: dict[tuple[str, str], int] = {}
        self._prev_ts: int | None = None

    def _hist_window(self, key: tuple[str, str], count: int, total: float) -> float:
        pc, ps = self._prev_hist.get(key, (0, 0.0))
        self._prev_hist[key] = (count, total)
        if count <= pc:
            return math.nan
        return (total - ps) / (count - pc)

    def _counter_window(self, key: tuple[str, str], value: int) -> int:
        prev = self._prev_counter.get(key, 0)
        self._prev_counter[key] = value
        return max(0, value - prev)

    def build(
        self,
        ts_ns: int,
        mailboxes: Mapping[str, MailboxStatistics],
        metrics: Metrics,
        *,
        own_lag_us: float = 0.0,
        carbon_g_per_kwh: float | None = None,
        carbon_min_ahead: float | None = None,
        volatility_regime: Literal["low", "normal", "high"] = "normal",
    ) -> LoadSnapshot:
        cfg = self.cfg
        actor_shed: dict[str, int] = {}
        requests = errors = abandoned = 0
        for name, labels, value in metrics.counters():
            if name == cfg.actor_shed_counter and "actor" in labels:
                d = self._counter_window((name, f"{labels['actor']}|{labels.get('reason', '')}"), value)
                actor_shed[labels["actor"]] = actor_shed.get(labels["actor"], 0) + d
            elif name == cfg.cloud_requests_counter:
                requests += self._counter_window((name, repr(sorted(labels.items()))), value)
            elif name == cfg.cloud_errors_counter:
                errors += self._counter_window((name, repr(sorted(labels.items()))), value)
            elif name == "actors_abandoned_total":
                abandoned += value
        latency: dict[str, float] = {}
        lag_us = own_lag_us if self.wall_clock else 0.0
        cloud_ms = math.nan
        cloud_n = 0
        cloud_sum = 0.0
        for name, labels, h in metrics.histograms() if self.wall_clock else ():
            if name == cfg.latency_histogram and "actor" in labels:
                latency[labels["actor"]] = self._hist_window((name, labels["actor"]), h.count, h.sum)
            elif name == "loop_lag_us" and not labels:
                w = self._hist_window((name, ""), h.count, h.sum)
                if not math.isnan(w):
                    lag_us = max(lag_us, w)
            elif name == cfg.cloud_latency_histogram:
                key = (name, repr(sorted(labels.items())))
                pc, ps = self._prev_hist.get(key, (0, 0.0))
                self._prev_hist[key] = (h.count, h.sum)
                cloud_n += h.count - pc
                cloud_sum += h.sum - ps
        if cloud_n > 0:
            cloud_ms = cloud_sum / cloud_n
        window_s = (ts_ns - self._prev_ts) / 1e9 if self._prev_ts is not None else 0.0
        self._prev_ts = ts_ns
        actors: list[ActorLoad] = []
        for name, st in sorted(mailboxes.items()):
            if name in self._ignore:
                continue
            shed_now = sum(v for r, v in st.shed_by_reason.items() if r in self._reasons)
            po, ps_ = self._prev_mb.get(name, (0, 0))
            self._prev_mb[name] = (st.offered, shed_now)
            actors.append(
                ActorLoad(
                    name=name,
                    depth=st.depth,
                    capacity=st.capacity,
                    offered=max(0, st.offered - po),
                    shed=max(0, shed_now - ps_) + actor_shed.get(name, 0),
                    latency_us=latency.get(name, math.nan),
                    objective_us=cfg.latency_objectives_us.get(name, 0.0),
                    offered_per_s=max(0, st.offered - po) / window_s if window_s > 0 else 0.0,
                    capacity_per_s=cfg.capacity_per_s.get(name, 0.0),
                )
            )
        return LoadSnapshot(
            ts_ns=ts_ns,
            actors=tuple(actors),
            loop_lag_us=lag_us,
            cloud_requests=requests,
            cloud_errors=errors,
            cloud_latency_ms=cloud_ms,
            carbon_g_per_kwh=carbon_g_per_kwh,
            carbon_min_ahead=carbon_min_ahead,
            volatility_regime=volatility_regime,
            abandoned=abandoned,
        )


class VolatilityRegime:
    """Classifies the volatility regime from a stream of positive volatility observations."""

    __slots__ = ("_a_fast", "_a_slow", "_cfg", "fast", "n", "slow")

    def __init__(self, cfg: VolatilityConfig) -> None:
        self._cfg = cfg
        self._a_fast = 1.0 - 0.5 ** (1.0 / max(cfg.fast_halflife, 1e-9))
        self._a_slow = 1.0 - 0.5 ** (1.0 / max(cfg.slow_halflife, 1e-9))
        self.fast = 0.0
        self.slow = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        """Add one observation (a forecast volatility or an absolute return); ignores non-finite or <= 0."""
        if not (value > 0.0 and math.isfinite(value)):
            return
        if self.n == 0:
            self.fast = self.slow = value
        else:
            self.fast += self._a_fast * (value - self.fast)
            self.slow += self._a_slow * (value - self.slow)
        self.n += 1

    @property
    def regime(self) -> Literal["low", "normal", "high"]:
        if self.n < self._cfg.warmup or self.slow <= 0.0:
            return "normal"
        ratio = self.fast / self.slow
        if ratio >= self._cfg.high_ratio:
            return "high"
        if ratio <= self._cfg.low_ratio:
            return "low"
        return "normal"


# --- the actor ---------------------------------------------------------------------


class DegradationController(StatsReader, Actor[DegradationConfig]):
    """Evaluates the node's load every ``interval_ms`` and publishes mode changes.

    Subscribe it to ``forecast.>`` (volatility regime from edge forecasts) or
    ``bar.>`` (from bar returns); a conflating mailbox keyed by ``symbol`` suits it.
    Mailbox statistics come from ``stats_source`` when set
    (:meth:`with_stats_source`), else from the engine's ``ctx.mailbox_statistics()``.
    """

    config_type = DegradationConfig

    async def on_start(self) -> None:
        cfg = self.config
        live = isinstance(self.ctx.clock, LiveClock)
        wall = cfg.wall_clock_signals == "on" or (cfg.wall_clock_signals == "auto" and live)
        self._builder = SnapshotBuilder(cfg, ignore=(self.ctx.name,), wall_clock=wall)
        self._measure_lag = cfg.measure_lag and wall and live
        self._vol = VolatilityRegime(cfg.volatility)
        self._last_close: dict[str, float] = {}
        now = self.ctx.clock.now_ns()
        self.state = ControllerState(mode=mode_level(self.ctx.mode), since_ns=now)
        self.history: deque[ModeChange] = deque(maxlen=10_000)
        self.last_decision: Decision | None = None
        self._carbon: CarbonSeries | None = None
        self._stats = self._find_stats_source()
        self._mode_gauge = self.ctx.metrics.gauge("degradation_mode")
        self._carbon_gauge = self.ctx.metrics.gauge("carbon_intensity_g_per_kwh")
        self._mode_gauge.set(self.state.mode)
        feed = cfg.carbon_feed
        if feed is not None:
            try:
                self._carbon = await load_carbon(feed)
            except CarbonDataError as exc:
                if feed.path:
                    raise  # a bad bundled file is a configuration error: fail loudly at start
                self.ctx.log.warning("carbon_feed_unavailable", error=str(exc))
            if feed.url:
                self.ctx.spawn(self._poll_carbon(feed), name=f"{self.ctx.name}:carbon")
        self._interval_s = cfg.interval_ms / 1000.0
        self._last_tick = time.perf_counter()
        self.ctx.call_every(int(cfg.interval_ms * 1_000_000), self._tick)

    async def _poll_carbon(self, feed: CarbonFeedConfig) -> None:
        while True:
            await self.ctx.clock.sleep(int(feed.poll_s * _NS_PER_S))
            try:
                self._carbon = await load_carbon(feed)
            except CarbonDataError as exc:
                self.ctx.metrics.counter("carbon_feed_errors_total").inc()
                self.ctx.log.warning("carbon_feed_error", error=str(exc))

    def on_message(self, msg: Any) -> None:
        match msg:
            case Forecast(volatility=v):
                self._vol.observe(v)
            case Bar(symbol=s, close=c):
                prev = self._last_close.get(s)
                self._last_close[s] = c
                if prev is not None and prev > 0 and c > 0:
                    self._vol.observe(abs(math.log(c / prev)))
            case _:
                pass

    @property
    def volatility_regime(self) -> Literal["low", "normal", "high"]:
        return self._vol.regime

    def snapshot(self) -> LoadSnapshot:
        """Build the current snapshot (advances the window)."""
        now = self.ctx.clock.now_ns()
        own_lag = 0.0
        if self._measure_lag:
            t = time.perf_counter()
            own_lag = max(0.0, (t - self._last_tick - self._interval_s) * 1e6)
            self._last_tick = t
        g = ahead = None
        if self._carbon is not None:
            g = self._carbon.intensity_at(now)
            ahead = self._carbon.min_ahead(now, int(self.config.carbon.defer_horizon_s * _NS_PER_S))
            if g is not None:
                self._carbon_gauge.set(g)
        stats = self._stats() if self._stats is not None else {}
        return self._builder.build(
            now,
            stats,
            self.ctx.metrics,
            own_lag_us=own_lag,
            carbon_g_per_kwh=g,
            carbon_min_ahead=ahead,
            volatility_regime=self._vol.regime,
        )

    def _tick(self) -> None:
        self.step(self.snapshot())

    def step(self, snap: LoadSnapshot) -> Decision:
        """Evaluate ``snap`` and apply the decision (publish, log, set the runtime's mode)."""
        self.state = adopt(self.state, self.ctx.mode, snap.ts_ns)
        decision = evaluate(self.config, self.state, snap)
        self.state = decision.state
        self.last_decision = decision
        if decision.changed:
            previous = Mode.at_level(decision.previous)
            mc = ModeChange(
                mode=decision.mode, previous=previous, reason=decision.reason, ts_event=snap.ts_ns
            )
            self.ctx.runtime.mode = decision.mode
            self.history.append(mc)
            self._mode_gauge.set(decision.state.mode)
            self.ctx.metrics.counter("mode_changes_total", mode=decision.mode).inc()
            self.ctx.log.warning(
                "mode_change",
                mode=decision.mode,
                previous=previous,
                reason=decision.reason,
                ts_event=snap.ts_ns,
            )
            self.ctx.publish(self.config.topic, mc)
        return decision
