"""Kafka in and out: client settings, hostile-input-proof decoding, positions, and the commit ledger.

The actors in ``actors/kafka_io.py`` and ``actors/heartbeat_bridge.py`` use from here:

* :class:`KafkaConfig` (+ :class:`TlsConfig`) -> keyword arguments for aiokafka
  consumers, producers and admin clients, with TLS and mutual TLS; :func:`stop_clients`
  closes them on every path (a client never closed is a ResourceWarning and a leak).
* :class:`RecordCodec` -- bytes -> :data:`engine.messages.Message`, msgpack or JSON
  (``auto`` tells them apart by the first byte: a JSON record starts with ``{``), under
  :class:`InputLimits`: size, nesting depth and element count are checked *before*
  decoding, and every decoder failure (``msgspec.DecodeError``, ``UnicodeDecodeError``,
  ``RecursionError``, anything else) becomes one :class:`~adapters.errors.RecordRejected`
  with a stable ``code``.  :func:`check_message` / :func:`check_heartbeat` then range-check
  the values (finite positive prices, sizes, timestamps within 1990..2100 in ns, 64-bit
  ints, printable bounded symbols): a record either passes whole or is dead-lettered.
* Positions: a market-data record's ``seq`` on the Kafka path is its **position**,
  ``stream << 48 | (offset + 1)`` with ``stream = topic_index << 12 | partition``
  (:func:`record_position`).  It is unique per input record and stable across restarts
  and re-deliveries, so ``forecast_id`` (a function of it) is too, and it orders records
  by offset within a partition.  The feed's own ``seq`` is not used: it is whatever the
  producer wrote (absent, repeated, reset, out of order).
* :func:`symbol_token` -- a symbol as one bus-topic token (bus topics are dot-separated:
  ``md.<token>``); ``%`` and ``.`` are percent-encoded, so ``ES.Z`` travels as ``ES%2EZ``.
  The message keeps the real symbol; routing only needs the token to be one token.
* :func:`encode_dead_letter` -- a dead letter whose encoded value always fits the
  producer's ``max_request_size``: the raw bytes are truncated (the original length and
  the fact are recorded in ``detail``).
* :class:`OffsetTracker` -- the at-least-once ledger.  Every consumed record is
  registered; a record is *done* when what it produced is safe: its forecast was
  acknowledged by the broker (``ack(key, position)``: every pending record of that key
  on that partition at or before the position's offset is covered -- ordering by offset,
  never by the feed's seq), or it was handed on / dead-lettered (``done(entry)``).  The
  offset to commit for a partition is ``offset + 1`` of its contiguous done prefix, so a
  crash re-delivers everything not yet safe, and nothing else.

  **Bars and state.**  A forecast made from a bar names the position of the last record the
  bar folded (its ``basis_seq``), so its ack settles every record of the bar and the ones
  before.  Once told where a key's bars end (:meth:`OffsetTracker.bar`), the ledger settles
  that key bar by bar: a bar is *answered* by the ack of its forecast (or of a later one of
  the key: acks come in order) or, when the forecaster drops it (warm-up, cadence...), by
  :meth:`OffsetTracker.answered`; the key's records settle up to the end of its answered
  prefix of bars.  With ``history_bars = H > 0`` the records of the last ``H`` answered bars
  of each key are kept too: a node that crashes re-reads ``H`` bars of history before the
  first bar it still owes, so its features are warm again when that bar's forecast is made
  (set ``H`` to the forecaster's warm-up plus one) - no forecast id is lost to a cold
  restart, at the cost of ``H`` bars per key in the window.  History answered more than
  ``history_max_s`` ago is released (:meth:`OffsetTracker.expire_history`): a quiet symbol
  never holds its partition's commit for ever.  Records the forecaster never answers (the
  feed rejected them) are settled one by one (:meth:`OffsetTracker.find` then
  :meth:`OffsetTracker.done`), once their dead letter is written.

Nothing here imports an actor; nothing here does I/O except the aiokafka factories and
:func:`stop_clients`.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, cast

import msgspec

# aiokafka ships no type information (no py.typed): its names are Any to mypy.
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from adapters.errors import ProducerStopped, RecordRejected
from engine.messages import (
    Bar,
    DeadLetter,
    Forecast,
    Heartbeat,
    Message,
    NewsItem,
    Quote,
    Trade,
    json_decoder,
    json_encoder,
    msgpack_decoder,
    msgpack_encoder,
)

__all__ = [
    "DEAD_LETTER_REASON_MAX_CHARS",
    "MAX_OFFSET",
    "MAX_PARTITIONS",
    "MAX_TOPICS",
    "Acked",
    "ConsumerConfig",
    "InputLimits",
    "KafkaConfig",
    "OffsetTracker",
    "ProducerConfig",
    "RecordCodec",
    "TlsConfig",
    "TopicPartitionState",
    "TrackedRecord",
    "admin_kwargs",
    "bounded_key",
    "check_depth",
    "check_heartbeat",
    "check_message",
    "check_symbol",
    "consumer_kwargs",
    "dead_letter_headers",
    "delivered",
    "delivery_timeout_s",
    "encode_dead_letter",
    "forecast_headers",
    "position_stream",
    "producer_kwargs",
    "record_position",
    "send_settled",
    "sender_stopped",
    "split_position",
    "ssl_context",
    "stop_clients",
    "stream_id",
    "symbol_token",
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


# --- input limits and validation ------------------------------------------------------

_INT64_MAX = (1 << 63) - 1

MODES = frozenset({"NORMAL", "CONSERVE", "DEGRADED", "SURVIVAL"})
"""The degradation modes a heartbeat may report (DESIGN.md, Modes)."""


class InputLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What one consumed record may be.  Sizes in bytes; timestamps in integer ns since the epoch (UTC).

    The defaults leave ample room for every legitimate record (a trade is ~100 bytes and
    nests 1 deep, a news item nests 2 deep) and keep a hostile one cheap to refuse.
    """

    max_record_bytes: int = 262_144
    """Larger values are refused before decoding (``too_large``)."""
    max_depth: int = 32
    """Deeper nesting of arrays/maps is refused before decoding (``too_deep``)."""
    max_elements: int = 20_000
    """Most tokens the exact depth scan walks before refusing (``too_complex``); the scan only
    runs when a cheap byte count cannot rule deep nesting out."""
    max_symbol_chars: int = 64
    max_id_chars: int = 256
    """News ids and sources, heartbeat node ids."""
    max_symbols_per_item: int = 256
    """Symbols one news item may name."""
    ts_min_ns: int = 631_152_000_000_000_000
    """1990-01-01T00:00:00Z."""
    ts_max_ns: int = 4_102_444_800_000_000_000
    """2100-01-01T00:00:00Z."""

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_depth", "max_elements", "max_symbol_chars", "max_id_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_symbols_per_item < 0:
            raise ValueError(f"max_symbols_per_item must be >= 0, got {self.max_symbols_per_item}")
        if not 0 <= self.ts_min_ns < self.ts_max_ns <= _INT64_MAX:
            raise ValueError("need 0 <= ts_min_ns < ts_max_ns <= 2**63 - 1")


# 1 for each byte that could open a msgpack container (fixmap, fixarray, array/map 16/32), else 0.
_MSGPACK_CONTAINER_MARKS = bytes(1 if 0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF else 0 for b in range(256))
# One JSON string (escapes included) or one bracket; DOTALL so "\<newline>" cannot derail it.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def check_depth(value: bytes, is_json: bool, limits: InputLimits) -> None:
    """Refuse ``value`` when arrays/maps nest deeper than ``limits.max_depth`` (``too_deep``).

    Fast path (every ordinary record): count the bytes that *could* open a container
    (``[``/``{`` in JSON; fixmap/fixarray/map16/32/array16/32 headers in msgpack) with one
    ``bytes.translate``; nesting can be no deeper than that count.  Only when the count is
    above the limit does an exact scan run, bounded by ``limits.max_elements`` tokens.
    Malformed input the scan cannot follow is left to the decoder to refuse.
    """
    if len(value) <= limits.max_depth:
        return  # every level takes at least one byte
    if is_json:
        openers = value.count(b"[") + value.count(b"{")
    else:
        openers = value.translate(_MSGPACK_CONTAINER_MARKS).count(1)
    if openers <= limits.max_depth:
        return
    if is_json:
        _json_depth(value, limits.max_depth, limits.max_elements)
    else:
        _msgpack_depth(value, limits.max_depth, limits.max_elements)


def _json_depth(value: bytes, max_depth: int, max_elements: int) -> None:
    depth = 0
    for n, m in enumerate(_JSON_TOKEN.finditer(value)):
        if n >= max_elements:
            raise RecordRejected("too_complex", f"more than {max_elements} JSON tokens")
        c = value[m.start()]
        if c == 0x22:  # a string: brackets inside it do not nest
            continue
        if c == 0x5B or c == 0x7B:
            depth += 1
            if depth > max_depth:
                raise RecordRejected("too_deep", f"JSON nests deeper than {max_depth}")
        else:
            depth -= 1


# msgpack: bytes of payload after the type byte, for the fixed-size types (floats, ints, fixext).
_MP_FIXED = {
    0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}  # fmt: skip
# msgpack: (width of the length field, extra bytes after it) for the variable-size types.
_MP_SIZED = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
}  # fmt: skip


def _msgpack_depth(value: bytes, max_depth: int, max_elements: int) -> None:
    # Iterative walk: ``left`` holds, per open container, how many items it still owes.
    left = [1]
    i = 0
    n = len(value)
    elements = 0
    while left:
        if left[-1] == 0:
            left.pop()
            continue
        if i >= n:
            return  # truncated: the decoder says so
        left[-1] -= 1
        elements += 1
        if elements > max_elements:
            raise RecordRejected("too_complex", f"more than {max_elements} msgpack items")
        t = value[i]
        if t <= 0x7F or t >= 0xE0 or 0xA0 <= t <= 0xBF:  # fixint, negative fixint, fixstr
            i += 1 + (t & 0x1F if 0xA0 <= t <= 0xBF else 0)
            continue
        if t <= 0x9F or 0xDC <= t <= 0xDF:  # a container
            if t <= 0x8F:
                count, i = 2 * (t & 0x0F), i + 1
            elif t <= 0x9F:
                count, i = t & 0x0F, i + 1
            else:
                width = 2 if t in (0xDC, 0xDE) else 4
                count = int.from_bytes(value[i + 1 : i + 1 + width], "big") * (2 if t >= 0xDE else 1)
                i += 1 + width
            if len(left) > max_depth:
                raise RecordRejected("too_deep", f"msgpack nests deeper than {max_depth}")
            left.append(count)
            continue
        fixed = _MP_FIXED.get(t)
        if fixed is not None:
            i += 1 + fixed
            continue
        sized = _MP_SIZED.get(t)
        if sized is None:
            return  # 0xC1 (never used): the decoder refuses it
        width, extra = sized
        i += 1 + width + extra + int.from_bytes(value[i + 1 : i + 1 + width], "big")


def _fail(detail: str) -> RecordRejected:
    return RecordRejected("invalid_value", detail)


def _check_ts(name: str, v: int, limits: InputLimits, *, optional: bool = False) -> None:
    if optional and v == 0:
        return
    if not limits.ts_min_ns <= v <= limits.ts_max_ns:
        raise _fail(f"{name} {v} ns is outside [{limits.ts_min_ns}, {limits.ts_max_ns}]")


def _check_int64(name: str, v: int) -> None:
    if not 0 <= v <= _INT64_MAX:
        raise _fail(f"{name} {v} is not a non-negative 64-bit integer")


def _check_positive(name: str, v: float) -> None:
    if not 0.0 < v < math.inf:  # NaN fails every comparison
        raise _fail(f"{name} {v!r} is not a finite positive number")


def _check_non_negative(name: str, v: float) -> None:
    if not 0.0 <= v < math.inf:
        raise _fail(f"{name} {v!r} is not a finite non-negative number")


def _check_text(name: str, v: str, max_chars: int, *, printable: bool = True) -> None:
    if not v:
        raise _fail(f"empty {name}")
    if len(v) > max_chars:
        raise _fail(f"{name} longer than {max_chars} characters")
    # Non-printable covers control characters, separators and lone surrogates (unencodable).
    if printable and not v.isprintable():
        raise _fail(f"{name} {v[:max_chars]!r} has non-printable characters")


def _check_utf8(name: str, v: str) -> None:
    if not v.isascii():
        try:
            v.encode()
        except UnicodeEncodeError:
            raise _fail(f"{name} is not encodable as UTF-8") from None


def check_symbol(symbol: str, limits: InputLimits, name: str = "symbol") -> None:
    """A symbol is 1..``max_symbol_chars`` printable characters (dots and spaces allowed)."""
    _check_text(name, symbol, limits.max_symbol_chars)


def _check_trade(m: Trade, limits: InputLimits) -> None:
    check_symbol(m.symbol, limits)
    _check_ts("ts_event", m.ts_event, limits)
    _check_ts("ts_recv", m.ts_recv, limits, optional=True)
    _check_int64("seq", m.seq)
    _check_positive("price", m.price)
    _check_positive("size", m.size)


def _check_quote(m: Quote, limits: InputLimits) -> None:
    check_symbol(m.symbol, limits)
    _check_ts("ts_event", m.ts_event, limits)
    _check_ts("ts_recv", m.ts_recv, limits, optional=True)
    _check_int64("seq", m.seq)
    _check_positive("bid", m.bid)
    _check_positive("ask", m.ask)
    if not m.bid < m.ask:
        raise _fail(f"crossed or locked quote: bid {m.bid!r} >= ask {m.ask!r}")
    _check_non_negative("bid_size", m.bid_size)
    _check_non_negative("ask_size", m.ask_size)


def _check_bar(m: Bar, limits: InputLimits) -> None:
    check_symbol(m.symbol, limits)
    _check_ts("ts_event", m.ts_event, limits)
    _check_ts("ts_open", m.ts_open, limits)
    if m.ts_open > m.ts_event:
        raise _fail(f"ts_open {m.ts_open} is after ts_event {m.ts_event}")
    _check_int64("seq", m.seq)
    _check_int64("n_trades", m.n_trades)
    for name in ("open", "high", "low", "close"):
        _check_positive(name, getattr(m, name))
    if not (m.low <= min(m.open, m.close) and m.high >= max(m.open, m.close)):
        raise _fail(
            f"bar range is inconsistent: low {m.low!r} high {m.high!r} open {m.open!r} close {m.close!r}"
        )
    for name in ("volume", "dollar_volume", "buy_volume", "spec"):
        _check_non_negative(name, getattr(m, name))
    _check_text("kind", m.kind, 32)


def _check_news(m: NewsItem, limits: InputLimits) -> None:
    _check_text("id", m.id, limits.max_id_chars)
    _check_text("source", m.source, limits.max_id_chars)
    _check_ts("ts_event", m.ts_event, limits)
    _check_ts("ts_recv", m.ts_recv, limits, optional=True)
    _check_utf8("headline", m.headline)
    _check_utf8("body", m.body)
    if len(m.symbols) > limits.max_symbols_per_item:
        raise _fail(f"{len(m.symbols)} symbols > {limits.max_symbols_per_item}")
    for s in m.symbols:
        check_symbol(s, limits, "symbols[]")


_CHECKS: dict[type, Callable[[Any, InputLimits], None]] = {
    Trade: _check_trade,
    Quote: _check_quote,
    Bar: _check_bar,
    NewsItem: _check_news,
}


def _trade_ok(m: Trade, limits: InputLimits) -> bool:
    # The hot path (every trade): one expression, no calls but two; the detailed checks
    # above only run to explain a refusal.
    lo = limits.ts_min_ns
    hi = limits.ts_max_ns
    sym = m.symbol
    recv = m.ts_recv
    return (
        0 < len(sym) <= limits.max_symbol_chars
        and sym.isprintable()
        and lo <= m.ts_event <= hi
        and (recv == 0 or lo <= recv <= hi)
        and 0 <= m.seq <= _INT64_MAX
        and 0.0 < m.price < math.inf
        and 0.0 < m.size < math.inf
    )


def check_message(msg: Message, limits: InputLimits) -> None:
    """Range-check a decoded market-data or news message; raise ``RecordRejected("invalid_value")``.

    Trades: finite positive price and size.  Quotes: finite positive bid < ask, finite
    non-negative sizes.  Bars: finite positive OHLC with low <= open, close <= high, finite
    non-negative volumes, ``ts_open <= ts_event``.  News: bounded printable id and source,
    UTF-8-encodable text, valid symbols.  Every ``ts_*`` within ``[ts_min_ns, ts_max_ns]``
    (``ts_recv`` may be 0: unset), every other int a non-negative 64-bit integer, every
    symbol valid (:func:`check_symbol`).  Other message types pass unchecked: the caller
    decides whether it accepts them at all.
    """
    if type(msg) is Trade and _trade_ok(msg, limits):
        return
    check = _CHECKS.get(type(msg))
    if check is not None:
        check(msg, limits)


def check_heartbeat(hb: Heartbeat, limits: InputLimits) -> None:
    """Range-check a heartbeat from a peer; raise ``RecordRejected("invalid_value")``.

    ``node_id`` bounded and printable, ``ts_event`` within the window, ``mode`` one of
    :data:`MODES`, latencies finite and non-negative (in microseconds), partitions
    non-negative 32-bit ints, at most 65,536 of them.
    """
    _check_text("node_id", hb.node_id, limits.max_id_chars)
    _check_ts("ts_event", hb.ts_event, limits)
    if hb.mode not in MODES:
        raise _fail(f"unknown mode {hb.mode[:32]!r}")
    _check_non_negative("lag_p99_us", hb.lag_p99_us)
    _check_non_negative("latency_p99_us", hb.latency_p99_us)
    if len(hb.partitions) > 65_536:
        raise _fail(f"{len(hb.partitions)} partitions")
    if any(not 0 <= p < 2**31 for p in hb.partitions):
        raise _fail("a partition number is outside [0, 2**31)")


# --- codec --------------------------------------------------------------------


class RecordCodec:
    """Record values -> messages under :class:`InputLimits`; failures raise ``RecordRejected``.

    ``decode`` never lets anything else out for a bad record: size is checked first, then
    nesting depth (:func:`check_depth`), then the msgspec decoder runs and each of its
    failures maps to a code: ``decode_error`` (malformed, wrong schema), ``invalid_utf8``,
    ``too_deep`` (a ``RecursionError``), ``tombstone`` (``None``: no value at all).
    Values are not range-checked here: see :func:`check_message`.
    """

    __slots__ = ("encode", "fmt", "limits")

    encode: Callable[[Any], bytes]

    def __init__(
        self,
        fmt: ValueFormat = "auto",
        out_fmt: Literal["msgpack", "json"] = "msgpack",
        limits: InputLimits | None = None,
    ) -> None:
        self.fmt = fmt
        self.limits = limits or InputLimits()
        self.encode = msgpack_encoder.encode if out_fmt == "msgpack" else json_encoder.encode

    def is_json(self, value: bytes) -> bool:
        """Whether ``value`` is read as JSON (``auto``: its first non-blank byte is ``{`` or ``[``)."""
        if self.fmt != "auto":
            return self.fmt == "json"
        return _looks_json(value)

    def decode(self, value: bytes | None) -> Message:
        """One record value -> a message, or ``RecordRejected`` (see the class doc)."""
        if value is None:
            raise RecordRejected("tombstone", "record has no value")
        limits = self.limits
        n = len(value)
        if n > limits.max_record_bytes:
            raise RecordRejected("too_large", f"{n} bytes > {limits.max_record_bytes}")
        # Inlined is_json() and check_depth()'s fast path: this runs for every record.
        fmt = self.fmt
        if fmt == "auto":
            first = value[0] if n else 0  # 0: not JSON (an empty value is a truncated msgpack)
            is_json = first == 0x7B or first == 0x5B or (first in _BLANK and _looks_json(value))
        else:
            is_json = fmt == "json"
        if n > limits.max_depth:
            if is_json:
                openers = value.count(b"[") + value.count(b"{")
            else:
                openers = value.translate(_MSGPACK_CONTAINER_MARKS).count(1)
            if openers > limits.max_depth:
                check_depth(value, is_json, limits)
        try:
            return cast(Message, _js(value) if is_json else _mp(value))
        except msgspec.DecodeError as exc:  # also ValidationError: wrong schema
            raise RecordRejected("decode_error", str(exc)) from None
        except UnicodeDecodeError as exc:
            raise RecordRejected("invalid_utf8", str(exc)) from None
        except RecursionError:
            raise RecordRejected("too_deep", "nesting exceeds the interpreter's recursion limit") from None
        except Exception as exc:  # whatever else a decoder may raise costs only this record
            raise RecordRejected("decode_error", f"{type(exc).__name__}: {exc}") from None

    def decode_batch(self, values: Iterable[bytes | None]) -> list[Message | RecordRejected]:
        """Decode each value; a failure is returned in place (never raised): one bad record
        costs only itself."""
        out: list[Message | RecordRejected] = []
        for v in values:
            try:
                out.append(self.decode(v))
            except RecordRejected as exc:
                out.append(exc)
        return out


_mp = msgpack_decoder.decode
_js = json_decoder.decode
_BLANK = b" \t\r\n"


def _looks_json(value: bytes) -> bool:
    # A msgpack map never starts with "{" or "[" (0x7b, 0x5b are positive fixints: a bare int,
    # never a message), so one byte decides; JSON may also begin with blanks (bare ints too).
    # A JSON array is no message either, but read as JSON it is refused for what it is.
    first = value[:1]
    if first == b"{" or first == b"[":
        return True
    if first not in _BLANK or not first:
        return False
    return value.lstrip(_BLANK)[:1] in (b"{", b"[")


# --- positions and bus tokens ------------------------------------------------------

_OFFSET_BITS = 48
_PARTITION_BITS = 12
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
MAX_TOPICS = 8
"""Topics one source may read (3 bits of the position)."""
MAX_PARTITIONS = 1 << _PARTITION_BITS
"""Partitions per topic whose records can carry a position (0..4095)."""
MAX_OFFSET = _OFFSET_MASK - 1
"""Largest offset a position can carry (2**48 - 2: ~9 years at one million records/s)."""


def stream_id(topic_index: int, partition: int) -> int:
    """The id of one input partition: ``topic_index`` (its place in the source's topic list) and
    ``partition``.  ``ValueError`` beyond :data:`MAX_TOPICS` / :data:`MAX_PARTITIONS`."""
    if not 0 <= topic_index < MAX_TOPICS or not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"topic index {topic_index} / partition {partition} cannot carry a position")
    return (topic_index << _PARTITION_BITS) | partition


def record_position(stream: int, offset: int) -> int:
    """The position of the record at ``offset`` of ``stream``: ``stream << 48 | (offset + 1)``.

    Always in ``[1, 2**63)``; 0 stays free to mean "no position".  ``ValueError`` when
    ``offset`` is beyond :data:`MAX_OFFSET`.
    """
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset {offset} cannot carry a position")
    return (stream << _OFFSET_BITS) | (offset + 1)


def split_position(position: int) -> tuple[int, int]:
    """``(stream, offset)`` of a position made by :func:`record_position`."""
    return position >> _OFFSET_BITS, (position & _OFFSET_MASK) - 1


def position_stream(position: int) -> int:
    """The stream a position belongs to."""
    return position >> _OFFSET_BITS


def symbol_token(symbol: str) -> str:
    """``symbol`` as one bus-topic token: ``%`` -> ``%25`` and ``.`` -> ``%2E`` (injective).

    Bus topics are dot-separated (``md.<token>``, ``forecast.<token>``), so a dotted symbol
    such as ``ES.Z`` would otherwise be two tokens that ``md.*`` never matches.  Symbols
    without ``.`` or ``%`` are their own token.
    """
    if "." not in symbol and "%" not in symbol:
        return symbol
    return symbol.replace("%", "%25").replace(".", "%2E")


# --- headers and dead letters ------------------------------------------------------------

DEAD_LETTER_REASON_MAX_CHARS = 1000
_KEY_MAX_BYTES = 256
_RECORD_MARGIN = 512
"""Bytes kept free under ``max_request_size`` beyond aiokafka's own record estimate."""


def forecast_headers(fc: Forecast) -> list[tuple[str, bytes]]:
    """Kafka headers of a forecast record: its id (for deduplication) and type."""
    return [("forecast_id", fc.forecast_id.encode()), ("type", b"forecast"), ("version", b"%d" % fc.version)]


def dead_letter_headers(reason: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-letter record: where the raw bytes came from and why they failed."""
    return [
        ("error", reason[:DEAD_LETTER_REASON_MAX_CHARS].encode(errors="replace")),
        ("source_topic", topic.encode(errors="replace")),
        ("source_partition", b"%d" % partition),
        ("source_offset", b"%d" % offset),
    ]


def bounded_key(key: bytes | None) -> bytes | None:
    """A record key cut to 256 bytes (dead letters keep the source key for partitioning only)."""
    return key if key is None or len(key) <= _KEY_MAX_BYTES else key[:_KEY_MAX_BYTES]


def encode_dead_letter(
    *,
    source: str,
    reason: str,
    raw: bytes,
    ts_event: int,
    detail: dict[str, Any],
    encode: Callable[[Any], bytes],
    max_raw_bytes: int,
    max_request_size: int,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[DeadLetter, bytes]:
    """A dead letter and its encoded value, small enough to be produced.

    ``raw`` is cut to at most ``max_raw_bytes`` and to what fits, with ``key`` and
    ``headers``, under ``max_request_size`` (aiokafka's own size estimate plus a margin);
    ``detail`` gains ``raw_len`` (the original length, bytes) and ``raw_truncated``.
    ``reason`` is cut to :data:`DEAD_LETTER_REASON_MAX_CHARS` characters.  JSON carries
    bytes as base64 (4 bytes per 3), which the budget accounts for.
    """
    reason = reason[:DEAD_LETTER_REASON_MAX_CHARS]
    hdrs = headers or []
    det = {**detail, "raw_len": len(raw), "raw_truncated": False}

    def build(kept: bytes) -> tuple[DeadLetter, bytes]:
        det["raw_truncated"] = len(kept) < len(raw)
        dl = DeadLetter(source=source, reason=reason, ts_event=ts_event, raw=kept, detail=dict(det))
        return dl, encode(dl)

    def excess(value: bytes) -> int:
        size = int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, hdrs))
        return size + _RECORD_MARGIN - max_request_size

    _, empty = build(b"")
    room = max_request_size - _RECORD_MARGIN - len(empty) - len(key or b"")
    room -= sum(len(k) + len(v) + 8 for k, v in hdrs) + 128  # 128: record framing and varints
    keep = max(0, min(len(raw), max_raw_bytes, (room - 8) * 3 // 4))
    dl, value = build(raw[:keep])
    # The estimate above is conservative; aiokafka's own size estimate is the proof.
    while keep and (over := excess(value)) > 0:
        keep = max(0, keep - (over * 3 // 4 + 64))
        dl, value = build(raw[:keep])
    return dl, value


def sender_stopped(producer: Any) -> bool:
    """Whether an aiokafka producer's background sender task has ended (see :func:`delivered`)."""
    # (aiokafka has no public accessor: a producer without one counts as running)
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return isinstance(task, asyncio.Future) and task.done()


def delivery_timeout_s(conn: KafkaConfig) -> float:
    """How long a send may take to settle: aiokafka expires an unsent batch after one request
    timeout and a retried one after about another, so twice that and 5 s of slack."""
    return 2 * conn.request_timeout_ms / 1000 + 5.0


async def delivered(producer: Any, fut: asyncio.Future[Any], timeout_s: float) -> Any:
    """The result of a send's delivery future ``fut``, waited for at most ``timeout_s`` seconds.

    Raises what the future raises; :class:`aiokafka.errors.KafkaTimeoutError` when it is not
    settled in time (a ``KafkaError``: callers retry as for any failed send); and
    :class:`~adapters.errors.ProducerStopped` as soon as ``producer``'s sender has ended, whose
    in-flight batches are never settled (on uvloop a connection reset can end it).  ``fut`` is
    never cancelled: it belongs to the producer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not fut.done():
        if sender_stopped(producer):
            raise ProducerStopped("the producer's sender has stopped: its pending sends will never settle")
        left = deadline - loop.time()
        if left <= 0:
            raise KafkaTimeoutError(f"a send not settled after {timeout_s:g}s")
        # (polled each second: the sender can end while this batch is in flight)
        await asyncio.wait({fut}, timeout=min(left, 1.0))
    return fut.result()


async def send_settled(producer: Any, topic: str, value: bytes | None, *, timeout_s: float, **kw: Any) -> Any:
    """``producer.send(topic, value, **kw)`` and its delivery (:func:`delivered`, ``timeout_s``).

    After its sender has ended, aiokafka refuses every send with the error that ended it (a
    ``KafkaError``, which callers retry): that refusal is raised as
    :class:`~adapters.errors.ProducerStopped`, so a retry loop does not spin on a dead producer.
    """
    try:
        fut = await producer.send(topic, value, **kw)
    except KafkaError as exc:
        if sender_stopped(producer):
            raise ProducerStopped(f"the producer's sender has stopped: {exc!r}") from exc
        raise
    return await delivered(producer, fut, timeout_s)


async def stop_clients(clients: Iterable[Any], timeout_s: float) -> list[str]:
    """Stop aiokafka clients, all at once, each bounded by ``timeout_s``; returns the errors.

    Every ``stop()`` is started as its own task before anything is awaited: a client marks
    itself closed on the first step of ``stop()``, so even when the caller is cancelled
    (an actor's ``on_stop`` running out of time) no client is left unclosed to warn later.
    A stop still running after ``timeout_s`` is cancelled (its connections are dropped).
    """
    tasks = [asyncio.ensure_future(c.stop()) for c in clients if c is not None]
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=0.5)  # let the cancelled stops unwind
    errors = [f"stop timed out after {timeout_s}s" for _ in pending]
    errors += [repr(t.exception()) for t in done if not t.cancelled() and t.exception() is not None]
    return errors


# --- at-least-once ledger -------------------------------------------------------


class TrackedRecord:
    """One consumed record awaiting safety, on partition ``part`` at ``offset``.

    Keyed records keep their raw ``value`` and ``key`` (references, no copy) until settled:
    a record the pipeline rejects later is dead-lettered with its original bytes.
    """

    __slots__ = ("done", "key", "offset", "part", "value")

    def __init__(
        self, part: TopicPartitionState, offset: int, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        self.part = part
        self.offset = offset
        self.done = False
        self.value = value
        self.key = key


class Acked(msgspec.Struct, frozen=True, gc=False):
    """The broker acknowledged every forecast of ``symbol`` made from its input partition up to
    the one made from the record at ``basis_seq`` (what the Kafka sink tells the source)."""

    symbol: str
    basis_seq: int
    forecast_id: str = ""


class _Bar:
    """A bar of one key on one partition: the offset of its last record, and when it was answered
    (monotonic seconds; -1 while not)."""

    __slots__ = ("answered_at", "end")

    def __init__(self, end: int) -> None:
        self.end = end
        self.answered_at = -1.0


class TopicPartitionState:
    """The ledger of one assigned partition: records in offset order, and commit progress.

    ``committed`` starts at the first offset registered (where the group's commit stood
    when this consumer began reading) and then follows successful commits.
    """

    __slots__ = (
        "active",
        "bars",
        "committed",
        "keys",
        "next_offset",
        "pending",
        "position",
        "progress_at",
        "seen_committed",
        "stalled",
        "stream",
        "tp",
    )

    def __init__(self, tp: Any, stream: int) -> None:
        self.tp = tp
        self.stream = stream
        self.pending: deque[TrackedRecord] = deque()
        """Registered records from the first not-done one on, in offset order."""
        self.keys: dict[str, deque[TrackedRecord]] = {}
        """Keyed records not yet acknowledged, per key, in offset order."""
        self.bars: dict[str, deque[_Bar]] = {}
        """Per key, its bars not yet settled, in offset order (once the ledger learns of bars)."""
        self.position = -1
        """Next offset to commit, or -1 while nothing was done yet."""
        self.committed = -1
        self.next_offset = -1
        """Offset after the last registered record, or -1 while none was."""
        self.active = True
        self.stalled = False
        self.progress_at = -1.0
        """Monotonic time (s) the committed offset last moved or nothing was waiting."""
        self.seen_committed = -1

    def register(self, offset: int) -> None:
        if self.committed < 0:
            self.committed = offset
        self.next_offset = offset + 1

    def advance(self) -> None:
        pending = self.pending
        while pending and pending[0].done:
            self.position = pending.popleft().offset + 1

    @property
    def uncommitted(self) -> int:
        """Offsets consumed and not committed: an upper bound on the records a crash re-delivers."""
        return self.next_offset - self.committed if self.next_offset >= 0 else 0

    @property
    def safe_uncommitted(self) -> int:
        """Offsets safe to commit and not committed yet."""
        return self.position - self.committed if self.position > self.committed else 0

    @property
    def head_offset(self) -> int:
        """Offset of the first record not yet safe, or -1."""
        return self.pending[0].offset if self.pending else -1


class OffsetTracker:
    """At-least-once bookkeeping for one consumer (see the module docstring).  Not thread-safe."""

    def __init__(self, history_bars: int = 0, history_max_s: float = 0.0) -> None:
        if history_bars < 0 or history_max_s < 0:
            raise ValueError(
                f"history_bars and history_max_s must be >= 0, got {history_bars}, {history_max_s}"
            )
        self._parts: dict[Any, TopicPartitionState] = {}
        self._streams: dict[int, TopicPartitionState] = {}
        self.history_bars = history_bars
        """Answered bars per key whose records stay uncommitted (module docstring)."""
        self.history_max_s = history_max_s
        """History answered longer ago than this is released (:meth:`expire_history`; 0: never)."""
        self.now = 0.0
        """Monotonic seconds, as of the last :meth:`expire_history` (stamps answered bars)."""
        self.in_flight = 0
        """Records registered and not yet done (on active partitions)."""

    def partition(self, tp: Any, stream: int = 0) -> TopicPartitionState:
        """The state of ``tp``, created on first use (assignment) with its position ``stream``."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = TopicPartitionState(tp, stream)
            self._streams[stream] = part
        return part

    def get(self, tp: Any) -> TopicPartitionState | None:
        """The state of ``tp`` while it is assigned, else None."""
        return self._parts.get(tp)

    def parts(self) -> Iterator[TopicPartitionState]:
        return iter(self._parts.values())

    def add_done(self, part: TopicPartitionState, offset: int) -> None:
        """Register a record that is already safe (handed on, or nothing depends on it)."""
        part.register(offset)
        if part.pending:
            rec = TrackedRecord(part, offset)
            rec.done = True
            part.pending.append(rec)
        else:
            part.position = offset + 1

    def add(self, part: TopicPartitionState, offset: int) -> TrackedRecord:
        """Register a record made safe later by :meth:`done`."""
        part.register(offset)
        rec = TrackedRecord(part, offset)
        part.pending.append(rec)
        self.in_flight += 1
        return rec

    def add_keyed(
        self,
        part: TopicPartitionState,
        offset: int,
        key: str,
        value: bytes | None = None,
        raw_key: bytes | None = None,
    ) -> TrackedRecord:
        """Register a record made safe by :meth:`ack` of ``key`` at or after ``offset`` on ``part``
        (``value`` and ``raw_key``: the record's bytes, kept until then)."""
        part.register(offset)
        rec = TrackedRecord(part, offset, value, raw_key)
        part.pending.append(rec)
        self.in_flight += 1
        dq = part.keys.get(key)
        if dq is None:
            dq = part.keys[key] = deque()
        dq.append(rec)
        return rec

    def done(self, rec: TrackedRecord) -> None:
        """Mark one record safe."""
        if rec.done:
            return
        rec.done = True
        if rec.part.active:
            self.in_flight -= 1
            rec.part.advance()

    def ack(self, key: str, position: int) -> int:
        """A result for ``key`` made from the record at ``position`` is safe: it and every earlier
        record of ``key`` on that partition are done.  Returns how many records that settled.

        Once the ledger knows where ``key``'s bars end (:meth:`bar`), an ack answers every bar of
        ``key`` ending at or before the record, and what settles is the answered prefix of its
        bars less the history (:meth:`answered`).  A position of an unknown or revoked partition
        settles nothing.
        """
        stream, offset = split_position(position)
        part = self._streams.get(stream)
        if part is None:
            return 0
        bars = part.bars.get(key)
        if bars is not None:
            for b in bars:
                if b.end > offset:
                    break
                if b.answered_at < 0:
                    b.answered_at = self.now
            return self._settle_bars(part, key, bars)
        return self._settle(part, key, offset)

    def _settle(self, part: TopicPartitionState, key: str, offset: int) -> int:
        """Mark every waiting record of ``key`` on ``part`` at or before ``offset`` done."""
        dq = part.keys.get(key)
        if not dq:
            return 0
        n = 0
        while dq and dq[0].offset <= offset:
            rec = dq.popleft()
            if not rec.done:
                rec.done = True
                n += 1
        if not dq:
            del part.keys[key]
        if n:
            self.in_flight -= n
            part.advance()
        return n

    def _settle_bars(
        self, part: TopicPartitionState, key: str, bars: deque[_Bar], now: float = -1.0, keep: int = -1
    ) -> int:
        """Settle ``key``'s records up to the end of its answered bars, keeping the last
        ``history_bars`` (or ``keep``) of them (those answered before ``now - history_max_s``
        excepted)."""
        answered = 0
        for b in bars:
            if b.answered_at < 0:
                break
            answered += 1
        release = answered - (self.history_bars if keep < 0 else keep)
        if now >= 0 and self.history_max_s > 0:
            horizon = now - self.history_max_s
            while release < answered and bars[max(release, 0)].answered_at <= horizon:
                release = max(release, 0) + 1
        if release <= 0:
            return 0
        end = -1
        for _ in range(release):
            end = bars.popleft().end
        if not bars:
            del part.bars[key]
        return self._settle(part, key, end)

    def bar(self, key: str, position: int) -> None:
        """A bar of ``key`` ended at the record at ``position``: from now on ``key``'s records
        settle bar by bar, once each bar is answered (:meth:`ack`, :meth:`answered`)."""
        stream, offset = split_position(position)
        part = self._streams.get(stream)
        if part is None or offset < part.committed:
            return
        bars = part.bars.get(key)
        if bars is None:
            bars = part.bars[key] = deque()
        if not bars or offset > bars[-1].end:
            bars.append(_Bar(offset))

    def answered(self, key: str, position: int) -> int:
        """The bar of ``key`` ending at ``position`` was answered without a result (the forecaster
        dropped it: warm-up, cadence...): it settles like an acknowledged one."""
        stream, offset = split_position(position)
        part = self._streams.get(stream)
        if part is None:
            return 0
        bars = part.bars.get(key)
        if not bars:
            return 0
        for b in bars:
            if b.end == offset:
                if b.answered_at < 0:
                    b.answered_at = self.now
                break
            if b.end > offset:
                return 0
        return self._settle_bars(part, key, bars)

    def expire_history(self, now: float) -> int:
        """Release history older than ``history_max_s`` (monotonic ``now``); returns records settled.

        History keeps a restarted node warm; it must not hold a quiet symbol's records (and with
        them its partition's commit) for ever."""
        self.now = now
        if self.history_max_s <= 0:
            return 0
        return self._settle_answered(now)

    def release_history(self) -> int:
        """Settle every answered bar now, history included; returns records settled.

        For a window full of history (more symbols x ``history_bars`` x records per bar than
        the window holds): the window is the hard bound, warmth after a crash the nicety."""
        return self._settle_answered(keep=0)

    def _settle_answered(self, now: float = -1.0, keep: int = -1) -> int:
        """:meth:`_settle_bars` over every key with an answered bar; returns records settled."""
        n = 0
        for part in list(self._parts.values()):
            for key, bars in list(part.bars.items()):
                if bars and bars[0].answered_at >= 0:
                    n += self._settle_bars(part, key, bars, now, keep)
        return n

    def find(self, key: str, position: int) -> TrackedRecord | None:
        """The keyed record of ``key`` at ``position`` while it waits, else None."""
        stream, offset = split_position(position)
        part = self._streams.get(stream)
        if part is None:
            return None
        for rec in part.keys.get(key, ()):
            if rec.offset == offset:
                return None if rec.done else rec
            if rec.offset > offset:
                break
        return None

    def uncommitted(self) -> int:
        """Offsets consumed and not committed, over all assigned partitions."""
        return sum(p.uncommitted for p in self._parts.values())

    def safe_uncommitted(self) -> int:
        """Offsets safe to commit and not committed, over all assigned partitions."""
        return sum(p.safe_uncommitted for p in self._parts.values())

    def to_commit(self) -> dict[Any, int]:
        """Partitions whose safe position moved past what was committed: ``{tp: offset}``."""
        return {tp: p.position for tp, p in self._parts.items() if p.position > p.committed}

    def committed(self, offsets: dict[Any, int]) -> None:
        """Record that ``offsets`` were committed."""
        for tp, off in offsets.items():
            part = self._parts.get(tp)
            if part is not None and off > part.committed:
                part.committed = off

    def check_stalls(
        self, now: float, after_s: float
    ) -> tuple[list[TopicPartitionState], list[TopicPartitionState]]:
        """Partitions that just stalled, and that just recovered.

        A partition is stalled when records consumed from it wait uncommitted and its
        committed offset has not moved for more than ``after_s`` seconds (``now``:
        monotonic seconds).  It recovers when the committed offset moves again or nothing
        waits any more.
        """
        stalled: list[TopicPartitionState] = []
        recovered: list[TopicPartitionState] = []
        for part in self._parts.values():
            if part.progress_at < 0 or part.uncommitted == 0 or part.committed != part.seen_committed:
                part.progress_at = now
                part.seen_committed = part.committed
                if part.stalled:
                    part.stalled = False
                    recovered.append(part)
            elif not part.stalled and now - part.progress_at > after_s:
                part.stalled = True
                stalled.append(part)
        return stalled, recovered

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
            if self._streams.get(part.stream) is part:
                del self._streams[part.stream]
            if part.position > part.committed:
                out[tp] = part.position
            part.active = False
            self.in_flight -= sum(1 for r in part.pending if not r.done)
            part.pending.clear()
            part.keys.clear()
            part.bars.clear()
        return out

    def assigned(self) -> list[Any]:
        return list(self._parts)
