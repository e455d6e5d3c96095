"""Kafka at the edge of the pipeline: :class:`KafkaSource` reads, :class:`KafkaSink` writes.

At-least-once, end to end::

    Kafka md/news --getmany--> KafkaSource --md.<SYM>/bar.<SYM>/news.raw--> forecaster
        --forecast.<SYM>--> KafkaSink --acks=all--> Kafka forecasts
        KafkaSink --<ack_prefix>.<SYM> (the acknowledged Forecast)--> KafkaSource --commit-->

The source commits offset+1 of a market-data record only once a forecast whose
``basis_seq`` covers the record's ``seq`` was acknowledged by the broker (the sink
publishes acknowledgements per symbol in send order, so "covers" is safe).  News
records are safe once handed to the bus; undecodable or unsupported records once
their dead letter is acknowledged on the dead-letter topic.  A crash therefore
re-delivers every record whose result was not safely written; the duplicates this
causes carry the same deterministic ``forecast_id`` (header and value), so
consumers deduplicate.

Contract with the forecaster between them: a forecast's ``basis_seq`` means "I have
processed every record of this symbol up to this seq" (the baseline forecaster answers
each record; one that skips records still covers them), and its ``forecast_id`` is a
function of the input (so a re-delivered record yields the same id).  Records that
arrive with ``seq == 0`` get ``seq = offset + 1``, stable across re-deliveries.

Back-pressure: the source keeps at most ``max_in_flight`` records not yet safe; the
forecaster's mailbox must hold that many (``block`` or a capacity >= the window), or
shed records wait for a later forecast of their symbol to cover them.

Restarts: run source, forecaster and sink under one ``one_for_all`` supervisor (see
config/edge-node.toml).  A sink that dies with forecasts in flight never acknowledges
them (acks are published per symbol in order, so later ones block too), and the
restarted source re-reads from the last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from functools import partial
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import murmur2

from adapters.kafka import (
    ConsumerConfig,
    KafkaConfig,
    OffsetTracker,
    ProducerConfig,
    RecordCodec,
    TrackedRecord,
    consumer_kwargs,
    dead_letter_headers,
    forecast_headers,
    producer_kwargs,
)
from engine.actor import Actor
from engine.messages import Bar, DeadLetter, Forecast, NewsItem, Quote, Trade

__all__ = ["KafkaSink", "KafkaSinkConfig", "KafkaSource", "KafkaSourceConfig"]


class KafkaSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where and how to consume.  Times in milliseconds."""

    kafka: KafkaConfig = KafkaConfig()
    consumer: ConsumerConfig = ConsumerConfig()
    producer: ProducerConfig = ProducerConfig()
    """For dead letters."""
    topics: tuple[str, ...] = ("md",)
    value_format: Literal["auto", "msgpack", "json"] = "auto"
    dead_letter_topic: str = "deadletter"
    dead_letter_format: Literal["msgpack", "json"] = "json"
    ack_prefix: str = "kafka.acked"
    """Bus topic prefix the sink acknowledges on; subscribe the source to ``<ack_prefix>.*``
    (and to ``control.partitions`` to obey the control plane's release / rejoin)."""
    wait_for_forecast: bool = True
    """Market data waits for a forecast ack before commit; false commits once handed on."""
    max_in_flight: int = 20_000
    max_records: int = 10_000
    fetch_timeout_ms: int = 100
    commit_interval_ms: int = 200
    revoke_grace_ms: int = 1_000
    """On revoke, how long to wait for in-flight records of the lost partitions to become safe."""
    stamp_recv: bool = True
    """Set ``ts_recv`` (ns, wall clock) on trades and quotes that arrive without one."""
    sink_actor: str = "kafka-sink"
    """The sink's actor name: after a restart, the source waits for its in-flight gauge to reach 0."""
    settle_before_fetch_s: float = 10.0
    """After a (re)start, wait at most this long for the pipeline to be idle before fetching."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._source._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._source._on_assigned(list(assigned))


class KafkaSource(Actor[KafkaSourceConfig]):
    """Consumes records, publishes them on the bus, commits what is safe (see module doc)."""

    config_type = KafkaSourceConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self._tracker = OffsetTracker()
        self._codec = RecordCodec(cfg.value_format)
        self._dl_encode = msgspec.json.encode if cfg.dead_letter_format == "json" else msgspec.msgpack.encode
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
        self._g_inflight = m.gauge("kafka_in_flight", actor=name)
        self._last_commit = time.monotonic()
        self._released = False
        self._group_lock = asyncio.Lock()
        self._consumer = AIOKafkaConsumer(**consumer_kwargs(cfg.kafka, cfg.consumer))
        self._producer = AIOKafkaProducer(**producer_kwargs(cfg.kafka, cfg.producer))
        try:
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
        tracker = self._tracker
        interval = cfg.commit_interval_ms / 1000.0
        await self._settle_pipeline()
        while True:
            room = cfg.max_in_flight - tracker.in_flight
            if self._released:  # the control plane took this node out of the group
                await asyncio.sleep(interval)
                continue
            if room <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), interval)
            else:
                batches = await consumer.getmany(
                    timeout_ms=cfg.fetch_timeout_ms, max_records=min(room, cfg.max_records)
                )
                for tp, recs in batches.items():
                    self._ingest(tp, recs)
            self._g_inflight.set(tracker.in_flight)
            if time.monotonic() - self._last_commit >= interval:
                await self._commit()

    async def _settle_pipeline(self) -> None:
        """Before the first fetch, let forecasts of a previous incarnation land.

        After an in-process restart, forecasts made from records this incarnation is about to
        re-read may still sit in the forecaster's mailbox or in the sink's flight; their acks
        must reach the (empty) ledger before it registers the re-read records, or one of them
        could cover a re-read record whose new forecast is not written yet.
        """
        bus = self.ctx.bus
        sink = self.ctx.metrics.gauge("kafka_sink_in_flight", actor=self.config.sink_actor)
        deadline = time.monotonic() + self.config.settle_before_fetch_s
        while not (bus.is_idle() and sink.value == 0):
            if time.monotonic() > deadline:
                self.ctx.log.warning("pipeline_not_idle_before_fetch", sink_in_flight=sink.value)
                return
            await asyncio.sleep(0.01)

    def _ingest(self, tp: Any, recs: list[Any]) -> None:
        tracker = self._tracker
        part = tracker._parts.get(tp)
        if part is None:
            # Fetched just before the partition was revoked: its new owner will read it.
            self._m_skipped.inc(len(recs))
            return
        self._m_records.inc(len(recs))
        decode = self._codec.decode
        keyed = self.config.wait_for_forecast
        stamp = self.config.stamp_recv
        now = time.time_ns() if stamp else 0
        add_keyed = tracker.add_keyed
        add_done = tracker.add_done
        replace = msgspec.structs.replace
        out: dict[str, list[Any]] = {}
        for r in recs:
            off = r.offset
            try:
                msg = decode(r.value)
            except msgspec.DecodeError as exc:
                self._dead(part, r, f"decode_error: {exc}")
                continue
            except TypeError:
                self._dead(part, r, "decode_error: record has no value (tombstone)")
                continue
            t = type(msg)
            if t is Trade or t is Quote:
                if msg.seq == 0 or (stamp and msg.ts_recv == 0):
                    # Kafka offsets order a keyed symbol's records: a usable sequence when none came.
                    msg = replace(msg, seq=msg.seq or off + 1, ts_recv=msg.ts_recv or now)
                topic = "md." + msg.symbol
            elif t is Bar:
                if msg.seq == 0:
                    msg = replace(msg, seq=off + 1)
                topic = "bar." + msg.symbol
            elif t is NewsItem:
                if stamp and msg.ts_recv == 0:
                    msg = replace(msg, ts_recv=now)
                add_done(part, off)
                lst = out.get("news.raw")
                if lst is None:
                    out["news.raw"] = [msg]
                else:
                    lst.append(msg)
                continue
            else:
                tag = t.__struct_config__.tag
                self._dead(part, r, f"unsupported_type: {tag!r} records are not accepted on {r.topic!r}")
                continue
            if keyed:
                add_keyed(part, off, msg.symbol, msg.seq)
            else:
                add_done(part, off)
            lst = out.get(topic)
            if lst is None:
                out[topic] = [msg]
            else:
                lst.append(msg)
        publish_many = self.ctx.bus.publish_many
        for topic, msgs in out.items():
            publish_many(topic, msgs)

    def _dead(self, part: Any, r: Any, reason: str) -> None:
        raw = r.value if r.value is not None else b""
        rec = self._tracker.add(part, r.offset)
        self._m_bad.inc()
        self.ctx.dead_letter(reason, raw=raw, topic=r.topic, partition=r.partition, offset=r.offset)
        dl = DeadLetter(
            source=f"{r.topic}/{r.partition}@{r.offset}",
            reason=reason,
            ts_event=time.time_ns(),
            raw=raw,
            detail={"topic": r.topic, "partition": r.partition, "offset": r.offset},
        )
        self.ctx.spawn(self._send_dead(rec, dl, r), name=f"{self.ctx.name}:dead-letter")

    async def _send_dead(self, rec: TrackedRecord, dl: DeadLetter, r: Any) -> None:
        value = self._dl_encode(dl)
        headers = dead_letter_headers(dl, r.topic, r.partition, r.offset)
        delay = 0.1
        while True:
            try:
                fut = await self._producer.send(
                    self.config.dead_letter_topic, value, key=r.key, headers=headers
                )
                await fut
                break
            except KafkaError as exc:
                self.ctx.log.warning("dead_letter_send_failed", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._tracker.done(rec)
        self._m_acks.inc()

    # --- acknowledgements ----------------------------------------------------

    def on_batch(self, msgs: list[Any]) -> None:
        ack = self._tracker.ack
        n = 0
        for m in msgs:
            if type(m) is Forecast:
                n += ack(m.symbol, m.basis_seq)
            elif getattr(m, "action", None) in ("release", "rejoin") and getattr(m, "node_id", "") in (
                "",
                self.ctx.node_id,
            ):
                # A PartitionAction of the control plane (duck-typed: actors do not import actors).
                self.ctx.spawn(self._partition_action(m.action, getattr(m, "reason", "")))
        self._m_acks.inc(n)
        if self._tracker.in_flight < self.config.max_in_flight:
            self._room.set()

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    # --- committing ------------------------------------------------------------

    async def _commit(self, offsets: dict[Any, int] | None = None) -> None:
        self._last_commit = time.monotonic()
        if offsets is None:
            offsets = self._tracker.to_commit()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (rebalance); the new owner re-reads from the last commit.
            self._m_commit_fail.inc()
            self.ctx.log.warning("commit_failed", error=repr(exc), partitions=len(offsets))
            return
        except KafkaError as exc:
            self._m_commit_fail.inc()
            self.ctx.log.warning("commit_error", error=repr(exc), partitions=len(offsets))
            return
        self._tracker.committed(offsets)
        self._m_commits.inc()

    async def _on_revoked(self, revoked: list[Any]) -> None:
        tracker = self._tracker
        deadline = time.monotonic() + self.config.revoke_grace_ms / 1000.0
        lost = set(revoked)
        # Let forecasts already in flight for the lost partitions land: fewer duplicates later.
        # Polling, not an event: acks arrive through the mailbox and rebalances are rare.
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 - see above
            any(not r.done for r in tracker.partition(tp).pending) for tp in lost if tp in tracker._parts
        ):
            await asyncio.sleep(0.01)
        offsets = tracker.revoke(revoked)
        if offsets:
            await self._commit(offsets)
        self.ctx.log.info("partitions_revoked", partitions=len(revoked), committed=len(offsets))

    async def _partition_action(self, action: str, reason: str) -> None:
        """``release``: commit what is safe and leave the group; ``rejoin``: subscribe again."""
        async with self._group_lock:
            if action == "release" and not self._released:
                self._released = True
                await self._on_revoked(self._tracker.assigned())
                self._consumer.unsubscribe()
                self.ctx.log.warning("partitions_released", reason=reason)
            elif action == "rejoin" and self._released:
                self._consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
                self._released = False
                self.ctx.log.info("group_rejoined", reason=reason)

    def _on_assigned(self, assigned: list[Any]) -> None:
        for tp in assigned:
            self._tracker.partition(tp)
        self._room.set()
        self.ctx.log.info(
            "partitions_assigned", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )

    async def on_stop(self) -> None:
        tracker = getattr(self, "_tracker", None)
        if tracker is not None and getattr(self, "_consumer", None) is not None:
            try:
                await self._commit()
            except Exception as exc:  # the records stay uncommitted and are re-read: log, go on
                self.ctx.log.warning("final_commit_failed", error=repr(exc))
        await self._close_clients()

    async def _close_clients(self) -> None:
        for client in (getattr(self, "_consumer", None), getattr(self, "_producer", None)):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()


class KafkaSinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where forecasts go.  Records are keyed by symbol and carry ``forecast_id`` in a header."""

    kafka: KafkaConfig = KafkaConfig()
    producer: ProducerConfig = ProducerConfig()
    topic: str = "forecasts"
    value_format: Literal["msgpack", "json"] = "msgpack"
    ack_prefix: str = "kafka.acked"
    origin: str = ""
    """When set, every record carries an ``origin`` header (the node id): who wrote it."""
    flush_timeout_s: float = 10.0


class _Pending:
    __slots__ = ("fc", "ok")

    def __init__(self, fc: Forecast) -> None:
        self.fc = fc
        self.ok = False


class KafkaSink(Actor[KafkaSinkConfig]):
    """Writes forecasts (acks=all) and acknowledges each on the bus, in send order per symbol."""

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
        self._g_inflight = m.gauge("kafka_sink_in_flight", actor=self.ctx.name)
        self._g_inflight.set(0)
        self._producer = AIOKafkaProducer(**producer_kwargs(cfg.kafka, cfg.producer))
        try:
            await self._producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            raise

    async def on_batch(self, msgs: list[Any]) -> None:
        # Build one record batch per partition (keyed like the default partitioner) and send
        # it whole: far cheaper than one send() per record, and one future per batch.
        producer = self._producer
        topic = self.config.topic
        encode = self._encode
        headers = self._headers
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
            p = _Pending(fc)
            dq = self._inflight.get(fc.symbol)
            if dq is None:
                dq = self._inflight[fc.symbol] = deque()
            dq.append(p)
            self._n_inflight += 1
            if not n_parts:
                self._m_retry.inc()
                self.ctx.spawn(self._resend(p), name=f"{self.ctx.name}:resend")
                continue
            key = fc.symbol.encode()
            part = parts[(murmur2(key) & 0x7FFFFFFF) % n_parts]
            entry = open_batches.get(part)
            if entry is None:
                entry = open_batches[part] = (producer.create_batch(), [])
            value = encode(fc)
            hdrs = headers(fc)
            if entry[0].append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                await self._send_batch(entry[0], part, entry[1])  # full: ship it, start another
                entry = open_batches[part] = (producer.create_batch(), [])
                if entry[0].append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                    raise ValueError(f"forecast {fc.forecast_id} does not fit in an empty batch")
            entry[1].append(p)
        for part, (batch, pendings) in open_batches.items():
            await self._send_batch(batch, part, pendings)
        self._g_inflight.set(self._n_inflight)

    async def _send_batch(self, batch: Any, part: int, pendings: list[_Pending]) -> None:
        if not pendings:
            return
        try:
            fut = await self._producer.send_batch(batch, self.config.topic, partition=part)
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
        for p in pendings:
            p.ok = True
            syms.add(p.fc.symbol)
        for sym in syms:
            self._ack_prefix(sym)

    async def _resend(self, p: _Pending) -> None:
        delay = 0.1
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                fc = p.fc
                fut = await self._producer.send(
                    self.config.topic, self._encode(fc), key=fc.symbol.encode(), headers=self._headers(fc)
                )
                await fut
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
        last: Forecast | None = None
        n = 0
        while dq and dq[0].ok:
            last = dq.popleft().fc
            n += 1
        if last is not None:
            self._n_inflight -= n
            self._g_inflight.set(self._n_inflight)
            self._m_sent.inc(n)
            # One ack per settled prefix: its basis_seq covers every earlier forecast of the symbol.
            self.ctx.publish(f"{self.config.ack_prefix}.{sym}", last)

    async def on_stop(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.flush(), self.config.flush_timeout_s)
        except Exception as exc:  # unacknowledged forecasts are re-made from re-read records
            self.ctx.log.warning("flush_failed", error=repr(exc), in_flight=self._n_inflight)
        self._closed = True
        with contextlib.suppress(Exception):
            await producer.stop()
