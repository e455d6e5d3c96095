"""MarketDataFeed: raw market records in, checked, numbered and barred messages out.

One feed serves every source alike.  Sources (:mod:`adapters.sources`) only read
and decode; the feed's :class:`FeedCore` does the rest:

1. **Validation** (bad records are dead-lettered with the reason, never published):
   ``bad_timestamp`` (``ts_event`` outside ``[min_ts_ns, max_ts_ns]``),
   ``non_finite_price`` / ``non_finite_size`` (NaN or infinite),
   ``non_positive_price``, ``non_positive_size``, ``crossed_quote`` (bid >= ask),
   ``inconsistent_bar`` (a bar whose high/low do not bound its open and close),
   ``duplicate_seq`` (see numbering),
   ``out_of_order`` (earlier than the symbol's last accepted event),
   ``stale`` (older than ``stale_ns`` behind the feed's clock), ``spike`` (a
   log return beyond ``spike_sigma`` standard deviations of a per-symbol EWMA
   estimate *and* beyond ``spike_min_frac``; the estimate starts as the mean
   of the first ``spike_warmup`` squared returns, which are not checked;
   after a time gap of ``gap_ns`` the reference and estimate reset, and
   ``spike_reset`` consecutive spikes that agree with each other are taken as
   a genuine level shift and accepted).  A bar record is checked on its close.
2. **Numbering** (``seq``): ``"symbol"`` gives accepted events per-symbol
   sequence numbers 1, 2, 3... without holes; ``"position"`` gives each event its
   record's source position (:func:`adapters.sources.position`: stable across
   restarts and re-deliveries, so forecast ids derived from it are too).  When the
   source has its own numbering (a file with ``mapping.seq``), a jump in it counts
   the missing events as gaps (``md_seq_gaps_total``, logged) and a repeated or
   older number is dead-lettered ``duplicate_seq``; a pause longer than
   ``gap_ns`` between a symbol's events is counted in ``md_time_gaps_total``.
3. **Bars**: each trade updates the configured bar series; closed bars are
   published on ``bar.<SYM>`` just before the trade that closed them.  A bar
   record (a daily dataset, a bar file) is published as it is on ``bar.<SYM>``
   (real open/high/low/close, ``kind="time"``, ``spec`` the bar length), followed
   by a trade at its close (size: its volume) on ``md.<SYM>``; ``bars`` do not
   aggregate bar records.
4. **Publishing** on ``md.<SYM>`` in runs.  ``conflate`` drops a quote when a
   newer quote of the same symbol follows in the same chunk before any trade of
   it (``md_conflated_total``); the newer quote takes the older one's place (and,
   numbering by symbol, its number), so each symbol's events stay in time order.

Replay: with ``dataset`` or ``file`` set the feed attaches its tape
(:class:`~adapters.sources.TapeSource`) to the engine's replay driver
(:mod:`engine.replay`), which pulls chunks of at most ``chunk_size`` records in
time order with every other replayed source, publishes what the feed makes of
them, alone moves the simulated clock and waits for the pipeline to go idle
between chunks.  ``chunk_size`` is clamped to a quarter of the smallest
subscriber mailbox, so a chunk and what it causes always fit: downstream never
sheds and the run is deterministic.  ``settle_after_bars`` also waits for idle
after each bar, before the trade that closed it.  At the end (after ``loops``
passes; pass ``k`` shifts times by ``k`` x the tape's span and restarts each
symbol's spike reference as after a halt) the open bars are flushed and, with
``shutdown_at_end``, the engine stops with the reason ``replay finished``.

Live: :class:`~adapters.sources.MarketRecords`, decoded :class:`Trade` /
:class:`Quote` messages (their ``seq`` taken as their position), or
:class:`~adapters.sources.recording.Arrivals` (a live source's batch of decoded
trades, quotes and bars with positions: the Kafka source's, or a recording's replay)
arriving in the feed's mailbox are checked the same way and published at once.
With ``seq = "position"`` every dead letter of a rejected record names its
``position`` (and ``symbol``): the Kafka source settles that record in its ledger
once the dead letter, with the record's original bytes, is on the dead-letter topic.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import numpy as np
from scipy.signal import lfilter

from adapters.bars import BarAggregator, BarSpec
from adapters.datasets import ColumnMapping
from adapters.sources import MarketRecords, MarketSource, TapeSource, open_tape, records_from_messages
from adapters.sources.recording import Arrivals
from adapters.sources.records import OFFSET_BITS
from engine.actor import Actor
from engine.clock import SimClock
from engine.messages import Bar, Quote, Trade
from engine.metrics import Metrics
from engine.replay import Emit, ReplayDriver

__all__ = ["FeedCore", "MarketDataFeed", "MarketDataFeedConfig"]

_MAX_TS_NS = 4_102_444_800_000_000_000  # 2100-01-01 UTC


class MarketDataFeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the data comes from and how it is checked.  Times are ns.

    Source (replay): ``dataset`` (a name from :data:`adapters.datasets.DATASETS`) or
    ``file`` (CSV/Parquet, columns per ``columns``; ``mapping`` is its older name);
    ``synthetic`` options for the ``synthetic`` dataset; ``limit`` replays only the
    first N rows; ``symbols`` keeps only these symbols (empty: all); ``loops``
    passes over the data.  Neither (``dataset = ""``): a live feed, records arrive
    in its mailbox.
    """

    dataset: str | None = "emini"
    file: str | None = None
    columns: ColumnMapping | None = None
    mapping: ColumnMapping | None = None
    synthetic: dict[str, Any] = {}
    limit: int | None = None
    symbols: tuple[str, ...] = ()
    loops: int = 1
    chunk_size: int = 4096
    topic_prefix: str = "md"
    bars: tuple[BarSpec, ...] = (BarSpec(kind="time", size=60e9),)
    conflate: bool = False
    seq: Literal["symbol", "position"] = "symbol"
    spike_sigma: float = 10.0
    spike_min_frac: float = 0.002
    spike_halflife: int = 200
    spike_reset: int = 3
    spike_warmup: int = 20
    gap_ns: int = 300_000_000_000
    stale_ns: int = 0
    min_ts_ns: int = 1
    max_ts_ns: int = _MAX_TS_NS
    shutdown_at_end: bool = True
    progress: bool = False
    settle_after_bars: bool = False
    """Wait for the pipeline to go idle after each bar, before the trade that closed it: slow
    consumers holding the replay (a lockstep cloud tier) then answer before the next event."""
    fast_path: bool = True
    """Validate and bar clean single-symbol chunks with numpy (same output as the per-event path)."""
    close_idle_bars_ns: int = 0
    """Live sources: close a symbol's open time bar once the feed's event time (the latest
    ``ts_event`` it accepted, any symbol) is this far past the bar's end, instead of waiting for
    the symbol's next trade (0: never).  A quiet symbol's last bar is then answered, and the
    records it folded do not wait for its next trade (which a Kafka source could not fetch once
    its window filled).  A trade later than that opens a new bar."""
    zero_volume_bars: bool = True
    """A bar record with volume 0 (a day nothing traded: volume 0 is a fact, not a bad tick) is
    published and forecast like any other; False dead-letters it as ``non_positive_size``.  A
    negative volume is always dead-lettered."""
    batch_messages: int = 2
    """Live: the most mailbox messages (record chunks, a Kafka fetch's arrivals) one handler call
    takes.  The bars it closes reach the edge only when the call returns, so this bounds the
    feed's share of bar-to-forecast latency: at 3x overload, 8 chunks of 32 records per call
    made the edge's p99 3.1x its unloaded p99, 2 chunks 1.05x at the same goodput
    (BENCHMARKS.md, overload).  Replay is not affected (the driver calls the feed directly)."""

    def __post_init__(self) -> None:
        if self.batch_messages < 1:
            raise ValueError("MarketDataFeedConfig: batch_messages must be >= 1")
        if self.dataset and self.file:
            raise ValueError("MarketDataFeedConfig: set at most one of dataset and file")
        if self.columns is not None and self.mapping is not None:
            raise ValueError("MarketDataFeedConfig: set columns or its older name mapping, not both")
        if self.chunk_size < 1 or self.loops < 1:
            raise ValueError("MarketDataFeedConfig: chunk_size and loops must be >= 1")
        if not 0 <= self.min_ts_ns < self.max_ts_ns:
            raise ValueError("MarketDataFeedConfig: need 0 <= min_ts_ns < max_ts_ns")

    @property
    def replays(self) -> bool:
        """True when the feed replays a dataset or file (else it is live)."""
        return bool(self.dataset or self.file)

    @property
    def column_mapping(self) -> ColumnMapping:
        return self.columns or self.mapping or ColumnMapping()


class _SymState:
    """Per-symbol validation state."""

    __slots__ = ("fresh", "last_px", "last_ts", "nret", "pending", "seq", "src_seq", "var")

    def __init__(self) -> None:
        self.seq = 0
        self.src_seq = 0
        self.last_ts = -(2**62)
        self.last_px = 0.0
        self.var = 0.0
        self.nret = 0  # returns seen since the scale was last reset
        self.fresh = False  # a new replay pass starts: the next event sets the reference
        self.pending: list[float] = []  # consecutive spike prices, to spot a level shift


DeadLetterFn = Callable[..., None]


class FeedCore:
    """Validation, numbering and bars: records in, runs to publish out.  No I/O, no clock.

    :meth:`process` is the feed's one validation path: it hands clean
    single-symbol chunks of trades to the vectorised :meth:`process_fast`, which
    returns None (and changes nothing) whenever anything needs a decision, and
    everything else to the per-event reference :meth:`process_scalar`.  Both give
    the same messages, dead letters and state (tests/market/test_feed_core.py).
    ``dead_letter(reason, raw=..., ts_event=..., **detail)`` receives every reject.
    """

    def __init__(
        self, cfg: MarketDataFeedConfig, metrics: Metrics, dead_letter: DeadLetterFn, log: Any
    ) -> None:
        self.cfg = cfg
        self._metrics = metrics
        self._dead_letter = dead_letter
        self._log = log
        self._sym: dict[str, _SymState] = {}
        self._aggs = [BarAggregator(spec) for spec in cfg.bars]
        self._topics: dict[str, tuple[str, str]] = {}
        self._pass = 0
        self._alpha = 1.0 - 0.5 ** (1.0 / max(1, cfg.spike_halflife))
        self._rejected: dict[str, Any] = {}
        self._at = 0  # position of the record being checked (numbering by position only)
        self._time_aggs = [a for a in self._aggs if a.spec.kind == "time"]
        self._time_step = int(min((a.spec.size for a in self._time_aggs), default=1)) or 1
        self._watermark: dict[int, int] = {}  # per input stream (close_idle_bars_ns)
        self._closed_step: dict[int, int] = {}
        self.stream_of: dict[str, int] = {}
        """Live sources: the input stream each symbol's last record came on (its position's)."""
        self.n_in = metrics.counter("md_events_in_total")
        self.n_out = metrics.counter("md_events_published_total")
        self._n_bars = metrics.counter("md_bars_published_total")
        self._n_seq_gaps = metrics.counter("md_seq_gaps_total")
        self._n_time_gaps = metrics.counter("md_time_gaps_total")
        self._n_conflated = metrics.counter("md_conflated_total")

    def forget_streams(self, streams: tuple[int, ...]) -> list[str]:
        """Forget every symbol last seen on one of ``streams`` (validation state, open bars,
        numbering): a live source was given those input streams again, and reads them from the
        last commit.  Returns the symbols forgotten."""
        gone = sorted(sym for sym, st in self.stream_of.items() if st in streams)
        for st in streams:
            self._watermark.pop(st, None)
            self._closed_step.pop(st, None)
        for sym in gone:
            del self.stream_of[sym]
            self._sym.pop(sym, None)
            for agg in self._aggs:
                agg.forget(sym)
        return gone

    def snapshot(self) -> dict[str, tuple[Any, ...]]:
        """Per-symbol validation state (seq, source seq, last time, last price, variance,
        returns seen, fresh, pending spikes): what the two paths must agree on."""
        return {
            sym: (st.seq, st.src_seq, st.last_ts, st.last_px, st.var, st.nret, st.fresh, tuple(st.pending))
            for sym, st in self._sym.items()
        }

    def topics(self, symbol: str) -> tuple[str, str]:
        """The (market data, bar) topics of ``symbol``."""
        t = self._topics.get(symbol)
        if t is None:
            t = self._topics[symbol] = (f"{self.cfg.topic_prefix}.{symbol}", f"bar.{symbol}")
        return t

    def process(self, rec: MarketRecords, now_ns: int, sim: bool) -> list[Emit]:
        """Check, number and bar ``rec``; return the runs to publish, in order.

        ``now_ns``: the clock when the records arrive (the stale check; ``ts_recv``
        live); ``sim``: simulated time, where ``ts_recv`` is the event time.
        """
        if rec.pass_no != self._pass:
            # A new pass jumps back to the first price: a new session, not a spike.
            self._pass = rec.pass_no
            for st in self._sym.values():
                st.fresh = True
        runs = self.process_fast(rec, now_ns, sim) if self.cfg.fast_path else None
        if runs is None:
            runs = _to_runs(self.process_scalar(rec, now_ns, sim))
        if self.cfg.close_idle_bars_ns and len(rec) and self._time_aggs:
            runs.extend(self._close_idle(rec))
        return self._emits(runs)

    def _close_idle(self, rec: MarketRecords) -> list[tuple[str, list[Any]]]:
        """The open time bars that ended ``close_idle_bars_ns`` before their input stream's event
        time (the latest ``ts_event`` seen on the stream: a partition, a tape), by symbol;
        checked once per smallest time-bar interval of each stream's event time.  Per stream,
        because streams (Kafka partitions) are read at their own pace."""
        streams = rec.pos >> OFFSET_BITS
        first = int(streams[0])
        if (streams == first).all():
            latest = {first: int(rec.ts_ns.max())}
        else:
            latest = {int(st): int(rec.ts_ns[streams == st].max()) for st in np.unique(streams)}
        runs: list[tuple[str, list[Any]]] = []
        for stream, ts in sorted(latest.items()):
            mark = max(self._watermark.get(stream, ts), ts)
            self._watermark[stream] = mark
            horizon = mark - self.cfg.close_idle_bars_ns
            step = horizon // self._time_step
            if step <= self._closed_step.get(stream, -(2**62)):
                continue
            self._closed_step[stream] = step
            for sym in sorted(self._sym):
                if self.stream_of.get(sym, stream) != stream:
                    continue
                for agg in self._time_aggs:
                    bar = agg.due(sym, horizon)
                    if bar is not None:
                        runs.append((self.topics(sym)[1], [bar]))
        return runs

    def flush(self) -> list[Emit]:
        """The open bars (end of data), by (close time, symbol)."""
        out: list[tuple[str, Any]] = []
        for agg in self._aggs:
            for b in agg.flush():
                out.append((self.topics(b.symbol)[1], b))
        out.sort(key=lambda tm: (tm[1].ts_event, tm[1].symbol))
        return self._emits(_to_runs(out))

    def _emits(self, runs: list[tuple[str, list[Any]]]) -> list[Emit]:
        settle = self.cfg.settle_after_bars
        out: list[Emit] = []
        n_bars = n_md = 0
        for topic, msgs in runs:
            if type(msgs[0]) is Bar:
                n_bars += len(msgs)
                out.append(Emit(topic, msgs, settle))
            else:
                n_md += len(msgs)
                out.append(Emit(topic, msgs))
        self._n_bars.inc(n_bars)
        self.n_out.inc(n_md)
        return out

    # --- the reference path ------------------------------------------------------

    def process_scalar(self, rec: MarketRecords, now: int, sim: bool) -> list[tuple[str, Any]]:
        """Validate, number and bar ``rec`` event by event; return (topic, message) in order."""
        cfg = self.cfg
        zero_volume = cfg.zero_volume_bars
        n = len(rec)
        symbols = rec.symbols
        ts_l = rec.ts_ns.tolist()
        px_l = rec.price.tolist()
        sz_l = rec.size.tolist()
        sd_l = rec.side.tolist()
        sy_l = rec.sym.tolist()
        extra = rec.extra
        quotes = rec.has_quotes
        bars = rec.kind == "bars"
        by_pos = cfg.seq == "position"
        pos_l = rec.pos.tolist() if by_pos else None
        src_l = extra["src_seq"].tolist() if "src_seq" in extra else None
        if quotes:
            q_l = extra["is_quote"].tolist()
            b_l = extra["bid"].tolist()
            a_l = extra["ask"].tolist()
            bs_l = extra["bid_size"].tolist()
            as_l = extra["ask_size"].tolist()
        if bars:
            o_l = extra["open"].tolist()
            h_l = extra["high"].tolist()
            l_l = extra["low"].tolist()
            bar_spec = float(rec.bar_ns)
            bar_open = rec.bar_open_ns
        out: list[tuple[str, Any]] = []
        append = out.append
        states = self._sym
        aggs = self._aggs
        alpha = self._alpha
        beta = 1.0 - alpha
        k2 = cfg.spike_sigma * cfg.spike_sigma
        conflate = cfg.conflate
        held: dict[str, int] = {}  # symbol -> index in out of its quote still open to conflation
        n_conflated = 0
        warm = cfg.spike_warmup
        min_frac = math.log1p(cfg.spike_min_frac)
        gap_ns = cfg.gap_ns
        stale_ns = cfg.stale_ns
        ts_lo, ts_hi = cfg.min_ts_ns, cfg.max_ts_ns
        isfinite = math.isfinite
        # numpy's log, not math.log: they differ in the last bit for ~1% of inputs, and the
        # fast path's np.log must give exactly the same returns (hence spike decisions).
        log = np.log
        reject = self._reject
        self.n_in.inc(n)
        for i in range(n):
            ts = ts_l[i]
            sym = symbols[sy_l[i]]
            if pos_l is not None:
                self._at = pos_l[i]  # a reject names it: the source settles the record
            st = states.get(sym)
            if st is None:
                st = states[sym] = _SymState()
            # --- validation -------------------------------------------------
            if not ts_lo <= ts <= ts_hi:
                reject("bad_timestamp", sym, ts)
                continue
            is_quote = quotes and q_l[i]
            if is_quote:
                bid, ask = b_l[i], a_l[i]
                if not (isfinite(bid) and isfinite(ask)):
                    reject("non_finite_price", sym, ts, bid=bid, ask=ask)
                    continue
                if not (bid > 0 and ask > 0):
                    reject("non_positive_price", sym, ts, bid=bid, ask=ask)
                    continue
                if bid >= ask:
                    reject("crossed_quote", sym, ts, bid=bid, ask=ask)
                    continue
                px = (bid + ask) / 2.0
                size = 1.0
            elif bars:
                px = px_l[i]
                size = sz_l[i]
                o, h, lo = o_l[i], h_l[i], l_l[i]
                if not (isfinite(o) and isfinite(h) and isfinite(lo) and isfinite(px)):
                    reject("non_finite_price", sym, ts, open=o, high=h, low=lo, close=px)
                    continue
                if not isfinite(size):
                    reject("non_finite_size", sym, ts, volume=size)
                    continue
                if not (o > 0 and h > 0 and lo > 0 and px > 0):
                    reject("non_positive_price", sym, ts, open=o, high=h, low=lo, close=px)
                    continue
                if not (size > 0 or (size == 0 and zero_volume)):
                    reject("non_positive_size", sym, ts, volume=size)
                    continue
                if not (lo <= o <= h and lo <= px <= h):
                    reject("inconsistent_bar", sym, ts, open=o, high=h, low=lo, close=px)
                    continue
            else:
                px = px_l[i]
                size = sz_l[i]
                if not isfinite(px):
                    reject("non_finite_price", sym, ts, price=px, size=size)
                    continue
                if not isfinite(size):
                    reject("non_finite_size", sym, ts, price=px, size=size)
                    continue
                if not px > 0:
                    reject("non_positive_price", sym, ts, price=px, size=size)
                    continue
                if not size > 0:
                    reject("non_positive_size", sym, ts, price=px, size=size)
                    continue
            if src_l is not None:
                src = int(src_l[i])
                if st.src_seq and src <= st.src_seq:
                    reject("duplicate_seq", sym, ts, src_seq=src, last_src_seq=st.src_seq)
                    continue
                if st.src_seq and src > st.src_seq + 1:
                    self._n_seq_gaps.inc(src - st.src_seq - 1)
                    self._log.warning("md_seq_gap", symbol=sym, expected=st.src_seq + 1, got=src)
                st.src_seq = src
            if ts < st.last_ts:
                reject("out_of_order", sym, ts, last_ts=st.last_ts)
                continue
            if stale_ns and ts < now - stale_ns:
                reject("stale", sym, ts, clock_ns=now)
                continue
            if st.seq:
                if ts - st.last_ts > gap_ns or st.fresh:
                    # After a halt the old price and scale say nothing: start learning afresh.
                    if st.fresh:
                        st.fresh = False
                    else:
                        self._n_time_gaps.inc()
                    st.nret = 0
                    st.var = 0.0
                    st.pending.clear()
                    st.last_px = px
                r = float(log(px / st.last_px))
                r2 = r * r
                var = st.var
                if st.nret < warm:
                    st.nret += 1
                    st.var = var + (r2 - var) / st.nret
                elif abs(r) > min_frac and r2 > k2 * var:
                    pend = st.pending
                    if pend and abs(float(log(px / pend[-1]))) > min_frac:
                        pend.clear()
                    pend.append(px)
                    if len(pend) < cfg.spike_reset:
                        reject("spike", sym, ts, price=px, reference=st.last_px, sigma=math.sqrt(var))
                        continue
                    # A sustained move, not a bad print: accept it and re-learn the scale.
                    pend.clear()
                    st.nret = 0
                    st.var = 0.0
                else:
                    if st.pending:
                        st.pending.clear()
                    st.var = alpha * r2 + beta * var
            # --- accepted --------------------------------------------------------
            st.last_ts = ts
            st.last_px = px
            md_topic, bar_topic = self.topics(sym)
            recv = ts if sim else now
            if is_quote:
                j = held.get(sym) if conflate else None
                if j is not None:
                    # Conflation: the newer quote takes the older one's place (and number).
                    seq = pos_l[i] if pos_l is not None else out[j][1].seq
                    n_conflated += 1
                else:
                    st.seq += 1
                    seq = pos_l[i] if pos_l is not None else st.seq
                q = Quote(
                    symbol=sym,
                    ts_event=ts,
                    ts_recv=recv,
                    seq=seq,
                    bid=b_l[i],
                    ask=a_l[i],
                    bid_size=bs_l[i],
                    ask_size=as_l[i],
                )
                if j is not None:
                    out[j] = (md_topic, q)
                else:
                    append((md_topic, q))
                    if conflate:
                        held[sym] = len(out) - 1
                continue
            st.seq += 1
            seq = pos_l[i] if pos_l is not None else st.seq
            if conflate:
                held.pop(sym, None)
            side = sd_l[i]
            if bars:
                append(
                    (
                        bar_topic,
                        Bar(
                            symbol=sym,
                            ts_event=ts,
                            ts_open=ts - bar_open,
                            seq=seq,
                            open=o,
                            high=h,
                            low=lo,
                            close=px,
                            volume=size,
                            kind="time",
                            spec=bar_spec,
                        ),
                    )
                )
            else:
                for agg in aggs:
                    b = agg.update(sym, ts, px, size, side, seq)
                    if b is not None:
                        append((bar_topic, b))
            append(
                (
                    md_topic,
                    Trade(symbol=sym, ts_event=ts, ts_recv=recv, seq=seq, price=px, size=size, side=side),
                )
            )
        if n_conflated:
            self._n_conflated.inc(n_conflated)
        return out

    # --- the vectorised path -----------------------------------------------------

    def process_fast(self, rec: MarketRecords, now: int, sim: bool) -> list[tuple[str, list[Any]]] | None:
        """The vectorised path for a chunk of trades of one symbol already seen.

        Returns None, changing nothing, whenever anything in the chunk needs a
        decision: a bad value or time, disorder, a gap, a spike candidate, a quote,
        a bar record, a symbol's first event, source numbering, a stale check or
        numbering by position.
        """
        cfg = self.cfg
        if (
            rec.kind != "ticks"
            or rec.has_quotes
            or "src_seq" in rec.extra
            or cfg.stale_ns
            or cfg.seq != "symbol"
            or not len(rec)
        ):
            return None
        sy = rec.sym
        code = int(sy[0])
        if not (sy == code).all():
            return None  # multi-symbol chunks take the per-event path
        sym = rec.symbols[code]
        st = self._sym.get(sym)
        if st is None or not st.seq or st.pending or st.fresh or st.nret < cfg.spike_warmup:
            return None
        ts = rec.ts_ns
        px = rec.price
        sz = rec.size
        # (x > 0) & (x < inf) is false for NaN, infinities and non-positive values alike.
        if not ((px > 0) & (px < math.inf) & (sz > 0) & (sz < math.inf)).all():
            return None
        if int(ts.min()) < cfg.min_ts_ns or int(ts.max()) > cfg.max_ts_ns:
            return None
        prev_ts = np.concatenate(([st.last_ts], ts[:-1]))
        dts = ts - prev_ts
        if (dts < 0).any() or (dts > cfg.gap_ns).any():
            return None
        prev_px = np.concatenate(([st.last_px], px[:-1]))
        r = np.log(px / prev_px)
        a = self._alpha
        r2 = r * r
        var_after, _ = lfilter([a], [1.0, -(1.0 - a)], r2, zi=[(1.0 - a) * st.var])
        var_before = np.concatenate(([st.var], var_after[:-1]))
        k = cfg.spike_sigma
        if ((np.abs(r) > math.log1p(cfg.spike_min_frac)) & (r2 > k * k * var_before)).any():
            return None
        n = len(rec)
        seq0 = st.seq
        st.seq = seq0 + n
        st.last_ts = int(ts[-1])
        st.last_px = float(px[-1])
        st.var = float(var_after[-1])
        self.n_in.inc(n)
        sd = rec.side
        inserts: list[tuple[int, Bar]] = []
        for agg in self._aggs:
            inserts.extend(agg.update_many(sym, ts, px, sz, sd, seq0))
        ts_l = ts.tolist()
        # Simulated time: received when it happened; live: received now.
        recv = ts_l if sim else [now] * n
        trades = [
            Trade(symbol=sym, ts_event=t, ts_recv=rv, seq=q, price=p, size=z, side=d)
            for t, rv, q, p, z, d in zip(
                ts_l, recv, range(seq0 + 1, seq0 + n + 1), px.tolist(), sz.tolist(), sd.tolist(), strict=True
            )
        ]
        md_topic, bar_topic = self.topics(sym)
        if not inserts:
            return [(md_topic, trades)]
        inserts.sort(key=lambda ib: ib[0])  # stable: bar series keep config order at one index
        runs: list[tuple[str, list[Any]]] = []
        prev = 0
        for i, bar in inserts:
            if i > prev:
                runs.append((md_topic, trades[prev:i]))
                prev = i
            if runs and runs[-1][0] == bar_topic:
                runs[-1][1].append(bar)
            else:
                runs.append((bar_topic, [bar]))
        if prev < n:
            runs.append((md_topic, trades[prev:]))
        return runs

    def _reject(self, reason: str, symbol: str, ts: int, **detail: Any) -> None:
        c = self._rejected.get(reason)
        if c is None:
            c = self._rejected[reason] = self._metrics.counter("md_rejected_total", reason=reason)
        c.inc()
        if self.cfg.seq == "position" and self._at:
            detail["position"] = self._at
        raw = msgspec.json.encode({"symbol": symbol, "ts_event": ts, **detail})
        self._dead_letter(reason, raw=raw, ts_event=ts, symbol=symbol, **detail)


class _TapeInput:
    """The feed's source (a tape; any :class:`~adapters.sources.MarketSource`) as an input of
    the replay driver (:class:`engine.replay.ReplayInput`)."""

    def __init__(self, feed: MarketDataFeed, source: MarketSource, chunk: int) -> None:
        self.name = feed.ctx.name
        self.shutdown_reason = "replay finished" if feed.config.shutdown_at_end else None
        self._feed = feed
        self._source = source
        self._chunk = chunk
        self._progress: Any = None  # made at the first take: models load before the bar appears
        self._want_progress = feed.config.progress
        self._lat = feed.ctx.metrics.histogram("handler_latency_us", actor=feed.ctx.name)

    def head_ns(self) -> int | None:
        return self._source.head_ns()

    def take(self, until_ns: int) -> Sequence[Emit]:
        t0 = time.perf_counter_ns()
        rec = self._source.take(until_ns, self._chunk)
        emits = self._feed.process(rec)
        # Wall-clock cost per record of this stage (the feed handles no messages of its own here).
        self._lat.observe((time.perf_counter_ns() - t0) / 1000.0 / len(rec))
        if self._want_progress:
            self._want_progress = False
            src = self._source
            self._progress = _progress(src.total, src.taken - len(rec), True)
        if self._progress is not None:
            self._progress.update(len(rec))
        return emits

    def finish(self) -> Sequence[Emit]:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        return self._feed.finish()


class MarketDataFeed(Actor[MarketDataFeedConfig]):
    """The market-data feed of every source; see the module docstring."""

    config_type = MarketDataFeedConfig

    async def on_start(self) -> None:
        cfg = self.config
        self.batch_size = cfg.batch_messages  # read by the mailbox loop, which starts after on_start
        self.core = FeedCore(cfg, self.ctx.metrics, self.ctx.dead_letter, self.ctx.log)
        self.done = False
        self._input: _TapeInput | None = None
        if not cfg.replays:
            return
        self._driver = ReplayDriver.of(self.ctx.runtime)
        # Kept by the driver: a restarted feed resumes the tape where its predecessor stopped.
        # A DatasetError here fails the start: there is nothing to replay, and the message says why.
        self.source = self._driver.source(f"{self.ctx.name}:tape", self._open)
        self._input = _TapeInput(self, self.source, self._safe_chunk_size())
        self._driver.attach(self._input)
        self.ctx.spawn(self._driver.serve(), name=f"{self.ctx.name}:replay")

    def _open(self) -> TapeSource:
        cfg = self.config
        tape = open_tape(
            dataset=cfg.dataset,
            file=cfg.file,
            columns=cfg.column_mapping,
            synthetic=cfg.synthetic,
            symbols=cfg.symbols,
            limit=cfg.limit,
        )
        return TapeSource(tape, name=self.ctx.name, loops=cfg.loops)

    async def on_stop(self) -> None:
        if self._input is not None:
            self._driver.detach(self._input)

    @property
    def total_events(self) -> int:
        """Records the replay hands to the feed over all passes (0 live)."""
        return self.source.total if self.config.replays else 0

    def process(self, rec: MarketRecords) -> list[Emit]:
        """Check, number and bar ``rec`` now; the runs to publish (the replay driver publishes them)."""
        clock = self.ctx.clock
        return self.core.process(rec, clock.now_ns(), isinstance(clock, SimClock))

    def finish(self) -> list[Emit]:
        """End of the replay: the open bars."""
        self.done = True
        self.ctx.log.info("replay_finished", events=self.core.n_in.value, published=self.core.n_out.value)
        return self.core.flush()

    def on_batch(self, msgs: list[Any]) -> None:
        """Live records: check and publish at once (the clock is the engine's, not ours to move)."""
        ticks: list[Trade | Quote] = []
        for m in msgs:
            t = type(m)
            if t is Trade or t is Quote:
                ticks.append(m)
                continue
            if t is Arrivals:
                if m.reset:
                    if ticks:
                        self._publish(self.process(records_from_messages(self.ctx.name, ticks)))
                        ticks = []
                    self.core.forget_streams(m.reset)
                stream_of = self.core.stream_of
                for x in m.msgs:
                    stream_of[x.symbol] = x.seq >> OFFSET_BITS
                for run in _runs(m.msgs):
                    if ticks and type(run[0]) is not Bar:
                        ticks.extend(run)
                        continue
                    if ticks:
                        self._publish(self.process(records_from_messages(self.ctx.name, ticks)))
                        ticks = []
                    if type(run[0]) is Bar:
                        for rec in _bar_records(self.ctx.name, run):
                            self._publish(self.process(rec))
                    else:
                        ticks = list(run)
                continue
            if ticks:
                self._publish(self.process(records_from_messages(self.ctx.name, ticks)))
                ticks = []
            if isinstance(m, MarketRecords):
                self._publish(self.process(m))
            else:
                self.ctx.dead_letter(f"unexpected message type {type(m).__name__}", raw=repr(m).encode())
        if ticks:
            self._publish(self.process(records_from_messages(self.ctx.name, ticks)))

    def _publish(self, emits: list[Emit]) -> None:
        bus = self.ctx.bus
        for e in emits:
            bus.publish_many(str(e.target), e.msgs)

    def _safe_chunk_size(self) -> int:
        """``chunk_size``, clamped so one chunk and what it causes fit every subscriber's mailbox.

        Between chunks the pipeline drains completely, so a mailbox holds at most
        one chunk of ticks plus the bars and forecasts they cause; a quarter of
        the smallest capacity leaves room for both, and replay never sheds.
        """
        cfg = self.config
        caps = [
            mb.capacity
            for sym in self.source.symbols
            for topic in self.core.topics(sym)
            for mb in self.ctx.bus.subscribers(topic)
        ]
        if not caps:
            return cfg.chunk_size
        safe = max(1, min(caps) // 4)
        if safe < cfg.chunk_size:
            self.ctx.log.info(
                "chunk_size_clamped", configured=cfg.chunk_size, used=safe, min_capacity=min(caps)
            )
            return safe
        return cfg.chunk_size


def _runs(msgs: list[Any]) -> list[list[Any]]:
    """``msgs`` cut into runs of bars and runs of trades and quotes, in order."""
    runs: list[list[Any]] = []
    last_bar: bool | None = None
    for m in msgs:
        is_bar = type(m) is Bar
        if is_bar is last_bar:
            runs[-1].append(m)
        else:
            runs.append([m])
            last_bar = is_bar
    return runs


def _bar_records(source: str, bars: list[Bar]) -> list[MarketRecords]:
    """Bar messages (a live source's bar records) as bar records, one per run of the same shape
    (bar length and open-to-close span); each bar's ``seq`` is its position."""
    out: list[MarketRecords] = []
    i = 0
    while i < len(bars):
        b0 = bars[i]
        shape = (b0.spec, b0.ts_event - b0.ts_open)
        j = i + 1
        while j < len(bars) and (bars[j].spec, bars[j].ts_event - bars[j].ts_open) == shape:
            j += 1
        run = bars[i:j]
        symbols: dict[str, int] = {}
        sym = np.array([symbols.setdefault(b.symbol, len(symbols)) for b in run], dtype=np.int32)
        out.append(
            MarketRecords(
                source=source,
                symbols=tuple(symbols),
                ts_ns=np.array([b.ts_event for b in run], dtype=np.int64),
                price=np.array([b.close for b in run], dtype=np.float64),
                size=np.array([b.volume for b in run], dtype=np.float64),
                side=np.zeros(len(run), dtype=np.int8),
                sym=sym,
                pos=np.array([b.seq for b in run], dtype=np.int64),
                extra={
                    "open": np.array([b.open for b in run], dtype=np.float64),
                    "high": np.array([b.high for b in run], dtype=np.float64),
                    "low": np.array([b.low for b in run], dtype=np.float64),
                },
                kind="bars",
                bar_ns=int(b0.spec) if b0.kind == "time" and math.isfinite(b0.spec) else 0,
                bar_open_ns=shape[1],
            )
        )
        i = j
    return out


def _to_runs(out: list[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
    runs: list[tuple[str, list[Any]]] = []
    for topic, msg in out:
        if runs and runs[-1][0] == topic:
            runs[-1][1].append(msg)
        else:
            runs.append((topic, [msg]))
    return runs


def _progress(total: int, done: int, enabled: bool) -> Any:
    """A tqdm bar on stderr when asked for and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    import shutil

    from tqdm import tqdm

    # Some pseudo-terminals report 0 columns; tqdm would then draw nothing.
    cols = shutil.get_terminal_size((100, 20)).columns or 100
    return tqdm(
        total=total,
        initial=done,
        unit="tick",
        unit_scale=True,
        desc="replay",
        mininterval=0.5,
        file=sys.stderr,
        ncols=cols,
    )
