"""Unit tests of the Kafka layer that need no broker: ledger, codec, client settings, forecaster, config."""

from __future__ import annotations

import argparse
import asyncio
import math
import tomllib
from pathlib import Path
from statistics import NormalDist
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.baseline_forecaster import BaselineForecaster, BaselineForecasterConfig
from actors.kafka_io import KafkaSourceConfig
from adapters.errors import ProducerStopped, RecordRejected
from adapters.kafka import (
    MAX_OFFSET,
    MAX_PARTITIONS,
    MAX_TOPICS,
    ConsumerConfig,
    InputLimits,
    KafkaConfig,
    OffsetTracker,
    ProducerConfig,
    RecordCodec,
    TlsConfig,
    bounded_key,
    check_heartbeat,
    check_message,
    consumer_kwargs,
    delivered,
    delivery_timeout_s,
    encode_dead_letter,
    producer_kwargs,
    record_position,
    send_settled,
    split_position,
    stream_id,
    symbol_token,
)
from adapters.tansu import find_tansu
from engine.bus import topic_matches
from engine.config import load_config, loads_config
from engine.errors import ConfigError
from engine.kernel import Engine
from engine.messages import Bar, Forecast, Heartbeat, NewsItem, Quote, Trade, json_encoder, msgpack_encoder
from engine.testing import Probe, settle
from tools.commands.node import apply_overrides

REPO = Path(__file__).resolve().parents[2]


# --- the at-least-once ledger ------------------------------------------------------


def _pos(off: int, partition: int = 0) -> int:
    return record_position(stream_id(0, partition), off)


def test_commit_position_stops_at_the_first_record_without_a_safe_forecast() -> None:
    tr = OffsetTracker()
    p = tr.partition("t/0", stream_id(0, 0))
    for off, key in enumerate(["A", "B", "A", "B", "A"]):
        tr.add_keyed(p, off, key)
    assert tr.in_flight == 5 and tr.to_commit() == {}
    assert tr.ack("A", _pos(4)) == 3  # A's forecast of offset 4 covers A at 0, 2, 4
    assert tr.to_commit() == {"t/0": 1}, "B at offset 1 is not safe yet"
    assert tr.ack("B", _pos(1)) == 1
    assert tr.to_commit() == {"t/0": 3}
    tr.committed({"t/0": 3})
    assert tr.to_commit() == {}
    assert tr.ack("B", _pos(3)) == 1 and tr.to_commit() == {"t/0": 5} and tr.in_flight == 0
    assert tr.ack("B", _pos(99)) == 0, "acks for nothing pending are harmless"
    assert tr.ack("B", _pos(3, partition=5)) == 0, "acks of an unknown partition settle nothing"


def test_acks_settle_by_offset_on_their_own_partition_whatever_the_feed_seq_did() -> None:
    # The same symbol on two partitions (un-keyed producer): offsets overlap, positions do not.
    tr = OffsetTracker()
    p0, p1 = tr.partition("t/0", stream_id(0, 0)), tr.partition("t/1", stream_id(0, 1))
    for off in range(3):
        tr.add_keyed(p0, off, "ES")
        tr.add_keyed(p1, off, "ES")
    assert tr.ack("ES", _pos(2, partition=1)) == 3, "partition 1 only"
    assert tr.to_commit() == {"t/1": 3}
    assert tr.ack("ES", _pos(0)) == 1 and tr.to_commit() == {"t/0": 1, "t/1": 3}
    assert tr.in_flight == 2


def test_done_records_and_dead_letters() -> None:
    tr = OffsetTracker()
    p = tr.partition("t/0")
    tr.add_done(p, 0)  # a news item: safe once handed on
    assert tr.to_commit() == {"t/0": 1}
    rec = tr.add(p, 1)  # a dead letter awaiting its broker ack
    tr.add_done(p, 2)
    assert tr.to_commit() == {"t/0": 1}
    tr.done(rec)
    tr.done(rec)  # idempotent
    assert tr.to_commit() == {"t/0": 3} and tr.in_flight == 0


def test_uncommitted_counts_every_record_past_the_commit_safe_or_not() -> None:
    tr = OffsetTracker()
    p = tr.partition("t/0")
    tr.add_keyed(p, 10, "A")  # the group's commit stood at 10: reading starts there
    for off in range(11, 20):
        tr.add_done(p, off)  # safe, but behind A at 10: a crash re-delivers them all
    assert tr.in_flight == 1 and tr.uncommitted() == 10 and tr.safe_uncommitted() == 0
    tr.ack("A", _pos(10))
    assert tr.uncommitted() == 10 and tr.safe_uncommitted() == 10
    tr.committed(tr.to_commit())
    assert tr.uncommitted() == 0 and tr.safe_uncommitted() == 0


def test_a_partition_that_stops_committing_is_reported_stalled_and_then_recovered() -> None:
    tr = OffsetTracker()
    p = tr.partition("t/0")
    assert tr.check_stalls(0.0, 5.0) == ([], []), "nothing waits: never stalled"
    tr.add_keyed(p, 0, "A")
    assert tr.check_stalls(4.0, 5.0) == ([], [])
    assert tr.check_stalls(9.0, 5.0) == ([], []), "the clock starts when records wait"
    stalled, _ = tr.check_stalls(10.0, 5.0)
    assert stalled == [p] and p.stalled
    assert tr.check_stalls(11.0, 5.0) == ([], []), "reported once"
    tr.ack("A", _pos(0))
    tr.committed(tr.to_commit())
    assert tr.check_stalls(12.0, 5.0) == ([], [p]) and not p.stalled


def test_revoke_hands_back_positions_and_forgets_pending_records() -> None:
    tr = OffsetTracker()
    p0, p1 = tr.partition("t/0", stream_id(0, 0)), tr.partition("t/1", stream_id(0, 1))
    tr.add_keyed(p0, 0, "A")
    tr.add_keyed(p0, 1, "A")
    tr.add_keyed(p1, 0, "B")
    tr.ack("A", _pos(0))
    assert tr.revoke(["t/0"]) == {"t/0": 1}
    assert tr.in_flight == 1, "only B at offset 0 on the kept partition is still in flight"
    assert tr.ack("A", _pos(1)) == 0, "acks of revoked partitions are ignored"
    assert tr.to_commit() == {}
    assert tr.assigned() == ["t/1"]


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[tuple[int, str]], list[tuple[str, int, int]]]:
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.sampled_from("ABC"), min_size=n, max_size=n))
    parts = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    acks = draw(
        st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 1), st.integers(0, 40)), max_size=30)
    )
    return list(zip(parts, keys, strict=True)), acks


@settings(max_examples=100, deadline=None)
@given(_histories())
def test_commit_never_passes_a_record_whose_result_is_not_safe(
    history: tuple[list[tuple[int, str]], list[tuple[str, int, int]]],
) -> None:
    records, acks = history
    tr = OffsetTracker()
    parts = {0: tr.partition(0, stream_id(0, 0)), 1: tr.partition(1, stream_id(0, 1))}
    offsets = {0: 0, 1: 0}
    placed = []
    for part, key in records:
        tr.add_keyed(parts[part], offsets[part], key)
        placed.append((part, offsets[part], key))
        offsets[part] += 1
    acked: dict[tuple[str, int], int] = {}
    for key, part, off in acks:
        tr.ack(key, _pos(off, part))
        acked[key, part] = max(acked.get((key, part), -1), off)
    safe = {(part, off) for part, off, key in placed if off <= acked.get((key, part), -1)}
    for part in (0, 1):
        pos = tr.to_commit().get(part, 0)
        assert all((part, off) in safe for off in range(pos)), "committed past an unsafe record"
        assert pos == offsets[part] or (part, pos) not in safe, "commit position is not maximal"
    assert tr.in_flight == len(placed) - len(safe)


def test_positions_are_unique_per_record_and_fit_in_63_bits() -> None:
    seen = {
        record_position(stream_id(t, p), off)
        for t in (0, MAX_TOPICS - 1)
        for p in (0, 1, MAX_PARTITIONS - 1)
        for off in (0, 1, MAX_OFFSET)
    }
    assert len(seen) == 2 * 3 * 3
    assert all(0 < x < 2**63 for x in seen)
    assert split_position(record_position(stream_id(5, 77), 123_456)) == (stream_id(5, 77), 123_456)
    for bad in ((MAX_TOPICS, 0), (0, MAX_PARTITIONS), (-1, 0)):
        with pytest.raises(ValueError):
            stream_id(*bad)
    with pytest.raises(ValueError):
        record_position(0, MAX_OFFSET + 1)


def test_symbol_tokens_are_one_token_and_injective() -> None:
    symbols = ["ES", "ES.Z", "ES%2EZ", "ES_Z", "A.B.C", "%", ".", "BRK B"]
    tokens = [symbol_token(s) for s in symbols]
    assert tokens[0] == "ES" and tokens[-1] == "BRK B", "ordinary symbols are their own token"
    assert all("." not in t for t in tokens)
    assert len(set(tokens)) == len(symbols)
    assert topic_matches("md.*", "md." + symbol_token("ES.Z"))


# --- codec and input limits ------------------------------------------------------------------


def test_codec_auto_tells_json_from_msgpack_and_reports_failures_in_place() -> None:
    t = Trade(symbol="ES", ts_event=1, seq=3, price=1650.25, size=2.0, side=1)
    q = Quote(symbol="ES", ts_event=2, bid=1.0, ask=1.25)
    codec = RecordCodec("auto")
    out = codec.decode_batch(
        [msgpack_encoder.encode(t), b" \n" + json_encoder.encode(q), b"\xc1", None, b'{"type":"x"}']
    )
    assert out[0] == t and out[1] == q
    assert [e.code for e in out[2:] if isinstance(e, RecordRejected)] == [
        "decode_error",
        "tombstone",
        "decode_error",
    ]
    with pytest.raises(RecordRejected, match="decode_error"):
        RecordCodec("msgpack").decode(json_encoder.encode(q))
    assert RecordCodec("json").decode(json_encoder.encode(q)) == q


def _nested_json(depth: int) -> bytes:
    return (
        b'{"type":"trade","symbol":"ES","ts_event":1,"price":1.0,"size":1.0,"x":'
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


def _nested_msgpack(depth: int) -> bytes:
    head = msgpack_encoder.encode({"type": "trade", "symbol": "ES", "ts_event": 1, "price": 1.0, "size": 1.0})
    return bytes([head[0] + 1]) + head[1:] + msgpack_encoder.encode("x") + b"\x91" * (depth - 1) + b"\x90"


@pytest.mark.parametrize("depth", [33, 1000, 3000, 100_000])
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_nesting_beyond_the_limit_is_refused_before_decoding(fmt: str, depth: int) -> None:
    raw = _nested_json(depth) if fmt == "json" else _nested_msgpack(depth)
    limits = InputLimits(max_record_bytes=1 << 20)
    with pytest.raises(RecordRejected) as info:
        RecordCodec("auto", limits=limits).decode(raw)
    assert info.value.code == "too_deep"


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_nesting_within_the_limit_decodes_and_strings_do_not_count(fmt: str) -> None:
    raw = _nested_json(31) if fmt == "json" else _nested_msgpack(31)  # + the record itself: 32
    assert isinstance(RecordCodec("auto").decode(raw), Trade)
    # Brackets inside a string are text, not nesting (and push the byte count over the limit).
    news = NewsItem(id="n", ts_event=1, source="s", headline="[" * 500 + '"{' * 100)
    for enc in (json_encoder, msgpack_encoder):
        assert RecordCodec("auto").decode(enc.encode(news)) == news


def test_many_tokens_are_refused_without_a_long_scan() -> None:
    flat = b'{"type":"trade","x":[' + b"[]," * 30_000 + b'[]],"symbol":"ES"}'
    with pytest.raises(RecordRejected) as info:
        RecordCodec("auto", limits=InputLimits(max_record_bytes=1 << 20, max_depth=4)).decode(flat)
    assert info.value.code == "too_complex"


def test_size_utf8_and_recursion_failures_have_their_own_codes() -> None:
    codec = RecordCodec("auto", limits=InputLimits(max_record_bytes=1000))
    with pytest.raises(RecordRejected) as info:
        codec.decode(b"{" + b" " * 1000 + b"}")
    assert info.value.code == "too_large"
    bad_json = b'{"type":"trade","symbol":"E\xff","ts_event":1,"price":1.0,"size":1.0}'
    good = msgpack_encoder.encode(Trade(symbol="EZ", ts_event=1, price=1.0, size=1.0))
    bad_mp = good.replace(b"\xa2EZ", b"\xa2E\xff")
    for raw in (bad_json, bad_mp):
        with pytest.raises(RecordRejected) as info:
            codec.decode(raw)
        assert info.value.code == "invalid_utf8", raw
    # A depth limit above the interpreter's: the decoder's RecursionError is caught too.
    deep = RecordCodec("auto", limits=InputLimits(max_record_bytes=1 << 20, max_depth=100_000))
    with pytest.raises(RecordRejected) as info:
        deep.decode(_nested_json(5000))
    assert info.value.code == "too_deep"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_refused_with_a_code(raw: bytes) -> None:
    for fmt in ("auto", "json", "msgpack"):
        try:
            msg = RecordCodec(fmt).decode(raw)  # type: ignore[arg-type]
        except RecordRejected as exc:
            assert exc.code in {"decode_error", "invalid_utf8", "too_deep", "too_complex"}
        else:
            try:
                check_message(msg, InputLimits())
            except RecordRejected as exc:
                assert exc.code == "invalid_value"


T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        (Trade(symbol="ES", ts_event=T0, price=math.nan, size=1.0), "price"),
        (Trade(symbol="ES", ts_event=T0, price=math.inf, size=1.0), "price"),
        (Trade(symbol="ES", ts_event=T0, price=-1.0, size=1.0), "price"),
        (Trade(symbol="ES", ts_event=T0, price=0.0, size=1.0), "price"),
        (Trade(symbol="ES", ts_event=T0, price=1.0, size=0.0), "size"),
        (Trade(symbol="ES", ts_event=T0, price=1.0, size=-1e308), "size"),
        (Trade(symbol="ES", ts_event=10**20, price=1.0, size=1.0), "ts_event"),
        (Trade(symbol="ES", ts_event=1, price=1.0, size=1.0), "ts_event"),
        (Trade(symbol="ES", ts_event=T0, ts_recv=-5, price=1.0, size=1.0), "ts_recv"),
        (Trade(symbol="ES", ts_event=T0, seq=2**64, price=1.0, size=1.0), "seq"),
        (Trade(symbol="", ts_event=T0, price=1.0, size=1.0), "symbol"),
        (Trade(symbol="E\nS", ts_event=T0, price=1.0, size=1.0), "symbol"),
        (Trade(symbol="X" * 65, ts_event=T0, price=1.0, size=1.0), "symbol"),
        (Quote(symbol="ES", ts_event=T0, bid=2.0, ask=1.0), "crossed"),
        (Quote(symbol="ES", ts_event=T0, bid=1.0, ask=2.0, bid_size=math.nan), "bid_size"),
        (
            Bar(symbol="ES", ts_event=T0, ts_open=T0, open=1.0, high=0.5, low=0.4, close=1.0, volume=1.0),
            "range",
        ),
        (NewsItem(id="", ts_event=T0, source="s", headline="h"), "id"),
        (NewsItem(id="n", ts_event=T0, source="s", headline="h", symbols=("",)), "symbol"),
    ],
)
def test_values_out_of_range_are_refused(msg: Any, why: str) -> None:
    with pytest.raises(RecordRejected) as info:
        check_message(msg, InputLimits())
    assert info.value.code == "invalid_value" and why in info.value.detail


def test_valid_extremes_and_dotted_symbols_pass() -> None:
    for msg in (
        Trade(symbol="ES.Z", ts_event=T0, price=1e300, size=5e-324),
        Trade(symbol="BRK B", ts_event=T0, ts_recv=T0, price=1e-300, size=1.0),
        Quote(symbol="6E", ts_event=T0, bid=1.0, ask=1.0 + 1e-12),
        NewsItem(id="n", ts_event=T0, source="s", headline="", symbols=("ES.Z",)),
    ):
        check_message(msg, InputLimits())


def test_heartbeats_are_range_checked() -> None:
    ok = Heartbeat(node_id="edge-1", ts_event=T0, lag_p99_us=3.0, partitions=(0, 5))
    check_heartbeat(ok, InputLimits())
    for bad in (
        msgspec.structs.replace(ok, lag_p99_us=math.nan),
        msgspec.structs.replace(ok, latency_p99_us=-1.0),
        msgspec.structs.replace(ok, mode="PANIC"),
        msgspec.structs.replace(ok, node_id=""),
        msgspec.structs.replace(ok, ts_event=10**20),
        msgspec.structs.replace(ok, partitions=(2**40,)),
    ):
        with pytest.raises(RecordRejected):
            check_heartbeat(bad, InputLimits())


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("raw_len", [0, 10, 900_000, 5_000_000])
def test_dead_letters_always_fit_the_producer_limit(fmt: str, raw_len: int) -> None:
    encode = msgspec.json.encode if fmt == "json" else msgspec.msgpack.encode
    raw = bytes(range(256)) * (raw_len // 256) + b"x" * (raw_len % 256)
    limit = 1_048_576
    key = b"k" * 10_000
    headers = [("error", b"e" * 1000)]
    dl, value = encode_dead_letter(
        source="md/0@1",
        reason="decode_error: " + "\u2603" * 5000,
        raw=raw,
        ts_event=T0,
        detail={"topic": "md", "partition": 0, "offset": 1},
        encode=encode,
        max_raw_bytes=limit,  # let the request size alone decide
        max_request_size=limit,
        key=bounded_key(key),
        headers=headers,
    )
    assert len(value) + 256 + 1000 < limit
    assert dl.detail["raw_len"] == raw_len
    assert dl.detail["raw_truncated"] is (len(dl.raw) < raw_len)
    assert raw.startswith(dl.raw) and len(dl.reason) <= 1000
    if raw_len <= 10:
        assert dl.raw == raw, "small records are kept whole"
    else:
        assert len(dl.raw) > 500_000 or raw_len < 500_000, "the budget is used, not wasted"


def test_source_config_refuses_windows_that_would_stop_consumption() -> None:
    for bad in ({"max_in_flight": 0}, {"max_in_flight": -5}, {"max_records": 0}, {"topics": []}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, KafkaSourceConfig)
    with pytest.raises(msgspec.ValidationError, match="dead_letter_max_raw_bytes"):
        msgspec.convert({"dead_letter_max_raw_bytes": 1_048_576}, KafkaSourceConfig)
    with pytest.raises(ConfigError, match="max_in_flight"):
        Engine(loads_config(_SOURCE_TOML.format(window=0), path="<t>")).build()


_SOURCE_TOML = """
[[actors]]
name = "kafka-source"
class = "actors.kafka_io:KafkaSource"
[actors.config]
max_in_flight = {window}
"""


# --- client settings ---------------------------------------------------------------------


def test_client_settings_commit_manually_and_keep_idempotence_a_switch() -> None:
    conn = KafkaConfig(bootstrap_servers="a:1, b:2")
    kw = consumer_kwargs(conn, ConsumerConfig(group_id="g"))
    assert kw["enable_auto_commit"] is False and kw["group_id"] == "g"
    assert kw["bootstrap_servers"] == ["a:1", "b:2"] and "ssl_context" not in kw
    pk = producer_kwargs(conn, ProducerConfig())
    assert pk["acks"] == "all" and pk["enable_idempotence"] is False
    assert (
        producer_kwargs(conn, ProducerConfig(enable_idempotence=True, acks="1"))["enable_idempotence"] is True
    )
    tls = consumer_kwargs(
        KafkaConfig(security_protocol="SSL", tls=TlsConfig(check_hostname=False)), ConsumerConfig()
    )
    assert tls["security_protocol"] == "SSL" and tls["ssl_context"].check_hostname is False
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"acks": "most"}, ProducerConfig)


# --- the baseline forecaster ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_baseline_forecaster_is_an_ewma_random_walk() -> None:
    engine = Engine(loads_config(""))
    engine.add_actor("fc", BaselineForecaster, BaselineForecasterConfig(lam=0.9), subscribe=["md.*", "bar.*"])
    probe = Probe(engine.bus, "forecast.*")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        prices = [100.0, 101.0, 100.5, 102.0, 101.0]
        for i, px in enumerate(prices, 1):
            engine.bus.publish("md.ES", Trade(symbol="ES", ts_event=i, seq=i, price=px, size=1.0))
        engine.bus.publish("md.ES", NewsItem(id="n", ts_event=0, source="s", headline="h"))
        await settle(engine.runtime)
        got: list[Forecast] = probe.drain()
    finally:
        engine.request_shutdown("test")
        await task
    assert [f.forecast_id for f in got] == [f"ES:1e:{i}" for i in range(1, 6)]
    var = 1e-8
    z = [NormalDist().inv_cdf(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]
    for f, prev, px in zip(got[1:], prices[:-1], prices[1:], strict=True):
        var = 0.9 * var + 0.1 * math.log(px / prev) ** 2
        assert f.volatility == pytest.approx(math.sqrt(var))
        assert f.quantiles == pytest.approx(tuple(math.sqrt(var) * zi for zi in z))
        assert f.tier == "baseline" and f.point == 0.0
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"lam": 1.5}, BaselineForecasterConfig)


@pytest.mark.asyncio
async def test_baseline_forecaster_stays_finite_and_unpoisoned_on_hostile_prices() -> None:
    engine = Engine(loads_config(""))
    engine.add_actor("fc", BaselineForecaster, BaselineForecasterConfig(), subscribe=["md.*"])
    probe = Probe(engine.bus, "forecast.*", "deadletter")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    prices = [
        ("A", math.nan),  # a NaN first price must not become A's state
        ("A", 100.0),
        ("A", 101.0),
        ("B", 1e300),
        ("B", 1e-300),  # ln(1e-300 / 1e300) underflows the ratio; log differences do not
        ("B", 5e-324),
        ("B", 1.7976931348623157e308),
        ("C", -1.0),
        ("C", math.inf),
        ("C", 0.0),
        ("C", 50.0),
        ("D.Z", 10.0),
    ]
    try:
        for seq, (sym, px) in enumerate(prices, 1):
            engine.bus.publish(
                "md." + symbol_token(sym), Trade(symbol=sym, ts_event=T0 + seq, seq=seq, price=px, size=1.0)
            )
        engine.bus.publish("md.A", Trade(symbol="A", ts_event=2**70, seq=99, price=1.0, size=1.0))
        await settle(engine.runtime)
        got = probe.drain()
    finally:
        engine.request_shutdown("test")
        await task
    fcs = [m for m in got if isinstance(m, Forecast)]
    dead = [m for m in got if not isinstance(m, Forecast)]
    assert [f.basis_seq for f in fcs] == [2, 3, 4, 5, 6, 7, 11, 12]
    assert len(dead) == 5, "NaN, -1, inf, 0 and the 2**70 timestamp are refused"
    for f in fcs:
        assert all(math.isfinite(x) for x in (f.volatility, *f.quantiles)) and f.volatility > 0
        assert list(f.quantiles) == sorted(f.quantiles)
    by_seq = {f.basis_seq: f for f in fcs}
    assert by_seq[2].volatility == pytest.approx(1e-4), "A starts from its prior, not from NaN"
    assert by_seq[3].volatility > 1e-4, "and moves with A's returns"
    assert by_seq[11].volatility == pytest.approx(1e-4), "C's first usable price is 50"
    assert by_seq[12].symbol == "D.Z"


# --- the shipped node config --------------------------------------------------------------------


def test_the_node_is_the_main_pipeline_under_its_node_profile() -> None:
    """finllm node runs config/default.toml with [profiles.node] first: the forecasting actors keep
    their configuration; sources, sinks and clock change; the flags reach the Kafka actors."""
    path = REPO / "config" / "default.toml"
    raw = tomllib.loads(path.read_text())
    args = argparse.Namespace(
        bootstrap="h:9", group="g2", node_id="edge-9", loop=None, log_format=None, log_level=None
    )
    patched = apply_overrides(raw, args)
    cfg = loads_config(path.read_text(), overrides={"engine": patched["engine"], "actors": patched["actors"]})
    Engine(cfg).build()  # classes resolve, actor configs convert
    by_name = {a.name: a for a in cfg.actors}
    assert by_name["kafka-source"].config["kafka"]["bootstrap_servers"] == "h:9"
    assert by_name["kafka-sink"].config["kafka"]["bootstrap_servers"] == "h:9"
    assert by_name["kafka-source"].config["consumer"]["group_id"] == "g2"
    assert cfg.engine.node_id == "edge-9" and cfg.engine.clock == "live"
    assert by_name["kafka-source"].config["producer"]["enable_idempotence"] is False
    enabled = {a.name for a in cfg.actors if a.enabled}
    assert {"kafka-source", "feed", "narrative", "sanity", "edge", "cloud", "degradation"} <= enabled
    assert {"kafka-sink", "control", "heartbeats"} <= enabled and "host" not in enabled
    run = load_config(path, variables={"out": "/tmp/x"})
    for name in ("narrative", "sanity", "edge", "cloud"):  # the same actors, the same settings...
        live, replay = by_name[name].config, next(a for a in run.actors if a.name == name).config
        differs = {k for k in {*live, *replay} if live.get(k) != replay.get(k)}
        # ...but for where records come from (the news file) and the clock (flush, lockstep)
        assert differs <= {"replay_file", "flush", "lockstep"}, (name, differs)


def test_tansu_binary_is_found_in_the_wheel() -> None:
    p = find_tansu()
    assert p.name == "tansu" and p.stat().st_size > 1_000_000


# --- the ledger with bars -------------------------------------------------------------------------


def _bpos(off: int) -> int:
    return record_position(stream_id(0, 0), off)


def _ledger(history: int = 0, max_s: float = 0.0) -> tuple[OffsetTracker, Any]:
    tr = OffsetTracker(history, max_s)
    p = tr.partition("tp0", stream_id(0, 0))
    return tr, p


def test_a_bar_forecast_settles_the_records_it_folded_and_no_later_one() -> None:
    tr, p = _ledger()
    for off in range(6):  # A A A | A A (open) ; B interleaved at 5
        tr.add_keyed(p, off, "B" if off == 5 else "A")
    tr.bar("A", _bpos(2))  # bar 1 of A: offsets 0..2
    assert tr.ack("A", _bpos(2)) == 3
    assert p.position == 3, "A's open bar and B wait"
    tr.bar("A", _bpos(4))
    assert tr.answered("A", _bpos(4)) == 2  # the edge dropped bar 2 (warm-up): settles without an ack
    assert p.position == 5 and tr.in_flight == 1


def test_history_keeps_the_last_answered_bars_then_releases_them_by_age() -> None:
    tr, p = _ledger(history=2, max_s=10.0)
    for off in range(8):
        tr.add_keyed(p, off, "A")
    for end in (1, 3, 5, 7):  # four bars of two records
        tr.bar("A", _bpos(end))
    tr.now = 100.0
    assert tr.ack("A", _bpos(3)) == 0, "two answered bars: both are history"
    assert tr.ack("A", _bpos(5)) == 2 and p.position == 2, "a third: the first leaves the history"
    tr.now = 105.0
    assert tr.ack("A", _bpos(7)) == 2 and p.position == 4
    assert tr.expire_history(109.0) == 0, "answered 9 s ago and 4 s ago: kept"
    assert tr.expire_history(111.0) == 2 and p.position == 6, "the bar answered at 100 s is released"
    assert tr.expire_history(116.0) == 2 and p.position == 8 and tr.in_flight == 0


def test_release_history_settles_every_answered_bar_but_not_the_open_one() -> None:
    tr, p = _ledger(history=3, max_s=0.0)
    for off in range(10):
        tr.add_keyed(p, off, "A")
    for end in (1, 3, 5, 7):  # four bars of two records, two more records in the open bar
        tr.bar("A", _bpos(end))
    assert tr.ack("A", _bpos(3)) == 0 and tr.answered("A", _bpos(5)) == 0, "history"
    assert p.position < 0, "nothing safe yet"
    assert tr.release_history() == 6 and p.position == 6, "three answered bars released"
    assert tr.release_history() == 0, "bar 4 is unanswered, the last two records open"
    assert tr.ack("A", _bpos(7)) == 0, "history_bars still applies to bars answered later"


def test_an_answer_out_of_order_waits_for_the_bars_before_it() -> None:
    tr, p = _ledger()
    for off in range(4):
        tr.add_keyed(p, off, "A")
    tr.bar("A", _bpos(1))
    tr.bar("A", _bpos(3))
    assert tr.answered("A", _bpos(3)) == 0, "bar 1's forecast is still in flight"
    assert tr.ack("A", _bpos(1)) == 4 and p.position == 4


def test_find_returns_a_waiting_keyed_record_with_its_bytes() -> None:
    tr, p = _ledger()
    tr.add_keyed(p, 0, "A", b"raw-0", b"A")
    tr.add_keyed(p, 1, "A", b"raw-1", b"A")
    rec = tr.find("A", _bpos(1))
    assert rec is not None and rec.value == b"raw-1" and rec.key == b"A"
    tr.done(rec)
    assert tr.find("A", _bpos(1)) is None and tr.find("B", _bpos(0)) is None
    assert p.position == -1, "offset 0 still waits"


class _Sender:
    def __init__(self, task: asyncio.Future[None]) -> None:
        self.sender_task = task


class _Producer:
    """What :func:`adapters.kafka.delivered` reads of an aiokafka producer: its sender's task; and a
    ``send`` that settles at once, or refuses as aiokafka does once the sender has ended."""

    def __init__(self) -> None:
        self._sender = _Sender(asyncio.get_running_loop().create_future())

    async def send(self, topic: str, value: bytes | None, **kw: Any) -> asyncio.Future[str]:
        if self._sender.sender_task.done():
            raise KafkaError("Unexpected error during batch delivery")
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        fut.set_result(f"{topic}:{value!r}")
        return fut


@pytest.mark.asyncio
async def test_a_send_settles_or_fails_in_bounded_time_even_when_the_sender_has_died() -> None:
    loop = asyncio.get_running_loop()
    producer = _Producer()
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.05, fut.set_result, "ok")
    assert await delivered(producer, fut, 5.0) == "ok"
    # Never settled, sender alive: a KafkaError after the timeout (callers retry as for any failure).
    stuck: asyncio.Future[str] = loop.create_future()
    t0 = loop.time()
    with pytest.raises(KafkaTimeoutError):
        await delivered(producer, stuck, 0.2)
    assert loop.time() - t0 < 2.0 and not stuck.cancelled()  # the producer's future is left alone
    # The sender ends (aiokafka leaves its in-flight batches unsettled): ProducerStopped at once,
    # well before the timeout, so that the actor fails and is restarted with a new producer.
    loop.call_later(0.05, producer._sender.sender_task.set_result, None)
    t0 = loop.time()
    with pytest.raises(ProducerStopped):
        await delivered(producer, stuck, 60.0)
    assert loop.time() - t0 < 5.0
    assert delivery_timeout_s(KafkaConfig(request_timeout_ms=5000)) == 15.0


@pytest.mark.asyncio
async def test_a_send_refused_by_a_dead_sender_is_producer_stopped_not_a_retryable_error() -> None:
    producer = _Producer()
    assert await send_settled(producer, "t", b"v", timeout_s=5.0) == "t:b'v'"
    # aiokafka refuses every send after its sender ended with a KafkaError, which the actors'
    # retry loops would retry for ever on the same producer.
    producer._sender.sender_task.set_result(None)
    with pytest.raises(ProducerStopped):
        await send_settled(producer, "t", b"v", timeout_s=5.0)
