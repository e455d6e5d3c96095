"""MarketDataFeed in a real engine: validation, dead letters, numbering, bars, chunking."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.messages import Bar, DeadLetter, Quote, Trade
from engine.testing import Probe, settle

from .conftest import build, feed, run

S = 1_000_000_000
T0 = 1_700_000_000 * S


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: str = "ts,price,size,symbol") -> str:
    path.write_text(header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n")
    return str(path)


def calm(n: int, start_s: int = 0, symbol: str = "ES", base: float = 100.0) -> list[tuple[Any, ...]]:
    """n ordinary ticks one second apart, wiggling one tick."""
    return [(T0 + (start_s + i) * S, base + 0.25 * (i % 2), 1, symbol) for i in range(n)]


MAPPING = {"ts": "ts", "price": "price", "size": "size", "symbol": "symbol", "ts_unit": "ns", "sort": False}


@pytest.mark.asyncio
async def test_bad_ticks_are_dead_lettered_with_reasons(tmp_path: Path) -> None:
    rows = calm(50)
    rows += [(T0 + 50 * S, -1.0, 1, "ES"), (T0 + 51 * S, 100.0, 0, "ES")]  # non-positive price, size
    rows += [(T0 + 52 * S, 130.0, 1, "ES")]  # a 30% spike
    rows += [(T0 + 40 * S, 100.0, 1, "ES")]  # earlier than the last accepted tick
    rows += calm(10, start_s=60)
    path = write_csv(tmp_path / "bad.csv", rows)
    eng = build(feed(dataset=None, file=path, mapping=MAPPING, chunk_size=7))
    summary, msgs = await run(eng, "md.>", "deadletter")
    dead = [m for m in msgs if type(m) is DeadLetter]
    assert [d.reason for d in dead] == ["non_positive_price", "non_positive_size", "spike", "out_of_order"]
    assert all(d.source == "feed" for d in dead)
    assert dead[0].detail["price"] == -1.0 and dead[0].ts_event == T0 + 50 * S
    assert msgspec.json.decode(dead[2].raw)["price"] == 130.0
    trades = [m for m in msgs if type(m) is Trade]
    assert len(trades) == 60
    assert [t.seq for t in trades] == list(range(1, 61))  # no holes in our numbering
    c = summary.metrics["counters"]
    assert c["md_events_in_total"] == 64
    assert (
        c["md_events_published_total"] + sum(v for k, v in c.items() if k.startswith("md_rejected_total"))
        == 64
    )
    assert summary.reason == "replay finished"


@pytest.mark.asyncio
async def test_a_sustained_level_shift_is_accepted_after_spike_reset(tmp_path: Path) -> None:
    rows = calm(50) + [(T0 + (50 + i) * S, 120.0, 1, "ES") for i in range(6)]
    path = write_csv(tmp_path / "shift.csv", rows)
    eng = build(feed(dataset=None, file=path, mapping=MAPPING, spike_reset=3))
    _, msgs = await run(eng, "md.>", "deadletter")
    assert [m.reason for m in msgs if type(m) is DeadLetter] == ["spike", "spike"]
    assert [m.price for m in msgs if type(m) is Trade][-4:] == [120.0] * 4


@pytest.mark.asyncio
async def test_gap_resets_the_spike_reference_and_is_counted(tmp_path: Path) -> None:
    rows = calm(50) + calm(5, start_s=10_000, base=120.0)  # reopen after a long halt at a new level
    path = write_csv(tmp_path / "gap.csv", rows)
    eng = build(feed(dataset=None, file=path, mapping=MAPPING, gap_ns=600 * S))
    summary, msgs = await run(eng, "md.>", "deadletter")
    assert not [m for m in msgs if type(m) is DeadLetter]
    assert summary.metrics["counters"]["md_time_gaps_total"] == 1


@pytest.mark.asyncio
async def test_stale_events_are_dead_lettered(tmp_path: Path) -> None:
    rows = [*calm(5, symbol="A"), (T0 - 100 * S, 50.0, 1, "B"), *calm(3, start_s=5, symbol="A")]
    path = write_csv(tmp_path / "stale.csv", rows)
    eng = build(feed(dataset=None, file=path, mapping=MAPPING, stale_ns=10 * S, chunk_size=1))
    _, msgs = await run(eng, "md.>", "deadletter")
    dead = [m for m in msgs if type(m) is DeadLetter]
    assert [(d.reason, d.detail["symbol"]) for d in dead] == [("stale", "B")]


@pytest.mark.asyncio
async def test_source_sequence_gaps_are_counted_and_duplicates_dropped(tmp_path: Path) -> None:
    rows = [(T0 + i * S, 100.0, 1, "ES", seq) for i, seq in enumerate([1, 2, 3, 7, 8, 8, 9, 5, 10])]
    path = write_csv(tmp_path / "seq.csv", rows, header="ts,price,size,symbol,n")
    eng = build(feed(dataset=None, file=path, mapping={**MAPPING, "seq": "n"}))
    summary, msgs = await run(eng, "md.>", "deadletter")
    dead = [m for m in msgs if type(m) is DeadLetter]
    assert [(d.reason, d.detail["src_seq"]) for d in dead] == [("duplicate_seq", 8), ("duplicate_seq", 5)]
    assert summary.metrics["counters"]["md_seq_gaps_total"] == 3  # 4, 5 and 6 never came
    assert [m.seq for m in msgs if type(m) is Trade] == list(range(1, 8))


@pytest.mark.asyncio
async def test_looped_replay_keeps_time_moving_and_drops_nothing() -> None:
    eng = build(feed(dataset="emini", limit=5000, loops=3, chunk_size=700))
    _, msgs = await run(eng, "md.>", "deadletter")
    trades = [m for m in msgs if type(m) is Trade]
    assert len(trades) == 15_000 and len(trades) == len(msgs)  # no spike at the wrap-around
    assert all(a.ts_event <= b.ts_event for a, b in itertools.pairwise(trades))
    assert [t.price for t in trades[5000:5010]] == [t.price for t in trades[:10]]
    assert trades[-1].seq == 15_000


@pytest.mark.asyncio
async def test_crossed_quotes_and_conflation_on_synthetic_data() -> None:
    eng = build(feed(dataset="synthetic", synthetic={"n": 20_000, "seed": 5}, conflate=True, chunk_size=512))
    summary, msgs = await run(eng, "md.>", "deadletter")
    c = summary.metrics["counters"]
    quotes = [m for m in msgs if type(m) is Quote]
    assert quotes and all(q.bid < q.ask for q in quotes)
    assert c["md_conflated_total"] > 1000
    assert c["md_events_published_total"] + c["md_conflated_total"] == 20_000
    # per-symbol numbering stays contiguous over what was published
    by_sym: dict[str, list[int]] = {}
    for m in msgs:
        if type(m) in (Trade, Quote):
            by_sym.setdefault(m.symbol, []).append(m.seq)
    assert len(by_sym) == 4
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_sym.values())


@pytest.mark.asyncio
async def test_fast_path_publishes_exactly_what_the_per_event_path_does() -> None:
    common = {
        "dataset": "emini",
        "limit": 60_000,
        "chunk_size": 1000,
        "bars": [
            {"kind": "time", "size": 60e9},
            {"kind": "tick", "size": 500},
            {"kind": "dollar", "size": 2e7, "multiplier": 50.0},
        ],
    }
    _, fast = await run(build(feed(**common, fast_path=True)), "md.>", "bar.>", "deadletter")
    _, slow = await run(build(feed(**common, fast_path=False)), "md.>", "bar.>", "deadletter")
    assert len(fast) == len(slow) > 60_000
    assert fast == slow
    kinds = Counter(b.kind for b in fast if type(b) is Bar)
    assert set(kinds) == {"time", "tick", "dollar"} and kinds["tick"] == 120


@pytest.mark.asyncio
async def test_emini_replay_publishes_every_tick_in_order_and_bars_before_their_closer() -> None:
    eng = build(feed(dataset="emini", limit=50_000))
    summary, msgs = await run(eng, "md.ES", "bar.ES", "deadletter")
    trades = [m for m in msgs if type(m) is Trade]
    bars = [m for m in msgs if type(m) is Bar]
    assert len(trades) == 50_000 and not [m for m in msgs if type(m) is DeadLetter]
    assert all(a.ts_event <= b.ts_event for a, b in itertools.pairwise(trades))
    assert len(bars) > 100
    for i, m in enumerate(msgs[:-1]):
        if type(m) is Bar and type(msgs[i + 1]) is Trade:
            assert msgs[i + 1].ts_event >= m.ts_event  # the closing trade comes after its bar
            assert msgs[i + 1].seq == m.seq + 1
    assert eng.clock.now_ns() == bars[-1].ts_event  # flushed last bar ends the clock
    assert summary.mailboxes["feed"].shed == 0


@pytest.mark.asyncio
async def test_live_clock_stamps_receive_time() -> None:
    eng = build(feed(dataset="emini", limit=3000), clock="live")
    _, msgs = await run(eng, "md.ES")
    assert len(msgs) == 3000
    assert all(m.ts_recv > 1_700_000_000 * S for m in msgs)  # wall clock, not 2013


@pytest.mark.asyncio
async def test_missing_file_fails_the_feed_loudly(tmp_path: Path) -> None:
    eng = build(feed(dataset=None, file=str(tmp_path / "nope.csv")))
    summary = await eng.run(install_signals=False)
    assert summary.exit_code != 0
    assert (
        "no such file" in summary.reason
        or summary.metrics["counters"]["actor_failures_total{actor=feed}"] >= 1
    )


@pytest.mark.asyncio
async def test_symbol_filter_and_unknown_symbols() -> None:
    eng = build(feed(dataset="synthetic", synthetic={"n": 4000, "quote_ratio": 0.0}, symbols=["BBB", "ZZZ"]))
    _, msgs = await run(eng, "md.>")
    assert msgs and {m.symbol for m in msgs} == {"BBB"}
    eng = build(feed(dataset="synthetic", synthetic={"n": 100}, symbols=["ZZZ"]))
    summary = await eng.run(install_signals=False)
    assert summary.exit_code != 0  # nothing to replay is an error, not an empty success


@pytest.mark.asyncio
async def test_daily_data_replays_as_the_real_bars_training_saw() -> None:
    """sp500 is a bar tape: each day goes out as its real OHLC bar (the bar the edge model was
    trained on, tools.train_edge.bars_from_daily), then a trade at its close."""
    from adapters.datasets import load_sp500
    from tools.train_edge import bars_from_daily

    eng = build(feed(dataset="sp500", bars=[{"kind": "tick", "size": 1}]))  # bars aggregate ticks only
    summary, msgs = await run(eng, "md.>", "bar.>", "deadletter")
    bars = [m for m in msgs if type(m) is Bar]
    trades = [m for m in msgs if type(m) is Trade]
    tape = load_sp500()
    assert bars == list(bars_from_daily(tape))
    assert sum(b.open != b.close for b in bars) > 0.9 * len(bars)  # not one print per day
    assert [t.price for t in trades] == tape.price.tolist() and [t.seq for t in trades] == [
        b.seq for b in bars
    ]
    assert type(msgs[0]) is Bar and type(msgs[1]) is Trade  # each day: its bar, then its close
    assert summary.metrics["counters"]["md_bars_published_total"] == len(tape)


@pytest.mark.asyncio
async def test_a_bar_file_with_columns_replays_its_bars_and_refuses_bad_ones(tmp_path: Path) -> None:
    rows = ["ts,o,h,l,c,v"]
    for i in range(30):
        o, c = 100.0 + (i % 3), 100.5 + (i % 2)
        rows.append(f"{T0 + i * 60 * S},{o},{max(o, c) + 0.5},{min(o, c) - 0.5},{c},{10 + i}")
    rows.append(f"{T0 + 30 * 60 * S},101,100,102,101,5")  # high below low
    rows.append(f"{T0 + 31 * 60 * S},101,102,100,101,0")  # no volume: a fact, forecast like any bar
    rows.append(f"{T0 + 32 * 60 * S},101,102,100,101,-3")  # negative volume
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(rows) + "\n")
    columns = {"ts": "ts", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}
    eng = build(feed(dataset=None, file=str(path), columns={**columns, "default_symbol": "XYZ"}))
    summary, msgs = await run(eng, "md.>", "bar.>", "deadletter")
    bars = [m for m in msgs if type(m) is Bar]
    assert len(bars) == 31 and bars[0].symbol == "XYZ" and bars[0].spec == 60 * S
    assert bars[-1].volume == 0.0 and bars[-1].ts_event == T0 + 31 * 60 * S
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume) == (
        100.0,
        101.0,
        99.5,
        100.5,
        10.0,
    )
    assert bars[0].ts_open == bars[0].ts_event - 60 * S
    assert [m.reason for m in msgs if type(m) is DeadLetter] == ["inconsistent_bar", "non_positive_size"]
    assert summary.reason == "replay finished"
    # configured otherwise, a day without volume is refused too
    cols = {**columns, "default_symbol": "XYZ"}
    eng = build(feed(dataset=None, file=str(path), columns=cols, zero_volume_bars=False))
    _, msgs = await run(eng, "bar.>", "deadletter")
    assert sum(type(m) is Bar for m in msgs) == 30
    assert [m.reason for m in msgs if type(m) is DeadLetter] == [
        "inconsistent_bar",
        "non_positive_size",
        "non_positive_size",
    ]


@pytest.mark.asyncio
async def test_a_live_feed_checks_what_arrives_in_its_mailbox() -> None:
    """No dataset, no file: records (or decoded trades) come in by message, from a Kafka consumer say."""
    from adapters.sources import position, records_from_messages

    eng = build(feed(dataset="", seq="position", bars=[{"kind": "tick", "size": 2}]), clock="live")
    probe = Probe(eng.bus, "md.>", "bar.>", "deadletter")
    task = asyncio.ensure_future(eng.run(install_signals=False))
    try:
        await eng.runtime.wait_started()
        trades = [
            Trade(symbol="ES", ts_event=T0 + i * S, seq=position(1, i), price=p, size=1.0)
            for i, p in enumerate([100.0, 100.25, -5.0, 100.5])
        ]
        ref = eng.ref("feed")
        ref.tell(records_from_messages("kafka", trades[:2]))
        for t in trades[2:]:
            ref.tell(t)
        await settle(eng.runtime)
    finally:
        eng.request_shutdown("test done")
        await asyncio.wait_for(task, 10)
    msgs = probe.drain()
    got = [m for m in msgs if type(m) is Trade]
    assert [t.seq for t in got] == [position(1, 0), position(1, 1), position(1, 3)]  # positions, not counts
    assert all(t.ts_recv > T0 for t in got)  # received now, on the live clock
    assert [m.seq for m in msgs if type(m) is Bar] == [position(1, 1)]
    assert [m.reason for m in msgs if type(m) is DeadLetter] == ["non_positive_price"]


@pytest.mark.asyncio
async def test_a_live_feed_takes_batch_messages_per_handler_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bars reach the edge only when the feed's handler returns: batch_messages bounds how much
    # input one call takes (and so the feed's share of bar-to-forecast latency).
    from actors.market_data import MarketDataFeed, MarketDataFeedConfig
    from adapters.sources import position, records_from_messages

    with pytest.raises(ValueError, match="batch_messages"):
        MarketDataFeedConfig(dataset="", batch_messages=0)
    sizes: list[int] = []
    handle = MarketDataFeed.on_batch

    def spy(self: MarketDataFeed, msgs: list[Any]) -> None:
        sizes.append(len(msgs))
        handle(self, msgs)

    monkeypatch.setattr(MarketDataFeed, "on_batch", spy)
    eng = build(feed(dataset="", seq="position", batch_messages=3), clock="live")
    task = asyncio.ensure_future(eng.run(install_signals=False))
    try:
        await eng.runtime.wait_started()
        ref = eng.ref("feed")
        for i in range(7):  # queued before the feed's loop runs again
            t = Trade(symbol="ES", ts_event=T0 + i * S, seq=position(1, i), price=100.0 + i, size=1.0)
            ref.tell(records_from_messages("kafka", [t]))
        await settle(eng.runtime)
    finally:
        eng.request_shutdown("test done")
        await asyncio.wait_for(task, 10)
    assert sizes == [3, 3, 1]
