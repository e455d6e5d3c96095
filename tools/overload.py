"""The overload experiment on the real pipeline: its capacity, then 3x that for 60 s, and back.

``python -m tools.overload [--seconds 60] [--factor 3] [--json] [--no-controller]``
(``finllm bench overload`` is the same command).

What runs: one engine on the live clock (uvloop) with the product's actors, fed
the way a live node is fed:

* ``source`` - the offered load: a seeded synthetic tape (:mod:`adapters.synthetic`;
  ``--symbols`` tickers from the news universe, quotes and trades) looped without
  end, cut into :class:`~adapters.sources.MarketRecords` of ``chunk`` records and
  offered on ``raw.md`` at a scheduled rate (phases of (seconds, records/s)) from
  a 1 ms engine-clock timer that catches up on whatever is due, so a late loop
  does not lower the offered load.  It is what a Kafka consumer hands the feed.
* ``feed`` - the real :class:`~actors.market_data.MarketDataFeed`, live:
  validation, sequencing, bad-tick filter and tick bars of ``bar_trades`` trades
  per symbol (bar rate follows the record rate, as with volume or tick bars; the
  shipped model's features are the same for any bar).  Its mailbox is
  ``drop_oldest`` of ``feed_mailbox`` chunks: behind, the node sheds its oldest
  market data first, counted by the mailbox (``evicted``).
* ``news`` - synthetic news items (:func:`tools.synth_news.synth_lines`) at
  ``news_per_s`` on ``news.raw``; ``narrative`` - the real
  :class:`~actors.narrative.NarrativeIngest` with MiniLM embeddings; ``sanity`` -
  the real :class:`~actors.sanity.SanityChecker` (news and bars).
* ``edge`` - the real :class:`~actors.edge_reasoner.EdgeReasoner`, the shipped
  ``es-1m`` model on onnxruntime, ``flush = "deadline"``, mailbox ``drop_oldest``
  of ``edge_mailbox`` messages.
* ``degradation`` - the real :class:`~actors.degradation.DegradationController`,
  told the feed's measured capacity (its demand signal); every actor above obeys
  its own mode table (edge: conflation from DEGRADED, the cheaper path from
  SURVIVAL; narrative: no embeddings).  Load alone (demand, sheds, fill) asks
  for DEGRADED at most; SURVIVAL takes distress (loop lag past its level).

(:class:`SyntheticSource` and :class:`StandInForecaster`, re-exported here from
:mod:`tools.standin`, are light stand-ins that pipelines in tests name by this
module's path; no figure of this experiment comes from them.)

Not in it: the cloud tier (it needs an LLM server; in every mode above NORMAL it
stops escalating) and the sinks.

Steps: (1) **capacity**, controller off, mode NORMAL: the source offers
``saturate`` x ``--capacity-guess`` records/s for ``--calibrate-s`` seconds; the
records/s the feed processed and the forecasts/s the edge made (all on the full
path) are the pipeline's capacity (after a second to settle).  ``--capacity``
skips this step.  (2) **the run**: ``--settle-s`` then ``--warm-s`` at
``--warm-factor`` x capacity (the warm phase is the unloaded baseline; the settle
phase before it keeps start-up transients out), ``--seconds`` at ``--factor`` x
capacity, ``--recovery-s`` at ``--recovery-factor`` x capacity.  The mode
timeline's times are from the start of the overload.

Reported: goodput (forecasts/s during the overload) split by the edge path that
served it (``cheap``: a mode at or past the edge's ``cheap_from``, SURVIVAL by default;
``full``: any other, DEGRADED's conflated bars included), each over the
full-path capacity; records/s the feed processed over its capacity; edge latency
p50/p99 in microseconds - from the feed publishing a bar to the edge publishing
its forecast, wall clock - unloaded (warm phase) vs overload; event-loop lag;
resident memory (at the overload's start, peak, end, growth over its second
half); the accounting, boundary by boundary (every mailbox: offered = accepted +
shed and accepted = delivered + queued; the source: records offered = chunks x
``chunk``; the feed: records in = published + rejected; the edge: bars = forecasts
+ counted drops), whose residuals sum to ``unaccounted`` (0 when nothing vanished);
every shed by place and reason; the mode timeline and the time back to NORMAL; the share of
wall time the in-process load generator spent offering (capacity step and overload: the 3x
offer costs the node's loop twice what the capacity step's did) and the full-path goodput
ratio with that share taken out of both sides (an estimate for a loop-bound node); and the
capacity step once more after the run, with the full-path goodput over the mean of the two
capacities (the capacity drifts between runs on a shared machine).

``--no-controller`` runs the same schedule with the mode pinned at NORMAL (the
baseline that shows what the modes buy).

``--rounds K`` measures the goodput goal with paired rounds instead (:func:`run_rounds`): on a
shared machine the capacity moves by +-15% within minutes, more than the goal's margin, so one
capacity step before a 60 s overload cannot decide it.  The rounds alternate a capacity step and
a short overload (``--round-s`` at ``--factor`` x the capacity just measured, controller on), K
times, ending with a capacity step; each round's full-path goodput is divided by the mean of the
two capacity steps either side of it, seconds apart.  Reported: every round's ratio, their mean
and the one-sided 95% lower bound of the mean (Student t over the rounds); the same for the
ratio of forecasts per second of the node's own loop CPU (``ratios_cpu``: the loop thread's CPU
time less the generator's offering time), which takes out how much CPU the shared machine gave
the node in each step and leaves what the node made of it, with the loop's busy share per step
to show the loop was saturated in both.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import functools
import gc
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import msgspec

from actors.degradation import DegradationConfig, DegradationController, Levels
from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
from actors.market_data import MarketDataFeed, MarketDataFeedConfig
from actors.narrative import NarrativeIngest, NarrativeIngestConfig
from actors.sanity import SanityChecker, SanityCheckerConfig
from adapters.bars import BarSpec
from adapters.node_ops import freeze_startup_heap
from adapters.sources import TapeSource, open_tape
from adapters.text.checker import AnalyzerConfig
from adapters.text.news_io import parse_news_line
from engine.actor import Actor
from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine, RunSummary, run_on_loop
from engine.mailbox import Mailbox, MailboxStatistics, OfferResult
from engine.messages import Bar, Forecast, Mode, ModeChange, VerifiedNews
from engine.metrics import Histogram, Metrics
from engine.testing import Probe
from tools.benchlib import emit
from tools.standin import SourceConfig, StandInConfig, StandInForecaster, SyntheticSource
from tools.synth_news import synth_lines

__all__ = [
    "LatencyTap",
    "NewsLoad",
    "NewsLoadConfig",
    "OverloadParams",
    "OverloadResult",
    "RoundsResult",
    "SourceConfig",
    "StandInConfig",
    "StandInForecaster",
    "SyntheticSource",
    "TapeLoad",
    "TapeLoadConfig",
    "main",
    "run_experiment",
    "run_rounds",
]

_NS: Final = 1_000_000_000
_PATHS: Final = ("full", "cheap")
_TAPE_ROWS: Final = 200_000
"""Rows of the synthetic tape (looped): a multiple of every chunk size used, so chunks are whole."""


# --- the load ------------------------------------------------------------------------------------


class TapeLoadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``phases``: (seconds, records per second) from the start (:meth:`TapeLoad.begin`).

    ``synthetic``: options of the synthetic tape (:class:`adapters.synthetic.SyntheticConfig`);
    its row count must be a multiple of ``chunk``, so every offered chunk holds exactly ``chunk``
    records and a shed chunk is ``chunk`` shed records.
    """

    phases: tuple[tuple[float, float], ...]
    synthetic: dict[str, Any]
    chunk: int = 32
    tick_ms: float = 1.0
    topic: str = "raw.md"
    stop_when_done: bool = True


class TapeLoad(Actor[TapeLoadConfig]):
    """Offers the tape's records on a schedule from :meth:`begin`; asks the engine to stop after it."""

    config_type = TapeLoadConfig

    async def on_start(self) -> None:
        cfg = self.config
        tape = open_tape(dataset="synthetic", synthetic=cfg.synthetic)
        if len(tape) % cfg.chunk:
            raise ValueError(f"tape rows ({len(tape)}) must be a multiple of chunk ({cfg.chunk})")
        self._tape = TapeSource(tape, name="load", loops=1 << 20)
        self._chunks = self.ctx.metrics.counter("load_chunks_offered_total")
        # The generator shares the node's loop: its own time is counted so that a figure can say
        # how much of the loop went to *offering* the load rather than serving it.
        self._busy = self.ctx.metrics.counter("load_busy_ns_total")

    def begin(self, start_ns: int) -> None:
        """Start the schedule at ``start_ns`` (live clock); call on the loop, once every actor runs."""
        cfg = self.config
        self._bounds: list[tuple[int, int, float, float]] = []  # (t0, t1, rate, records before t0)
        t = start_ns
        before = 0.0
        for seconds, rate in cfg.phases:
            t1 = t + int(seconds * _NS)
            self._bounds.append((t, t1, rate, before))
            before += seconds * rate
            t = t1
        self.end_ns = t
        self._offered = 0  # records offered so far (whole chunks)
        self._done = False
        self.ctx.call_every(int(cfg.tick_ms * 1_000_000), self._tick)

    def _due(self, now: int) -> int:
        """Records due by ``now`` under the schedule."""
        for t0, t1, rate, before in self._bounds:
            if now < t1:
                return int(before + max(0, now - t0) / _NS * rate) if now >= t0 else int(before)
        return int(sum(s * r for s, r in self.config.phases))

    def _tick(self) -> None:
        t0 = time.perf_counter_ns()
        cfg = self.config
        now = self.ctx.clock.now_ns()
        n = (self._due(now) - self._offered) // cfg.chunk
        for _ in range(n):
            self.ctx.publish(cfg.topic, self._tape.take(2**62, cfg.chunk))
        self._offered += n * cfg.chunk
        self._chunks.inc(n)
        self._busy.inc(time.perf_counter_ns() - t0)
        if now >= self.end_ns and not self._done and cfg.stop_when_done:
            self._done = True
            self.ctx.request_shutdown("overload schedule finished")


class NewsLoadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``per_s`` synthetic news items per second on ``topic`` (0: none); ``seed`` of the generator."""

    per_s: float = 5.0
    seed: int = 1
    topic: str = "news.raw"
    pool: int = 2_000


class NewsLoad(Actor[NewsLoadConfig]):
    """Publishes synthetic news items at a steady rate, stamped with the live clock."""

    config_type = NewsLoadConfig

    async def on_start(self) -> None:
        cfg = self.config
        self._items = [parse_news_line(line) for line in synth_lines(cfg.pool, seed=cfg.seed)]
        self._sent = 0

    def begin(self, start_ns: int) -> None:
        """Start publishing at ``start_ns`` (live clock); call on the loop, once every actor runs."""
        self._t0 = start_ns
        if self.config.per_s > 0:
            self.ctx.call_every(int(min(_NS / self.config.per_s, 100_000_000)), self._tick)

    def _tick(self) -> None:
        now = self.ctx.clock.now_ns()
        due = int(max(0, now - self._t0) / _NS * self.config.per_s)
        for i in range(self._sent, due):
            it = self._items[i % len(self._items)]
            # A fresh id per pass over the pool: the same story again is a near copy, not a replay.
            item = msgspec.structs.replace(it, id=f"{it.id}-{i}", ts_event=now, ts_recv=now)
            self.ctx.publish(self.config.topic, item)
        self._sent = max(self._sent, due)


# --- measuring ----------------------------------------------------------------------------------


class LatencyTap(Mailbox[Any]):
    """A bus subscriber that measures, never queues: bar published -> its forecast published.

    Subscribed to ``bar.>`` and ``forecast.>``, it sees each message inside ``publish``
    (the feed's and the edge's own handler), so the figures carry no handler of its own.
    A forecast is matched to its bar by (symbol, ``basis_seq`` = the bar's ``seq``); bars
    that get no forecast (warm-up, conflated, shed) are forgotten when a later forecast of
    their symbol arrives, so memory stays bounded by the backlog.  Latencies (microseconds)
    and forecasts are counted per phase (by the forecast's wall-clock time) and per edge
    path (the mode at publication: the edge decides its path per micro-batch, within the
    same handler call that publishes).
    """

    def __init__(self, names: tuple[str, ...], metrics: Metrics, cheap_from: Mode) -> None:
        super().__init__(1, "drop_newest", name="latency-tap")
        self.bus_mode: Callable[[], str] = lambda: Mode.NORMAL
        self.bounds_ns: tuple[int, ...] = (0,)
        """Phase start times (wall clock, ns); set when the schedule starts."""
        self._names = names
        self._cheap_level = cheap_from.level
        self._lat = [metrics.histogram("overload_edge_latency_us", phase=p) for p in names]
        self.forecasts = {(p, path): 0 for p in names for path in _PATHS}
        self.models: collections.Counter[tuple[str, str]] = collections.Counter()
        """(phase, model id) -> forecasts: which network served them."""
        self.unmatched = 0
        self._bars: dict[str, collections.deque[tuple[int, int]]] = {}
        # Accepted copies that only corroborate reach no model: the edge's news input is what
        # the checker published on news.verified, counted here.
        self._verified = metrics.counter("overload_news_verified_published_total")

    def _phase(self, t_ns: int) -> int:
        return max(0, min(bisect.bisect_right(self.bounds_ns, t_ns) - 1, len(self._names) - 1))

    def offer(self, msg: Any) -> OfferResult:
        if type(msg) is VerifiedNews:
            self._verified.inc()
            return OfferResult.ACCEPTED
        if type(msg) is Bar:
            self._bars.setdefault(msg.symbol, collections.deque()).append((msg.seq, time.perf_counter_ns()))
        elif type(msg) is Forecast and msg.version == 1:
            self._forecast(msg)
        return OfferResult.ACCEPTED

    def offer_many(self, msgs: list[Any]) -> int:
        for m in msgs:
            self.offer(m)
        return len(msgs)

    def _forecast(self, f: Forecast) -> None:
        t = time.perf_counter_ns()
        phase = self._phase(time.time_ns())
        path = "cheap" if Mode.parse(self.bus_mode()).level >= self._cheap_level else "full"
        self.forecasts[(self._names[phase], path)] += 1
        self.models[(self._names[phase], f.model_id)] += 1
        q = self._bars.get(f.symbol)
        while q and q[0][0] < f.basis_seq:
            q.popleft()
        if q and q[0][0] == f.basis_seq:
            self._lat[phase].observe((t - q.popleft()[1]) / 1000.0)
        else:
            self.unmatched += 1

    def latency(self, phase: str) -> Histogram:
        return self._lat[self._names.index(phase)]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the experiment -------------------------------------------------------------------------------


class OverloadParams(msgspec.Struct, frozen=True, kw_only=True):
    """The experiment's knobs; rates in records per second, times in seconds."""

    seconds: float = 60.0
    factor: float = 3.0
    settle_s: float = 3.0
    """At the warm rate before the warm phase, not measured: start-up transients (first analyses,
    warm-up bars) stay out of the unloaded baseline."""
    warm_s: float = 5.0
    warm_factor: float = 0.5
    recovery_s: float = 15.0
    recovery_factor: float = 0.3
    calibrate_s: float = 5.0
    capacity_after: bool = True
    """Measure the capacity again after the run (``goodput_full_ratio_bracketed``)."""
    capacity_per_s: float = 0.0
    """Skip the capacity step and use this many records/s when > 0."""
    capacity_forecasts_per_s: float = 0.0
    """With ``capacity_per_s``: the forecasts/s that go with it (0: not known, ratios undefined)."""
    capacity_guess: float = 40_000.0
    saturate: float = 1.5
    """The capacity step offers ``saturate`` x ``capacity_guess`` records/s."""
    symbols: int = 50
    bar_trades: int = 4
    quote_ratio: float = 0.5
    chunk: int = 32
    feed_mailbox: int = 8
    """Chunks of ``chunk`` records."""
    edge_mailbox: int = 8192
    news_per_s: float = 5.0
    embeddings: bool = True
    controller: bool = True
    interval_ms: float = 100.0
    min_dwell_s: float = 1.0
    cool_down_s: float = 0.5
    lag_levels_us: tuple[float, float, float] = (5_000.0, 20_000.0, 100_000.0)
    """The controller's loop-lag thresholds (CONSERVE, DEGRADED, SURVIVAL)."""
    loop: str = "uvloop"


class OverloadResult(msgspec.Struct, kw_only=True):
    """The figures of one run (see the module docstring); rates per second, latencies in us."""

    capacity_records_per_s: float
    capacity_forecasts_per_s: float
    capacity_after_forecasts_per_s: float
    """The capacity step once more after the run (NaN when not measured)."""
    goodput_full_ratio_bracketed: float
    """Full-path goodput over the mean of the capacity before and after the run."""
    capacity_unaccounted: int
    capacity_downstream_shed: int
    capacity_front_shed: int
    offered_records_per_s: float
    served_records_per_s: float
    served_ratio: float
    goodput_per_s: float
    goodput_full_per_s: float
    goodput_cheap_per_s: float
    goodput_ratio: float
    goodput_full_ratio: float
    goodput_cheap_ratio: float
    load_share_capacity: float
    """Share of the wall time the in-process load generator spent offering records, during the
    capacity step (NaN when the capacity was given) and during the overload: loop time the node
    did not have.  At 3x the generator offers twice the records of the capacity step."""
    load_share_overload: float
    goodput_full_per_cpu_s: float
    """Full-path forecasts per second of the node's own loop CPU in the overload (the load
    generator's offering time taken out): what the node made of the CPU it got."""
    loop_busy_overload: float
    """The loop thread's CPU time over the overload's wall time (1.0: a core's worth)."""
    goodput_full_ratio_loop: float
    """``goodput_full_ratio`` with the generator's share taken out of both sides (forecasts per
    second of loop time left to the node): an estimate that assumes the node is loop-bound."""
    p50_unloaded_us: float
    p99_unloaded_us: float
    p50_overload_us: float
    p99_overload_us: float
    p99_ratio: float
    p99_recovery_us: float
    loop_lag_p99_us: float
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    rss_growth_second_half_mb: float
    records_offered: int
    forecasts: dict[str, int]
    models_overload: dict[str, int]
    shed: dict[str, dict[str, int]]
    residuals: dict[str, int]
    unaccounted: int
    modes: list[tuple[float, str, str]]
    worst_mode_overload: str
    time_to_normal_s: float | None
    final_mode: str
    news_ingested: int
    news_without_embeddings: int
    unmatched_forecasts: int
    wall_s: float


class _Rig:
    """One engine with the pipeline under test, its measuring tap and its phase marks."""

    def __init__(
        self, p: OverloadParams, phases: tuple[tuple[float, float], ...], names: tuple[str, ...]
    ) -> None:
        self.p = p
        self.phases = phases
        self.names = names
        self.engine = Engine(
            EngineConfig(engine=EngineSection(shutdown_deadline_s=10.0, lag_interval_ms=20.0))
        )
        self.edge_cfg = EdgeReasonerConfig(model="es-1m", flush="deadline")
        self.tap = LatencyTap(names, self.engine.metrics, self.edge_cfg.cheap_from)
        self.tap.bus_mode = lambda: self.engine.runtime.mode
        self.bounds: tuple[int, ...] = ()
        """Phase start times (wall clock, ns), then the schedule's end; set by :meth:`run`."""
        self.marks: list[dict[str, int]] = []
        """Counters at each of :attr:`bounds` (``records_in``, ``news_no_embed``, ``load_busy_ns``,
        ``loop_cpu_ns``: the loop thread's CPU time)."""
        self._add_actors()
        self.modes = Probe(self.engine.bus, "control.mode")

    def _add_actors(self) -> None:
        p = self.p
        e = self.engine
        synthetic = {
            "symbols": _tickers(p.symbols),
            "n": _TAPE_ROWS,
            "quote_ratio": p.quote_ratio,
            "burst_prob": 0.0,
        }
        load = TapeLoadConfig(phases=self.phases, synthetic=synthetic, chunk=p.chunk)
        e.add_actor("source", TapeLoad, load, mailbox=Mailbox(16, "drop_newest", name="source"))
        feed = MarketDataFeedConfig(dataset="", bars=(BarSpec(kind="tick", size=float(p.bar_trades)),))
        # A small mailbox: what the feed takes per loop turn (and so its burst into the edge) stays
        # small, and what waits in it is fresh; behind, the oldest chunk makes room ("evicted").
        e.add_actor(
            "feed",
            MarketDataFeed,
            feed,
            mailbox=Mailbox(p.feed_mailbox, "drop_oldest", name="feed"),
            subscribe=["raw.md"],
        )
        e.add_actor("news", NewsLoad, NewsLoadConfig(per_s=p.news_per_s))
        e.add_actor(
            "narrative",
            NarrativeIngest,
            NarrativeIngestConfig(analyzer=AnalyzerConfig(embed=p.embeddings)),
            mailbox=Mailbox(256, "drop_oldest", name="narrative"),
            subscribe=["news.raw"],
        )
        e.add_actor(
            "sanity",
            SanityChecker,
            SanityCheckerConfig(),
            mailbox=Mailbox(4096, "drop_oldest", name="sanity"),
            subscribe=["news.analysed", "bar.>"],
        )
        e.add_actor(
            "edge",
            EdgeReasoner,
            self.edge_cfg,
            mailbox=Mailbox(p.edge_mailbox, "drop_oldest", name="edge"),
            subscribe=["bar.>", "md.>", "news.verified"],
        )
        e.bus.subscribe("bar.>", self.tap)
        e.bus.subscribe("forecast.>", self.tap)
        e.bus.subscribe("news.verified", self.tap)

    def add_controller(self, capacity_records_per_s: float) -> None:
        p = self.p
        cfg = DegradationConfig(
            interval_ms=p.interval_ms,
            min_dwell_s=p.min_dwell_s,
            cool_down_s=p.cool_down_s,
            # The feed's mailbox carries chunks: its capacity in chunks per second.
            capacity_per_s={"feed": capacity_records_per_s / p.chunk},
            loop_lag_us=Levels(*p.lag_levels_us),
        )
        self.engine.add_actor(
            "degradation",
            DegradationController.with_stats_source(self.engine.mailbox_statistics),
            cfg,
            mailbox=Mailbox(64, "conflate", name="degradation", key=lambda m: getattr(m, "symbol", "")),
            subscribe=["forecast.>"],
        )

    def _mark(self) -> None:
        m = self.engine.metrics
        self.marks.append(
            {
                "records_in": _counter(m, "md_events_in_total"),
                "news_no_embed": _counter(m, "news_embeddings_skipped_total"),
                "load_busy_ns": _counter(m, "load_busy_ns_total"),
                # (_mark runs on the loop thread: its CPU time is the loop's, where the feed, the
                # sanity checker and the edge model run; the news analysis runs in an executor)
                "loop_cpu_ns": time.thread_time_ns(),
            }
        )

    async def _begin(self) -> None:
        """Once every actor runs (models loaded), start the schedule and the phase marks."""
        e = self.engine
        # As the live node does (finllm node): startup's heap frozen out of the collector's sight,
        # or a full collection walks the models' objects and stalls the loop for ~200 ms.
        await freeze_startup_heap(e)
        start = time.time_ns() + 200_000_000
        t = start
        bounds = []
        for seconds, _ in self.phases:
            bounds.append(t)
            t += int(seconds * _NS)
        self.bounds = (*bounds, t)
        self.tap.bounds_ns = tuple(bounds)
        for name in ("source", "news"):
            actor = e.cells[name].actor
            assert isinstance(actor, TapeLoad | NewsLoad)
            actor.begin(start)
        loop = asyncio.get_running_loop()
        for b in self.bounds:
            loop.call_later(max(0.0, (b - time.time_ns()) / _NS), self._mark)

    async def run(self) -> tuple[RunSummary, list[tuple[int, float]]]:
        """Run to the end of the schedule; (summary, RSS samples as (wall ns, MB))."""
        rss: list[tuple[int, float]] = [(time.time_ns(), _rss_mb())]

        async def sample() -> None:
            while True:
                rss.append((time.time_ns(), _rss_mb()))
                await asyncio.sleep(0.25)

        loop = asyncio.get_running_loop()
        thresholds = gc.get_threshold()
        tasks = [loop.create_task(sample()), loop.create_task(self._begin())]
        try:
            summary = await self.engine.run(install_signals=False)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # the process outlives the rig (the capacity step, a test session): give the heap back
            gc.unfreeze()
            gc.set_threshold(*thresholds)
        rss.append((time.time_ns(), _rss_mb()))
        if len(self.marks) < len(self.bounds):
            raise RuntimeError(f"the engine stopped before the schedule ended: {summary.reason}")
        return summary, rss

    def rate(self, key: str, phase: int) -> float:
        """Per second, of mark ``key`` over phase ``phase``."""
        seconds = (self.bounds[phase + 1] - self.bounds[phase]) / _NS
        return (self.marks[phase + 1][key] - self.marks[phase][key]) / seconds

    def node_cpu_s(self, phase: int) -> float:
        """Seconds of loop-thread CPU the node itself spent in phase ``phase``: the loop's CPU time
        less the load generator's offering time (which runs on the same loop)."""
        d = {k: self.marks[phase + 1][k] - self.marks[phase][k] for k in ("loop_cpu_ns", "load_busy_ns")}
        return max(d["loop_cpu_ns"] - d["load_busy_ns"], 0) / _NS


@functools.cache
def _tickers(n: int) -> tuple[str, ...]:
    """The ``n`` tickers the synthetic news names most often: news then links to the tape."""
    counts: collections.Counter[str] = collections.Counter()
    for line in synth_lines(4000, seed=1):
        counts.update(json.loads(line).get("symbols", ()))
    top = [s for s, _ in counts.most_common(n)]
    top += [f"SYN{i:03d}" for i in range(n - len(top))]  # more symbols than the news names
    return tuple(sorted(top))


def _counter(m: Metrics, name: str, **labels: str) -> int:
    return sum(v for n, lb, v in m.counters() if n == name and all(lb.get(k) == x for k, x in labels.items()))


def _by_label(m: Metrics, name: str, label: str, **labels: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, lb, v in m.counters():
        if n == name and v and all(lb.get(k) == x for k, x in labels.items()):
            out[lb.get(label, "")] = out.get(lb.get(label, ""), 0) + v
    return out


def _accounting(
    p: OverloadParams, m: Metrics, mailboxes: dict[str, MailboxStatistics]
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(residual per identity, sheds per place and reason); every residual is 0 when nothing vanished."""
    res: dict[str, int] = {}
    for name, st in mailboxes.items():
        res[f"mailbox {name}: offered - accepted - shed"] = st.offered - st.accepted - st.shed
        res[f"mailbox {name}: accepted - delivered - queued"] = st.accepted - st.delivered - st.depth
    feed = mailboxes["feed"]
    chunks = _counter(m, "load_chunks_offered_total")
    res["source: chunks offered - feed mailbox offered"] = chunks - feed.offered
    records_in = _counter(m, "md_events_in_total")
    res["feed: records delivered - records in"] = feed.delivered * p.chunk - records_in
    published = _counter(m, "md_events_published_total")
    rejected = _counter(m, "md_rejected_total")
    conflated = _counter(m, "md_conflated_total")
    res["feed: records in - published - rejected - conflated"] = records_in - published - rejected - conflated
    bars = _counter(m, "md_bars_published_total")
    verified = _counter(m, "overload_news_verified_published_total")
    edge = mailboxes["edge"]
    res["edge mailbox: offered - (md + bars + verified news)"] = edge.offered - (published + bars + verified)
    dropped = _by_label(m, "edge_bars_dropped_total", "reason", actor="edge")
    forecasts = _counter(m, "edge_forecasts_total", actor="edge")
    res["edge: bars - forecasts - drops"] = (
        _counter(m, "edge_bars_total", actor="edge") - forecasts - sum(dropped.values())
    )
    by_path = sum(_counter(m, "edge_forecasts_by_path_total", actor="edge", path=x) for x in _PATHS)
    res["edge: forecasts - forecasts by path"] = forecasts - by_path
    shed = {f"mailbox {n}": dict(st.shed_by_reason) for n, st in mailboxes.items() if st.shed}
    shed["feed mailbox (records)"] = {r: v * p.chunk for r, v in feed.shed_by_reason.items()}
    shed["feed rejects (records)"] = _by_label(m, "md_rejected_total", "reason")
    shed["edge drops (bars)"] = dropped
    return res, {k: v for k, v in shed.items() if v}


class _Capacity(NamedTuple):
    records_per_s: float
    forecasts_per_s: float
    unaccounted: int
    downstream_shed: int
    """Messages shed past the feed's mailbox (0: the front shed alone held the load)."""
    front_shed: int
    """Chunks the feed's mailbox shed (0: the offered rate did not saturate the pipeline)."""
    load_share: float = math.nan
    """Share of the wall time the load generator spent offering (on the node's own loop)."""
    forecasts_per_cpu_s: float = math.nan
    """Forecasts per second of the node's own loop CPU (:meth:`_Rig.node_cpu_s`)."""
    loop_busy: float = math.nan
    """The loop thread's CPU time over the wall time of the step (1.0: a core's worth, saturated)."""


async def _capacity(p: OverloadParams) -> _Capacity:
    """The full pipeline in NORMAL, saturated, over ``calibrate_s``."""
    settle_s = 1.0
    rate = p.saturate * p.capacity_guess
    rig = _Rig(p, ((settle_s, rate), (p.calibrate_s, rate)), ("settle", "measure"))
    summary, _ = await rig.run()
    forecasts = sum(rig.tap.forecasts[("measure", x)] for x in _PATHS)
    residuals, _ = _accounting(p, rig.engine.metrics, summary.mailboxes)
    unaccounted = sum(abs(v) for v in residuals.values())
    downstream = sum(st.shed for name, st in summary.mailboxes.items() if name != "feed")
    front = summary.mailboxes["feed"].shed
    return _Capacity(
        rig.rate("records_in", 1),
        forecasts / p.calibrate_s,
        unaccounted,
        downstream,
        front,
        rig.rate("load_busy_ns", 1) / _NS,
        forecasts / max(rig.node_cpu_s(1), 1e-9),
        rig.rate("loop_cpu_ns", 1) / _NS,
    )


async def run_experiment(p: OverloadParams) -> OverloadResult:
    """Measure the capacity (unless given), then run the schedule; see the module docstring."""
    t_wall = time.perf_counter()
    measured = _Capacity(p.capacity_per_s, p.capacity_forecasts_per_s, 0, 0, 0)
    if p.capacity_per_s <= 0:
        measured = await _capacity(p)
    cap, cap_fc = measured.records_per_s, measured.forecasts_per_s
    phases = (
        (p.settle_s, p.warm_factor * cap),
        (p.warm_s, p.warm_factor * cap),
        (p.seconds, p.factor * cap),
        (p.recovery_s, p.recovery_factor * cap),
    )
    names = ("settle", "warm", "overload", "recovery")
    rig = _Rig(p, phases, names)
    if p.controller:
        rig.add_controller(cap)
    m = rig.engine.metrics
    summary, rss = await rig.run()
    over0, over1 = rig.bounds[2], rig.bounds[3]
    rss0 = [v for t, v in rss if t <= over0][-1]
    rss_mid = [v for t, v in rss if t <= (over0 + over1) // 2][-1]
    rss_end = [v for t, v in rss if t <= over1][-1]
    rss_peak = max(v for t, v in rss if over0 <= t <= over1 or v == rss0)
    residuals, shed = _accounting(p, m, summary.mailboxes)
    tap = rig.tap
    fc = {f"{ph}.{path}": n for (ph, path), n in tap.forecasts.items()}
    full, cheap = tap.forecasts[("overload", "full")], tap.forecasts[("overload", "cheap")]
    warm, over, rec = (tap.latency(n) for n in names[1:])
    served = rig.rate("records_in", 2)
    changes = [c for c in rig.modes.drain() if isinstance(c, ModeChange)]
    # Times from the start of the overload.
    timeline = [((c.ts_event - over0) / _NS, str(c.mode), c.reason) for c in changes]
    before = [Mode.parse(c.mode) for c in changes if c.ts_event < over0]
    during = [Mode.parse(c.mode) for c in changes if over0 <= c.ts_event < over1]
    worst = max([*(before[-1:] or [Mode.NORMAL]), *during], key=lambda x: x.level)
    back = [c for c in changes if c.ts_event >= over1 and c.mode == Mode.NORMAL]

    def ratio(x: float) -> float:
        return x / cap_fc if cap_fc > 0 else math.nan

    # The capacity again, after the run: on a shared machine the capacity drifts between runs by
    # more than the goodput goal's margin, so the ratio is also given against the mean of the two.
    after_fc = math.nan
    if p.capacity_per_s <= 0 and p.capacity_after:
        after_fc = (await _capacity(p)).forecasts_per_s
    bracket = (cap_fc + after_fc) / 2.0

    return OverloadResult(
        capacity_records_per_s=cap,
        capacity_forecasts_per_s=cap_fc,
        capacity_after_forecasts_per_s=after_fc,
        goodput_full_ratio_bracketed=full / p.seconds / bracket if bracket > 0 else math.nan,
        capacity_unaccounted=measured.unaccounted,
        capacity_downstream_shed=measured.downstream_shed,
        capacity_front_shed=measured.front_shed,
        offered_records_per_s=p.factor * cap,
        served_records_per_s=served,
        served_ratio=served / cap,
        goodput_per_s=(full + cheap) / p.seconds,
        goodput_full_per_s=full / p.seconds,
        goodput_cheap_per_s=cheap / p.seconds,
        goodput_ratio=ratio((full + cheap) / p.seconds),
        goodput_full_ratio=ratio(full / p.seconds),
        goodput_cheap_ratio=ratio(cheap / p.seconds),
        load_share_capacity=measured.load_share,
        load_share_overload=(over_share := rig.rate("load_busy_ns", 2) / _NS),
        goodput_full_per_cpu_s=full / max(rig.node_cpu_s(2), 1e-9),
        loop_busy_overload=rig.rate("loop_cpu_ns", 2) / _NS,
        goodput_full_ratio_loop=ratio(full / p.seconds) * (1.0 - measured.load_share) / (1.0 - over_share),
        p50_unloaded_us=warm.percentile(0.5),
        p99_unloaded_us=warm.percentile(0.99),
        p50_overload_us=over.percentile(0.5),
        p99_overload_us=over.percentile(0.99),
        p99_ratio=over.percentile(0.99) / warm.percentile(0.99),
        p99_recovery_us=rec.percentile(0.99),
        loop_lag_p99_us=m.histogram("loop_lag_us").percentile(0.99),
        rss_start_mb=rss0,
        rss_peak_mb=rss_peak,
        rss_end_mb=rss_end,
        rss_growth_second_half_mb=rss_end - rss_mid,
        records_offered=_counter(m, "load_chunks_offered_total") * p.chunk,
        forecasts=fc,
        models_overload={mid: n for (ph, mid), n in sorted(tap.models.items()) if ph == "overload"},
        shed=shed,
        residuals={k: v for k, v in residuals.items() if v},
        unaccounted=sum(abs(v) for v in residuals.values()),
        modes=timeline,
        worst_mode_overload=worst.value,
        time_to_normal_s=(back[0].ts_event - over1) / _NS if back else None,
        final_mode=str(changes[-1].mode) if changes else Mode.NORMAL.value,
        news_ingested=_counter(m, "news_ingested_total", actor="narrative"),
        news_without_embeddings=_counter(m, "news_embeddings_skipped_total", actor="narrative"),
        unmatched_forecasts=tap.unmatched,
        wall_s=time.perf_counter() - t_wall,
    )


class RoundsResult(msgspec.Struct, kw_only=True):
    """Paired capacity / overload rounds (:func:`run_rounds`); rates in forecasts per second."""

    capacities_forecasts_per_s: list[float]
    """The K + 1 capacity steps, in order."""
    goodput_full_per_s: list[float]
    """Round i's full-path goodput, between capacity steps i and i + 1."""
    goodput_cheap_per_s: list[float]
    ratios: list[float]
    """Round i's full-path goodput over the mean of its two capacity steps."""
    ratio_mean: float
    ratio_median: float
    ratio_lower95: float
    """One-sided 95% lower confidence bound of the mean ratio (Student t, K - 1 degrees of freedom)."""
    ratios_loop: list[float]
    """``ratios`` with the in-process load generator's share of the loop taken out of both sides
    (as ``OverloadResult.goodput_full_ratio_loop``): an estimate for a loop-bound node whose
    records arrive from another process."""
    ratio_loop_mean: float
    ratio_loop_lower95: float
    ratios_cpu: list[float]
    """Round i's full-path forecasts per second of the node's own loop CPU over the mean of the
    same rate in its two capacity steps: the machine's noise (steal, neighbours) changes how much
    CPU the node gets, not what it makes of it, so this ratio is about the node alone.  Valid
    while the loop is saturated in both (``loop_busy_capacity`` and ``loop_busy_overload``)."""
    ratio_cpu_mean: float
    ratio_cpu_median: float
    ratio_cpu_lower95: float
    loop_busy_capacity: list[float]
    """The loop thread's CPU time over wall time in each capacity step (1.0: a core's worth)."""
    loop_busy_overload: list[float]
    capacity_front_shed: list[int]
    """Chunks the feed's mailbox shed in each capacity step (above 0: the step saturated the pipeline)."""
    p99_ratios: list[float]
    unaccounted: int
    worst_modes: list[str]
    wall_s: float


# One-sided 95% quantiles of Student's t for 1..30 degrees of freedom (scipy is not a dependency).
_T95: Final = (
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
    1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
    1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
)  # fmt: skip


def lower95(xs: list[float]) -> float:
    """The one-sided 95% lower bound of the mean of ``xs`` (NaN for fewer than two values)."""
    n = len(xs)
    if n < 2:
        return math.nan
    t = _T95[min(n - 1, len(_T95)) - 1]
    return statistics.fmean(xs) - t * statistics.stdev(xs) / math.sqrt(n)


async def run_rounds(p: OverloadParams, rounds: int, round_s: float) -> RoundsResult:
    """``rounds`` paired rounds: capacity, overload of ``round_s`` at ``p.factor`` x that capacity
    (controller as ``p.controller``), ..., capacity; see the module docstring."""
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2 (a lower bound needs two), got {rounds}")
    t_wall = time.perf_counter()
    caps = [await _capacity(p)]
    full: list[float] = []
    cheap: list[float] = []
    p99: list[float] = []
    worst: list[str] = []
    share: list[float] = []
    per_cpu: list[float] = []
    busy: list[float] = []
    unaccounted = caps[0].unaccounted
    for _ in range(rounds):
        q = msgspec.structs.replace(
            p,
            seconds=round_s,
            settle_s=min(p.settle_s, 2.0),
            warm_s=min(p.warm_s, 3.0),
            recovery_s=min(p.recovery_s, 3.0),
            capacity_per_s=caps[-1].records_per_s,
            capacity_forecasts_per_s=caps[-1].forecasts_per_s,
            capacity_after=False,
        )
        r = await run_experiment(q)
        full.append(r.goodput_full_per_s)
        cheap.append(r.goodput_cheap_per_s)
        p99.append(r.p99_ratio)
        worst.append(r.worst_mode_overload)
        share.append(r.load_share_overload)
        per_cpu.append(r.goodput_full_per_cpu_s)
        busy.append(r.loop_busy_overload)
        unaccounted += r.unaccounted
        caps.append(await _capacity(p))
        unaccounted += caps[-1].unaccounted
    fc = [c.forecasts_per_s for c in caps]
    ratios = [g / ((a + b) / 2.0) for g, a, b in zip(full, fc, fc[1:], strict=False)]
    cap_share = [(a.load_share + b.load_share) / 2.0 for a, b in itertools.pairwise(caps)]
    loop = [r * (1.0 - c) / (1.0 - o) for r, c, o in zip(ratios, cap_share, share, strict=True)]
    cap_cpu = [(a.forecasts_per_cpu_s + b.forecasts_per_cpu_s) / 2.0 for a, b in itertools.pairwise(caps)]
    cpu = [g / c for g, c in zip(per_cpu, cap_cpu, strict=True)]
    return RoundsResult(
        capacities_forecasts_per_s=fc,
        goodput_full_per_s=full,
        goodput_cheap_per_s=cheap,
        ratios=ratios,
        ratio_mean=statistics.fmean(ratios),
        ratio_median=statistics.median(ratios),
        ratio_lower95=lower95(ratios),
        ratios_loop=loop,
        ratio_loop_mean=statistics.fmean(loop),
        ratio_loop_lower95=lower95(loop),
        ratios_cpu=cpu,
        ratio_cpu_mean=statistics.fmean(cpu),
        ratio_cpu_median=statistics.median(cpu),
        ratio_cpu_lower95=lower95(cpu),
        loop_busy_capacity=[c.loop_busy for c in caps],
        loop_busy_overload=busy,
        capacity_front_shed=[c.front_shed for c in caps],
        p99_ratios=p99,
        unaccounted=unaccounted,
        worst_modes=worst,
        wall_s=time.perf_counter() - t_wall,
    )


# --- the command ----------------------------------------------------------------------------------


def _params(argv: list[str]) -> tuple[OverloadParams, argparse.Namespace]:
    ap = argparse.ArgumentParser(prog="python -m tools.overload", description=__doc__.split("\n")[0])
    d = OverloadParams()
    ap.add_argument("--seconds", type=float, default=d.seconds, help="overload duration")
    ap.add_argument("--factor", type=float, default=d.factor, help="overload = factor x capacity")
    ap.add_argument("--settle-s", type=float, default=d.settle_s)
    ap.add_argument("--warm-s", type=float, default=d.warm_s)
    ap.add_argument("--warm-factor", type=float, default=d.warm_factor)
    ap.add_argument("--recovery-s", type=float, default=d.recovery_s)
    ap.add_argument("--recovery-factor", type=float, default=d.recovery_factor)
    ap.add_argument("--calibrate-s", type=float, default=d.calibrate_s)
    ap.add_argument("--capacity", type=float, default=0.0, help="skip the capacity step: records/s")
    ap.add_argument("--capacity-forecasts", type=float, default=0.0, help="with --capacity: forecasts/s")
    ap.add_argument("--capacity-guess", type=float, default=d.capacity_guess)
    ap.add_argument("--symbols", type=int, default=d.symbols)
    ap.add_argument("--bar-trades", type=int, default=d.bar_trades)
    ap.add_argument("--news-per-s", type=float, default=d.news_per_s)
    ap.add_argument("--no-embeddings", action="store_true", help="narrative without MiniLM")
    ap.add_argument("--no-controller", action="store_true")
    ap.add_argument(
        "--rounds", type=int, default=0, help="paired capacity/overload rounds instead of one run (>= 2)"
    )
    ap.add_argument("--round-s", type=float, default=15.0, help="each round's overload, seconds")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--json", action="store_true", help="JSON lines (benchlib format)")
    ap.add_argument("--raw", action="store_true", help="print the whole result as one JSON object")
    ap.add_argument("--log-level", default="error", choices=("debug", "info", "warning", "error"))
    a = ap.parse_args(argv)
    p = OverloadParams(
        seconds=a.seconds,
        factor=a.factor,
        settle_s=a.settle_s,
        warm_s=a.warm_s,
        warm_factor=a.warm_factor,
        recovery_s=a.recovery_s,
        recovery_factor=a.recovery_factor,
        calibrate_s=a.calibrate_s,
        capacity_per_s=a.capacity,
        capacity_forecasts_per_s=a.capacity_forecasts,
        capacity_guess=a.capacity_guess,
        symbols=a.symbols,
        bar_trades=a.bar_trades,
        news_per_s=a.news_per_s,
        embeddings=not a.no_embeddings,
        controller=not a.no_controller,
        loop=a.loop,
    )
    return p, a


def _figures(r: OverloadResult) -> list[tuple[str, float | None, str, dict[str, Any]]]:
    def num(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return [
        ("capacity_records_per_s", r.capacity_records_per_s, "records/s", {}),
        (
            "capacity_forecasts_per_s",
            num(r.capacity_forecasts_per_s),
            "forecasts/s",
            {
                "path": "full",
                "front_shed_chunks": r.capacity_front_shed,
                "downstream_shed": r.capacity_downstream_shed,
                "unaccounted": r.capacity_unaccounted,
            },
        ),
        ("offered_records_per_s", r.offered_records_per_s, "records/s", {}),
        ("served_records_per_s", num(r.served_records_per_s), "records/s", {"ratio": num(r.served_ratio)}),
        ("goodput_per_s", r.goodput_per_s, "forecasts/s", {"ratio": num(r.goodput_ratio)}),
        (
            "goodput_full_per_s",
            r.goodput_full_per_s,
            "forecasts/s",
            {
                "ratio": num(r.goodput_full_ratio),
                "ratio_bracketed": num(r.goodput_full_ratio_bracketed),
                "capacity_after_forecasts_per_s": num(r.capacity_after_forecasts_per_s),
            },
        ),
        ("goodput_cheap_per_s", r.goodput_cheap_per_s, "forecasts/s", {"ratio": num(r.goodput_cheap_ratio)}),
        (
            "load_generator_share",
            num(r.load_share_overload),
            "fraction of wall time",
            {
                "capacity_step": num(r.load_share_capacity),
                "goodput_full_ratio_loop": num(r.goodput_full_ratio_loop),
            },
        ),
        (
            "p99_overload_us",
            num(r.p99_overload_us),
            "us",
            {"baseline": "unloaded", "baseline_value": num(r.p99_unloaded_us)},
        ),
        (
            "p50_overload_us",
            num(r.p50_overload_us),
            "us",
            {"baseline": "unloaded", "baseline_value": num(r.p50_unloaded_us)},
        ),
        ("loop_lag_p99_us", num(r.loop_lag_p99_us), "us", {}),
        (
            "rss_growth_second_half_mb",
            r.rss_growth_second_half_mb,
            "MB",
            {"rss_start_mb": r.rss_start_mb, "rss_peak_mb": r.rss_peak_mb, "rss_end_mb": r.rss_end_mb},
        ),
        ("unaccounted", float(r.unaccounted), "msgs", {"records_offered": r.records_offered}),
    ]


def main(argv: list[str]) -> int:
    p, a = _params(argv)
    from engine.logging import configure_logging

    # The controller logs every mode change; the timeline is printed below, keep stdout for figures.
    configure_logging("console", a.log_level)
    if a.rounds:
        return _main_rounds(p, a)
    r = run_on_loop(run_experiment(p), p.loop)
    if a.raw:
        print(json.dumps(msgspec.to_builtins(r)))
        return 0
    ctx: dict[str, Any] = {
        "seconds": p.seconds,
        "factor": p.factor,
        "controller": p.controller,
        "symbols": p.symbols,
        "news_per_s": p.news_per_s,
        "loop": p.loop,
    }
    for name, value, unit, extra in _figures(r):
        baseline = extra.pop("baseline", None)
        baseline_value = extra.pop("baseline_value", None)
        emit(
            "overload",
            name,
            value,
            unit,
            baseline=baseline,
            baseline_value=baseline_value,
            as_json=a.json,
            **ctx,
            **extra,
        )
    if p.controller:
        modes: dict[str, Any] = {"worst_mode": r.worst_mode_overload, "final_mode": r.final_mode}
        back = float(r.time_to_normal_s is not None)
        emit("overload", "returned_to_normal", back, "bool", as_json=a.json, **ctx, **modes)
    if not a.json:
        _print_details(r)
    return 0


def _main_rounds(p: OverloadParams, a: argparse.Namespace) -> int:
    rr = run_on_loop(run_rounds(p, a.rounds, a.round_s), p.loop)
    if a.raw:
        print(json.dumps(msgspec.to_builtins(rr)))
        return 0
    ctx: dict[str, Any] = {"rounds": a.rounds, "round_s": a.round_s, "factor": p.factor, "loop": p.loop}
    emit(
        "overload",
        "goodput_full_ratio_rounds",
        rr.ratio_mean,
        "ratio",
        as_json=a.json,
        lower95=rr.ratio_lower95,
        median=rr.ratio_median,
        ratios=[round(x, 3) for x in rr.ratios],
        ratio_loop_mean=rr.ratio_loop_mean,
        ratio_loop_lower95=rr.ratio_loop_lower95,
        ratios_cpu=[round(x, 3) for x in rr.ratios_cpu],
        ratio_cpu_mean=rr.ratio_cpu_mean,
        ratio_cpu_lower95=rr.ratio_cpu_lower95,
        loop_busy_capacity=[round(x, 3) for x in rr.loop_busy_capacity],
        loop_busy_overload=[round(x, 3) for x in rr.loop_busy_overload],
        capacity_front_shed=rr.capacity_front_shed,
        capacities=[round(x) for x in rr.capacities_forecasts_per_s],
        cheap_per_s=[round(x) for x in rr.goodput_cheap_per_s],
        p99_ratios=[round(x, 2) for x in rr.p99_ratios],
        worst_modes=rr.worst_modes,
        unaccounted=rr.unaccounted,
        **ctx,
    )
    return 0


def _print_details(r: OverloadResult) -> None:
    print(f"forecasts by phase.path: {r.forecasts}; overload by model: {r.models_overload}")
    print(f"shed: {r.shed}")
    if r.residuals:
        print(f"ACCOUNTING RESIDUALS: {r.residuals}")
    print(
        f"news: {r.news_ingested} ingested, {r.news_without_embeddings} without embeddings; "
        f"rss {r.rss_start_mb:.1f} MB at the overload's start, peak {r.rss_peak_mb:.1f}, "
        f"end {r.rss_end_mb:.1f} ({r.rss_growth_second_half_mb:+.1f} MB over its second half)"
    )
    for t, mode, reason in r.modes:
        print(f"  t={t:7.2f} s  {mode:<8} {reason}")
    print(f"wall {r.wall_s:.1f} s")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
