"""Source adapters: tapes and news files as time-ordered raw records with positions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adapters.datasets import ColumnMapping, DatasetError, Tape, load_csv, load_sp500
from adapters.sources import (
    MarketRecords,
    NewsFileSource,
    TapeSource,
    open_tape,
    position,
    records_from_messages,
    split_position,
)
from adapters.text.errors import NewsParseError
from engine.messages import NewsItem, Quote, Trade

S = 1_000_000_000
T0 = 1_700_000_000 * S


def small_tape(times: list[int], prices: list[float] | None = None) -> Tape:
    n = len(times)
    return Tape(
        name="t",
        ts_ns=np.array(times, dtype=np.int64),
        price=np.array(prices or [1.0] * n),
        size=np.ones(n),
        side=np.zeros(n, dtype=np.int8),
        sym=np.zeros(n, dtype=np.int32),
        symbols=("X",),
    )


def test_positions_round_trip_and_match_the_kafka_layout() -> None:
    assert position(0, 0) == 1
    assert split_position(position(5, 123)) == (5, 123)
    from adapters.kafka import record_position, stream_id

    s = stream_id(1, 7)
    assert position(s, 99) == record_position(s, 99)  # one meaning for either kind of source
    with pytest.raises(ValueError):
        position(-1, 0)


def test_a_tape_source_takes_up_to_a_time_at_least_one_row_at_most_a_limit() -> None:
    src = TapeSource(small_tape([1 * S, 2 * S, 2 * S, 5 * S, 9 * S]), name="x", stream=3)
    assert src.head_ns() == 1 * S and src.total == 5
    a = src.take(until_ns=2 * S, limit=100)
    assert a.ts_ns.tolist() == [1 * S, 2 * S, 2 * S]
    assert [split_position(p) for p in a.pos.tolist()] == [(3, 0), (3, 1), (3, 2)]
    b = src.take(until_ns=0, limit=100)  # nothing is due yet: still one row, so a driver progresses
    assert b.ts_ns.tolist() == [5 * S]
    c = src.take(until_ns=10 * S, limit=1)
    assert c.ts_ns.tolist() == [9 * S] and src.head_ns() is None and src.taken == 5
    with pytest.raises(IndexError):
        src.take(10 * S, 1)


def test_loops_shift_time_forward_and_keep_positions_unique() -> None:
    src = TapeSource(small_tape([10 * S, 11 * S, 13 * S]), loops=3)
    got: list[MarketRecords] = []
    while src.head_ns() is not None:
        got.append(src.take(2**62, 2))
    ts = np.concatenate([r.ts_ns for r in got]).tolist()
    span = 3 * S + 1  # the tape's span: pass k+1 starts just after pass k ends
    assert ts == [t + k * span for k in range(3) for t in (10 * S, 11 * S, 13 * S)]
    assert np.concatenate([r.pos for r in got]).tolist() == list(range(1, 10))
    assert [r.pass_no for r in got] == [0, 0, 1, 1, 2, 2]  # a chunk never straddles two passes


def test_a_tape_in_its_own_order_is_handed_out_as_it_is() -> None:
    src = TapeSource(small_tape([5 * S, 3 * S, 4 * S, 9 * S]))
    # Disorder is for the feed to judge: the source hands rows out as they are.
    assert src.take(until_ns=6 * S, limit=10).ts_ns.tolist() == [5 * S, 3 * S, 4 * S]


def test_open_tape_filters_symbols_and_limits(tmp_path: Path) -> None:
    tape = open_tape(dataset="synthetic", synthetic={"n": 2000, "seed": 1}, symbols=["BBB"], limit=50)
    assert len(tape) == 50 and set(tape.sym.tolist()) == {tape.symbols.index("BBB")}
    with pytest.raises(DatasetError, match="none of the symbols"):
        open_tape(dataset="synthetic", synthetic={"n": 100}, symbols=["ZZZ"])
    with pytest.raises(DatasetError, match="exactly one"):
        open_tape(dataset="emini", file=str(tmp_path / "x.csv"))


def test_daily_datasets_are_bar_tapes_with_real_ohlc() -> None:
    sp = load_sp500()
    assert sp.kind == "bars" and sp.bar_ns == 86_400 * S and sp.bar_open_ns == 23_400 * S
    assert (sp.extra["open"] != sp.price).mean() > 0.9  # real open/close, not one print per day
    rec = TapeSource(sp).take(2**62, 10)
    assert rec.kind == "bars" and set(rec.extra) >= {"open", "high", "low"}


def test_a_bar_file_maps_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "day,o,h,l,c,v\n2024-01-02,10,12,9,11,100\n2024-01-03,11,11.5,10,10.5,80\n2024-01-05,10.5,13,10,12,90\n"
    )
    m = ColumnMapping(ts="day", open="o", high="h", low="l", close="c", volume="v", tz="America/New_York")
    t = load_csv(path, m)
    assert t.kind == "bars" and t.bar_ns == 86_400 * S  # the median spacing
    assert t.price.tolist() == [11.0, 10.5, 12.0] and t.extra["high"].tolist() == [12.0, 11.5, 13.0]
    t2 = load_csv(path, ColumnMapping(ts="day", close="c", tz=m.tz, bar_ts="open", bar_ns=3600 * S))
    assert t2.extra["open"].tolist() == t2.price.tolist()  # close only: flat bars
    assert int(t2.ts_ns[0] - t.ts_ns[0]) == 3600 * S  # keyed by close time
    with pytest.raises(DatasetError, match="missing columns"):
        load_csv(path, ColumnMapping(ts="day", close="close"))


def test_records_from_live_messages_keep_each_position() -> None:
    msgs = [
        Trade(symbol="A", ts_event=1, seq=position(2, 10), price=1.5, size=2.0, side=1),
        Quote(symbol="B", ts_event=2, seq=position(2, 11), bid=1.0, ask=1.1, bid_size=3.0, ask_size=4.0),
    ]
    rec = records_from_messages("kafka", msgs)
    assert rec.symbols == ("A", "B") and rec.sym.tolist() == [0, 1]
    assert rec.pos.tolist() == [position(2, 10), position(2, 11)]
    assert rec.extra["is_quote"].tolist() == [0.0, 1.0] and rec.extra["ask_size"].tolist() == [0.0, 4.0]
    only_trades = records_from_messages("kafka", msgs[:1])
    assert not only_trades.has_quotes and only_trades.price.tolist() == [1.5]


def _line(id_: str, ts_s: int) -> str:
    return json.dumps({"id": id_, "ts": T0 + ts_s * S, "source": "wire", "headline": f"headline {id_}"})


def test_a_news_file_is_timed_by_its_items_and_bad_lines_keep_their_place(tmp_path: Path) -> None:
    f = tmp_path / "news.jsonl"
    f.write_text("\n".join([_line("a", 1), "{not json", _line("b", 1), "", _line("c", 5)]) + "\n")
    src = NewsFileSource(f, name="news")
    assert src.head_ns() == T0 + S
    first = src.take(T0 + S, limit=10)
    assert [ln.lineno for ln in first] == [1, 2, 3]  # the bad line goes right after the line before it
    assert isinstance(first[1].result, NewsParseError) and isinstance(first[2].result, NewsItem)
    assert src.head_ns() == T0 + 5 * S
    assert [ln.lineno for ln in src.take(0, limit=10)] == [5]  # at least one
    assert src.head_ns() is None and src.taken == 4
    src.close()


def test_an_untimed_news_file_is_due_at_once(tmp_path: Path) -> None:
    f = tmp_path / "news.jsonl"
    f.write_text("\n".join([_line("a", 100), _line("b", 200)]) + "\n")
    src = NewsFileSource(f, untimed=True)
    assert src.head_ns() is not None and src.head_ns() < -(2**62)  # type: ignore[operator]
    assert [ln.lineno for ln in src.take(-(2**63), limit=10)] == [1, 2]


def test_a_tape_source_is_a_market_source() -> None:
    from adapters.sources import MarketSource

    assert isinstance(TapeSource(small_tape([1])), MarketSource)
