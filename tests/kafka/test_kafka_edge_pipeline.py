"""The edge node's full pipeline on a real Tansu broker: Kafka md -> KafkaSource -> MarketDataFeed (bars)
-> EdgeReasoner (the shipped es-1m model) -> KafkaSink, config/default.toml under its node profile.

At-least-once with bars: a bar's forecast names the position of the bar's last trade, and its
acknowledgement settles every record of the bar (and the history the ledger keeps).  Records the
feed rejects are dead-lettered with their bytes and settled: they never jam a partition.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections import Counter
from collections.abc import Callable

import pytest

from adapters.kafka import split_position
from adapters.tansu import TansuBroker, free_port
from engine.messages import Forecast, Quote, Trade, json_decoder, json_encoder, msgpack_decoder
from tests.kafka.kafkatest import (
    BarTape,
    ForecastReader,
    Topics,
    committed_and_end,
    config_running,
    create_topics,
    edge_node_config,
    expected_forecasts,
    position,
    produce_messages,
    read_all,
    standard_topics,
)
from tools.faultproxy import FaultProxy

SYMBOLS = ["ES", "NQ", "CL.Z"]


def _settled_bound(sent: list[tuple[Trade, int]], history: int) -> dict[int, int]:
    """Per partition, the offset the group's commit must reach once every owed forecast is acked:
    per symbol the records up to the end of its bar ``history`` bars before its last forecast bar
    are settled; the commit is the first record not settled (history and the open bar stay)."""
    ends: dict[str, dict[int, int]] = {}
    for tr, pos in sent:
        ends.setdefault(tr.symbol, {})
        b = tr.ts_event // 60_000_000_000
        ends[tr.symbol][b] = max(ends[tr.symbol].get(b, 0), pos)
    bound: dict[str, int] = {}
    for sym, by_bar in ends.items():
        closed = [by_bar[b] for b in sorted(by_bar)][:-1]
        bound[sym] = split_position(closed[-1 - history])[1] if len(closed) > history else -1
    first_unsettled: dict[int, int] = {}
    for tr, pos in sent:
        part = split_position(pos)[0] & 0xFFF
        off = split_position(pos)[1]
        if off > bound[tr.symbol]:
            first_unsettled[part] = min(first_unsettled.get(part, off), off)
    return first_unsettled


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_every_bar_gets_an_edge_forecast_and_commits_follow_bars(tansu: TansuBroker) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t, md_partitions=2)
    tape = BarTape(SYMBOLS, bars=30, per_bar=6)
    sent = await produce_messages(tansu.bootstrap, t.md, tape.trades)
    expected = expected_forecasts(sent)
    assert len(expected) == len(SYMBOLS) * (30 - 21)
    cfg = edge_node_config(tansu.bootstrap, t)
    async with (
        config_running(cfg) as (engine, _task),
        ForecastReader(tansu.bootstrap, t.forecasts) as reader,
    ):
        seen = await reader.until(expected, timeout_s=60)
        assert expected <= seen.covered, f"missing {sorted(expected - seen.covered)[:5]}"
        await reader.settle(1.0)
        assert seen.covered == expected, "one forecast per closed bar after the warm-up, nothing else"
        assert seen.duplicates == 0 and seen.header_mismatch == 0 and seen.nonfinite == 0
        # the commit follows the bars: everything but the history and the open bars is committed
        want = _settled_bound(sent, history=21)
        async with asyncio.timeout(20):
            while True:
                committed, _ = await committed_and_end(tansu.bootstrap, t.group, t.md, 2)
                if all(committed[p] >= off for p, off in want.items()):
                    break
                await asyncio.sleep(0.3)
        assert committed == {p: want.get(p, committed[p]) for p in committed}, (committed, want)
    fcs = [f for f in await _forecasts(tansu.bootstrap, t.forecasts)]
    assert all(f.model_id.startswith("es-1m") for f in fcs) and {f.tier for f in fcs} == {"edge"}
    assert all(f.forecast_id == f"{f.symbol}-{f.basis_seq}" for f in fcs)
    counters = engine.metrics.snapshot()["counters"]
    assert counters["kafka_records_in_total{actor=kafka-source}"] == len(sent)
    assert counters["md_events_in_total"] == len(sent)


async def _forecasts(bootstrap: str, topic: str) -> list[Forecast]:
    out = []
    for r in await read_all(bootstrap, topic):
        fc = msgpack_decoder.decode(r.value)
        assert isinstance(fc, Forecast)
        out.append(fc)
    return out


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_bad_records_go_to_the_dead_letter_topic_and_never_jam(tansu: TansuBroker) -> None:
    """Undecodable, out-of-range and crossed records (the source) and out-of-order ones (the feed)
    reach the dead-letter topic with reasons and their bytes; every one is settled, so
    the commit passes them (one partition: they come first)."""
    t = Topics.fresh()
    await create_topics(tansu.bootstrap, {t.md: 1, t.news: 1, t.forecasts: 2, t.dead: 1})
    tape = BarTape(["ES"], bars=24, per_bar=4)
    t0 = tape.trades[0].ts_event
    good_zz = Trade(symbol="ZZ", ts_event=t0 + 5_000, price=50.0, size=1.0)
    bad: list[tuple[bytes, str]] = [
        (b"\x00\x01not a record", "decode"),
        (b'{"type": "trade", "symbol": "ZZ", "ts_event": 1, "price": -3, "size": 1}', "range"),
        (json_encoder.encode(good_zz), "good"),  # accepted: the reference for the next one
        (json_encoder.encode(Trade(symbol="ZZ", ts_event=t0, price=50.0, size=1.0)), "out_of_order"),
        (json_encoder.encode(Quote(symbol="ZZ", ts_event=t0 + 9_000, bid=51.0, ask=50.0)), "crossed"),
    ]

    class Raw:
        def __init__(self, value: bytes) -> None:
            self.value = value
            self.symbol = "ZZ"

    raws = [Raw(v) for v, _ in bad]
    sent_bad = await produce_messages(tansu.bootstrap, t.md, raws, encode=lambda r: r.value)
    sent = await produce_messages(tansu.bootstrap, t.md, tape.trades)
    expected = expected_forecasts(sent)
    offsets = [split_position(p)[1] for _, p in sent_bad]
    # ZZ trades once: the feed closes its bar once the feed's event time passed its end by 5 s, the
    # edge drops it (a first bar), and its history is released after history_max_s (here 1 s).
    cfg = edge_node_config(
        tansu.bootstrap,
        t,
        extra=[
            "actors[kafka-source].config.history_max_s=1.0",
            "actors[kafka-source].config.answer_timeout_s=1.0",
        ],
    )
    async with (
        config_running(cfg) as (engine, _task),
        ForecastReader(tansu.bootstrap, t.forecasts) as reader,
    ):
        seen = await reader.until(expected, timeout_s=60)
        assert expected <= seen.covered
        async with asyncio.timeout(20):
            while len(dead := await read_all(tansu.bootstrap, t.dead)) < 4:  # noqa: ASYNC110 - polling a broker
                await asyncio.sleep(0.2)
        # every bad record is settled, and so is ZZ's one good trade: the commit passes them all
        async with asyncio.timeout(20):
            while True:
                committed, _ = await committed_and_end(tansu.bootstrap, t.group, t.md, 1)
                if committed[0] > offsets[-1]:
                    break
                await asyncio.sleep(0.3)
    letters = [(r, json.loads(r.value)) for r in dead]
    by_offset = {int(dict(r.headers)["source_offset"]): (r, d) for r, d in letters}
    assert sorted(by_offset) == [offsets[0], offsets[1], offsets[3], offsets[4]], by_offset.keys()
    reasons = {
        kind: by_offset[off][1]["reason"]
        for (_, kind), off in zip(bad, offsets, strict=True)
        if kind != "good"
    }
    assert reasons["decode"].startswith("decode_error")
    assert reasons["range"].startswith("invalid_value")
    assert "out_of_order" in reasons["out_of_order"] and reasons["out_of_order"].startswith("feed:")
    assert "crossed or locked" in reasons["crossed"]  # the source's range check
    for (value, kind), off in zip(bad, offsets, strict=True):
        if kind == "good":
            continue
        assert base64.b64decode(by_offset[off][1]["raw"]) == value, kind
    counters = Counter(engine.metrics.snapshot()["counters"])
    assert counters["kafka_records_rejected_downstream_total{actor=kafka-source}"] == 1  # out of order
    assert counters["md_rejected_total{reason=out_of_order}"] == 1


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_kcat_in_edge_forecasts_out(fresh_tansu: Callable[[int], TansuBroker], kcat: str) -> None:
    """kcat produces the trades (JSON lines, keyed); the edge pipeline forecasts their bars; kcat
    reads the forecasts back with their forecast_id headers.  Through tools/faultproxy.py with
    ``api_versions_max=2`` (Debian's kcat misparses Tansu's ApiVersions v3; test_kafka_pipeline)."""
    port = free_port()
    broker = fresh_tansu(port)
    proxy = await FaultProxy("127.0.0.1", broker.port, listen_port=port).start()
    proxy.api_versions_max = 2
    bootstrap = proxy.address
    try:
        t = Topics.fresh()
        await standard_topics(bootstrap, t, md_partitions=2)
        tape = BarTape(["ES", "NQ"], bars=26, per_bar=3)
        lines = "".join(f"{tr.symbol}\t{json_encoder.encode(tr).decode()}\n" for tr in tape.trades)
        proc = await asyncio.create_subprocess_exec(
            kcat, "-P", "-b", bootstrap, "-t", t.md, "-K", "\t",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(lines.encode()), 30)
        assert proc.returncode == 0, err.decode()
        sent = [(json_decoder.decode(r.value), position(r)) for r in await read_all(bootstrap, t.md)]
        assert len(sent) == len(tape.trades)
        expected = expected_forecasts(sent)
        async with (
            config_running(edge_node_config(bootstrap, t)),
            ForecastReader(bootstrap, t.forecasts) as reader,
        ):
            seen = await reader.until(expected, timeout_s=60)
        assert seen.covered == expected and seen.duplicates == 0
        proc = await asyncio.create_subprocess_exec(
            kcat, "-C", "-b", bootstrap, "-t", t.forecasts, "-e", "-o", "beginning", "-f", "%k|%h\n",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        rows = [ln.split("|", 1) for ln in out.decode().splitlines() if ln]
        ids = {dict(h.split("=", 1) for h in headers.split(","))["forecast_id"] for _, headers in rows}
        assert len(rows) == len(expected)
        assert ids == {f"{sym}-{pos}" for sym, pos in expected}
    finally:
        await proxy.stop()
