"""Bar aggregation: time, tick and dollar bars; the vectorised path equals the per-trade path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bars import BarAggregator, BarSpec
from adapters.datasets import Tape
from engine.messages import Bar

S = 1_000_000_000


def feed_one(agg: BarAggregator, trades: list[tuple[int, float, float, int]]) -> list[tuple[int, Bar]]:
    out = []
    for i, (ts, px, sz, sd) in enumerate(trades):
        b = agg.update("X", ts, px, sz, sd, i + 1)
        if b is not None:
            out.append((i, b))
    return out


def test_time_bars_close_on_the_first_trade_after_the_interval() -> None:
    agg = BarAggregator(BarSpec("time", 60 * S))
    trades = [
        (10 * S, 100.0, 1, 1),
        (30 * S, 101.0, 2, -1),
        (59 * S, 99.0, 1, 1),
        (61 * S, 100.5, 4, 1),
        (200 * S, 102.0, 1, 1),
    ]
    bars = feed_one(agg, trades)
    assert [i for i, _ in bars] == [3, 4]
    b = bars[0][1]
    assert (b.ts_open, b.ts_event) == (0, 60 * S)
    assert (b.open, b.high, b.low, b.close) == (100.0, 101.0, 99.0, 99.0)
    assert (b.volume, b.buy_volume, b.n_trades, b.seq) == (4.0, 2.0, 3, 3)
    assert bars[1][1].ts_event == 120 * S  # the 60-120 s bar; 120-180 s had no trades
    (last,) = agg.flush()
    assert (last.ts_open, last.ts_event, last.close) == (180 * S, 240 * S, 102.0)
    assert agg.flush() == []


def test_tick_and_dollar_bars() -> None:
    ticks = BarAggregator(BarSpec("tick", 3))
    trades = [(i * S, 100.0 + i, 1.0, 1) for i in range(7)]
    bars = feed_one(ticks, trades)
    assert [i for i, _ in bars] == [2, 5]
    assert [b.n_trades for _, b in bars] == [3, 3]
    assert bars[0][1].close == 102.0 and bars[0][1].ts_event == 2 * S
    dollars = BarAggregator(BarSpec("dollar", 1000.0, multiplier=2.0))
    bars = feed_one(dollars, [(i * S, 100.0, 2.0, 1) for i in range(6)])  # $400 per trade
    assert [i for i, _ in bars] == [2, 5]
    assert all(b.dollar_volume == 1200.0 for _, b in bars)


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="bar size"):
        BarSpec("tick", 0)


@pytest.mark.parametrize(
    "spec", [BarSpec("time", 60 * S), BarSpec("tick", 100), BarSpec("dollar", 5e6, 50.0)]
)
def test_update_many_equals_update_on_real_ticks(emini: Tape, spec: BarSpec) -> None:
    n = 30_000
    ts, px, sz, sd = emini.ts_ns[:n], emini.price[:n], emini.size[:n], emini.side[:n]
    one = BarAggregator(spec)
    expect = [
        (i, b)
        for i in range(n)
        if (b := one.update("ES", int(ts[i]), float(px[i]), float(sz[i]), int(sd[i]), i + 1)) is not None
    ]
    many = BarAggregator(spec)
    got: list[tuple[int, Bar]] = []
    for a in range(0, n, 777):  # odd chunking: bars straddle chunk edges
        b = min(n, a + 777)
        got += [(a + i, bar) for i, bar in many.update_many("ES", ts[a:b], px[a:b], sz[a:b], sd[a:b], a)]
    assert len(expect) > 10
    assert got == expect
    assert many.flush() == one.flush()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5 * S), st.integers(1, 400), st.integers(1, 9), st.sampled_from([1, -1])),
        min_size=1,
        max_size=120,
    ),
    st.integers(1, 50),
    st.sampled_from(["time", "tick", "dollar"]),
)
def test_update_many_equals_update_property(
    rows: list[tuple[int, int, int, int]], chunk: int, kind: str
) -> None:
    ts = np.cumsum([r[0] for r in rows]).astype(np.int64)
    px = np.array([r[1] * 0.25 for r in rows])
    sz = np.array([float(r[2]) for r in rows])
    sd = np.array([r[3] for r in rows], dtype=np.int8)
    size = {"time": 3.0 * S, "tick": 4.0, "dollar": 500.0}[kind]
    spec = BarSpec(kind, size)  # type: ignore[arg-type]
    one = BarAggregator(spec)
    expect = [
        (i, b)
        for i in range(len(rows))
        if (b := one.update("X", int(ts[i]), float(px[i]), float(sz[i]), int(sd[i]), i + 1)) is not None
    ]
    many = BarAggregator(spec)
    got: list[tuple[int, Bar]] = []
    for a in range(0, len(rows), chunk):
        b = min(len(rows), a + chunk)
        got += [(a + i, bar) for i, bar in many.update_many("X", ts[a:b], px[a:b], sz[a:b], sd[a:b], a)]
    assert got == expect
    assert many.flush() == one.flush()
