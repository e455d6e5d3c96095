"""The overload experiment: 3x the sustainable load for 60 s, and back.

``python -m tools.overload [--seconds 60] [--factor 3] [--json] [--no-controller]``

What runs (one engine, live clock, uvloop):

* ``source`` - a synthetic market-data source: quotes for ``--symbols``
  symbols at a scheduled rate (phases of (seconds, events/s)), published on
  ``md.<SYM>`` from a 1 ms engine-clock timer that catches up on whatever is
  due, so a late loop does not lower the offered load.
* ``forecaster`` - a CPU-costly stand-in for the edge reasoner: per quote it
  runs a small numpy MLP repeatedly until ``--full-cost-us`` of CPU time
  has passed (``--small-cost-us`` with the small model of DEGRADED and
  SURVIVAL), then publishes a :class:`~engine.messages.Forecast`.  It obeys
  :func:`actors.degradation.actions_for`: the small model, in-batch
  conflation per symbol (``strong``), and in ``latest_only`` also dropping
  quotes older than ``--budget-us`` before working on them.  Everything it
  drops is counted in ``shed_total{actor=forecaster,reason=...}``.
  Mailbox: ``drop_oldest``, ``--mailbox`` messages.
* with ``--forecaster edge`` instead: the real
  :class:`~actors.edge_reasoner.EdgeReasoner` (ONNX Runtime, the shipped
  ``es-1m`` model) on one-minute bars of a seeded random walk per symbol,
  behind a mailbox that keeps the latest bar per symbol; its degraded form
  skips the explanations (occlusion attributions).  A ``probe`` actor times
  each forecast from its bar's ``ts_event``.  The shed accounting then counts
  each symbol's first bar, which makes no forecast (features need a previous
  close).
* ``degradation`` - the real :class:`~actors.degradation.DegradationController`,
  told the forecaster's measured capacity (its demand signal).

Steps: (1) calibration, controller off: saturate the forecaster for
``--calibrate-s`` seconds; its forecasts per second are the *capacity*.
Unless ``--budget-us`` is given, a second short run at ``--warm-factor`` x
capacity measures the unloaded p99; the latency objective is ``--slo-factor``
(2) times it, and the stand-in's staleness cut in SURVIVAL is that objective
minus twice its small-model cost (the operator's latency budget).  (2) the
run: ``--warm-s`` at ``--warm-factor`` x capacity (the unloaded baseline),
``--seconds`` at ``--factor`` x capacity, ``--recovery-s`` at
``--recovery-factor`` x capacity.  Reported: goodput (forecasts/s during
the overload) over capacity, edge latency p50/p99 (quote receipt to
forecast, microseconds) unloaded vs overloaded, event-loop lag, resident
memory (start, peak, growth), the mailbox's peak depth, the shed accounting
(source events = forecasts + mailbox sheds + forecaster sheds, exactly), the
mode timeline and the time back to NORMAL after the load drops.

``--no-controller`` runs the same schedule with the controller absent (the
baseline that shows what the controller buys).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import operator
import os
import sys
import time
from typing import Any, Literal

import msgspec
import numpy as np

from actors.degradation import DegradationConfig, DegradationController, Levels
from engine.actor import Actor
from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine, run_on_loop
from engine.mailbox import Mailbox
from engine.messages import Bar, Forecast, Mode, ModeChange, Quote
from engine.testing import Probe
from tools.benchlib import emit

__all__ = [
    "OverloadParams",
    "OverloadResult",
    "SourceConfig",
    "StandInConfig",
    "StandInForecaster",
    "SyntheticSource",
    "main",
    "run_experiment",
]

_NS = 1_000_000_000


# --- the actors --------------------------------------------------------------------------


class SourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``phases``: (seconds, events per second) from ``start_ns`` (live clock, ns; 0: at start-up)."""

    start_ns: int = 0
    phases: tuple[tuple[float, float], ...]
    symbols: int = 20
    tick_ms: float = 1.0
    stop_when_done: bool = True
    kind: Literal["quote", "bar"] = "quote"
    """``bar``: one-minute bars of a seeded random walk per symbol (what the edge reasoner forecasts on)."""


class SyntheticSource(Actor[SourceConfig]):
    """Publishes quotes on a schedule; asks the engine to shut down after the last phase."""

    config_type = SourceConfig

    async def on_start(self) -> None:
        cfg = self.config
        self._emitted = 0
        self._bounds: list[tuple[int, int, float, float]] = []  # (t0, t1, rate, events before t0)
        t = cfg.start_ns or self.ctx.clock.now_ns()
        before = 0.0
        for seconds, rate in cfg.phases:
            t1 = t + int(seconds * _NS)
            self._bounds.append((t, t1, rate, before))
            before += seconds * rate
            t = t1
        self._end = t
        self._total = int(before)
        self._syms = [f"S{i:02d}" for i in range(cfg.symbols)]
        self._counter = self.ctx.metrics.counter("source_events_total")
        self._done = False
        self._rng = np.random.default_rng(11)
        self._px = [100.0 + i for i in range(cfg.symbols)]
        self.ctx.call_every(int(cfg.tick_ms * 1_000_000), self._tick)

    def _due(self, now: int) -> int:
        for t0, t1, rate, before in self._bounds:
            if now < t1:
                return int(before + max(0, now - t0) / _NS * rate) if now >= t0 else int(before)
        return self._total

    def _tick(self) -> None:
        now = self.ctx.clock.now_ns()
        due = self._due(now)
        k = self._emitted
        if due > k:
            syms = self._syms
            n = len(syms)
            publish = self.ctx.publish
            if self.config.kind == "bar":
                steps = self._rng.standard_normal(due - k) * 1e-3
                for j, i in enumerate(range(k, due)):
                    publish(f"bar.{syms[i % n]}", self._bar(i, now, float(steps[j])))
            else:
                for i in range(k, due):
                    sym = syms[i % n]
                    q = Quote(symbol=sym, ts_event=now, ts_recv=now, seq=i + 1, bid=100.0, ask=100.25)
                    publish(f"md.{sym}", q)
            self._counter.inc(due - k)
            self._emitted = due
        if now >= self._end and not self._done and self.config.stop_when_done:
            self._done = True
            self.ctx.request_shutdown("overload schedule finished")

    def _bar(self, i: int, now: int, step: float) -> Bar:
        k = i % len(self._syms)
        o = self._px[k]
        c = o * math.exp(step)
        self._px[k] = c
        return Bar(
            symbol=self._syms[k],
            ts_event=now,
            ts_open=now - 60 * _NS,
            seq=i + 1,
            open=o,
            high=max(o, c) * 1.0002,
            low=min(o, c) * 0.9998,
            close=c,
            volume=100.0,
            dollar_volume=100.0 * c,
            n_trades=20,
            buy_volume=50.0,
            kind="time",
            spec=60e9,
        )


class ProbeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Phase boundaries (live clock, ns) and names for the per-phase latency histograms."""

    phase_bounds_ns: tuple[int, ...] = ()
    phase_names: tuple[str, ...] = ()


class ForecastLatencyProbe(Actor[ProbeConfig]):
    """Records ``edge_latency_us{phase}``: forecast arrival minus its ``ts_event`` (the bar's close)."""

    config_type = ProbeConfig
    batch_size = 1024

    async def on_start(self) -> None:
        m = self.ctx.metrics
        self._n = m.counter("forecasts_total", actor="forecaster")
        names = self.config.phase_names or ("all",)
        self._lat = [m.histogram("edge_latency_us", phase=p) for p in names]

    def on_batch(self, msgs: list[Any]) -> None:
        now = self.ctx.clock.now_ns()
        b = self.config.phase_bounds_ns
        for f in msgs:
            if not isinstance(f, Forecast):
                continue
            i = bisect.bisect_right(b, f.ts_event) - 1
            self._lat[max(0, min(i, len(self._lat) - 1))].observe((now - f.ts_event) / 1000.0)
        self._n.inc(len(msgs))


class StandInConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Costs in microseconds of CPU time per forecast; ``budget_us``: the staleness cut in SURVIVAL.

    ``phase_bounds_ns``: phase boundaries (live clock, ns) for per-phase latency histograms.
    """

    full_cost_us: float = 400.0
    small_cost_us: float = 100.0
    budget_us: float = 1500.0
    phase_bounds_ns: tuple[int, ...] = ()
    phase_names: tuple[str, ...] = ()
    width: int = 32


class StandInForecaster(Actor[StandInConfig]):
    """A CPU-costly stand-in for the edge reasoner that obeys the degradation mode."""

    config_type = StandInConfig
    batch_size = 64

    async def on_start(self) -> None:
        cfg = self.config
        rng = np.random.default_rng(7)
        self._w1 = rng.standard_normal((cfg.width, cfg.width)) / math.sqrt(cfg.width)
        self._w2 = rng.standard_normal((4, cfg.width)) / math.sqrt(cfg.width)
        self._x = rng.standard_normal(cfg.width)
        m = self.ctx.metrics
        name = self.ctx.name
        self._forecasts = m.counter("forecasts_total", actor=name)
        self._shed_stale = m.counter("shed_total", actor=name, reason="stale")
        self._shed_conflated = m.counter("shed_total", actor=name, reason="conflated")
        self._lat = [m.histogram("edge_latency_us", phase=p) for p in cfg.phase_names] or [
            m.histogram("edge_latency_us", phase="all")
        ]
        self._small = m.counter("forecasts_small_model_total", actor=name)

    def _phase(self, ts: int) -> int:
        b = self.config.phase_bounds_ns
        i = 0
        while i < len(b) and ts >= b[i]:
            i += 1
        return max(0, min(i - 1, len(self._lat) - 1))

    def _work(self, cost_us: float) -> float:
        # A small MLP forward pass, repeated until the CPU budget is spent: real CPU work with a
        # fixed cost, so capacity does not hinge on how fast this machine's BLAS happens to be.
        deadline = time.thread_time_ns() + int(cost_us * 1000)
        x = self._x
        out = 0.0
        while True:
            h = np.tanh(self._w1 @ x)
            out = float((self._w2 @ h)[0])
            if time.thread_time_ns() >= deadline:
                return out

    async def on_batch(self, msgs: list[Any]) -> None:
        items = msgs
        if Mode.parse(self.ctx.mode).level >= Mode.DEGRADED.level:
            latest: dict[str, Any] = {}
            for q in msgs:
                latest[q.symbol] = q
            if len(latest) < len(msgs):
                self._shed_conflated.inc(len(msgs) - len(latest))
                items = list(latest.values())
        clock = self.ctx.clock
        stale_ns = int(self.config.budget_us * 1000)
        for q in items:
            level = Mode.parse(self.ctx.mode).level
            if level >= Mode.SURVIVAL.level and clock.now_ns() - q.ts_recv > stale_ns:
                self._shed_stale.inc()
                continue
            small = level >= Mode.DEGRADED.level
            point = self._work(self.config.small_cost_us if small else self.config.full_cost_us)
            now = clock.now_ns()
            self.ctx.publish(
                f"forecast.{q.symbol}",
                Forecast(
                    forecast_id=f"{q.symbol}-{q.seq}",
                    symbol=q.symbol,
                    horizon="1s",
                    basis_seq=q.seq,
                    ts_event=now,
                    model_id="standin-small" if small else "standin-full",
                    point=point * 1e-4,
                    volatility=1e-3,
                ),
            )
            self._forecasts.inc()
            if small:
                self._small.inc()
            self._lat[self._phase(q.ts_recv)].observe((now - q.ts_recv) / 1000.0)
            # Yield between forecasts so timers (the source, the controller) keep their pace.
            await asyncio.sleep(0)


# --- the experiment ----------------------------------------------------------------------------


class OverloadParams(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float = 60.0
    factor: float = 3.0
    warm_s: float = 5.0
    warm_factor: float = 0.5
    recovery_s: float = 15.0
    recovery_factor: float = 0.3
    calibrate_s: float = 3.0
    capacity_per_s: float = 0.0
    """Skip calibration and use this capacity (forecasts/s) when > 0."""
    symbols: int = 20
    full_cost_us: float = 400.0
    small_cost_us: float = 100.0
    budget_us: float = 0.0
    """The stand-in's staleness cut in SURVIVAL; 0: derived from ``slo_factor`` x a measured unloaded p99."""
    slo_factor: float = 2.0
    forecaster: Literal["standin", "edge"] = "standin"
    """``edge``: the real :class:`actors.edge_reasoner.EdgeReasoner` on synthetic bars (its degraded
    form skips explanations); the mailbox then conflates per symbol with ``--symbols`` slots."""
    edge_saturate_per_s: float = 5_000.0
    """Bars per second offered to measure the edge reasoner's capacity (well above it, yet cheap
    enough that the source itself does not eat the CPU it measures)."""
    mailbox: int = 1024
    controller: bool = True
    interval_ms: float = 100.0
    min_dwell_s: float = 1.0
    cool_down_s: float = 0.5
    lag_levels_us: tuple[float, float, float] = (5_000.0, 20_000.0, 100_000.0)
    """The controller's loop-lag thresholds (CONSERVE, DEGRADED, SURVIVAL)."""
    loop: str = "uvloop"


class OverloadResult(msgspec.Struct, kw_only=True):
    capacity_per_s: float
    budget_us: float
    reference_p99_us: float
    offered_per_s: float
    goodput_per_s: float
    goodput_ratio: float
    p50_unloaded_us: float
    p99_unloaded_us: float
    p50_overload_us: float
    p99_overload_us: float
    p99_ratio: float
    p99_recovery_us: float
    loop_lag_p99_us: float
    rss_start_mb: float
    rss_peak_mb: float
    rss_growth_mb: float
    rss_growth_second_half_mb: float
    mailbox_capacity: int
    mailbox_peak: int
    events: int
    forecasts: int
    forecasts_warm: int
    forecasts_overload: int
    forecasts_degraded: int
    """Stand-in: forecasts by the small model; edge: explanations skipped."""
    shed_mailbox: dict[str, int]
    shed_forecaster: dict[str, int]
    unaccounted: int
    modes: list[tuple[float, str, str]]
    worst_mode_overload: str
    time_to_normal_s: float | None
    final_mode: str
    wall_s: float


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _add(
    engine: Engine,
    name: str,
    cls: type[Actor[Any]],
    cfg: msgspec.Struct,
    mb: Mailbox[Any],
    subscribe: list[str],
) -> None:
    """``engine.add_actor`` with an explicit mailbox.

    Subscribes here rather than through ``add_actor``: its ``mailbox or default`` test
    treats an *empty* Mailbox (``len() == 0``) as absent and substitutes a default one.
    """
    engine.add_actor(name, cls, cfg)
    cell = engine.cells[name]
    if cell.mailbox is not mb:
        cell.mailbox = mb
        engine.bus.track(name, mb)
    for pattern in subscribe:
        engine.bus.subscribe(pattern, mb)


def _kind(p: OverloadParams) -> Literal["quote", "bar"]:
    return "bar" if p.forecaster == "edge" else "quote"


def _engine() -> Engine:
    return Engine(EngineConfig(engine=EngineSection(shutdown_deadline_s=10.0, lag_interval_ms=20.0)))


def _add_forecaster(
    engine: Engine,
    p: OverloadParams,
    *,
    budget_us: float,
    bounds: tuple[int, ...],
    names: tuple[str, ...],
    mailbox: int,
) -> None:
    """The forecaster under test, named ``forecaster`` either way, and (edge) its latency probe."""
    if p.forecaster == "standin":
        cfg = StandInConfig(
            full_cost_us=p.full_cost_us,
            small_cost_us=p.small_cost_us,
            budget_us=budget_us,
            phase_bounds_ns=bounds,
            phase_names=names,
        )
        _add(
            engine,
            "forecaster",
            StandInForecaster,
            cfg,
            Mailbox(mailbox, "drop_oldest", name="forecaster"),
            ["md.>"],
        )
        return
    from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig

    # The real edge reasoner on one-minute bars; its mailbox keeps the latest bar per symbol.
    edge_cfg = EdgeReasonerConfig(flush="deadline", emit_warmup=True, every_n_bars=1)
    key = operator.attrgetter("symbol")
    _add(
        engine,
        "forecaster",
        EdgeReasoner,
        edge_cfg,
        Mailbox(mailbox, "conflate", name="forecaster", key=key),
        ["bar.>"],
    )
    probe = ProbeConfig(phase_bounds_ns=bounds, phase_names=names)
    _add(
        engine,
        "probe",
        ForecastLatencyProbe,
        probe,
        Mailbox(1 << 20, "drop_newest", name="probe"),
        ["forecast.>"],
    )


async def _measure(p: OverloadParams, rate: float, seconds: float, mailbox: int) -> tuple[float, float]:
    """(forecasts per second, p99 latency in us) of the full model alone at ``rate`` (controller off)."""
    engine = _engine()
    start = time.time_ns() + 100_000_000
    settle_s = 0.3
    bounds = (start, start + int(settle_s * _NS))
    engine.add_actor(
        "source",
        SyntheticSource,
        SourceConfig(start_ns=start, phases=((settle_s + seconds, rate),), symbols=p.symbols, kind=_kind(p)),
    )
    _add_forecaster(engine, p, budget_us=1e12, bounds=bounds, names=("settle", "measure"), mailbox=mailbox)
    await engine.run(install_signals=False)
    h = engine.metrics.histogram("edge_latency_us", phase="measure")
    return h.count / seconds, h.percentile(0.99)


async def run_experiment(p: OverloadParams) -> OverloadResult:
    """Calibrate (unless ``capacity_per_s`` is given), then run the schedule; see the module docstring."""
    t_wall = time.perf_counter()
    capacity = p.capacity_per_s
    if capacity <= 0:
        # 5x the ideal capacity saturates for sure; a short mailbox keeps what is still queued
        # when the window closes from counting as capacity.
        sat = 5e6 / p.full_cost_us if p.forecaster == "standin" else p.edge_saturate_per_s
        capacity, _ = await _measure(p, sat, p.calibrate_s, 32 if p.forecaster == "standin" else p.symbols)
    budget = p.budget_us
    reference_p99 = math.nan
    if budget <= 0 and p.forecaster == "standin":
        # The latency objective is slo_factor x the unloaded p99, measured first, as an operator
        # would; the stand-in drops quotes too old to make it in time (minus its small-model cost,
        # stretched by how much slower than CPU time the wall clock runs on this machine).
        _, reference_p99 = await _measure(p, p.warm_factor * capacity, p.calibrate_s, p.mailbox)
        stretch = max(1.0, 1e6 / (capacity * p.full_cost_us))
        budget = max(p.slo_factor * reference_p99 - 2 * p.small_cost_us * stretch, p.small_cost_us * stretch)
    engine = _engine()
    start = time.time_ns() + 200_000_000
    phases = (
        (p.warm_s, p.warm_factor * capacity),
        (p.seconds, p.factor * capacity),
        (p.recovery_s, p.recovery_factor * capacity),
    )
    bounds = (start, start + int(p.warm_s * _NS), start + int((p.warm_s + p.seconds) * _NS))
    recovery_start_ns = bounds[2]
    engine.add_actor(
        "source",
        SyntheticSource,
        SourceConfig(start_ns=start, phases=phases, symbols=p.symbols, kind=_kind(p)),
    )
    names = ("warm", "overload", "recovery")
    _add_forecaster(engine, p, budget_us=budget, bounds=bounds, names=names, mailbox=p.mailbox)
    if p.controller:
        _add(
            engine,
            "degradation",
            DegradationController.with_stats_source(engine.mailbox_statistics),
            DegradationConfig(
                interval_ms=p.interval_ms,
                min_dwell_s=p.min_dwell_s,
                cool_down_s=p.cool_down_s,
                capacity_per_s={"forecaster": capacity},
                loop_lag_us=Levels(*p.lag_levels_us),
            ),
            Mailbox(64, "conflate", name="degradation", key=lambda m: getattr(m, "symbol", "")),
            ["forecast.>"],
        )
    modes = Probe(engine.bus, "control.mode")
    # Resident memory from the start of the overload (models and warm-up are loaded by then) to the end.
    rss_samples: list[tuple[int, float]] = [(time.time_ns(), _rss_mb())]

    async def sample_rss() -> None:
        while True:
            rss_samples.append((time.time_ns(), _rss_mb()))
            await asyncio.sleep(0.25)

    sampler = asyncio.get_running_loop().create_task(sample_rss())
    try:
        summary = await engine.run(install_signals=False)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    rss_samples.append((time.time_ns(), _rss_mb()))
    rss0 = [v for t, v in rss_samples if t <= bounds[1]][-1]
    rss_peak = max(v for t, v in rss_samples if t >= bounds[1] or v == rss0)
    # Growth in the second half of the overload says whether memory levels off or keeps climbing.
    mid = (bounds[1] + bounds[2]) // 2
    rss_mid = [v for t, v in rss_samples if t <= mid][-1]
    rss_end = [v for t, v in rss_samples if t <= bounds[2]][-1]
    m = engine.metrics
    warm = m.histogram("edge_latency_us", phase="warm")
    over = m.histogram("edge_latency_us", phase="overload")
    rec = m.histogram("edge_latency_us", phase="recovery")
    mb = summary.mailboxes["forecaster"]
    events = m.counter("source_events_total").value
    forecasts = m.counter("forecasts_total", actor="forecaster").value
    shed_f = {r: m.counter("shed_total", actor="forecaster", reason=r).value for r in ("stale", "conflated")}
    if p.forecaster == "edge":
        # The edge reasoner's features need a previous bar: each symbol's first bar makes no forecast.
        shed_f = {"first_bar": min(p.symbols, events)}
    unaccounted = events - (forecasts + mb.shed + sum(shed_f.values()) + mb.depth)
    changes = [c for c in modes.drain() if isinstance(c, ModeChange)]
    timeline = [((c.ts_event - start) / _NS, c.mode, c.reason) for c in changes]
    order = ("NORMAL", "CONSERVE", "DEGRADED", "SURVIVAL")
    in_over = [c.mode for c in changes if bounds[1] <= c.ts_event < bounds[2]]
    before = [c.mode for c in changes if c.ts_event < bounds[1]]
    worst = max([*(before[-1:] or ["NORMAL"]), *in_over], key=order.index)
    back = [c for c in changes if c.ts_event >= recovery_start_ns and c.mode == "NORMAL"]
    final = changes[-1].mode if changes else "NORMAL"
    lag = m.histogram("loop_lag_us")
    return OverloadResult(
        capacity_per_s=capacity,
        budget_us=budget,
        reference_p99_us=reference_p99,
        offered_per_s=p.factor * capacity,
        goodput_per_s=over.count / p.seconds,
        goodput_ratio=over.count / p.seconds / capacity,
        p50_unloaded_us=warm.percentile(0.5),
        p99_unloaded_us=warm.percentile(0.99),
        p50_overload_us=over.percentile(0.5),
        p99_overload_us=over.percentile(0.99),
        p99_ratio=over.percentile(0.99) / warm.percentile(0.99),
        p99_recovery_us=rec.percentile(0.99),
        loop_lag_p99_us=lag.percentile(0.99),
        rss_start_mb=rss0,
        rss_peak_mb=rss_peak,
        rss_growth_mb=rss_peak - rss0,
        rss_growth_second_half_mb=rss_end - rss_mid,
        mailbox_capacity=mb.capacity,
        mailbox_peak=mb.peak_depth,
        events=events,
        forecasts=forecasts,
        forecasts_warm=warm.count,
        forecasts_overload=over.count,
        forecasts_degraded=(
            m.counter("forecasts_small_model_total", actor="forecaster").value
            if p.forecaster == "standin"
            else m.counter("edge_traces_skipped_total", actor="forecaster").value
        ),
        shed_mailbox=dict(mb.shed_by_reason),
        shed_forecaster=shed_f,
        unaccounted=unaccounted,
        modes=timeline,
        worst_mode_overload=worst,
        time_to_normal_s=(back[0].ts_event - recovery_start_ns) / _NS if back else None,
        final_mode=final,
        wall_s=time.perf_counter() - t_wall,
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.overload", description=__doc__.split("\n")[0])
    d = OverloadParams()
    ap.add_argument("--seconds", type=float, default=d.seconds, help="overload duration")
    ap.add_argument("--factor", type=float, default=d.factor, help="overload = factor x capacity")
    ap.add_argument("--warm-s", type=float, default=d.warm_s)
    ap.add_argument("--warm-factor", type=float, default=d.warm_factor)
    ap.add_argument("--recovery-s", type=float, default=d.recovery_s)
    ap.add_argument("--recovery-factor", type=float, default=d.recovery_factor)
    ap.add_argument("--calibrate-s", type=float, default=d.calibrate_s)
    ap.add_argument("--capacity", type=float, default=0.0, help="skip calibration: forecasts/s")
    ap.add_argument("--symbols", type=int, default=d.symbols)
    ap.add_argument("--full-cost-us", type=float, default=d.full_cost_us)
    ap.add_argument("--small-cost-us", type=float, default=d.small_cost_us)
    ap.add_argument("--budget-us", type=float, default=d.budget_us, help="0: from --slo-factor")
    ap.add_argument("--slo-factor", type=float, default=d.slo_factor)
    ap.add_argument("--mailbox", type=int, default=d.mailbox)
    ap.add_argument("--no-controller", action="store_true")
    ap.add_argument("--forecaster", choices=("standin", "edge"), default=d.forecaster)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--json", action="store_true", help="JSON lines (benchlib format)")
    ap.add_argument("--raw", action="store_true", help="print the whole result as one JSON object")
    ap.add_argument("--log-level", default="error", choices=("debug", "info", "warning", "error"))
    a = ap.parse_args(argv)
    p = OverloadParams(
        seconds=a.seconds,
        factor=a.factor,
        warm_s=a.warm_s,
        warm_factor=a.warm_factor,
        recovery_s=a.recovery_s,
        recovery_factor=a.recovery_factor,
        calibrate_s=a.calibrate_s,
        capacity_per_s=a.capacity,
        symbols=a.symbols,
        full_cost_us=a.full_cost_us,
        small_cost_us=a.small_cost_us,
        budget_us=a.budget_us,
        slo_factor=a.slo_factor,
        mailbox=a.mailbox,
        controller=not a.no_controller,
        forecaster=a.forecaster,
        loop=a.loop,
    )
    from engine.logging import configure_logging

    # The controller logs every mode change; the timeline is printed below, keep stdout for figures.
    configure_logging("console", a.log_level)
    r = run_on_loop(run_experiment(p), a.loop)
    if a.raw:
        print(json.dumps(msgspec.to_builtins(r)))
        return 0
    ctx: dict[str, Any] = {
        "seconds": p.seconds,
        "factor": p.factor,
        "controller": p.controller,
        "forecaster": p.forecaster,
        "loop": p.loop,
        "full_cost_us": p.full_cost_us,
        "small_cost_us": p.small_cost_us,
    }
    figs: list[tuple[str, float, str, dict[str, Any]]] = [
        ("capacity_per_s", r.capacity_per_s, "forecasts/s", {}),
        (
            "budget_us",
            r.budget_us,
            "us",
            {"reference_p99_us": r.reference_p99_us, "slo_factor": p.slo_factor},
        ),
        ("offered_per_s", r.offered_per_s, "events/s", {}),
        ("goodput_per_s", r.goodput_per_s, "forecasts/s", {}),
        ("goodput_ratio", r.goodput_ratio, "x capacity", {}),
        (
            "p99_overload_us",
            r.p99_overload_us,
            "us",
            {"baseline": "unloaded", "baseline_value": r.p99_unloaded_us},
        ),
        (
            "p50_overload_us",
            r.p50_overload_us,
            "us",
            {"baseline": "unloaded", "baseline_value": r.p50_unloaded_us},
        ),
        ("loop_lag_p99_us", r.loop_lag_p99_us, "us", {}),
        (
            "rss_growth_mb",
            r.rss_growth_mb,
            "MB",
            {
                "rss_start_mb": r.rss_start_mb,
                "rss_peak_mb": r.rss_peak_mb,
                "second_half_mb": r.rss_growth_second_half_mb,
            },
        ),
        ("mailbox_peak", float(r.mailbox_peak), "msgs", {"capacity": r.mailbox_capacity}),
        ("shed_total", float(sum(r.shed_mailbox.values()) + sum(r.shed_forecaster.values())), "msgs", {}),
        ("unaccounted", float(r.unaccounted), "msgs", {"events": r.events, "forecasts": r.forecasts}),
    ]
    if p.controller:
        modes = {"worst_mode": r.worst_mode_overload, "final_mode": r.final_mode}
        figs.append(("returned_to_normal", float(r.time_to_normal_s is not None), "bool", modes))
        if r.time_to_normal_s is not None:
            figs.append(("time_to_normal_s", r.time_to_normal_s, "s", {}))
    for name, value, unit, extra in figs:
        emit("overload", name, value, unit, as_json=a.json, **ctx, **extra)
    if not a.json:
        print(f"shed: mailbox {r.shed_mailbox}, forecaster {r.shed_forecaster}")
        print(
            f"rss: {r.rss_start_mb:.1f} MB at the overload's start, peak {r.rss_peak_mb:.1f} MB, "
            f"{r.rss_growth_second_half_mb:+.1f} MB over its second half; "
            f"unloaded p99 {r.p99_unloaded_us:,.0f} us, overload p99 {r.p99_overload_us:,.0f} us"
        )
        for t, mode, reason in r.modes:
            print(f"  t={t:7.2f} s  {mode:<8} {reason}")
        print(f"wall {r.wall_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
