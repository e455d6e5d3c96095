"""Light stand-ins for pipeline tests on the live clock: a synthetic quote source and a forecaster.

:class:`SyntheticSource` publishes quotes (or one-minute bars) on a schedule;
:class:`StandInForecaster` spends a fixed CPU time per quote (less from DEGRADED
on, as a smaller model would), conflates per symbol from DEGRADED and drops
quotes older than ``budget_us`` in SURVIVAL, counting each drop in
``shed_total{actor,reason}``.  They make pipelines for tests of the run command
(``finllm run`` with a few actors, in a second); no figure about the product comes
from them - the overload experiment (:mod:`tools.overload`) runs the real actors.
Pipelines name them as ``tools.overload:SyntheticSource`` and
``tools.overload:StandInForecaster`` (re-exported there) or from this module.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Literal

import msgspec
import numpy as np

from engine.actor import Actor
from engine.messages import Bar, Forecast, Mode, Quote

__all__ = ["SourceConfig", "StandInConfig", "StandInForecaster", "SyntheticSource"]

_NS = 1_000_000_000


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
