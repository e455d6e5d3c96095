"""Kafka in and out: client configuration, record decoding, and at-least-once offset tracking.

The actors in ``actors/kafka_io.py`` use three things from here:

* :class:`KafkaConfig` (+ :class:`TlsConfig`) -> keyword arguments for aiokafka
  consumers, producers and admin clients, with TLS and mutual TLS.
* :class:`RecordCodec` -- bytes <-> :data:`engine.messages.Message`, msgpack or JSON
  (``auto`` tells them apart by the first byte: a JSON record starts with ``{``).
* :class:`OffsetTracker` -- the at-least-once ledger.  Every consumed record is
  registered; a record is *done* when what it produced is safe: its forecast was
  acknowledged by the broker (``ack(key, seq)``: all pending records of that key
  with ``seq <= basis_seq`` are covered), or it was handed on / dead-lettered
  (``done(entry)``).  The offset to commit for a partition is the offset of its
  first record that is not done (or the last one + 1): ``offset + 1`` of the
  contiguous done prefix, so a crash re-delivers everything not yet safe.

Nothing here imports an actor; nothing here does I/O except the aiokafka factories.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

import msgspec

from engine.messages import (
    DeadLetter,
    Forecast,
    Message,
    json_decoder,
    json_encoder,
    msgpack_decoder,
    msgpack_encoder,
)

__all__ = [
    "ConsumerConfig",
    "KafkaConfig",
    "OffsetTracker",
    "ProducerConfig",
    "RecordCodec",
    "TlsConfig",
    "TopicPartitionState",
    "TrackedRecord",
    "admin_kwargs",
    "consumer_kwargs",
    "dead_letter_headers",
    "forecast_headers",
    "producer_kwargs",
    "ssl_context",
]

ValueFormat = Literal["auto", "msgpack", "json"]


# --- configuration ------------------------------------------------------------


class TlsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Client-side TLS.  ``cafile`` verifies the broker; ``certfile``+``keyfile`` enable mutual TLS."""

    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    password: str = ""
    check_hostname: bool = True


class KafkaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Connection settings shared by consumers and producers.  Times in milliseconds."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated ``host:port`` list."""
    client_id: str = "finllm"
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    tls: TlsConfig | None = None
    request_timeout_ms: int = 30_000
    retry_backoff_ms: int = 100
    metadata_max_age_ms: int = 300_000
    connections_max_idle_ms: int = 540_000


class ConsumerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Group consumer settings.  Times in milliseconds; auto-commit is always off (we commit)."""

    group_id: str = "finllm-edge"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 300_000
    rebalance_timeout_ms: int = 10_000
    fetch_max_wait_ms: int = 100
    fetch_max_bytes: int = 52_428_800
    max_partition_fetch_bytes: int = 1_048_576


class ProducerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Producer settings.  ``enable_idempotence`` stays off against Tansu (see DESIGN.md)."""

    acks: Literal["all", "1", "0"] = "all"
    enable_idempotence: bool = False
    linger_ms: int = 5
    max_batch_size: int = 262_144
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    max_request_size: int = 1_048_576


def ssl_context(tls: TlsConfig | None) -> ssl.SSLContext:
    """A client SSL context: system CAs unless ``cafile``; a client certificate when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=(tls.cafile or None) if tls else None)
    if tls is not None:
        ctx.check_hostname = tls.check_hostname
        if tls.certfile:
            ctx.load_cert_chain(tls.certfile, tls.keyfile or None, tls.password or None)
    return ctx


def _common(conn: KafkaConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in conn.bootstrap_servers.split(",") if s.strip()],
        "client_id": conn.client_id,
        "request_timeout_ms": conn.request_timeout_ms,
        "retry_backoff_ms": conn.retry_backoff_ms,
        "metadata_max_age_ms": conn.metadata_max_age_ms,
        "connections_max_idle_ms": conn.connections_max_idle_ms,
        "security_protocol": conn.security_protocol,
    }
    if conn.security_protocol == "SSL":
        kw["ssl_context"] = ssl_context(conn.tls)
    return kw


def consumer_kwargs(conn: KafkaConfig, cons: ConsumerConfig) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaConsumer`` (manual commits only)."""
    kw = _common(conn)
    kw.update(
        group_id=cons.group_id,
        enable_auto_commit=False,
        auto_offset_reset=cons.auto_offset_reset,
        session_timeout_ms=cons.session_timeout_ms,
        heartbeat_interval_ms=cons.heartbeat_interval_ms,
        max_poll_interval_ms=cons.max_poll_interval_ms,
        rebalance_timeout_ms=cons.rebalance_timeout_ms,
        fetch_max_wait_ms=cons.fetch_max_wait_ms,
        fetch_max_bytes=cons.fetch_max_bytes,
        max_partition_fetch_bytes=cons.max_partition_fetch_bytes,
    )
    return kw


def producer_kwargs(conn: KafkaConfig, prod: ProducerConfig) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaProducer``."""
    kw = _common(conn)
    kw.pop("connections_max_idle_ms")
    kw.update(
        acks="all" if prod.acks == "all" else int(prod.acks),
        enable_idempotence=prod.enable_idempotence,
        linger_ms=prod.linger_ms,
        max_batch_size=prod.max_batch_size,
        compression_type=None if prod.compression_type == "none" else prod.compression_type,
        max_request_size=prod.max_request_size,
    )
    return kw


def admin_kwargs(conn: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.admin.AIOKafkaAdminClient``."""
    kw = _common(conn)
    kw.pop("retry_backoff_ms")
    kw.pop("connections_max_idle_ms")
    return kw


# --- codec --------------------------------------------------------------------


class RecordCodec:
    """Record values <-> messages.  Decoding raises ``msgspec.DecodeError`` (incl. validation)."""

    __slots__ = ("decode", "encode", "fmt")

    decode: Callable[[bytes], Message]
    encode: Callable[[Any], bytes]

    def __init__(self, fmt: ValueFormat = "auto", out_fmt: Literal["msgpack", "json"] = "msgpack") -> None:
        self.fmt = fmt
        if fmt == "msgpack":
            self.decode = msgpack_decoder.decode
        elif fmt == "json":
            self.decode = json_decoder.decode
        else:
            self.decode = _decode_auto
        self.encode = msgpack_encoder.encode if out_fmt == "msgpack" else json_encoder.encode

    def decode_batch(self, values: Iterable[bytes | None]) -> list[Message | msgspec.DecodeError]:
        """Decode each value; a failure is returned in place (never raised) so one bad record
        costs only itself.  A ``None`` value (tombstone) is a failure too."""
        decode = self.decode
        out: list[Message | msgspec.DecodeError] = []
        append = out.append
        for v in values:
            try:
                append(decode(v))  # type: ignore[arg-type]  # None raises TypeError, handled below
            except msgspec.DecodeError as exc:
                append(exc)
            except TypeError:
                append(msgspec.DecodeError("record has no value (tombstone)"))
        return out


_mp = msgpack_decoder.decode
_js = json_decoder.decode


def _decode_auto(value: bytes) -> Message:
    # A msgpack map never starts with "{" (0x7b is a positive fixint), so one byte decides.
    if value[:1] == b"{":
        return cast(Message, _js(value))
    return cast(Message, _mp(value))


def forecast_headers(fc: Forecast) -> list[tuple[str, bytes]]:
    """Kafka headers of a forecast record: its id (for deduplication) and type."""
    return [("forecast_id", fc.forecast_id.encode()), ("type", b"forecast"), ("version", b"%d" % fc.version)]


def dead_letter_headers(dl: DeadLetter, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-letter record: where the raw bytes came from and why they failed."""
    return [
        ("error", dl.reason.encode(errors="replace")[:1000]),
        ("source_topic", topic.encode()),
        ("source_partition", b"%d" % partition),
        ("source_offset", b"%d" % offset),
    ]


# --- at-least-once ledger -------------------------------------------------------


class TrackedRecord:
    """One consumed record awaiting safety.  ``seq`` orders records of one key."""

    __slots__ = ("done", "offset", "part", "seq")

    def __init__(self, part: TopicPartitionState, offset: int, seq: int) -> None:
        self.part = part
        self.offset = offset
        self.seq = seq
        self.done = False


class TopicPartitionState:
    """The ledger of one assigned partition: records in offset order, and commit progress."""

    __slots__ = ("active", "committed", "pending", "position", "tp")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.pending: deque[TrackedRecord] = deque()
        self.position = -1
        """Next offset to commit, or -1 while nothing was done yet."""
        self.committed = -1
        self.active = True

    def advance(self) -> None:
        pending = self.pending
        while pending and pending[0].done:
            self.position = pending.popleft().offset + 1


class OffsetTracker:
    """At-least-once bookkeeping for one consumer (see the module docstring).  Not thread-safe."""

    def __init__(self) -> None:
        self._parts: dict[Any, TopicPartitionState] = {}
        self._by_key: dict[str, deque[TrackedRecord]] = {}
        self.in_flight = 0
        """Records registered and not yet done (on active partitions)."""

    def partition(self, tp: Any) -> TopicPartitionState:
        """The state of ``tp``, created on first use (assignment)."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = TopicPartitionState(tp)
        return part

    def add_done(self, part: TopicPartitionState, offset: int) -> None:
        """Register a record that is already safe (handed on, or nothing depends on it)."""
        if part.pending:
            rec = TrackedRecord(part, offset, 0)
            rec.done = True
            part.pending.append(rec)
        else:
            part.position = offset + 1

    def add(self, part: TopicPartitionState, offset: int) -> TrackedRecord:
        """Register a record made safe later by :meth:`done`."""
        rec = TrackedRecord(part, offset, 0)
        part.pending.append(rec)
        self.in_flight += 1
        return rec

    def add_keyed(self, part: TopicPartitionState, offset: int, key: str, seq: int) -> TrackedRecord:
        """Register a record made safe by :meth:`ack` of ``key`` with ``basis_seq >= seq``."""
        rec = TrackedRecord(part, offset, seq)
        part.pending.append(rec)
        dq = self._by_key.get(key)
        if dq is None:
            dq = self._by_key[key] = deque()
        dq.append(rec)
        self.in_flight += 1
        return rec

    def done(self, rec: TrackedRecord) -> None:
        """Mark one record safe."""
        if rec.done:
            return
        rec.done = True
        if rec.part.active:
            self.in_flight -= 1
            rec.part.advance()

    def ack(self, key: str, seq: int) -> int:
        """A result covering ``key`` up to ``seq`` is safe: mark those records done; returns how many."""
        dq = self._by_key.get(key)
        if not dq:
            return 0
        n = 0
        touched: set[TopicPartitionState] | None = None
        last: TopicPartitionState | None = None
        while dq and dq[0].seq <= seq:
            rec = dq.popleft()
            if rec.done:
                continue
            rec.done = True
            part = rec.part
            if not part.active:
                continue
            n += 1
            if part is not last:
                if last is not None:
                    if touched is None:
                        touched = set()
                    touched.add(last)
                last = part
        if not dq:
            del self._by_key[key]
        self.in_flight -= n
        if last is not None:
            last.advance()
        if touched:
            for part in touched:
                part.advance()
        return n

    def to_commit(self) -> dict[Any, int]:
        """Partitions whose safe position moved past what was committed: ``{tp: offset}``."""
        return {tp: p.position for tp, p in self._parts.items() if p.position > p.committed}

    def committed(self, offsets: dict[Any, int]) -> None:
        """Record that ``offsets`` were committed."""
        for tp, off in offsets.items():
            part = self._parts.get(tp)
            if part is not None and off > part.committed:
                part.committed = off

    def revoke(self, tps: Iterable[Any]) -> dict[Any, int]:
        """Forget ``tps`` (rebalance); returns their positions still worth committing first.

        Their pending records leave the in-flight count: their forecasts may still be
        produced (duplicates the new owner will repeat; consumers dedupe by forecast_id).
        """
        out: dict[Any, int] = {}
        for tp in tps:
            part = self._parts.pop(tp, None)
            if part is None:
                continue
            if part.position > part.committed:
                out[tp] = part.position
            part.active = False
            self.in_flight -= sum(1 for r in part.pending if not r.done)
            part.pending.clear()
        if out or self._by_key:
            # Drop keyed entries of revoked partitions so the per-key queues do not grow.
            for key in list(self._by_key):
                dq = self._by_key[key]
                kept = deque(r for r in dq if r.part.active)
                if kept:
                    self._by_key[key] = kept
                else:
                    del self._by_key[key]
        return out

    def assigned(self) -> list[Any]:
        return list(self._parts)
