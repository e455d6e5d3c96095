"""Kafka at the edge of the pipeline: :class:`KafkaSource` reads, :class:`KafkaSink` writes.

At-least-once, end to end (the edge node: config/default.toml under ``[profiles.node]``)::

    Kafka md --getmany--> KafkaSource --feed_topic (Arrivals)--> MarketDataFeed --bar.<SYM>-->
        EdgeReasoner --forecast.<SYM>--> KafkaSink --acks=all--> Kafka forecasts
    Kafka news --> KafkaSource --news.raw--> NarrativeIngest --> SanityChecker --news.verified--> edge
    KafkaSink --<ack_prefix>.<TOK> (Acked)--> KafkaSource --commit-->
    feed --bar.>--, edge --forecast.>--, feed dead letters --deadletter--> KafkaSource (the ledger)

``<TOK>`` is :func:`adapters.kafka.symbol_token` of the symbol (dots escaped, so any
printable symbol routes).  With ``feed_topic`` set the source decodes and checks each record
(hostile-proof: :class:`~adapters.kafka.RecordCodec`, :func:`~adapters.kafka.check_message`),
sets its ``seq`` to its position and hands each fetch's market records to the one
MarketDataFeed as one :class:`~adapters.sources.recording.Arrivals` (the feed validates
further, numbers by position and builds bars); without it (a forecaster reading records
directly, e.g. the baseline) each record goes on ``md.<TOK>`` / ``bar.<TOK>``.  Every consumed
record is settled in the ledger whatever happens to it:

* a market-data record once every forecast that depends on it was acknowledged by the broker.
  A bar carries the position of the last record it folded and its forecast names it
  (``basis_seq``), so the ack settles every record of the bar; the ledger learns where bars
  end from ``bar.>`` and settles a symbol's records bar by bar: a bar is answered by its
  forecast's ack (or a later one's: acks come in order per symbol), or -- the edge dropped it
  (warm-up, cadence, a bad bar, conflation) -- by the next forecast the edge publishes on
  ``forecast.>`` after it (the edge answers bars in the order it got them), or, when none
  comes, by ``answer_timeout_s`` of an idle pipeline.  ``history_bars`` answered bars per
  symbol stay uncommitted (see :mod:`adapters.kafka`): a node that re-reads a partition is warm
  again before the first bar it owes, so no forecast id is lost to a crash or a rebalance;
  history is released after ``history_max_s`` so a quiet symbol never holds its partition;
* a record the feed rejects (out of order, stale, a spike...) once its dead letter -- the
  feed's reason and the record's original bytes -- is acknowledged on the dead-letter topic
  (the feed's dead letter names the record's position);
* a news record once handed to the bus (with ``news_lockstep``: once the pipeline is idle
  again after it, so news meets market data at the same place live and in a replay);
* a record that fails to decode or to validate, or of a type not accepted here, once its dead
  letter -- the reason, and the raw bytes cut to ``dead_letter_max_raw_bytes`` so that it
  always fits the producer's ``max_request_size`` -- is acknowledged on the dead-letter topic.

Positions, not the feed's seq: each market-data message's ``seq`` is the record's position
(:func:`~adapters.kafka.record_position`: topic index, partition, offset), unique per input
record and stable across restarts.  The feed numbers by it (``seq = "position"``), bars
carry the last one they folded, the forecaster copies it into ``basis_seq`` and builds
``forecast_id`` from it, so a re-delivered record yields the same id (consumers
deduplicate) and two different records never share one.  When partitions are given to the
source, it tells the feed (``Arrivals.reset``) to forget their symbols' state: their records
come again from the last commit.

Recording: ``record_dir`` logs every consumed record, in handover order, for ``finllm replay
--recording`` (:mod:`adapters.sources.recording`); ``recording`` makes the source replay such a
log through the engine's replay driver instead of consuming Kafka (see :class:`KafkaSource`).

Window and commits: at most ``max_in_flight`` records are consumed and not yet committed
(offsets past the committed one, safe or not); the source commits every
``commit_interval_ms`` and as soon as half the window is safe (in the background: fetching
goes on during the round trip), and fetches nothing while the window is full (logged once
per incarnation at info level, counted every time in ``kafka_window_full_total``).  So a
crash, or a rebalance that takes partitions away, re-delivers at most ``max_in_flight``
records of this consumer: that is the duplicate budget per such event.  A partition whose
committed offset has not moved for ``stall_after_ms`` while records wait is reported
(``partition_stalled`` warning, gauges ``kafka_partition_stalled{partition}`` and
``kafka_partitions_stalled``, counter ``kafka_partition_stalls_total``).

Back-pressure: the forecaster's mailbox must hold ``max_in_flight`` records (``block`` or
a capacity >= the window), or shed records wait for a later forecast of their symbol to
cover them (and, when none comes, the stall alarm says so).

Restarts: run source, feed, forecaster and sink under one ``one_for_all`` supervisor (see
config/default.toml).  A sink that dies with forecasts in flight never acknowledges
them (acks are published per symbol in order, so later ones block too), and the
restarted source re-reads from the last commit.  ``on_stop`` always closes every client
(within ``close_timeout_s``), also when the engine cuts it short.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from functools import partial
from typing import Any, Literal

import msgspec

# aiokafka ships no type information (no py.typed): its names are Any to mypy.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
)
from aiokafka.partitioner import murmur2

from adapters.errors import RecordRejected
from adapters.kafka import (
    MAX_OFFSET,
    MAX_PARTITIONS,
    MAX_TOPICS,
    Acked,
    ConsumerConfig,
    InputLimits,
    KafkaConfig,
    OffsetTracker,
    ProducerConfig,
    RecordCodec,
    TopicPartitionState,
    TrackedRecord,
    bounded_key,
    check_message,
    consumer_kwargs,
    dead_letter_headers,
    delivery_timeout_s,
    encode_dead_letter,
    forecast_headers,
    position_stream,
    producer_kwargs,
    record_position,
    send_settled,
    stop_clients,
    stream_id,
    symbol_token,
)
from adapters.sources.recording import Arrivals, InputLog, RecordedInput, RecordedReset, RecordingReader
from adapters.text.sources import assign_channel
from engine.actor import Actor
from engine.messages import Bar, DeadLetter, Forecast, ModeChange, NewsItem, Quote, ReasoningTrace, Trade
from engine.replay import Emit, ReplayDriver

__all__ = ["KafkaSink", "KafkaSinkConfig", "KafkaSource", "KafkaSourceConfig"]

_MAX_UNANSWERED = 1_000_000
"""Bars remembered while waiting to learn whether the forecaster answered them."""

_DL_ENVELOPE_BYTES = 16_384
"""Room a dead letter needs besides its raw bytes (reason, detail, key, headers), bytes."""


class KafkaSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where and how to consume.  Times in milliseconds unless the name says ``_s``."""

    kafka: KafkaConfig = KafkaConfig()
    consumer: ConsumerConfig = ConsumerConfig()
    producer: ProducerConfig = ProducerConfig()
    """For dead letters."""
    topics: tuple[str, ...] = ("md",)
    """At most 8; a topic's place in this list is part of every position (keep the order)."""
    value_format: Literal["auto", "msgpack", "json"] = "auto"
    limits: InputLimits = InputLimits()
    """Size, depth, symbol and value limits every record must meet (else it is dead-lettered)."""
    dead_letter_topic: str = "deadletter"
    dead_letter_format: Literal["msgpack", "json"] = "json"
    dead_letter_max_raw_bytes: int = 65_536
    """Raw bytes kept in a dead letter (the original length is recorded too)."""
    ack_prefix: str = "kafka.acked"
    """Bus topic prefix the sink acknowledges on; subscribe the source to ``<ack_prefix>.*``
    (and to ``control.partitions`` to obey the control plane's release / rejoin)."""
    wait_for_forecast: bool = True
    """Market data waits for a forecast ack before commit; false commits once handed on."""
    max_in_flight: int = 20_000
    """Most records consumed and not yet committed (> 0): the re-delivery budget of a crash."""
    max_records: int = 10_000
    """Most records one fetch returns (> 0)."""
    fetch_timeout_ms: int = 100
    commit_interval_ms: int = 200
    revoke_grace_ms: int = 1_000
    """On revoke, how long to wait for in-flight records of the lost partitions to become safe."""
    stall_after_ms: int = 30_000
    """A partition whose commit has not moved for this long while records wait is reported stalled."""
    stamp_recv: bool = True
    """Set ``ts_recv`` (ns, wall clock) on trades and quotes that arrive without one."""
    sink_actor: str = "kafka-sink"
    """The sink's actor name: after a restart, the source waits for its in-flight gauge to reach 0."""
    settle_before_fetch_s: float = 10.0
    """After a (re)start, wait at most this long for the pipeline to be idle before fetching."""
    feed_topic: str = ""
    """Where market records go: empty publishes each decoded record on ``md.<TOK>`` /
    ``bar.<TOK>`` (a forecaster reading records directly); a topic name (``records.md``)
    hands them to the market-data feed as :class:`~adapters.sources.recording.Arrivals`
    (one per fetch; the feed validates, numbers by position and bars them)."""
    history_bars: int = 0
    """Acknowledged bars per symbol whose records stay uncommitted, so that a restarted node
    re-reads enough to warm its features (see :mod:`adapters.kafka`); needs the source
    subscribed to ``bar.>``.  0: an ack settles everything up to its record."""
    answer_timeout_s: float = 5.0
    """A bar still without a forecast this long after it was published, while the whole pipeline
    is idle, counts as answered without one (the forecaster dropped it and no later forecast came
    to tell).  Bars are otherwise known answered by their forecast's ack or by a later forecast."""
    history_max_s: float = 300.0
    """History answered longer ago than this is released (a quiet symbol must not hold its
    partition's commit); 0: kept until newer bars push it out."""
    news_channels: dict[str, str] = {}
    """Where a news item's source comes from (issue 15): topic -> source id (``news.reuters`` ->
    ``reuters``), or ``"declared"`` for a vetted aggregator whose items' own ``source`` fields
    are trusted (marked declared).  A news topic not listed vouches for nobody: its items'
    source becomes ``open:<topic>`` (what they claimed is kept in ``declared_source``)."""
    news_lockstep: bool = False
    """Hand a news record over only once the pipeline is idle, and fetch on only once it is
    idle again: the edge then sees news exactly between the same market records as a replay
    of the recording would (costs the news analysis time, per news record, in latency)."""
    lockstep_timeout_s: float = 30.0
    """Longest wait for idle around a news record (then it goes on, logged and counted).  Longer
    than the longest a participant stays busy: a cloud tier in lockstep holds its actor until its
    call ends or hits its own ``deadline_s`` (20 s in default.toml); at 5 s a slow local LLM made
    these waits time out and the news go over mid-refinement, off the replay's order."""
    record_dir: str = ""
    """``finllm node --record DIR``: log every consumed record, in handover order, to
    ``DIR/inputs.jsonl`` (:mod:`adapters.sources.recording`)."""
    recording: str = ""
    """``finllm replay --recording DIR``: no Kafka; hand over the records of a recording
    instead, through the engine's replay driver (see :class:`KafkaSource`)."""
    close_timeout_s: float = 2.0
    """``on_stop`` takes at most this long: half for the final commit, the rest to close the
    clients.  Keep it under the actor's ``shutdown_timeout_s`` (default 5 s)."""

    def __post_init__(self) -> None:
        for name in ("max_in_flight", "max_records", "commit_interval_ms", "stall_after_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.fetch_timeout_ms < 0 or self.revoke_grace_ms < 0:
            raise ValueError("fetch_timeout_ms and revoke_grace_ms must be >= 0")
        if not 1 <= len(self.topics) <= MAX_TOPICS or len(set(self.topics)) != len(self.topics):
            raise ValueError(f"topics must be 1..{MAX_TOPICS} distinct names, got {list(self.topics)}")
        if not 0 <= self.dead_letter_max_raw_bytes <= self.producer.max_request_size - _DL_ENVELOPE_BYTES:
            raise ValueError(
                "dead_letter_max_raw_bytes must be in [0, producer.max_request_size - "
                f"{_DL_ENVELOPE_BYTES}], got {self.dead_letter_max_raw_bytes}"
            )
        if self.close_timeout_s <= 0:
            raise ValueError(f"close_timeout_s must be > 0, got {self.close_timeout_s}")
        if self.history_bars < 0 or self.lockstep_timeout_s <= 0:
            raise ValueError("history_bars must be >= 0 and lockstep_timeout_s > 0")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._source._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._source._on_assigned(list(assigned))


class KafkaSource(Actor[KafkaSourceConfig]):
    """Consumes records, publishes them on the bus, commits what is safe (see module doc).

    **Replaying a recording** (``recording = DIR``, what ``finllm replay --recording``
    sets): no Kafka client is made.  The recorded records (:mod:`adapters.sources.recording`)
    go through the same decoding and checks, get the same positions and are handed over in
    the recorded order and steps (:class:`~adapters.sources.recording.Arrivals` to the feed,
    each news item alone), through the engine's replay driver: it moves the simulated clock
    to each step's recorded handover time and waits for the pipeline to go idle between
    steps, as the live node's news lockstep did around news.  What the node published that
    cannot be re-derived (cloud refinements, mode changes) is published again once as many
    forecasts and traces went out as before it live (subscribe the source to ``forecast.>``
    and ``trace.>`` to count them): at the end of the first step that reaches that count, which
    is where it was live unless it landed inside one step's burst of forecasts (between two
    micro-batches of the edge, a sub-millisecond window); a mode change then takes effect from
    the next step.  The replay asks the engine to stop at the end.
    """

    config_type = KafkaSourceConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self._replay: _RecordingInput | None = None
        if cfg.recording:
            self._start_replay()
            return
        self._tracker = OffsetTracker(cfg.history_bars, cfg.history_max_s)
        self._unanswered: deque[tuple[str, int, float]] = deque()
        self._unanswered_set: set[tuple[str, int]] = set()
        self._next_expiry = 0.0
        self._codec = RecordCodec(cfg.value_format, limits=cfg.limits)
        self._dl_encode = msgspec.json.encode if cfg.dead_letter_format == "json" else msgspec.msgpack.encode
        self._topic_index = {t: i for i, t in enumerate(cfg.topics)}
        self._room = asyncio.Event()
        self._room.set()
        m = self.ctx.metrics
        name = self.ctx.name
        self._m_records = m.counter("kafka_records_in_total", actor=name)
        self._m_bad = m.counter("kafka_dead_letters_total", actor=name)
        self._m_commits = m.counter("kafka_commits_total", actor=name)
        self._m_commit_fail = m.counter("kafka_commit_failures_total", actor=name)
        self._m_skipped = m.counter("kafka_records_skipped_revoked_total", actor=name)
        self._m_acks = m.counter("kafka_records_safe_total", actor=name)
        self._m_full = m.counter("kafka_window_full_total", actor=name)
        self._m_stalls = m.counter("kafka_partition_stalls_total", actor=name)
        self._m_dl_failed = m.counter("kafka_dead_letter_send_failures_total", actor=name)
        self._m_revokes = m.counter("kafka_revokes_total", actor=name)
        self._m_redelivered = m.counter("kafka_revoke_redelivered_total", actor=name)
        self._g_inflight = m.gauge("kafka_in_flight", actor=name)
        self._g_uncommitted = m.gauge("kafka_uncommitted", actor=name)
        self._g_stalled = m.gauge("kafka_partitions_stalled", actor=name)
        self._m_settled = m.counter("kafka_records_rejected_downstream_total", actor=name)
        self._m_lockstep_late = m.counter("kafka_lockstep_timeouts_total", actor=name)
        self._m_history_released = m.counter("kafka_history_released_total", actor=name)
        self._full_idle_since = -1.0
        self._history_logged = False
        self._log: InputLog | None = None
        if cfg.record_dir:
            self._log = InputLog(cfg.record_dir, list(cfg.topics), self.ctx.node_id)
        self._next_commit = 0.0
        self._retry_commit = 0.0
        self._committing: asyncio.Task[None] | None = None
        self._window_full = False
        self._window_logged = False
        self._released = False
        self._group_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        try:
            self._producer = AIOKafkaProducer(**producer_kwargs(cfg.kafka, cfg.producer))
            self._consumer = AIOKafkaConsumer(**consumer_kwargs(cfg.kafka, cfg.consumer))
            await self._producer.start()
            self._consumer.subscribe(list(cfg.topics), listener=_Rebalance(self))
            await self._consumer.start()
        except BaseException:
            await self._close_clients()
            raise
        self.ctx.spawn(self._fetch_loop(), name=f"{name}:fetch")

    # --- consuming ---------------------------------------------------------

    async def _fetch_loop(self) -> None:
        cfg = self.config
        consumer = self._consumer
        assert consumer is not None
        tracker = self._tracker
        interval = cfg.commit_interval_ms / 1000.0
        # Commit as soon as half the window is safe: the window only reopens through commits.
        commit_at = max(1, cfg.max_in_flight // 2)
        await self._settle_pipeline()
        while True:
            if self._released:  # the control plane took this node out of the group
                await asyncio.sleep(interval)
                continue
            now = time.monotonic()
            if self._committing is None and (
                now >= self._next_commit
                or (now >= self._retry_commit and tracker.safe_uncommitted() >= commit_at)
            ):
                # In the background: fetching goes on during the round trip (the window still
                # only reopens once the commit is acknowledged).
                self._next_commit = now + interval
                self._committing = self.ctx.spawn(self._background_commit(), name=f"{self.ctx.name}:commit")
            room = cfg.max_in_flight - tracker.uncommitted()
            if room <= 0:
                self._on_window_full()
                self._release_history_if_stuck(now)
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), interval)
            else:
                self._window_full = False
                batches = await consumer.getmany(
                    timeout_ms=cfg.fetch_timeout_ms, max_records=min(room, cfg.max_records)
                )
                if batches:
                    await self._ingest(batches)
            if now >= self._next_expiry:
                self._next_expiry = now + interval
                if self._sweep_unanswered(now) + tracker.expire_history(now):
                    self._room.set()
            self._g_inflight.set(tracker.in_flight)
            self._g_uncommitted.set(tracker.uncommitted())
            self._check_stalls()

    async def _background_commit(self) -> None:
        try:
            await self._commit()
        finally:
            self._committing = None
            self._room.set()  # the window may have room again

    def _release_history_if_stuck(self, now: float) -> None:
        """A window full while the pipeline is idle for ``answer_timeout_s`` cannot drain by
        itself when what fills it is history (symbols x ``history_bars`` x records per bar over
        ``max_in_flight``): release the history now (counted, logged once) rather than stall
        until ``history_max_s``.  A crash soon after re-reads less warm-up: the first bars it owes
        may then be warm-up bars without a forecast."""
        if not self.ctx.runtime.is_idle():
            self._full_idle_since = -1.0
            return
        if self._full_idle_since < 0:
            self._full_idle_since = now
        if now - self._full_idle_since < self.config.answer_timeout_s:
            return
        self._full_idle_since = -1.0
        n = self._tracker.release_history()
        if n:
            self._m_history_released.inc(n)
            self._room.set()
            if not self._history_logged:
                self._history_logged = True
                self.ctx.log.warning(
                    "history_released_for_the_window",
                    records=n,
                    max_in_flight=self.config.max_in_flight,
                    history_bars=self.config.history_bars,
                    hint="the window holds less than symbols x history_bars x records per bar: "
                    "raise max_in_flight (or lower history_bars) to keep restarts warm; counted in "
                    "kafka_history_released_total",
                )

    def _on_window_full(self) -> None:
        if self._window_full:
            return
        self._window_full = True
        self._m_full.inc()
        if not self._window_logged:
            # Info, not warning: a full window is ordinary back-pressure while a backlog drains.
            # A window that stays full because records cannot commit trips the stall alarm.
            self._window_logged = True
            self.ctx.log.info(
                "in_flight_window_full",
                max_in_flight=self.config.max_in_flight,
                uncommitted=self._tracker.uncommitted(),
                not_safe=self._tracker.in_flight,
                note="fetching waits for commits; logged once, counted in kafka_window_full_total",
            )

    def _check_stalls(self) -> None:
        tracker = self._tracker
        stalled, recovered = tracker.check_stalls(time.monotonic(), self.config.stall_after_ms / 1000.0)
        if not (stalled or recovered):
            return
        m = self.ctx.metrics
        for part in stalled:
            self._m_stalls.inc()
            m.gauge("kafka_partition_stalled", actor=self.ctx.name, partition=_tp_name(part.tp)).set(1)
            self.ctx.log.warning(
                "partition_stalled",
                partition=_tp_name(part.tp),
                committed=part.committed,
                head_offset=part.head_offset,
                uncommitted=part.uncommitted,
                waiting_keys=len(part.keys),
                stalled_after_ms=self.config.stall_after_ms,
            )
        for part in recovered:
            m.gauge("kafka_partition_stalled", actor=self.ctx.name, partition=_tp_name(part.tp)).set(0)
            self.ctx.log.info("partition_recovered", partition=_tp_name(part.tp), committed=part.committed)
        self._g_stalled.set(sum(1 for p in tracker.parts() if p.stalled))

    async def _settle_pipeline(self) -> None:
        """Before the first fetch, let forecasts of a previous incarnation land.

        After an in-process restart, forecasts made from records this incarnation is about to
        re-read may still sit in the forecaster's mailbox or in the sink's flight; their acks
        must reach the (empty) ledger before it registers the re-read records, or one of them
        could cover a re-read record whose new forecast is not written yet.
        """
        runtime = self.ctx.runtime
        sink = self.ctx.metrics.gauge("kafka_sink_in_flight", actor=self.config.sink_actor)
        deadline = time.monotonic() + self.config.settle_before_fetch_s
        while not (runtime.is_idle() and sink.value == 0):
            if time.monotonic() > deadline:
                self.ctx.log.warning("pipeline_not_idle_before_fetch", sink_in_flight=sink.value)
                return
            await asyncio.sleep(0.01)

    async def _ingest(self, batches: dict[Any, list[Any]]) -> None:
        """Decode, check and hand over one fetch, in partition then offset order; register every
        record in the ledger.  With ``news_lockstep`` a news record goes over alone, between two
        waits for an idle pipeline (see the config)."""
        tracker = self._tracker
        cfg = self.config
        decode = self._codec.decode
        limits = cfg.limits
        keyed = cfg.wait_for_forecast
        stamp = cfg.stamp_recv
        lockstep = cfg.news_lockstep
        log = self._log
        feed = cfg.feed_topic
        now = time.time_ns()
        replace = msgspec.structs.replace
        market: list[Any] = []
        out: dict[str, list[Any]] = {}
        for tp, recs in batches.items():
            part = tracker.get(tp)
            if part is None:
                # Fetched just before the partition was revoked: its new owner will read it.
                self._m_skipped.inc(len(recs))
                continue
            self._m_records.inc(len(recs))
            base = part.stream << 48 if part.stream >= 0 else -1
            for i, r in enumerate(recs):
                off = r.offset
                try:
                    msg = decode(r.value)
                    check_message(msg, limits)
                except RecordRejected as exc:
                    if log is not None:
                        log.record(r, now)
                    self._dead(part, r, exc.reason)
                    continue
                except Exception as exc:  # a validator bug must cost one record, never the partition
                    if log is not None:
                        log.record(r, now)
                    self._dead(part, r, f"decode_error: {type(exc).__name__}: {exc}")
                    continue
                if log is not None and not (lockstep and isinstance(msg, NewsItem)):
                    log.record(r, now)
                if isinstance(msg, NewsItem):
                    msg = assign_channel(msg, r.topic, cfg.news_channels)
                    if not lockstep:
                        if stamp and msg.ts_recv == 0:
                            msg = replace(msg, ts_recv=now)
                        tracker.add_done(part, off)
                        _append(out, "news.raw", msg)
                        continue
                    # Lockstep: what came before goes first and is handled whole, then the news
                    # item alone, then the rest.  A rebalance may revoke the partition meanwhile.
                    self._hand_over(market, out, now)
                    market, out = [], {}
                    await self._idle("before_news")
                    now = time.time_ns()
                    if tracker.get(tp) is not part:
                        self._m_skipped.inc(len(recs) - i)
                        break
                    if stamp and msg.ts_recv == 0:
                        msg = replace(msg, ts_recv=now)
                    if log is not None:
                        log.next_step()
                        log.record(r, now)
                    tracker.add_done(part, off)
                    self.ctx.bus.publish("news.raw", msg)
                    if log is not None:
                        log.next_step()
                    await self._idle("after_news")
                    now = time.time_ns()
                    if tracker.get(tp) is not part:
                        self._m_skipped.inc(len(recs) - i - 1)
                        break
                    continue
                if not isinstance(msg, (Trade, Quote, Bar)):
                    tag = type(msg).__struct_config__.tag
                    self._dead(part, r, f"unsupported_type: {tag!r} records are not accepted on {r.topic!r}")
                    continue
                if base < 0 or off > MAX_OFFSET:
                    self._dead(part, r, f"position_out_of_range: partition {r.partition} offset {off}")
                    continue
                sym = msg.symbol
                pos = base | (off + 1)
                if isinstance(msg, Bar):
                    msg = replace(msg, seq=pos)
                    if not feed:
                        _append(out, "bar." + symbol_token(sym), msg)
                else:
                    msg = replace(msg, seq=pos, ts_recv=msg.ts_recv or now)
                    if not feed:
                        _append(out, "md." + symbol_token(sym), msg)
                if feed:
                    market.append(msg)
                if keyed:
                    tracker.add_keyed(part, off, sym, r.value, r.key)
                else:
                    tracker.add_done(part, off)
        self._hand_over(market, out, now)

    def _hand_over(self, market: list[Any], out: dict[str, list[Any]], now: int) -> None:
        bus = self.ctx.bus
        if market:
            bus.publish(self.config.feed_topic, Arrivals(now, market))
        for topic, msgs in out.items():
            bus.publish_many(topic, msgs)
        if self._log is not None and (market or out):
            self._log.next_step()

    async def _idle(self, where: str) -> None:
        """Wait (polling, not spinning: the news analysis runs in a thread) for an idle bus."""
        runtime = self.ctx.runtime
        deadline = time.monotonic() + self.config.lockstep_timeout_s
        while not runtime.is_idle():
            if time.monotonic() > deadline:
                self._m_lockstep_late.inc()
                self.ctx.log.warning(
                    "news_lockstep_timeout", where=where, waited_s=self.config.lockstep_timeout_s
                )
                return
            await asyncio.sleep(0.0002)

    def _dead(self, part: TopicPartitionState, r: Any, reason: str) -> None:
        cfg = self.config
        raw = r.value if r.value is not None else b""
        key = bounded_key(r.key)
        detail = {"topic": r.topic, "partition": r.partition, "offset": r.offset}
        dl, value = encode_dead_letter(
            source=f"{r.topic}/{r.partition}@{r.offset}",
            reason=reason,
            raw=raw,
            ts_event=time.time_ns(),
            detail=detail,
            encode=self._dl_encode,
            max_raw_bytes=cfg.dead_letter_max_raw_bytes,
            max_request_size=cfg.producer.max_request_size,
            key=key,
            headers=dead_letter_headers(reason, r.topic, r.partition, r.offset),
        )
        rec = self._tracker.add(part, r.offset)
        self._m_bad.inc()
        self.ctx.dead_letter(dl.reason, raw=dl.raw, **dl.detail)
        self.ctx.spawn(self._send_dead(rec, dl, value, key, r), name=f"{self.ctx.name}:dead-letter")

    async def _send_dead(self, rec: TrackedRecord, dl: Any, value: bytes, key: bytes | None, r: Any) -> None:
        producer = self._producer
        assert producer is not None
        headers = dead_letter_headers(dl.reason, r.topic, r.partition, r.offset)
        delay = 0.1
        while True:
            try:
                await send_settled(
                    producer,
                    self.config.dead_letter_topic,
                    value,
                    key=key,
                    headers=headers,
                    timeout_s=delivery_timeout_s(self.config.kafka),
                )
                break
            except MessageSizeTooLargeError as exc:
                # The broker's limit is below ours: keep the reason and where it came from, drop the bytes.
                self._m_dl_failed.inc()
                self.ctx.log.warning("dead_letter_too_large", error=repr(exc), size=len(value))
                value = self._dl_encode(msgspec.structs.replace(dl, raw=b""))
                key = None
            except KafkaError as exc:
                self._m_dl_failed.inc()
                self.ctx.log.warning("dead_letter_send_failed", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._tracker.done(rec)
        self._m_acks.inc()

    # --- acknowledgements ----------------------------------------------------

    def on_batch(self, msgs: list[Any]) -> None:
        if self._replay is not None:
            self._replay.count(msgs)
            return
        tracker = self._tracker
        tracker.now = time.monotonic()
        ack = tracker.ack
        n = 0
        for m in msgs:
            t = type(m)
            if t is Acked:
                n += ack(m.symbol, m.basis_seq)
            elif t is Bar:
                self._on_bar(m)
            elif t is Forecast:
                n += self._on_forecast(m)
            elif t is DeadLetter:
                self._rejected_downstream(m)
            elif getattr(m, "action", None) in ("release", "rejoin") and getattr(m, "node_id", "") in (
                "",
                self.ctx.node_id,
            ):
                # A PartitionAction of the control plane (duck-typed: actors do not import actors).
                self.ctx.spawn(self._partition_action(m.action, str(getattr(m, "reason", ""))))
        self._m_acks.inc(n)
        if n:
            self._room.set()  # the loop re-checks whether enough is safe to commit

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    def _on_bar(self, bar: Bar) -> None:
        """A bar of the feed (``bar.>``): where it ends, and that an answer for it is owed."""
        key = (bar.symbol, bar.seq)
        self._tracker.bar(*key)
        if key not in self._unanswered_set:
            if len(self._unanswered) >= _MAX_UNANSWERED:  # no forecaster answers: stop guessing
                self._unanswered_set.discard(self._unanswered.popleft()[:2])
            self._unanswered.append((bar.symbol, bar.seq, self._tracker.now))
            self._unanswered_set.add(key)

    def _on_forecast(self, fc: Forecast) -> int:
        """A forecaster published ``fc`` (``forecast.>``; its broker ack comes later).

        The forecaster answers bars in the order it got them, so every bar handed to it before
        ``fc``'s own bar and still without a forecast was dropped (warm-up, cadence, a bad bar,
        conflation): it is answered, and settles (with the history rules) without an ack.
        """
        if fc.version != 1:
            return 0
        key = (fc.symbol, fc.basis_seq)
        if key not in self._unanswered_set:
            return 0
        q = self._unanswered
        n = 0
        while q:
            sym, seq, _ = q.popleft()
            self._unanswered_set.discard((sym, seq))
            if (sym, seq) == key:
                break  # answered by this forecast's ack
            n += self._tracker.answered(sym, seq)
        return n

    def _sweep_unanswered(self, now: float) -> int:
        """Bars still unanswered after ``answer_timeout_s`` while the whole pipeline is idle were
        dropped (nothing later came to say so: the last bars of a quiet stream)."""
        q = self._unanswered
        if not q or now - q[0][2] < self.config.answer_timeout_s or not self.ctx.runtime.is_idle():
            return 0
        n = 0
        horizon = now - self.config.answer_timeout_s
        while q and q[0][2] <= horizon:
            sym, seq, _ = q.popleft()
            self._unanswered_set.discard((sym, seq))
            n += self._tracker.answered(sym, seq)
        return n

    def _rejected_downstream(self, dl: DeadLetter) -> None:
        """A record the pipeline refused after us (the feed: out of order, stale, crossed, a
        spike...): the dead letter names its position.  No forecast will ever cover it, so it
        is settled once its dead letter, with the record's original bytes, is on the dead-letter
        topic.  Dead letters without a position (ours, other actors') are not about a record."""
        pos = dl.detail.get("position")
        sym = dl.detail.get("symbol")
        if not isinstance(pos, int) or not isinstance(sym, str) or pos <= 0:
            return
        rec = self._tracker.find(sym, pos)
        if rec is None:
            return  # not ours (another node's, a revoked partition) or settled already
        tp = rec.part.tp
        raw = rec.value if rec.value is not None else b""
        reason = f"{dl.source}: {dl.reason}"
        detail = {"topic": tp.topic, "partition": tp.partition, "offset": rec.offset, "position": pos}
        for k, v in dl.detail.items():
            if k not in detail and isinstance(v, (int, float, str)):
                detail[k] = v
        cfg = self.config
        out, value = encode_dead_letter(
            source=f"{tp.topic}/{tp.partition}@{rec.offset}",
            reason=reason,
            raw=raw,
            ts_event=dl.ts_event,
            detail=detail,
            encode=self._dl_encode,
            max_raw_bytes=cfg.dead_letter_max_raw_bytes,
            max_request_size=cfg.producer.max_request_size,
            key=bounded_key(rec.key),
            headers=dead_letter_headers(reason, tp.topic, tp.partition, rec.offset),
        )
        self._m_settled.inc()
        origin = _Origin(tp.topic, tp.partition, rec.offset)
        send = self._send_dead(rec, out, value, bounded_key(rec.key), origin)
        self.ctx.spawn(send, name=f"{self.ctx.name}:dead-letter")

    # --- committing ------------------------------------------------------------

    async def _commit(self, offsets: dict[Any, int] | None = None) -> bool:
        now = time.monotonic()
        interval = self.config.commit_interval_ms / 1000.0
        self._next_commit = now + interval
        if offsets is None:
            offsets = self._tracker.to_commit()
        if not offsets:
            return True
        if self._log is not None:
            self._log.flush()  # what is committed is in the recording
        consumer = self._consumer
        assert consumer is not None
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (rebalance); the new owner re-reads from the last commit.
            self._commit_failed("commit_failed", exc, offsets, now + interval)
            return False
        except KafkaError as exc:
            self._commit_failed("commit_error", exc, offsets, now + interval)
            return False
        self._tracker.committed(offsets)
        self._m_commits.inc()
        return True

    def _commit_failed(self, event: str, exc: Exception, offsets: dict[Any, int], retry_at: float) -> None:
        self._retry_commit = retry_at  # no commit storm while the group is unavailable
        self._m_commit_fail.inc()
        self.ctx.log.warning(event, error=repr(exc), partitions=len(offsets))

    async def _on_revoked(self, revoked: list[Any]) -> None:
        tracker = self._tracker
        deadline = time.monotonic() + self.config.revoke_grace_ms / 1000.0
        lost = [p for tp in revoked if (p := tracker.get(tp)) is not None]
        # Let forecasts already in flight for the lost partitions land: fewer duplicates later.
        # Polling, not an event: acks arrive through the mailbox and rebalances are rare.
        while time.monotonic() < deadline and any(p.pending for p in lost):  # noqa: ASYNC110 - see above
            await asyncio.sleep(0.01)
        uncommitted = sum(p.uncommitted for p in lost)
        self._forget_unanswered({p.stream for p in lost})
        offsets = tracker.revoke(revoked)
        ok = await self._commit(offsets) if offsets else True
        # What the next owner re-reads: the duplicate cost of this rebalance (<= max_in_flight).
        redelivered = sum(_redelivered(p, ok) for p in lost)
        if lost:  # aiokafka also reports an empty revoke on the first join
            self._m_revokes.inc()
            self._m_redelivered.inc(redelivered)
        self.ctx.log.info(
            "partitions_revoked",
            partitions=len(lost),
            committed=len(offsets),
            commit_ok=ok,
            uncommitted_before=uncommitted,
            redelivered=redelivered,
        )

    async def _partition_action(self, action: str, reason: str) -> None:
        """``release``: commit what is safe and leave the group; ``rejoin``: subscribe again."""
        consumer = self._consumer
        assert consumer is not None
        async with self._group_lock:
            if action == "release" and not self._released:
                self._released = True
                await self._on_revoked(self._tracker.assigned())
                consumer.unsubscribe()
                self.ctx.log.warning("partitions_released", reason=reason)
            elif action == "rejoin" and self._released:
                consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
                self._released = False
                self.ctx.log.info("group_rejoined", reason=reason)

    def _on_assigned(self, assigned: list[Any]) -> None:
        streams: list[int] = []
        for tp in assigned:
            try:
                stream = stream_id(self._topic_index[tp.topic], tp.partition)
                streams.append(stream)
            except (KeyError, ValueError):
                # Its market data cannot carry a position: dead-lettered record by record.
                self.ctx.log.error("partition_without_position", partition=_tp_name(tp))
                stream = -1 - tp.partition
            self._tracker.partition(tp, stream)
        if streams and self.config.feed_topic:
            # Whatever the feed remembers of these streams' symbols (this node's own earlier turn
            # on them) is stale: their records come again from the last commit.
            reset = tuple(sorted(streams))
            self._forget_unanswered(set(reset))
            now = time.time_ns()
            if self._log is not None:
                self._log.reset(reset, now)
            self.ctx.bus.publish(self.config.feed_topic, Arrivals(now, [], reset))
        self._room.set()
        self.ctx.log.info("partitions_assigned", partitions=sorted(_tp_name(tp) for tp in assigned))

    def _forget_unanswered(self, streams: set[int]) -> None:
        """Bars of ``streams`` still waiting to be answered belong to an earlier turn: forget them."""
        keep = deque(e for e in self._unanswered if position_stream(e[1]) not in streams)
        if len(keep) != len(self._unanswered):
            self._unanswered = keep
            self._unanswered_set = {(sym, seq) for sym, seq, _ in keep}

    def _start_replay(self) -> None:
        cfg = self.config
        self._codec = RecordCodec(cfg.value_format, limits=cfg.limits)
        reader = RecordingReader(cfg.recording)
        driver = ReplayDriver.of(self.ctx.runtime)
        self._driver = driver
        self._replay = _RecordingInput(self, reader)
        driver.attach(self._replay)
        self.ctx.spawn(driver.serve(), name=f"{self.ctx.name}:replay")
        self.ctx.log.info("recording_replay", recording=cfg.recording, topics=reader.topics)

    async def on_stop(self) -> None:
        if self._replay is not None:
            self._driver.detach(self._replay)
            return
        # The final commit gets half of close_timeout_s, closing the clients the rest.  Closing
        # is in ``finally``: also when the engine cuts on_stop short (its shutdown_timeout_s),
        # every client is stopped, never left to warn as unclosed.
        deadline = time.monotonic() + self.config.close_timeout_s
        try:
            if getattr(self, "_consumer", None) is not None and getattr(self, "_tracker", None) is not None:
                try:
                    await asyncio.wait_for(self._commit(), self.config.close_timeout_s / 2)
                except Exception as exc:  # the records stay uncommitted and are re-read: log, go on
                    self.ctx.log.warning("final_commit_failed", error=repr(exc))
        finally:
            log = getattr(self, "_log", None)
            if log is not None:
                self._log = None
                log.close()
            await self._close_clients(max(0.1, deadline - time.monotonic()))

    async def _close_clients(self, timeout_s: float | None = None) -> None:
        clients = (getattr(self, "_producer", None), getattr(self, "_consumer", None))
        for err in await stop_clients(clients, timeout_s or self.config.close_timeout_s):
            self.ctx.log.warning("client_stop_failed", error=err)


class _RecordingInput:
    """A recording as an input of the replay driver (see :class:`KafkaSource`)."""

    shutdown_reason = "recording replayed"

    def __init__(self, source: KafkaSource, reader: RecordingReader) -> None:
        self.name = source.ctx.name
        self._source = source
        self._reader = reader
        self._inputs = reader.inputs()
        self._next: RecordedInput | RecordedReset | None = next(self._inputs, None)
        self._outputs = deque(reader.outputs())
        self._index = {t: i for i, t in enumerate(reader.topics)}
        self.forecasts = 0
        self.traces = 0
        self.handed = 0

    def count(self, msgs: list[Any]) -> None:
        """Forecasts and traces published so far (the source's own mailbox sees them)."""
        for m in msgs:
            t = type(m)
            if t is Forecast:
                self.forecasts += 1
            elif t is ReasoningTrace:
                self.traces += 1

    def head_ns(self) -> int | None:
        if self._next is not None:
            return self._next.recv
        if self._outputs:
            return self._source.ctx.clock.now_ns()
        return None

    def _output_due(self) -> bool:
        if not self._outputs:
            return False
        o = self._outputs[0]
        return self._next is None or (o.n_forecasts <= self.forecasts and o.n_traces <= self.traces)

    def take(self, until_ns: int) -> list[Emit]:
        if self._output_due():
            o = self._outputs.popleft()
            if type(o.msg) is ModeChange:
                self._source.ctx.runtime.mode = o.msg.mode
            return [Emit(o.topic, [o.msg])]
        return self._step()

    def _step(self) -> list[Emit]:
        """The next handover step: its market records in one Arrivals, or one news item alone."""
        src = self._source
        cfg = src.config
        decode = src._codec.decode
        limits = cfg.limits
        replace = msgspec.structs.replace
        first = self._next
        assert first is not None
        if isinstance(first, RecordedReset):
            self._advance()
            return [Emit(cfg.feed_topic or "recording.clock", [Arrivals(first.recv, [], first.streams)])]
        market: list[Any] = []
        emits: list[Emit] = []
        while (r := self._next) is not None and isinstance(r, RecordedInput) and r.step == first.step:
            try:
                msg = decode(r.value)
                check_message(msg, limits)
            except RecordRejected as exc:
                self._dead(r, exc.reason)
                self._advance()
                continue
            except Exception as exc:
                self._dead(r, f"decode_error: {type(exc).__name__}: {exc}")
                self._advance()
                continue
            if isinstance(msg, NewsItem):
                if market:
                    break  # what came before goes first; the news item is a step of its own
                self._advance()
                msg = assign_channel(msg, r.topic, cfg.news_channels)
                if cfg.stamp_recv and msg.ts_recv == 0:
                    msg = replace(msg, ts_recv=r.recv)
                # Move the clock to the handover first: the item's own time is its event time.
                emits.append(Emit(cfg.feed_topic or "recording.clock", [Arrivals(r.recv, [])]))
                emits.append(Emit("news.raw", [msg]))
                return emits
            self._advance()
            if not isinstance(msg, (Trade, Quote, Bar)):
                tag = type(msg).__struct_config__.tag
                self._dead(r, f"unsupported_type: {tag!r} records are not accepted on {r.topic!r}")
                continue
            index = self._index.get(r.topic)
            if index is None or r.offset > MAX_OFFSET or not 0 <= r.partition < MAX_PARTITIONS:
                self._dead(r, f"position_out_of_range: partition {r.partition} offset {r.offset}")
                continue
            pos = record_position(stream_id(index, r.partition), r.offset)
            if isinstance(msg, Bar):
                msg = replace(msg, seq=pos)
            else:
                msg = replace(msg, seq=pos, ts_recv=msg.ts_recv or (r.recv if cfg.stamp_recv else 0))
            market.append(msg)
        self.handed += len(market)
        if market:
            if cfg.feed_topic:
                emits.append(Emit(cfg.feed_topic, [Arrivals(first.recv, market)]))
            else:
                for m in market:
                    tok = symbol_token(m.symbol)
                    emits.append(Emit(("bar." if type(m) is Bar else "md.") + tok, [m]))
        return emits

    def _advance(self) -> None:
        self._next = next(self._inputs, None)

    def _dead(self, r: RecordedInput, reason: str) -> None:
        raw = (r.value or b"")[: self._source.config.dead_letter_max_raw_bytes]
        self._source.ctx.dead_letter(
            reason, raw=raw, ts_event=r.recv, topic=r.topic, partition=r.partition, offset=r.offset
        )

    def finish(self) -> list[Emit]:
        log = self._source.ctx.log
        if self._reader.restarts:
            log.warning(
                "recording_has_restarts",
                restarts=self._reader.restarts,
                note="the live pipeline lost its state there: the replay cannot be exact",
            )
        log.info("recording_replayed", records=self.handed, forecasts=self.forecasts, traces=self.traces)
        return []


def _redelivered(part: TopicPartitionState, committed: bool) -> int:
    """Records of a revoked partition its next owner reads again (``committed``: the revoke's
    commit of the safe position succeeded)."""
    if part.next_offset < 0:
        return 0
    start = max(part.committed, part.position) if committed else part.committed
    return max(0, part.next_offset - start)


class _Origin:
    """Where a dead-lettered record came from (what ``_send_dead`` reads of a ConsumerRecord)."""

    __slots__ = ("offset", "partition", "topic")

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


def _tp_name(tp: Any) -> str:
    return f"{tp.topic}/{tp.partition}"


def _append(out: dict[str, list[Any]], topic: str, msg: Any) -> None:
    lst = out.get(topic)
    if lst is None:
        out[topic] = [msg]
    else:
        lst.append(msg)


class KafkaSinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where forecasts go.  Records are keyed by symbol and carry ``forecast_id`` in a header."""

    kafka: KafkaConfig = KafkaConfig()
    producer: ProducerConfig = ProducerConfig()
    topic: str = "forecasts"
    value_format: Literal["msgpack", "json"] = "msgpack"
    ack_prefix: str = "kafka.acked"
    origin: str = ""
    """When set, every record carries an ``origin`` header (the node id): who wrote it."""
    flush_timeout_s: float = 2.0
    """``on_stop``: how long to wait for forecasts in flight; with ``close_timeout_s``, keep it
    under the actor's ``shutdown_timeout_s`` (default 5 s).  What is not flushed is re-made
    from re-read records."""
    close_timeout_s: float = 1.0
    """``on_stop``: how long closing the producer may take after the flush."""


class _Pending:
    __slots__ = ("fc", "ok")

    def __init__(self, fc: Forecast) -> None:
        self.fc = fc
        self.ok = False


class KafkaSink(Actor[KafkaSinkConfig]):
    """Writes forecasts (acks=all) and acknowledges them on the bus, in send order per symbol.

    Acks go to ``<ack_prefix>.<symbol token>``: for each settled prefix of a symbol's
    forecasts, the last forecast per input partition (``basis_seq`` is a position, see
    :func:`adapters.kafka.record_position`), which covers the earlier ones of that partition.
    A forecast that cannot be encoded (it never should: inputs are validated and the
    forecaster emits finite numbers) is dead-lettered on the bus and settled in order, so
    its input record is committed instead of jamming the partition.
    """

    config_type = KafkaSinkConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self._encode = msgspec.msgpack.encode if cfg.value_format == "msgpack" else msgspec.json.encode
        self._extra_headers = [("origin", cfg.origin.encode())] if cfg.origin else []
        self._inflight: dict[str, deque[_Pending]] = {}
        self._n_inflight = 0
        self._closed = False
        m = self.ctx.metrics
        self._m_sent = m.counter("kafka_forecasts_acked_total", actor=self.ctx.name)
        self._m_retry = m.counter("kafka_forecast_retries_total", actor=self.ctx.name)
        self._m_ignored = m.counter("kafka_sink_ignored_total", actor=self.ctx.name)
        self._m_unwritable = m.counter("kafka_sink_unwritable_total", actor=self.ctx.name)
        self._g_inflight = m.gauge("kafka_sink_in_flight", actor=self.ctx.name)
        self._g_inflight.set(0)
        # Wall clock at the broker's acknowledgement minus the forecast's ts_event (its input's
        # event time): end to end, source clock to broker, when event times are wall clock.
        self._h_age = m.histogram("kafka_forecast_event_to_ack_us", actor=self.ctx.name)
        self._producer: AIOKafkaProducer | None = None
        try:
            self._producer = AIOKafkaProducer(**producer_kwargs(cfg.kafka, cfg.producer))
            await self._producer.start()
        except BaseException:
            await stop_clients([self._producer], cfg.close_timeout_s)
            raise

    async def on_batch(self, msgs: list[Any]) -> None:
        # Build one record batch per partition (keyed like the default partitioner) and send
        # it whole: far cheaper than one send() per record, and one future per batch.
        producer = self._producer
        assert producer is not None
        topic = self.config.topic
        try:
            parts = sorted(await producer.partitions_for(topic))
        except KafkaError as exc:  # no metadata yet (broker unreachable): retry record by record
            self.ctx.log.warning("forecast_topic_unavailable", topic=topic, error=repr(exc))
            parts = []
        n_parts = len(parts)
        open_batches: dict[int, tuple[Any, list[_Pending]]] = {}
        for fc in msgs:
            if type(fc) is not Forecast:
                self._m_ignored.inc()
                continue
            p = self._enqueue(fc)
            try:
                key = fc.symbol.encode()
                value = self._encode(fc)
                hdrs = self._headers(fc)
            except (msgspec.EncodeError, OverflowError, UnicodeEncodeError, ValueError, TypeError) as exc:
                self._unwritable(p, exc)
                continue
            if not n_parts:
                self._m_retry.inc()
                self.ctx.spawn(self._resend(p), name=f"{self.ctx.name}:resend")
                continue
            part = parts[(murmur2(key) & 0x7FFFFFFF) % n_parts]
            entry = open_batches.get(part)
            if entry is None:
                entry = open_batches[part] = (producer.create_batch(), [])
            if entry[0].append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                await self._send_batch(entry[0], part, entry[1])  # full: ship it, start another
                entry = open_batches[part] = (producer.create_batch(), [])
                if entry[0].append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                    self._unwritable(p, ValueError("does not fit in an empty record batch"))
                    continue
            entry[1].append(p)
        for part, (batch, pendings) in open_batches.items():
            await self._send_batch(batch, part, pendings)
        self._g_inflight.set(self._n_inflight)

    def _enqueue(self, fc: Forecast) -> _Pending:
        p = _Pending(fc)
        dq = self._inflight.get(fc.symbol)
        if dq is None:
            dq = self._inflight[fc.symbol] = deque()
        dq.append(p)
        self._n_inflight += 1
        return p

    def _unwritable(self, p: _Pending, exc: BaseException) -> None:
        fc = p.fc
        reason = f"unwritable_forecast: {type(exc).__name__}: {exc}"
        self._m_unwritable.inc()
        self.ctx.log.error("forecast_unwritable", forecast_id=fc.forecast_id[:200], error=reason[:500])
        self.ctx.dead_letter(reason[:1000], raw=repr(fc).encode(errors="replace")[:4096])
        self._settle(p)

    async def _send_batch(self, batch: Any, part: int, pendings: list[_Pending]) -> None:
        if not pendings:
            return
        producer = self._producer
        assert producer is not None
        try:
            fut = await producer.send_batch(batch, self.config.topic, partition=part)
        except KafkaError as exc:  # e.g. no metadata within request_timeout: keep order, retry
            self._m_retry.inc(len(pendings))
            self.ctx.log.warning("forecast_batch_send_failed", records=len(pendings), error=repr(exc))
            for p in pendings:
                self.ctx.spawn(self._resend(p), name=f"{self.ctx.name}:resend")
            return
        fut.add_done_callback(partial(self._on_batch_sent, pendings))

    async def on_message(self, msg: Any) -> None:
        await self.on_batch([msg])

    def _headers(self, fc: Forecast) -> list[tuple[str, bytes]]:
        h = forecast_headers(fc)
        h.extend(self._extra_headers)
        return h

    def _on_batch_sent(self, pendings: list[_Pending], fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            err = "cancelled" if fut.cancelled() else repr(fut.exception())
            self._m_retry.inc(len(pendings))
            self.ctx.log.warning("forecast_batch_failed", records=len(pendings), error=err)
            if not self._closed:  # once closed, the source re-delivers what was never acknowledged
                for p in pendings:
                    self.ctx.spawn(self._resend(p), name=f"{self.ctx.name}:resend")
            return
        syms = set()
        now = time.time_ns()
        observe = self._h_age.observe
        for p in pendings:
            p.ok = True
            syms.add(p.fc.symbol)
            observe(max(0, now - p.fc.ts_event) / 1000.0)
        for sym in syms:
            self._ack_prefix(sym)

    async def _resend(self, p: _Pending) -> None:
        producer = self._producer
        assert producer is not None
        delay = 0.1
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                fc = p.fc
                await send_settled(
                    producer,
                    self.config.topic,
                    self._encode(fc),
                    key=fc.symbol.encode(),
                    headers=self._headers(fc),
                    timeout_s=delivery_timeout_s(self.config.kafka),
                )
                break
            except KafkaError as exc:
                self._m_retry.inc()
                self.ctx.log.warning("forecast_resend_failed", forecast_id=p.fc.forecast_id, error=repr(exc))
                delay = min(delay * 2, 5.0)
        else:
            return
        self._settle(p)

    def _settle(self, p: _Pending) -> None:
        p.ok = True
        self._ack_prefix(p.fc.symbol)

    def _ack_prefix(self, sym: str) -> None:
        dq = self._inflight.get(sym)
        if not dq:
            return
        # The last settled forecast per input partition covers the earlier ones of that partition.
        last: dict[int, Forecast] = {}
        n = 0
        while dq and dq[0].ok:
            fc = dq.popleft().fc
            last[position_stream(fc.basis_seq)] = fc
            n += 1
        if not dq:
            del self._inflight[sym]  # symbols come and go: keep no empty queue per symbol ever seen
        if n:
            self._n_inflight -= n
            self._g_inflight.set(self._n_inflight)
            self._m_sent.inc(n)
            acks = [Acked(fc.symbol, fc.basis_seq, fc.forecast_id) for fc in last.values()]
            self.ctx.bus.publish_many(f"{self.config.ack_prefix}.{symbol_token(sym)}", acks)

    async def on_stop(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.flush(), self.config.flush_timeout_s)
        except Exception as exc:  # unacknowledged forecasts are re-made from re-read records
            self.ctx.log.warning("flush_failed", error=repr(exc), in_flight=self._n_inflight)
        finally:
            # Also when the engine cancels on_stop mid-flush: an unclosed producer leaks (and warns).
            self._closed = True
            for err in await stop_clients([producer], self.config.close_timeout_s):
                self.ctx.log.warning("client_stop_failed", error=err)
