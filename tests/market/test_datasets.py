"""Dataset loaders: real files from installed packages, exact time-zone handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.datasets import (
    DATASETS,
    ColumnMapping,
    DatasetError,
    Tape,
    iter_events,
    iter_trades,
    load_csv,
    load_dataset,
    load_nasdaq,
    load_parquet,
    load_sp500,
    load_sp500_tickers,
    tick_rule,
)
from adapters.synthetic import SyntheticConfig, generate
from engine.messages import Quote, Trade


def _utc(ts: int) -> pd.Timestamp:
    return pd.Timestamp(ts, tz="UTC")


def test_emini_is_the_real_tape_in_utc(emini: Tape) -> None:
    assert len(emini) == 500_000
    assert emini.symbols == ("ES",)
    # The CSV says 2013-09-01 17:00:00.083 Chicago time (CDT, UTC-5).
    assert _utc(int(emini.ts_ns[0])) == pd.Timestamp("2013-09-01 22:00:00.083", tz="UTC")
    assert _utc(int(emini.ts_ns[-1])) == pd.Timestamp("2013-09-03 18:51:44.578", tz="UTC")
    assert np.all(np.diff(emini.ts_ns) >= 0)
    # E-mini prices sit on the 0.25 tick grid; sizes are whole contracts.
    assert np.all(np.mod(emini.price * 4, 1) == 0)
    assert np.all(emini.size >= 1) and np.all(np.mod(emini.size, 1) == 0)


def test_emini_cash_open_lands_at_1330_utc(emini: Tape) -> None:
    """The 09:30 ET cash open (13:30 UTC) is where volume explodes: proves the zone."""
    ts = pd.to_datetime(emini.ts_ns, utc=True)
    per_5min = pd.Series(emini.size, index=ts).resample("5min").sum()
    before = per_5min.loc["2013-09-03 13:25"]
    after = per_5min.loc["2013-09-03 13:30"]
    assert after > 10 * before
    assert per_5min.loc["2013-09-03 12:00":"2013-09-03 15:00"].idxmax().strftime("%H:%M") == "13:30"


def test_emini_sides_follow_the_tick_rule(emini: Tape) -> None:
    side, price = emini.side, emini.price
    up = np.flatnonzero(np.diff(price) > 0) + 1
    down = np.flatnonzero(np.diff(price) < 0) + 1
    assert np.all(side[up] == 1) and np.all(side[down] == -1)
    buys, sells = (side == 1).sum(), (side == -1).sum()
    assert buys > 100_000 and sells > 100_000


def test_tick_rule_carries_the_last_change_over_zero_ticks() -> None:
    got = tick_rule(np.array([10.0, 10.0, 10.5, 10.5, 10.25, 10.25, 10.5]))
    assert got.tolist() == [0, 0, 1, 1, -1, -1, 1]
    assert tick_rule(np.array([1.0])).tolist() == [0]


def test_arch_daily_close_is_1600_new_york() -> None:
    sp, nq = load_sp500(), load_nasdaq()
    assert len(sp) == len(nq) > 5000
    assert sp.symbols == ("SPX",) and nq.symbols == ("NDX",)
    # 1999-01-04 16:00 EST = 21:00 UTC; a summer day closes at 20:00 UTC (EDT).
    assert _utc(int(sp.ts_ns[0])) == pd.Timestamp("1999-01-04 21:00", tz="UTC")
    summer = pd.to_datetime(sp.ts_ns, utc=True)
    assert set(summer[summer.month == 7].hour) == {20}
    assert np.all(sp.extra["high"] >= sp.price) and np.all(sp.extra["low"] <= sp.price)
    # We read arch's file directly; it must be exactly what arch's own loader gives.
    from arch.data import sp500

    ref = sp500.load()
    assert np.array_equal(sp.price, ref["Close"].to_numpy()) and np.array_equal(
        sp.size, ref["Volume"].to_numpy()
    )
    assert (
        pd.DatetimeIndex(ref.index)
        .normalize()
        .equals(
            pd.to_datetime(sp.ts_ns, utc=True).tz_convert("America/New_York").tz_localize(None).normalize()
        )
    )


def test_sp500_tickers_has_524_symbols_in_time_order() -> None:
    t = load_sp500_tickers()
    assert len(t.symbols) == 524 and "AAPL" in t.symbols
    assert np.all(np.diff(t.ts_ns) >= 0)
    aapl = t.for_symbol("AAPL")
    assert 200 < len(aapl) < 400
    assert np.all(np.diff(aapl.ts_ns) > 0)
    with pytest.raises(DatasetError, match="no symbol"):
        t.for_symbol("NOPE")


def test_iter_trades_matches_the_columns(emini: Tape) -> None:
    trades = list(iter_trades(emini, 1000, 1010))
    assert len(trades) == 10 and all(type(t) is Trade for t in trades)
    assert [t.price for t in trades] == emini.price[1000:1010].tolist()
    assert [t.ts_event for t in trades] == emini.ts_ns[1000:1010].tolist()
    assert trades[0].symbol == "ES"


def test_generic_csv_with_mapping_and_time_zone(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(
        "when,px,qty,ticker,aggr\n"
        "2024-03-10 01:59:00,10.0,1,B,S\n"  # New York, just before the DST jump
        "2024-03-10 03:00:00,11.0,2,A,B\n"
        "2024-01-05 09:30:00,9.0,3,A,B\n"  # out of order: sorted on load
    )
    m = ColumnMapping(ts="when", price="px", size="qty", symbol="ticker", side="aggr", tz="America/New_York")
    t = load_csv(path, m)
    assert t.symbols == ("A", "B")
    assert [_utc(int(x)) for x in t.ts_ns] == [
        pd.Timestamp("2024-01-05 14:30", tz="UTC"),
        pd.Timestamp("2024-03-10 06:59", tz="UTC"),
        pd.Timestamp("2024-03-10 07:00", tz="UTC"),
    ]
    assert t.price.tolist() == [9.0, 10.0, 11.0]
    assert t.side.tolist() == [1, -1, 1]
    assert [t.symbol_at(i) for i in range(3)] == ["A", "B", "A"]


def test_generic_parquet_integer_times(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"ts": [3_000, 1_000], "price": [2.0, 1.0], "size": [1.0, 1.0]}).to_parquet(path)
    t = load_parquet(path, ColumnMapping(ts_unit="ms", default_symbol="ZZ"))
    assert t.ts_ns.tolist() == [1_000_000_000, 3_000_000_000]
    assert t.symbols == ("ZZ",)
    assert t.side.tolist() == [0, 1]


def test_bad_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,price\n2024-01-01,1\n")
    with pytest.raises(DatasetError, match="missing columns"):
        load_csv(bad)
    bad.write_text("ts,price,size\nnot-a-time,1,1\n")
    with pytest.raises(DatasetError, match="not a timestamp"):
        load_csv(bad)
    bad.write_text("ts,price,size,side\n2024-01-01,1,1,X\n")
    with pytest.raises(DatasetError, match="bad side"):
        load_csv(bad, ColumnMapping(side="side"))
    with pytest.raises(DatasetError, match="unknown time zone"):
        load_csv(tmp_path / "bad.csv", ColumnMapping(tz="Mars/Olympus"))
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nope")


def test_every_named_dataset_loads() -> None:
    for name in DATASETS:
        options = {"n": 500} if name == "synthetic" else {}
        tape = load_dataset(name, **options)
        assert len(tape) > 0 and np.all(np.diff(tape.ts_ns) >= 0), name


def test_synthetic_is_seeded_bursty_and_valid() -> None:
    cfg = SyntheticConfig(seed=3, n=20_000, burst_prob=0.01, burst_len=50)
    a, b = generate(cfg), generate(cfg)
    assert np.array_equal(a.ts_ns, b.ts_ns) and np.array_equal(a.price, b.price)
    assert not np.array_equal(a.price, generate(SyntheticConfig(seed=4, n=20_000)).price)
    gaps = np.diff(a.ts_ns)
    assert (gaps == cfg.burst_gap_ns).sum() > 1000  # bursts exist
    assert np.median(gaps[gaps != cfg.burst_gap_ns]) > 100 * cfg.burst_gap_ns
    events = list(iter_events(a, 0, 2000))
    quotes = [e for e in events if type(e) is Quote]
    assert 700 < len(quotes) < 1300
    assert all(q.bid < q.ask for q in quotes)
    assert set(a.symbols) == {e.symbol for e in events}
