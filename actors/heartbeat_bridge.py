"""Node heartbeats over Kafka, so that the control planes of several nodes see each other.

::

    ControlPlane --control.heartbeat--> HeartbeatBridge --acks=all, key=node_id--> Kafka "heartbeats"
    Kafka "heartbeats" --(no group: every node reads every partition)--> HeartbeatBridge
        --control.heartbeat (peers only)--> ControlPlane

Out: every :class:`~engine.messages.Heartbeat` the bridge receives on the bus that it did
not itself bring in from Kafka is produced to ``topic``, keyed by ``node_id``, with an
``origin`` header naming this node.  Heartbeats are state, not events: while one send is
waiting for the broker, a newer heartbeat of the same node replaces the one queued behind
it (counted in ``heartbeats_superseded_total``), so a slow or absent broker never backs up
the bus.  A send that fails is counted and logged; the next heartbeat is the retry.

In: a consumer *without* a consumer group (a group would share the partitions out, and
every node must hear every peer) is assigned all partitions of ``topic`` and starts at the
end (``start_from``).  Tansu answers ListOffsets(latest) with the base offset of the last record batch, not
the high watermark (see tests/kafka/kafkatest.py), so the first fetch can return the last
old heartbeat of each partition; records older than ``max_age_ms`` (by the record
timestamp, the producer's wall clock) are dropped and counted, so a node that died long
ago is never taken for alive.  Records of this node (``node_id`` or ``origin`` header
equal to ours) are skipped: no echo, no loop.  Every other record is decoded under
``limits`` (:class:`adapters.kafka.RecordCodec`: size, nesting depth, UTF-8; any decoder
failure) and range-checked (:func:`adapters.kafka.check_heartbeat`: bounded printable
node id, known mode, finite non-negative latencies, timestamp within 1990..2100); one that
fails, or is not a heartbeat, goes to ``ctx.dead_letter`` with the reason and at most
``dead_letter_max_raw_bytes`` of its bytes (``raw_len`` says how many it had), and is
counted in ``heartbeat_records_bad_total``.  A peer's malformed heartbeat therefore never
reaches the control plane, whose fitness ranking compares these numbers.

Signed traffic (``trust``, :mod:`adapters.trust_net`): every produced record carries an
HMAC-SHA256 signature with key id, timestamp and nonce in its headers, over the topic, the
record key (the node id) and the value.  Every consumed record is verified *before* it is
decoded: unsigned (when signing is required), malformed, unknown-key, forged, clock-skewed
and replayed records are refused, counted in ``node_records_refused_total{reason=<code>}``
and dead-lettered (``signature_<code>``); a signed record whose node id is not its record
key is refused too (``node_mismatch``), so a key cannot speak for another node.  The key
ring is reread while running when its file or variable changes (``ring.reload_interval_s``):
keys rotate without a restart, old and new both verifying during the overlap.

Routes (``carry_routes``): this node's :class:`~engine.messages.EscalationRoute` messages
(subscribe the bridge to ``control.route`` too) travel the same topic, signed the same way,
and peers' routes are published on ``route_bus_topic`` (the control plane lists them in
``/stats``), so a node learns who sends it escalations from authenticated messages only.

Partitions added to the topic after start are not picked up (restart the bridge).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import msgspec

# aiokafka ships no type information (no py.typed): its names are Any to mypy.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from adapters.errors import RecordRejected
from adapters.kafka import (
    DEAD_LETTER_REASON_MAX_CHARS,
    ConsumerConfig,
    InputLimits,
    KafkaConfig,
    ProducerConfig,
    RecordCodec,
    admin_kwargs,
    check_heartbeat,
    consumer_kwargs,
    delivery_timeout_s,
    producer_kwargs,
    send_settled,
    stop_clients,
)
from adapters.trust_net import KeyRing, SignatureRejected, Signer, TrustConfig, Verifier
from engine.actor import Actor
from engine.messages import EscalationRoute, Heartbeat, json_encoder, msgpack_encoder

__all__ = ["HeartbeatBridge", "HeartbeatBridgeConfig"]

_FROM_KAFKA_MAX = 4096
"""Most heartbeats remembered as brought in from Kafka (they are forgotten once seen back)."""


class HeartbeatBridgeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where heartbeats travel between nodes.  Times in milliseconds."""

    kafka: KafkaConfig = KafkaConfig()
    producer: ProducerConfig = ProducerConfig(linger_ms=0)
    topic: str = "heartbeats"
    value_format: Literal["msgpack", "json"] = "msgpack"
    """Format of produced records; consumed records are read in the same format."""
    node_id: str = ""
    """Empty: the engine's node id (``[engine] node_id``)."""
    bus_topic: str = "control.heartbeat"
    """Where peers' heartbeats are published (subscribe the bridge to the same topic)."""
    create_topic: bool = True
    """Create ``topic`` with ``partitions`` partitions when it does not exist."""
    partitions: int = 1
    replication_factor: int = 1
    start_from: Literal["latest", "earliest"] = "latest"
    """Where reading starts on each partition.  ``earliest`` replays the whole topic through
    the ``max_age_ms`` filter (for brokers whose end offsets cannot be trusted)."""
    max_age_ms: int = 5_000
    """Consumed heartbeats older than this (record timestamp vs. this host's wall clock) are
    dropped.  Keep it above a few heartbeat intervals plus the clock skew between hosts."""
    fetch_timeout_ms: int = 100
    fetch_max_wait_ms: int = 50
    metadata_timeout_ms: int = 10_000
    """How long ``on_start`` waits for the topic's partitions to appear in the metadata."""
    flush_timeout_s: float = 2.0
    close_timeout_s: float = 1.0
    """``on_stop``: how long closing the clients may take after the flush."""
    limits: InputLimits = InputLimits(max_record_bytes=65_536)
    """Size, depth and value limits every consumed heartbeat must meet."""
    dead_letter_max_raw_bytes: int = 4_096
    """Raw bytes of a refused record kept in its dead letter."""
    trust: TrustConfig | None = None
    """Sign produced records and verify consumed ones (module doc); None: unsigned traffic."""
    carry_routes: bool = False
    """Also carry this node's escalation routes to the peers (module doc)."""
    route_bus_topic: str = "control.peer_route"
    """Where peers' escalation routes are published."""

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if self.max_age_ms <= 0:
            raise ValueError(f"max_age_ms must be > 0, got {self.max_age_ms}")


class HeartbeatBridge(Actor[HeartbeatBridgeConfig]):
    """Carries this node's heartbeats to Kafka and its peers' heartbeats back to the bus.

    Subscribe it to ``control.heartbeat`` (``bus_topic``); see the module doc.
    """

    config_type = HeartbeatBridgeConfig

    @classmethod
    def check_config(cls, config: HeartbeatBridgeConfig) -> None:
        """The key ring must load now (file readable, environment variable set): a node that
        cannot sign must not start half-trusted."""
        if config.trust is not None:
            KeyRing(config.trust.ring)

    async def on_start(self) -> None:
        cfg = self.config
        self.node_id: str = cfg.node_id or self.ctx.node_id
        self._origin = self.node_id.encode()
        self._encode = msgpack_encoder.encode if cfg.value_format == "msgpack" else json_encoder.encode
        self._codec = RecordCodec(cfg.value_format, limits=cfg.limits)
        # id -> message of heartbeats published from Kafka: seen back on the bus, they are not
        # produced again.  The message is kept so that its id cannot be reused meanwhile.
        self._from_kafka: dict[int, Heartbeat] = {}
        self._queued: dict[str, Heartbeat | EscalationRoute] = {}
        self._wake = asyncio.Event()
        m = self.ctx.metrics
        name = self.ctx.name
        self._m_produced = m.counter("heartbeats_produced_total", actor=name)
        self._m_send_failed = m.counter("heartbeat_send_failures_total", actor=name)
        self._m_superseded = m.counter("heartbeats_superseded_total", actor=name)
        self._m_consumed = m.counter("heartbeats_consumed_total", actor=name)
        self._m_own = m.counter("heartbeats_own_skipped_total", actor=name)
        self._m_stale = m.counter("heartbeats_stale_total", actor=name)
        self._m_bad = m.counter("heartbeat_records_bad_total", actor=name)
        self._m_ignored = m.counter("heartbeat_bridge_ignored_total", actor=name)
        self._m_routes_in = m.counter("peer_routes_consumed_total", actor=name)
        self._m_signed = m.counter("node_records_signed_total", actor=name)
        self._m_verified = m.counter("node_records_verified_total", actor=name)
        self._m_reload_failed = m.counter("node_keyring_reload_failures_total", actor=name)
        self._m_rotated = m.counter("node_keyring_reloads_total", actor=name)
        self._ring: KeyRing | None = None
        self._signer: Signer | None = None
        self._verifier: Verifier | None = None
        if cfg.trust is not None:
            # A bad key source at start: check_config refused it when the engine was built.
            self._ring = KeyRing(cfg.trust.ring)
            self._signer = Signer(self._ring)
            self._verifier = Verifier(cfg.trust, self._ring)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        try:
            self._producer = AIOKafkaProducer(**producer_kwargs(cfg.kafka, cfg.producer))
            await self._producer.start()
            kw = consumer_kwargs(
                cfg.kafka,
                ConsumerConfig(auto_offset_reset=cfg.start_from, fetch_max_wait_ms=cfg.fetch_max_wait_ms),
            )
            kw["group_id"] = None  # every node reads every partition: no group, no commits
            self._consumer = AIOKafkaConsumer(**kw)
            await self._consumer.start()
            parts = await self._partitions()
        except BaseException:
            await self._close_clients()
            raise
        self._consumer.assign([TopicPartition(cfg.topic, p) for p in parts])
        self.ctx.log.info("heartbeat_bridge_started", topic=cfg.topic, partitions=parts, node_id=self.node_id)
        self.ctx.spawn(self._send_loop(), name=f"{name}:send")
        self.ctx.spawn(self._consume_loop(), name=f"{name}:consume")

    async def _partitions(self) -> list[int]:
        cfg = self.config
        consumer = self._consumer
        assert consumer is not None
        if cfg.create_topic and cfg.topic not in await consumer.topics():
            await self._create_topic()
        deadline = time.monotonic() + cfg.metadata_timeout_ms / 1000.0
        while True:
            parts = consumer.partitions_for_topic(cfg.topic)
            if parts:
                return sorted(parts)
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"heartbeat topic {cfg.topic!r} has no partitions after {cfg.metadata_timeout_ms} ms"
                    + ("" if cfg.create_topic else " (create_topic is off: create it first)")
                )
            await consumer._client.force_metadata_update()  # no public way to refresh metadata
            await asyncio.sleep(0.05)

    async def _create_topic(self) -> None:
        cfg = self.config
        admin = AIOKafkaAdminClient(**admin_kwargs(cfg.kafka))
        try:
            await admin.start()
            # Another node may create it at the same moment: its error is answered in the
            # response, not raised, and the metadata wait that follows settles it either way.
            await admin.create_topics([NewTopic(cfg.topic, cfg.partitions, cfg.replication_factor)])
        finally:
            await admin.close()
        self.ctx.log.info("heartbeat_topic_create_requested", topic=cfg.topic, partitions=cfg.partitions)

    # --- out: bus -> Kafka -------------------------------------------------------

    def on_message(self, msg: Any) -> None:
        t = type(msg)
        if t is EscalationRoute and self.config.carry_routes:
            if msg.node_id != self.node_id or self._from_kafka.pop(id(msg), None) is msg:
                return  # only this node's own routes go out
            self._queued[f"route\x00{msg.node_id}"] = msg
            self._wake.set()
            return
        if t is not Heartbeat:
            self._m_ignored.inc()  # subscribed to more than heartbeats: counted, never sent
            return
        if self._from_kafka.pop(id(msg), None) is msg:
            return  # a peer's heartbeat we published ourselves
        if msg.node_id in self._queued:
            self._m_superseded.inc()
        self._queued[msg.node_id] = msg
        self._wake.set()

    def _refresh_keys(self) -> None:
        ring = self._ring
        if ring is None:
            return
        try:
            if ring.maybe_reload():
                self._m_rotated.inc()
                self.ctx.log.info("node_keyring_reloaded", active=ring.active, keys=list(ring.key_ids))
        except ValueError as exc:
            # Keep the keys we have: a half-written key file must not cut the node off.
            self._m_reload_failed.inc()
            self.ctx.log.warning("node_keyring_reload_failed", error=str(exc)[:300])

    async def _send_loop(self) -> None:
        cfg = self.config
        producer = self._producer
        assert producer is not None
        origin = [("origin", self._origin)]
        topic = cfg.topic.encode()
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._refresh_keys()
            while self._queued:
                _, hb = self._queued.popitem()
                node = hb.node_id
                value = self._encode(hb)
                key = node.encode()
                headers = origin
                if self._signer is not None:
                    headers = origin + self._signer.headers(topic + b"\x00" + key, value)
                    self._m_signed.inc()
                try:
                    # (bounded; a producer whose sender ended raises ProducerStopped: the bridge
                    # fails and is restarted with a new one)
                    await send_settled(
                        producer,
                        cfg.topic,
                        value,
                        key=key,
                        headers=headers,
                        timeout_s=delivery_timeout_s(cfg.kafka),
                    )
                except KafkaError as exc:
                    # Best effort: the next heartbeat is the retry; peers see the gap as silence.
                    self._m_send_failed.inc()
                    self.ctx.log.warning("heartbeat_send_failed", node_id=node, error=repr(exc))
                    continue
                self._m_produced.inc()

    # --- in: Kafka -> bus -------------------------------------------------------

    async def _consume_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        timeout_ms = self.config.fetch_timeout_ms
        while True:
            try:
                got = await consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
            except KafkaError as exc:
                # Fetch errors the client does not retry itself: back off, keep reading.
                self.ctx.log.warning("heartbeat_fetch_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            self._refresh_keys()
            for records in got.values():
                for r in records:
                    self._on_record(r)

    def _on_record(self, r: Any) -> None:
        cfg = self.config
        if r.value is None:
            self._bad(r, "tombstone: a heartbeat record without a value")
            return
        headers = _headers(r.headers)
        if headers.get("origin") == self._origin:
            self._m_own.inc()
            return
        kid = ""
        if self._verifier is not None:
            key = r.key if isinstance(r.key, bytes) else b""
            try:
                # Before decoding: a forged record costs an HMAC, never a decoder run.
                kid = self._verifier.verify(
                    r.topic.encode() + b"\x00" + key,
                    r.value,
                    headers,
                    node_id=key.decode("utf-8", "replace"),
                )
            except SignatureRejected as exc:
                self._refused(r, exc.code, exc.detail)
                return
        msg: Heartbeat | EscalationRoute
        try:
            decoded = self._codec.decode(r.value)
            if isinstance(decoded, Heartbeat):
                check_heartbeat(decoded, cfg.limits)
                msg = decoded
            elif isinstance(decoded, EscalationRoute) and cfg.carry_routes:
                msg = decoded
            else:
                tag = type(decoded).__struct_config__.tag
                raise RecordRejected("unsupported_type", f"{tag!r} records are not accepted on {r.topic!r}")
        except RecordRejected as exc:
            self._bad(r, f"{exc.reason} ({cfg.value_format} heartbeat)")
            return
        except Exception as exc:  # whatever a bad record provokes costs only that record
            self._bad(r, f"decode_error: {type(exc).__name__}: {exc}")
            return
        if kid and (r.key or b"") != msg.node_id.encode():
            self._refused(r, "node_mismatch", f"signed as {r.key!r}, claims node {msg.node_id[:64]!r}")
            return
        if kid:
            self._m_verified.inc()
        if msg.node_id == self.node_id:
            self._m_own.inc()
            return
        ts_ms = r.timestamp if isinstance(r.timestamp, int) else 0
        age_ms = time.time_ns() // 1_000_000 - ts_ms
        if age_ms > cfg.max_age_ms:
            self._m_stale.inc()
            return
        if isinstance(msg, EscalationRoute):
            self._m_routes_in.inc()
            self.ctx.publish(cfg.route_bus_topic, msg)
            return
        self._m_consumed.inc()
        if len(self._from_kafka) >= _FROM_KAFKA_MAX:
            # Not seen back (e.g. shed by a full mailbox): forget the oldest.
            del self._from_kafka[next(iter(self._from_kafka))]
        self._from_kafka[id(msg)] = msg
        self.ctx.publish(cfg.bus_topic, msg)

    def _refused(self, r: Any, code: str, detail: str) -> None:
        self.ctx.metrics.counter("node_records_refused_total", actor=self.ctx.name, reason=code).inc()
        self._bad(r, f"signature_{code}: {detail}", count=False)

    def _bad(self, r: Any, reason: str, *, count: bool = True) -> None:
        if count:
            self._m_bad.inc()
        raw = r.value or b""
        keep = self.config.dead_letter_max_raw_bytes
        self.ctx.dead_letter(
            reason[:DEAD_LETTER_REASON_MAX_CHARS],
            raw=raw[:keep],
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            raw_len=len(raw),
            raw_truncated=len(raw) > keep,
        )

    # --- stopping -----------------------------------------------------------------

    async def on_stop(self) -> None:
        producer = self._producer
        try:
            if producer is not None:
                await asyncio.wait_for(producer.flush(), self.config.flush_timeout_s)
        except Exception as exc:  # a heartbeat not sent is only a heartbeat missed
            self.ctx.log.warning("heartbeat_flush_failed", error=repr(exc))
        finally:
            # Also when the engine cancels on_stop mid-flush: an unclosed client leaks (and warns).
            await self._close_clients()

    async def _close_clients(self) -> None:
        for err in await stop_clients((self._consumer, self._producer), self.config.close_timeout_s):
            self.ctx.log.warning("client_stop_failed", error=err)


def _headers(raw: Any) -> dict[str, bytes]:
    """Record headers as a dict; a header repeated keeps its *first* value (a forger appending a
    second copy changes nothing), and non-bytes values are dropped."""
    out: dict[str, bytes] = {}
    for item in raw or ():
        try:
            k, v = item
        except (TypeError, ValueError):
            continue
        if isinstance(k, str) and isinstance(v, bytes) and k not in out:
            out[k] = v
    return out
