"""The scheduled-event calendar (config/data/events.json): sourced, on trading days, and the days
it names carry larger absolute index returns; the features flag the bar before each event."""

from __future__ import annotations

import json
from datetime import date
from importlib.resources import files

import numpy as np
import pytest

from adapters.datasets import load_nasdaq, load_sp500
from adapters.features import FEATURE_NAMES, FeatureConfig, FeatureEngine, event_days
from tools.train_edge import bars_from_daily

DOC = json.loads(files("config").joinpath("data", "events.json").read_text(encoding="utf-8"))
_DAY = 86_400 * 10**9


def _ny_days(ts_ns: np.ndarray) -> np.ndarray:
    return (ts_ns - 5 * 3_600 * 10**9) // _DAY


def test_every_kind_states_its_source_and_dates_are_trading_days() -> None:
    for kind in ("fomc", "payroll", "cpi"):
        assert DOC["kinds"][kind]["source"]
    assert len(DOC["events"]["fomc"]) == 80 and len(DOC["events"]["payroll"]) == 120  # 8 and 12 a year
    trading = set(_ny_days(load_sp500().ts_ns).tolist())
    epoch = date(1970, 1, 1).toordinal()
    closed = []
    for kind in ("fomc", "payroll"):
        for d in DOC["events"][kind]:
            assert date.fromisoformat(d).weekday() < 5, (kind, d)
            if date.fromisoformat(d).toordinal() - epoch not in trading:
                closed.append((kind, d))
    # BLS publishes on Good Friday, when the exchange is closed; every other event day is traded.
    assert closed == [("payroll", "2010-04-02"), ("payroll", "2012-04-06"), ("payroll", "2015-04-03")]


@pytest.mark.parametrize("load", [load_sp500, load_nasdaq])
def test_event_days_carry_larger_absolute_returns(load: object) -> None:
    assert callable(load)
    tape = load()
    r = np.diff(np.log(tape.price))
    days = _ny_days(tape.ts_ns[1:])  # r[i] is the return *on* day i + 1
    lo = date(2009, 1, 1).toordinal() - date(1970, 1, 1).toordinal()
    keep = days >= lo
    on_event = np.isin(days[keep], np.asarray(sorted(event_days())))
    a = np.abs(r[keep])
    assert on_event.sum() == 197  # 200 events, 3 of them payrolls on Good Friday (market closed)
    assert a[on_event].mean() > 1.03 * a[~on_event].mean()


def test_event_next_flags_the_bar_before_an_event_day() -> None:
    eng = FeatureEngine(FeatureConfig(bar_ns=_DAY, events=True))
    off = FeatureEngine(FeatureConfig(bar_ns=_DAY))
    j = FEATURE_NAMES.index("event_next")
    flags = {}
    for bar in bars_from_daily(load_sp500()):
        row = eng.on_bar(bar)
        plain = off.on_bar(bar)
        if row is not None and plain is not None:
            iso = np.datetime_as_string(np.datetime64(bar.ts_event, "ns"), unit="D")
            flags[str(iso)] = float(row.values[j])
            assert plain.values[j] == 0.0
    assert flags["2015-12-15"] == 1.0 and flags["2015-12-16"] == 0.0  # FOMC 16 Dec 2015
    assert flags["2016-01-07"] == 1.0  # Thursday before the payroll Friday 8 Jan 2016
    assert flags["2013-10-21"] == 1.0 and flags["2013-10-03"] == 0.0  # the shutdown-delayed release
    assert flags["2018-06-12"] == 1.0 and flags["2007-06-12"] == 0.0  # nothing outside 2009-2018
    # Every event is flagged on the bar before it except the 3 with a holiday in between (2009-01-02,
    # 2013-07-05, 2015-01-02: exchange holidays are not skipped); the Thursday before a Good Friday
    # payroll is flagged, though no bar follows on that day.
    assert sum(flags.values()) == 197
