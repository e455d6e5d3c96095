"""Hostile input against a real ``finllm node`` on Tansu (issue 12): what an attacker with write
access to the input topics can send, and what the node must do with it.

Hand-made records (invalid UTF-8 in JSON and msgpack, nesting 1,000 and 3,000 deep, NaN / inf /
1e300 / 1e-300 prices, huge ints, ts_event 1e20, 1 MB values, dotted and empty symbols,
out-of-order / missing / reset seq, un-keyed records, tombstones, wrong message types) and
hypothesis-generated garbage go through one node.  Afterwards:

* the node is still up, no actor restarted;
* every good market-data record has exactly one forecast id, ``<symbol>:1e:<position>``
  (duplicates, if any, carry the same id), every number in every forecast is finite;
* every bad record has exactly one dead letter on the dead-letter topic, naming its source
  partition and offset, with a reason of the expected kind and at most 64 KiB of its bytes;
* the group's committed offset equals the end of every input partition.

Records of the hand-made set that are *valid* though extreme (1e300 then 1e-300, 5e-324,
dotted, spaced and non-ASCII symbols, seq 0 / repeated / falling) must be forecast, not refused.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvloop
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from actors.heartbeat_bridge import HeartbeatBridge, HeartbeatBridgeConfig
from actors.kafka_io import KafkaSink, KafkaSinkConfig
from adapters.errors import RecordRejected
from adapters.kafka import (
    InputLimits,
    KafkaConfig,
    RecordCodec,
    check_message,
    record_position,
    stream_id,
    symbol_token,
)
from adapters.tansu import TansuBroker, free_port
from engine.config import loads_config
from engine.kernel import Engine
from engine.messages import (
    Bar,
    DeadLetter,
    Forecast,
    Heartbeat,
    NewsItem,
    Quote,
    Trade,
    json_encoder,
    msgpack_encoder,
)
from engine.testing import Probe
from tests.kafka.kafkatest import (
    ForecastReader,
    NodeProcess,
    Topics,
    committed_and_end,
    create_topics,
    http_get,
    node_toml,
    position,
    read_all,
    redelivery_events,
    send_settled,
    standard_topics,
    stop_bounded,
)

T0 = 1_700_000_000_000_000_000
MD_PARTITIONS = 3
MAX_IN_FLIGHT = 2000
DL_RAW_MAX = 65_536  # the source's dead_letter_max_raw_bytes default
GARBAGE = 120

FORECAST = "forecast"
NEWS = "news"


@dataclass
class Rec:
    """One input record and what must become of it: ``FORECAST``, ``NEWS`` (handed on) or the
    reason code of its dead letter."""

    name: str
    value: bytes | None
    expect: str
    key: bytes | None = b"K"
    news: bool = False
    symbol: str = ""
    fid: str = ""
    """The forecast id it must get (set once its position is known)."""


def _trade(sym: str, seq: int = 0, **kw: Any) -> Trade:
    fields: dict[str, Any] = {"ts_event": T0 + seq % 1000, "price": 100.0 + seq % 7, "size": 1.0, **kw}
    return Trade(symbol=sym, seq=seq, **fields)


def _json(obj: dict[str, Any]) -> bytes:
    return msgspec.json.encode(obj)


def _trade_dict(sym: str = "JS", **kw: Any) -> dict[str, Any]:
    return {"type": "trade", "symbol": sym, "ts_event": T0, "price": 10.0, "size": 1.0, **kw}


def _mp_nested(depth: int) -> bytes:
    head = msgpack_encoder.encode(_trade_dict("MPD"))
    return bytes([head[0] + 1]) + head[1:] + msgpack_encoder.encode("x") + b"\x91" * (depth - 1) + b"\x90"


def _json_nested(depth: int) -> bytes:
    return _json(_trade_dict("JSD"))[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"


def _good(name: str, msg: Any, *, fmt: str = "msgpack", key: bytes | None = b"K") -> Rec:
    enc = msgpack_encoder if fmt == "msgpack" else json_encoder
    return Rec(name, enc.encode(msg), FORECAST, key=key, symbol=msg.symbol)


def _bad(name: str, value: bytes | None, code: str, *, news: bool = False) -> Rec:
    return Rec(name, value, code, news=news)


def hand_made() -> list[Rec]:
    """The hand-made hostile set, good and bad records interleaved."""
    recs: list[Rec] = []
    # Valid extremes: the forecaster must stay finite on them (ln(1e-300/1e300) underflows).
    for i, px in enumerate([1e300, 1e-300, 5e-324, 1.7976931348623157e308, 100.0], 1):
        recs.append(_good(f"extreme price {px!r}", _trade("EXT", i, price=px)))
    recs.append(_good("tiny size", _trade("EXT", 6, size=5e-324)))
    # Symbols: dotted, spaced, non-ASCII, a percent sign, the longest allowed.
    for sym in ["ES.Z", "ES.Z", "A.B.C", "BRK B", "ÄÖÜ", "ES%2EZ", "S" * 64]:
        recs.append(_good(f"symbol {sym!r}", _trade(sym, 1)))
    # Feed sequence numbers that do not rise, are missing, or reset: ids come from positions.
    for i, seq in enumerate([5, 3, 4, 0, 0, 1, 1, 2, 3, 1, 2, 3]):
        recs.append(_good(f"seq {seq} #{i}", _trade("SEQ", seq)))
    # Un-keyed records of one symbol land on several partitions.
    for i in range(12):
        recs.append(_good(f"unkeyed #{i}", _trade("UK", i + 1), key=None))
    recs.append(_good("json with leading blanks", _trade("JS", 1), fmt="json"))
    recs[-1].value = b" \n" + (recs[-1].value or b"")
    recs.append(_good("quote", Quote(symbol="QQ", ts_event=T0, bid=1e308, ask=1.7e308)))
    recs.append(
        _good(
            "bar",
            Bar(
                symbol="BB", ts_event=T0, ts_open=T0 - 10, open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0
            ),
        )
    )

    # Undecodable.
    recs.append(
        _bad(
            "invalid UTF-8 in a JSON string",
            _json(_trade_dict("E")).replace(b'"E"', b'"E\xff"'),
            "invalid_utf8",
        )
    )
    mp = msgpack_encoder.encode(_trade("EZ", 1))
    recs.append(
        _bad("invalid UTF-8 in a msgpack string", mp.replace(b"\xa2EZ", b"\xa2E\xff"), "invalid_utf8")
    )
    recs.append(_bad("UTF-8-encoded surrogate", mp.replace(b"\xa2EZ", b"\xa3\xed\xa0\x80"), "invalid_utf8"))
    for depth in (1000, 3000):
        recs.append(_bad(f"JSON nested {depth}", _json_nested(depth), "too_deep"))
        recs.append(_bad(f"msgpack nested {depth}", _mp_nested(depth), "too_deep"))
        recs.append(_bad(f"JSON bare array {depth}", b"[" * depth + b"]" * depth, "too_deep"))
    recs.append(
        _bad("1 MB JSON trade", _json(_trade_dict("BIG"))[:-1] + b"," + b" " * 1_000_000 + b"}", "too_large")
    )
    recs.append(_bad("1 MB of zeros", b"\x00" * 1_000_000, "too_large"))
    recs.append(_bad("900 KB garbage", bytes(range(256)) * 3600, "too_large"))
    recs.append(_bad("JSON NaN", _json(_trade_dict()).replace(b"10.0", b"NaN"), "decode_error"))
    recs.append(_bad("JSON 1e999", _json(_trade_dict()).replace(b"10.0", b"1e999"), "decode_error"))
    recs.append(_bad("ts_event as float 1e20", _json(_trade_dict(ts_event=1e20)), "decode_error"))
    recs.append(_bad("tombstone", None, "tombstone"))
    recs.append(_bad("empty value", b"", "decode_error"))
    # Decodable but out of range.
    for name, kw in [
        ("NaN price", {"price": math.nan}),
        ("inf price", {"price": math.inf}),
        ("-inf price", {"price": -math.inf}),
        ("zero price", {"price": 0.0}),
        ("negative price", {"price": -5.0}),
        ("negative size", {"size": -1.0}),
        ("size -1e308", {"size": -1e308}),
        ("NaN size", {"size": math.nan}),
        ("zero size", {"size": 0.0}),
        ("ts_event 0", {"ts_event": 0}),
        ("ts_event 2**64-1", {"ts_event": 2**64 - 1}),
        ("ts_event 2100+", {"ts_event": 4_200_000_000_000_000_000}),
        ("seq 2**64-1", {"seq": 2**64 - 1}),
        ("ts_recv negative", {"ts_recv": -1}),
    ]:
        recs.append(_bad(name, msgpack_encoder.encode(_trade("BAD", **kw)), "invalid_value"))
    recs.append(_bad("ts_event 1e20 (JSON int)", _json(_trade_dict(ts_event=10**20)), "invalid_value"))
    recs.append(_bad("seq 10**30 (JSON int)", _json(_trade_dict(seq=10**30)), "invalid_value"))
    for sym in ["", "E\x00S", "E\nS", "S" * 65, "\u2028"]:
        recs.append(_bad(f"symbol {sym!r}", msgpack_encoder.encode(_trade(sym, 1)), "invalid_value"))
    recs.append(
        _bad(
            "crossed quote",
            msgpack_encoder.encode(Quote(symbol="QQ", ts_event=T0, bid=2.0, ask=1.0)),
            "invalid_value",
        )
    )
    recs.append(
        _bad(
            "locked quote",
            msgpack_encoder.encode(Quote(symbol="QQ", ts_event=T0, bid=1.0, ask=1.0)),
            "invalid_value",
        )
    )
    bar = Bar(symbol="BB", ts_event=T0, ts_open=T0, open=1.0, high=0.5, low=0.4, close=1.0, volume=1.0)
    recs.append(_bad("bar high below open", msgpack_encoder.encode(bar), "invalid_value"))
    # Valid messages of types the market-data topic does not take.
    fc = Forecast(forecast_id="x", symbol="ES", horizon="1e", basis_seq=1, ts_event=T0)
    recs.append(_bad("a forecast", msgpack_encoder.encode(fc), "unsupported_type"))
    recs.append(
        _bad("a heartbeat", msgpack_encoder.encode(Heartbeat(node_id="n", ts_event=T0)), "unsupported_type")
    )
    # News: one good (handed on, no forecast, no dead letter), some bad.
    news = NewsItem(id="n1", ts_event=T0, source="wire", headline="[UPDATE] {x}", symbols=("ES.Z",))
    recs.append(Rec("good news", json_encoder.encode(news), NEWS, news=True))
    bad_news = msgspec.structs.replace(news, symbols=("",))
    recs.append(_bad("news with an empty symbol", json_encoder.encode(bad_news), "invalid_value", news=True))
    recs.append(
        _bad(
            "news nested 1000",
            b'{"type":"news","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
            "too_deep",
            news=True,
        )
    )
    recs.append(
        _bad(
            "news invalid UTF-8",
            json_encoder.encode(news).replace(b"wire", b"wi\xffe"),
            "invalid_utf8",
            news=True,
        )
    )
    return recs


def _classify(i: int, value: bytes) -> Rec:
    """What a garbage record must become: the node's own rules, applied offline."""
    try:
        msg = RecordCodec("auto").decode(value)
        check_message(msg, InputLimits())
    except RecordRejected as exc:
        return Rec(f"garbage #{i}", value, exc.code)
    if isinstance(msg, (Trade, Quote, Bar)):
        return Rec(f"garbage #{i}", value, FORECAST, symbol=msg.symbol)
    return Rec(f"garbage #{i}", value, NEWS if isinstance(msg, NewsItem) else "unsupported_type")


_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e300, 1e-300, 5e-324, 1.7976931348623157e308, math.nan, math.inf, -math.inf]


def _garbage(rng: random.Random) -> bytes:
    """One garbage record: random bytes, a valid trade with bytes flipped, cut short or spliced,
    or a well-formed trade with random (often hostile) values."""
    kind = rng.choice(["random", "flip", "cut", "splice", "values"])
    if kind == "random":
        return rng.randbytes(rng.randint(1, 300))
    if kind == "values":
        price = rng.choice([*_FLOATS, rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-300, 300)])
        size = rng.choice([*_FLOATS, rng.uniform(0, 100)])
        ts = rng.choice([T0 + rng.randint(0, 10**12), 0, rng.randint(0, 2**64 - 1)])
        trade = _trade(
            rng.choice(["GB", "G.B", "", "G\tB"]),
            rng.randint(0, 2**63 - 1),
            price=price,
            size=size,
            ts_event=ts,
        )
        return msgpack_encoder.encode(trade)
    base = msgpack_encoder.encode(_trade("GB", rng.randint(1, 10**6)))
    if rng.random() < 0.5:
        base = json_encoder.encode(_trade("GB", 7))
    if kind == "cut":
        return base[: rng.randint(1, len(base) - 1)]
    if kind == "splice":
        i = rng.randint(0, len(base))
        return base[:i] + rng.randbytes(rng.randint(1, 40)) + base[i:]
    out = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


@settings(
    max_examples=1,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # one node run over one drawn garbage set; no shrinking through a broker
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(rng=st.randoms(use_true_random=True))  # a real PRNG: its first draw is not all zeros
def test_hostile_records_through_a_real_node(tansu: TansuBroker, tmp_path: Path, rng: random.Random) -> None:
    recs = hand_made()
    recs += [_classify(i, _garbage(rng)) for i in range(GARBAGE)]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(_run_node(tansu, tmp_path, recs))
    print("hostile:", json.dumps(counts))


async def _produce(bootstrap: str, t: Topics, recs: list[Rec]) -> dict[tuple[int, int, bool], Rec]:
    """Write every record; returns them by (partition, offset, on the news topic)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 << 20)
    placed: dict[tuple[int, int, bool], Rec] = {}
    try:
        await producer.start()
        for r in recs:
            meta = await send_settled(producer, t.news if r.news else t.md, r.value, key=r.key)
            placed[meta.partition, meta.offset, r.news] = r
            if r.expect == FORECAST:
                r.fid = f"{r.symbol}:1e:{position(meta)}"
    finally:
        await stop_bounded(producer)
    return placed


async def _dead_letters(bootstrap: str, topic: str, n: int) -> list[tuple[DeadLetter, dict[str, bytes]]]:
    out: list[tuple[DeadLetter, dict[str, bytes]]] = []
    async with asyncio.timeout(30):
        while len(out) < n:
            recs = await read_all(bootstrap, topic)
            out = [(msgspec.json.decode(r.value, type=DeadLetter), dict(r.headers)) for r in recs]
            if len(out) < n:
                await asyncio.sleep(0.5)
    return out


async def _run_node(tansu: TansuBroker, tmp_path: Path, recs: list[Rec]) -> dict[str, int]:
    bootstrap = tansu.bootstrap
    t = Topics.fresh()
    await standard_topics(bootstrap, t, md_partitions=MD_PARTITIONS)
    placed = await _produce(bootstrap, t, recs)
    good_ids = {r.fid for r in recs if r.expect == FORECAST}
    bad = {k: r for k, r in placed.items() if r.expect not in (FORECAST, NEWS)}
    assert len(good_ids) == sum(r.expect == FORECAST for r in recs), "positions give distinct ids"

    http = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "hostile.toml"
    cfg.write_text(node_toml(bootstrap, t, node_id="hostile", max_in_flight=MAX_IN_FLIGHT, http=http))
    node = NodeProcess(cfg, tmp_path / "hostile.log", "hostile")
    try:
        async with ForecastReader(bootstrap, t.forecasts) as reader:
            async with asyncio.timeout(60):
                while not good_ids <= set(reader.seen.counts):
                    assert node.proc.poll() is None, node.log_text()[-3000:]
                    await reader.poll()
            seen = await reader.settle(1.0)
        dls = await _dead_letters(bootstrap, t.dead, len(bad))
        async with asyncio.timeout(20):  # commits catch up with the end of every input partition
            while True:
                md = await committed_and_end(bootstrap, t.group, t.md, MD_PARTITIONS)
                news = await committed_and_end(bootstrap, t.group, t.news, 1)
                if md[0] == md[1] and news[0] == news[1]:
                    break
                await asyncio.sleep(0.3)
        code, body = await http_get(http, "/stats")
        assert code == 200, body[:300]
        stats = json.loads(body)
        assert node.proc.poll() is None, "the node is still up"
    finally:
        node.terminate()
        exit_code = await node.wait()
    assert exit_code == 0, node.log_text()[-3000:]
    assert {a: s["incarnations"] for a, s in stats["actors"].items()} == {
        "kafka-source": 1,
        "forecaster": 1,
        "kafka-sink": 1,
    }, "no actor crashed"

    # Every good record forecast, under its own id, and nothing else; numbers finite.
    assert set(seen.counts) == good_ids, set(seen.counts) ^ good_ids
    assert seen.nonfinite == 0 and seen.header_mismatch == 0
    # Every bad record dead-lettered once, with a reason of the expected kind and bounded bytes.
    by_source: dict[tuple[int, int, bool], tuple[DeadLetter, dict[str, bytes]]] = {}
    for dl, headers in dls:
        key = (int(dl.detail["partition"]), int(dl.detail["offset"]), dl.detail["topic"] == t.news)
        assert key not in by_source, f"two dead letters for {key}"
        by_source[key] = (dl, headers)
    assert set(by_source) == set(bad), set(by_source) ^ set(bad)
    for key, r in bad.items():
        dl, headers = by_source[key]
        assert dl.reason.startswith(r.expect), (r.name, dl.reason)
        assert headers["error"].decode(errors="replace").startswith(r.expect)
        raw = r.value or b""
        assert dl.detail["raw_len"] == len(raw) and raw.startswith(dl.raw), r.name
        assert len(dl.raw) <= DL_RAW_MAX and dl.detail["raw_truncated"] is (len(raw) > DL_RAW_MAX), r.name
    ev = redelivery_events([node.log_text()])
    assert ev.revokes + ev.restarts == 0, "one node, no rebalance, no restart: no re-delivery"
    assert seen.duplicates == 0
    reasons = Counter(r.expect for r in recs)
    return {
        "records_in": len(recs),
        "good_market_records": len(good_ids),
        "news_handed_on": reasons[NEWS],
        "forecasts_written": seen.records,
        "forecast_ids_unique": len(seen.counts),
        "duplicates": seen.duplicates,
        "dead_lettered": len(dls),
        **{f"dead_{code}": n for code, n in sorted(reasons.items()) if code not in (FORECAST, NEWS)},
        "garbage_records": sum(r.name.startswith("garbage") for r in recs),
        "garbage_forecast": sum(r.name.startswith("garbage") and r.expect == FORECAST for r in recs),
    }


# --- commit bookkeeping: a jammed partition is reported, a full window is told once ---------


def _metric(text: bytes, name: str) -> float:
    """The value of a Prometheus sample ``finllm_<name>{actor="kafka-source"...}`` (0 if absent)."""
    for line in text.decode().splitlines():
        if line.startswith(f"finllm_{name}{{") and 'actor="kafka-source"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _produce_es(bootstrap: str, topic: str, n: int, start: int = 1) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    try:
        await producer.start()
        futs = [
            await producer.send(topic, msgpack_encoder.encode(_trade("ES", start + i)), key=b"ES")
            for i in range(n)
        ]
        await asyncio.gather(*futs)
    finally:
        await stop_bounded(producer)


async def _poll(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Poll ``check`` until it holds: the state lives in another process, nothing to await."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - see above
            await asyncio.sleep(0.2)


async def _stalled(http: str, want: Callable[[float], bool]) -> bool:
    return want(_metric((await http_get(http, "/metrics"))[1], "kafka_partitions_stalled"))


async def _all_committed(bootstrap: str, t: Topics) -> bool:
    committed, ends = await committed_and_end(bootstrap, t.group, t.md, 1)
    return committed == ends


def _shedding_forecaster(toml: str) -> str:
    """The forecaster's mailbox holds one message and sheds the newest: records go unanswered."""
    old = '[[actors]]\nname = "forecaster"\nclass = "actors.baseline_forecaster:BaselineForecaster"\n'
    old += 'supervisor = "kafka"\nsubscribe = ["md.*", "bar.*"]\n'
    old += '[actors.mailbox]\ncapacity = 65536\npolicy = "block"'
    assert old in toml
    return toml.replace(
        old, old.replace('capacity = 65536\npolicy = "block"', 'capacity = 1\npolicy = "drop_newest"')
    )


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_partition_that_cannot_commit_raises_the_stall_alarm(
    tansu: TansuBroker, tmp_path: Path
) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t, md_partitions=1)
    http = f"127.0.0.1:{free_port()}"
    toml = node_toml(tansu.bootstrap, t, node_id="stall", http=http, source_extra="stall_after_ms = 500")
    cfg = tmp_path / "stall.toml"
    cfg.write_text(_shedding_forecaster(toml))
    node = NodeProcess(cfg, tmp_path / "stall.log", "stall")
    try:
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            async with asyncio.timeout(30):  # the node is up and forecasting
                while not reader.seen.records:
                    await _produce_es(tansu.bootstrap, t.md, 1, start=1000 + reader.seen.records)
                    await reader.poll(500)
            # One fetch of 300 records of one symbol: the forecaster takes one, the rest are shed
            # and wait for a later forecast of ES on this partition to cover them.
            await _produce_es(tansu.bootstrap, t.md, 300)
            await _poll(lambda: _stalled(http, lambda n: n >= 1), 20)
            body = (await http_get(http, "/metrics"))[1]
            assert _metric(body, "kafka_partition_stalls_total") == 1
            assert "partition_stalled" in node.log_text()
            # One more record of ES is answered, covers the shed ones, and the partition moves on.
            await _produce_es(tansu.bootstrap, t.md, 1, start=5000)
            await _poll(lambda: _stalled(http, lambda n: n == 0), 20)
            await _poll(lambda: _all_committed(tansu.bootstrap, t), 20)
    finally:
        node.terminate()
        assert await node.wait() == 0, node.log_text()[-3000:]
    assert "partition_recovered" in node.log_text()


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_full_window_is_logged_once_and_counted_every_time(
    tansu: TansuBroker, tmp_path: Path
) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t, md_partitions=1)
    await _produce_es(tansu.bootstrap, t.md, 400)
    http = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "window.toml"
    cfg.write_text(node_toml(tansu.bootstrap, t, node_id="window", max_in_flight=20, http=http))
    node = NodeProcess(cfg, tmp_path / "window.log", "window")
    try:
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            async with asyncio.timeout(60):
                while reader.seen.records < 400:
                    await reader.poll()
        body = (await http_get(http, "/metrics"))[1]
    finally:
        node.terminate()
        assert await node.wait() == 0, node.log_text()[-3000:]
    assert _metric(body, "kafka_window_full_total") > 1, "400 records through a window of 20 fill it often"
    assert node.log_text().count('"in_flight_window_full"') == 1, "but it is logged once"
    assert reader.seen.duplicates == 0


# --- the heartbeat bridge's decoder, and the sink's last line -------------------------------


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_hostile_heartbeats_are_dead_lettered_and_a_good_peer_still_heard(tansu: TansuBroker) -> None:
    topic = f"hb-{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, {topic: 1})
    good = Heartbeat(node_id="node-c", ts_event=T0, lag_p99_us=10.0)
    hb = msgpack_encoder.encode(Heartbeat(node_id="node-x", ts_event=T0))
    hostile = {
        "invalid_utf8": hb.replace(b"\xa6node-x", b"\xa6node\xff\xfe"),
        "too_deep": bytes([hb[0] + 1]) + hb[1:] + msgpack_encoder.encode("x") + b"\x91" * 2999 + b"\x90",
        "too_large": b"\x00" * 100_000,
        "tombstone": None,
        "invalid_value": msgpack_encoder.encode(
            msgspec.structs.replace(good, node_id="node-n", lag_p99_us=math.nan)
        ),
        "decode_error": b"\xc1",
    }
    # An unknown mode: the message schema itself refuses it (engine.messages.Mode).
    hostile["decode_error "] = msgpack_encoder.encode(
        msgspec.structs.replace(good, node_id="n2", mode="PANIC")
    )
    hostile["invalid_value "] = msgpack_encoder.encode(msgspec.structs.replace(good, latency_p99_us=-1.0))
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    try:
        await producer.start()
        for value in (*hostile.values(), msgpack_encoder.encode(good)):
            await send_settled(producer, topic, value, key=b"k")
    finally:
        await stop_bounded(producer)
    cfg = HeartbeatBridgeConfig(
        kafka=KafkaConfig(bootstrap_servers=tansu.bootstrap, request_timeout_ms=5000),
        topic=topic,
        create_topic=False,
        start_from="earliest",
        max_age_ms=60_000,
    )
    engine = Engine(loads_config('[engine]\nnode_id = "node-a"\n', path="<bridge>"))
    engine.add_actor("heartbeats", HeartbeatBridge, cfg, subscribe=["control.heartbeat"])
    probe = Probe(engine.bus, "control.heartbeat", "deadletter")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    got: list[Any] = []
    try:
        async with asyncio.timeout(15):
            while not any(isinstance(m, Heartbeat) for m in got) or len(got) < len(hostile) + 1:
                got.extend(probe.drain())
                await asyncio.sleep(0.05)
        incarnations = engine.cells["heartbeats"].incarnations
    finally:
        engine.request_shutdown("test done")
        summary = await asyncio.wait_for(task, 20)
    assert summary.exit_code == 0, summary.reason
    assert incarnations == 1, "the bridge never crashed"
    assert [m for m in got if isinstance(m, Heartbeat)] == [good], "only the valid peer heartbeat"
    dead = sorted((m for m in got if isinstance(m, DeadLetter)), key=lambda d: d.detail["offset"])
    assert [d.reason.split(":")[0] for d in dead] == [code.strip() for code in hostile], [
        d.reason for d in dead
    ]
    assert all(len(d.raw) <= 4096 for d in dead) and dead[2].detail["raw_len"] == 100_000


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_an_unwritable_forecast_is_dead_lettered_and_settled_in_order(tansu: TansuBroker) -> None:
    # The last line behind input validation: a forecast the sink cannot encode (ts_event >= 2**64
    # cannot be msgpack) must not crash the sink (a crash loop on re-read) nor jam its symbol's acks.
    topic = f"fc-{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, {topic: 2})
    engine = Engine(loads_config("", path="<sink>"))
    engine.add_actor(
        "kafka-sink",
        KafkaSink,
        KafkaSinkConfig(kafka=KafkaConfig(bootstrap_servers=tansu.bootstrap), topic=topic),
        subscribe=["forecast.*"],
    )
    acks = Probe(engine.bus, "kafka.acked.*")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    dotted = "ES.Z"

    def fc(off: int, ts: int = T0) -> Forecast:
        pos = record_position(stream_id(0, 0), off)
        return Forecast(
            forecast_id=f"{dotted}:1e:{pos}", symbol=dotted, horizon="1e", basis_seq=pos, ts_event=ts
        )

    try:
        await engine.runtime.wait_started()
        engine.bus.publish_many("forecast." + symbol_token(dotted), [fc(0), fc(1, ts=2**70), fc(2)])
        seen: list[Forecast] = []
        async with asyncio.timeout(15):
            while not seen or seen[-1].basis_seq != fc(2).basis_seq:
                seen.extend(acks.drain())
                await asyncio.sleep(0.02)
        counters = engine.metrics.snapshot()["counters"]
        incarnations = engine.cells["kafka-sink"].incarnations
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(task, 20)
    assert incarnations == 1
    assert counters["kafka_sink_unwritable_total{actor=kafka-sink}"] == 1
    assert counters["kafka_forecasts_acked_total{actor=kafka-sink}"] == 3, "all three settled, in order"
    written = await read_all(tansu.bootstrap, topic)
    assert sorted(msgspec.msgpack.decode(r.value, type=Forecast).basis_seq for r in written) == [
        fc(0).basis_seq,
        fc(2).basis_seq,
    ]
