"""FeedCore: the vectorised fast path is proven equal to the per-event reference.

Random tapes with every kind of bad record (NaN, infinite, non-positive, zero
size, out of order, bad times, gaps, spikes, level shifts), several symbols,
three bar series and random chunking go through two cores, one with the fast
path and one without: the same messages in the same order, the same dead
letters with the same reasons and details, the same per-symbol state and the
same open bars.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.market_data import FeedCore, MarketDataFeedConfig
from adapters.bars import BarSpec
from adapters.sources import MarketRecords
from engine.messages import Bar, Trade
from engine.metrics import Metrics

S = 1_000_000_000
T0 = 1_700_000_000 * S

ANOMALIES = ("nan_price", "inf_price", "neg_price", "zero_size", "nan_size", "disorder", "bad_ts", "spike")


class _Log:
    def warning(self, event: str, **kw: Any) -> None:
        pass

    info = warning


def core(fast: bool, **cfg: Any) -> tuple[FeedCore, list[tuple[Any, ...]]]:
    dead: list[tuple[Any, ...]] = []

    def dead_letter(reason: str, raw: bytes = b"", ts_event: int | None = None, **detail: Any) -> None:
        # repr: a NaN in the detail must compare equal to itself
        dead.append((reason, raw, ts_event, repr(sorted(detail.items(), key=lambda kv: kv[0]))))

    config = MarketDataFeedConfig(dataset="", fast_path=fast, **cfg)
    return FeedCore(config, Metrics(), dead_letter, _Log()), dead


def records(rows: list[tuple[int, float, float, int, int]], symbols: tuple[str, ...]) -> MarketRecords:
    n = len(rows)
    return MarketRecords(
        source="test",
        symbols=symbols,
        ts_ns=np.array([r[0] for r in rows], dtype=np.int64),
        price=np.array([r[1] for r in rows], dtype=np.float64),
        size=np.array([r[2] for r in rows], dtype=np.float64),
        side=np.array([r[3] for r in rows], dtype=np.int8),
        sym=np.array([r[4] for r in rows], dtype=np.int32),
        pos=np.arange(1, n + 1, dtype=np.int64),
    )


def run(c: FeedCore, rows: list[tuple[int, float, float, int, int]], chunks: list[int]) -> list[Any]:
    symbols = ("A", "B", "C")
    out: list[Any] = []
    i = 0
    k = 0
    while i < len(rows):
        step = chunks[k % len(chunks)]
        k += 1
        for e in c.process(records(rows[i : i + step], symbols), now_ns=T0, sim=True):
            out.extend((e.target, m) for m in e.msgs)
        i += step
    for e in c.flush():
        out.extend((e.target, m) for m in e.msgs)
    return out


@st.composite
def tapes(draw: st.DrawFn) -> list[tuple[int, float, float, int, int]]:
    """Random walks per symbol with rare anomalies, interleaved in runs of one symbol."""
    n = draw(st.integers(1, 400))
    n_sym = draw(st.integers(1, 3))
    bad_rate = draw(st.sampled_from([0.0, 0.01, 0.05, 0.2]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    px = {s: 100.0 + 10 * s for s in range(n_sym)}
    ts = T0
    sym = 0
    rows = []
    for _ in range(n):
        if rng.random() < 0.05:
            sym = int(rng.integers(n_sym))  # runs of one symbol, so chunks can be single-symbol
        gap = int(rng.choice([1, 10, 1000])) * 1_000_000
        if rng.random() < 0.01:
            gap = 400 * S  # over gap_ns below: a halt
        ts += gap
        px[sym] = max(0.25, px[sym] + 0.25 * int(rng.integers(-2, 3)))
        t, p, z, d = ts, px[sym], float(rng.integers(1, 10)), int(rng.choice([-1, 0, 1]))
        if rng.random() < bad_rate:
            match ANOMALIES[int(rng.integers(len(ANOMALIES)))]:
                case "nan_price":
                    p = math.nan
                case "inf_price":
                    p = math.inf
                case "neg_price":
                    p = -p
                case "zero_size":
                    z = 0.0
                case "nan_size":
                    z = math.nan
                case "disorder":
                    t = ts - 5 * S
                case "bad_ts":
                    t = 0
                case "spike":
                    p = p * float(rng.choice([1.3, 0.7]))
        rows.append((t, p, z, d, sym))
    return rows


BARS = (
    BarSpec(kind="time", size=3.0 * S),
    BarSpec(kind="tick", size=7.0),
    BarSpec(kind="dollar", size=5000.0, multiplier=2.0),
)
FAST_HITS = [0]


@settings(max_examples=150, deadline=None)
@given(
    tapes(),
    st.lists(st.integers(1, 64), min_size=1, max_size=6),
    st.integers(0, 6),
    st.sampled_from([(), BARS[:1], BARS]),
)
def test_fast_path_equals_the_reference(
    rows: list[tuple[int, float, float, int, int]], chunks: list[int], warmup: int, bars: tuple[BarSpec, ...]
) -> None:
    cfg = {"spike_warmup": warmup, "spike_halflife": 20, "gap_ns": 300 * S, "bars": bars}
    fast, fast_dead = core(True, **cfg)
    slow, slow_dead = core(False, **cfg)
    hits = _count_fast_hits(fast)
    got = run(fast, rows, chunks)
    want = run(slow, rows, chunks)
    FAST_HITS[0] += hits[0]
    assert got == want
    assert fast_dead == slow_dead
    assert fast.snapshot() == slow.snapshot()
    assert {k: v for k, v in fast._metrics.snapshot()["counters"].items()} == slow._metrics.snapshot()[
        "counters"
    ]


def test_the_property_exercises_the_fast_path() -> None:
    """The random tapes above do reach the fast path (it is not vacuously equal)."""
    FAST_HITS[0] = 0
    test_fast_path_equals_the_reference()
    assert FAST_HITS[0] > 50


def _count_fast_hits(c: FeedCore) -> list[int]:
    hits = [0]
    inner = c.process_fast

    def counted(*a: Any, **kw: Any) -> Any:
        r = inner(*a, **kw)
        hits[0] += r is not None
        return r

    c.process_fast = counted  # type: ignore[method-assign]
    return hits


def test_bad_records_are_rejected_with_their_reasons() -> None:
    c, dead = core(True, spike_warmup=2, bars=())
    rows = [(T0 + i * S, 100.0 + 0.25 * (i % 2), 1.0, 1, 0) for i in range(10)]
    rows += [
        (T0 + 10 * S, math.nan, 1.0, 1, 0),
        (T0 + 11 * S, math.inf, 1.0, 1, 0),
        (T0 + 12 * S, 100.0, math.inf, 1, 0),
        (T0 + 13 * S, 0.0, 1.0, 1, 0),
        (T0 + 14 * S, 100.0, -1.0, 1, 0),
        (0, 100.0, 1.0, 1, 0),
        (T0 + 1 * S, 100.0, 1.0, 1, 0),
        (T0 + 15 * S, 150.0, 1.0, 1, 0),
    ]
    out = run(c, rows, [4])
    assert [d[0] for d in dead] == [
        "non_finite_price",
        "non_finite_price",
        "non_finite_size",
        "non_positive_price",
        "non_positive_size",
        "bad_timestamp",
        "out_of_order",
        "spike",
    ]
    trades = [m for _, m in out if type(m) is Trade]
    assert [t.seq for t in trades] == list(range(1, 11))


def test_numbering_by_position_carries_each_records_place() -> None:
    c, dead = core(True, seq="position", bars=(BarSpec(kind="tick", size=2.0),))
    rows = [(T0 + i * S, 100.0, 1.0, 1, 0) for i in range(5)]
    rows[2] = (T0 + 2 * S, -1.0, 1.0, 1, 0)  # position 3 is dead-lettered
    out = run(c, rows, [5])
    trades = [m for _, m in out if type(m) is Trade]
    bars = [m for _, m in out if type(m) is Bar]
    assert [t.seq for t in trades] == [1, 2, 4, 5]
    assert [b.seq for b in bars] == [2, 5]  # a bar carries its last record's position
    assert [d[0] for d in dead] == ["non_positive_price"]


@pytest.mark.parametrize("fast", [True, False])
def test_a_new_pass_restarts_the_spike_reference(fast: bool) -> None:
    c, dead = core(fast, spike_warmup=2, bars=())
    rows = [(T0 + i * S, 100.0 + 0.25 * (i % 2), 1.0, 1, 0) for i in range(40)]
    run(c, rows, [10])
    jump = records([(T0 + 50 * S, 200.0, 1.0, 1, 0)], ("A",))
    again = MarketRecords(**{**{f: getattr(jump, f) for f in jump.__dataclass_fields__}, "pass_no": 1})
    emits = c.process(again, T0, True)
    assert not dead and [m.price for e in emits for m in e.msgs] == [200.0]
