"""Unit tests of the Kafka layer that need no broker: ledger, codec, client settings, forecaster, config."""

from __future__ import annotations

import argparse
import asyncio
import math
import tomllib
from pathlib import Path
from statistics import NormalDist

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.baseline_forecaster import BaselineForecaster, BaselineForecasterConfig
from adapters.kafka import (
    ConsumerConfig,
    KafkaConfig,
    OffsetTracker,
    ProducerConfig,
    RecordCodec,
    TlsConfig,
    consumer_kwargs,
    producer_kwargs,
)
from adapters.tansu import find_tansu
from engine.config import load_config, loads_config
from engine.kernel import Engine
from engine.messages import Forecast, NewsItem, Quote, Trade, json_encoder, msgpack_encoder
from engine.testing import Probe, settle
from tools.commands.node import apply_overrides

REPO = Path(__file__).resolve().parents[2]


# --- the at-least-once ledger ------------------------------------------------------


def test_commit_position_stops_at_the_first_record_without_a_safe_forecast() -> None:
    tr = OffsetTracker()
    p = tr.partition("t/0")
    for off, (key, seq) in enumerate([("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3)]):
        tr.add_keyed(p, off, key, seq)
    assert tr.in_flight == 5 and tr.to_commit() == {}
    assert tr.ack("A", 3) == 3  # covers A1..A3
    assert tr.to_commit() == {"t/0": 1}, "B1 at offset 1 is not safe yet"
    assert tr.ack("B", 1) == 1
    assert tr.to_commit() == {"t/0": 3}
    tr.committed({"t/0": 3})
    assert tr.to_commit() == {}
    assert tr.ack("B", 2) == 1 and tr.to_commit() == {"t/0": 5} and tr.in_flight == 0
    assert tr.ack("B", 99) == 0, "acks for nothing pending are harmless"


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


def test_revoke_hands_back_positions_and_forgets_pending_records() -> None:
    tr = OffsetTracker()
    p0, p1 = tr.partition("t/0"), tr.partition("t/1")
    tr.add_keyed(p0, 0, "A", 1)
    tr.add_keyed(p0, 1, "A", 2)
    tr.add_keyed(p1, 0, "B", 1)
    tr.ack("A", 1)
    assert tr.revoke(["t/0"]) == {"t/0": 1}
    assert tr.in_flight == 1, "only B1 on the kept partition is still in flight"
    assert tr.ack("A", 2) == 0, "acks of revoked partitions are ignored"
    assert tr.to_commit() == {}
    assert tr.assigned() == ["t/1"]


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[tuple[int, str, int]], list[tuple[str, int]]]:
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.sampled_from("ABC"), min_size=n, max_size=n))
    parts = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    seqs: dict[str, int] = {}
    records = []
    for key, part in zip(keys, parts, strict=True):
        seqs[key] = seqs.get(key, 0) + draw(st.integers(1, 3))
        records.append((part, key, seqs[key]))
    acks = draw(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 40)), max_size=30))
    return records, acks


@settings(max_examples=100, deadline=None)
@given(_histories())
def test_commit_never_passes_a_record_whose_result_is_not_safe(
    history: tuple[list[tuple[int, str, int]], list[tuple[str, int]]],
) -> None:
    records, acks = history
    tr = OffsetTracker()
    parts = {0: tr.partition(0), 1: tr.partition(1)}
    offsets = {0: 0, 1: 0}
    placed = []
    for part, key, seq in records:
        tr.add_keyed(parts[part], offsets[part], key, seq)
        placed.append((part, offsets[part], key, seq))
        offsets[part] += 1
    acked: dict[str, int] = {}
    for key, seq in acks:
        tr.ack(key, seq)
        acked[key] = max(acked.get(key, 0), seq)
    safe = {(part, off) for part, off, key, seq in placed if seq <= acked.get(key, 0)}
    for part in (0, 1):
        pos = tr.to_commit().get(part, 0)
        assert all((part, off) in safe for off in range(pos)), "committed past an unsafe record"
        assert pos == offsets[part] or (part, pos) not in safe, "commit position is not maximal"
    assert tr.in_flight == len(placed) - len(safe)


# --- codec ----------------------------------------------------------------------------


def test_codec_auto_tells_json_from_msgpack_and_reports_failures_in_place() -> None:
    t = Trade(symbol="ES", ts_event=1, seq=3, price=1650.25, size=2.0, side=1)
    q = Quote(symbol="ES", ts_event=2, bid=1.0, ask=1.25)
    codec = RecordCodec("auto")
    out = codec.decode_batch(
        [msgpack_encoder.encode(t), json_encoder.encode(q), b"\xc1", None, b'{"type":"x"}']
    )
    assert out[0] == t and out[1] == q
    assert all(isinstance(e, msgspec.DecodeError) for e in out[2:])
    assert "tombstone" in str(out[3])
    with pytest.raises(msgspec.DecodeError):
        RecordCodec("msgpack").decode(json_encoder.encode(q))
    assert RecordCodec("json").decode(json_encoder.encode(q)) == q


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
        await settle(engine.bus)
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


# --- the shipped node config --------------------------------------------------------------------


def test_shipped_edge_node_config_builds_and_overrides_apply() -> None:
    path = REPO / "config" / "edge-node.toml"
    Engine(load_config(path)).build()  # classes resolve, actor configs convert
    raw = tomllib.loads(path.read_text())
    args = argparse.Namespace(
        bootstrap="h:9", group="g2", node_id="edge-9", loop=None, log_format=None, log_level=None
    )
    patched = apply_overrides(raw, args)
    cfg = loads_config(path.read_text(), overrides={"engine": patched["engine"], "actors": patched["actors"]})
    by_name = {a.name: a.config for a in cfg.actors}
    assert by_name["kafka-source"]["kafka"]["bootstrap_servers"] == "h:9"
    assert by_name["kafka-sink"]["kafka"]["bootstrap_servers"] == "h:9"
    assert by_name["kafka-source"]["consumer"]["group_id"] == "g2"
    assert cfg.engine.node_id == "edge-9"
    assert by_name["kafka-source"]["producer"]["enable_idempotence"] is False


def test_tansu_binary_is_found_in_the_wheel() -> None:
    p = find_tansu()
    assert p.name == "tansu" and p.stat().st_size > 1_000_000
