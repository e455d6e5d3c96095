"""MarketDataFeed: replays a dataset or file onto the bus, checked, numbered and barred.

Per event, in order:

1. **Validation** (bad ticks are dead-lettered with the reason, never published):
   ``non_positive_price``, ``non_positive_size``, ``crossed_quote`` (bid >= ask),
   ``duplicate_seq`` (see numbering),
   ``out_of_order`` (earlier than the symbol's last accepted event),
   ``stale`` (older than ``stale_ns`` behind the feed's clock), ``spike`` (a
   log return beyond ``spike_sigma`` standard deviations of a per-symbol EWMA
   estimate *and* beyond ``spike_min_frac``; the estimate starts as the mean
   of the first ``spike_warmup`` squared returns, which are not checked;
   after a time gap of ``gap_ns`` the reference and estimate reset, and
   ``spike_reset`` consecutive spikes that agree with each other are taken as
   a genuine level shift and accepted).
2. **Numbering**: accepted events get per-symbol sequence numbers ``seq``
   1, 2, 3... without holes.  When the source has its own numbering (a file
   with ``mapping.seq``), a jump in it counts the missing events as gaps
   (``md_seq_gaps_total``, logged) and a repeated or older number is
   dead-lettered ``duplicate_seq``; a pause longer than ``gap_ns`` between a
   symbol's events is counted in ``md_time_gaps_total``.
3. **Bars**: each trade updates the configured bar series; closed bars are
   published on ``bar.<SYM>`` just before the trade that closed them.
4. **Publishing** on ``md.<SYM>`` in chunks of ``chunk_size`` events.  With the
   simulated clock the feed moves the clock through the events' ``ts_event``
   (a timer due between two events fires between them; handlers see the clock
   at the end of the published run, so they take event time from
   ``ts_event``) and, between chunks, waits
   until every mailbox is empty (``bus.wait_idle``): downstream never sheds,
   and the run is deterministic (``chunk_size`` is clamped to a quarter of the
   smallest subscriber mailbox, so a chunk and what it causes always fit).
   ``conflate`` drops a quote when a newer quote
   of the same symbol follows in the same chunk before any trade of it
   (counted as ``md_conflated_total``); the newer quote takes the older one's
   place and sequence number, so numbering stays contiguous and each symbol's
   events stay in time order.

At the end of the data (after ``loops`` passes; pass ``k`` shifts times by
``k`` x the tape's span so time keeps moving forward, and each symbol's spike
reference restarts as after a halt) the feed flushes the
open bars, waits for the pipeline to go idle and asks the engine to shut down
with the reason ``replay finished``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import msgspec
import numpy as np
from scipy.signal import lfilter

from adapters.bars import BarAggregator, BarSpec
from adapters.datasets import ColumnMapping, DatasetError, Tape, load_dataset, load_file
from engine.actor import Actor
from engine.clock import SimClock
from engine.messages import Bar, Quote, Trade

__all__ = ["MarketDataFeed", "MarketDataFeedConfig"]


class MarketDataFeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the data comes from and how it is checked.

    Source: ``dataset`` (a name from :data:`adapters.datasets.DATASETS`) or
    ``file`` (CSV/Parquet, columns per ``mapping``); ``synthetic`` options for
    the ``synthetic`` dataset; ``limit`` replays only the first N rows;
    ``symbols`` keeps only these symbols (empty: all); ``loops`` passes over
    the data.  Times are ns.
    """

    dataset: str | None = "emini"
    file: str | None = None
    mapping: ColumnMapping = ColumnMapping()
    synthetic: dict[str, Any] = {}
    limit: int | None = None
    symbols: tuple[str, ...] = ()
    loops: int = 1
    chunk_size: int = 4096
    topic_prefix: str = "md"
    bars: tuple[BarSpec, ...] = (BarSpec(kind="time", size=60e9),)
    conflate: bool = False
    spike_sigma: float = 10.0
    spike_min_frac: float = 0.002
    spike_halflife: int = 200
    spike_reset: int = 3
    spike_warmup: int = 20
    gap_ns: int = 300_000_000_000
    stale_ns: int = 0
    shutdown_at_end: bool = True
    progress: bool = False
    settle_after_bars: bool = False
    """Wait for the pipeline to go idle after each bar, before the trade that closed it: slow
    consumers holding the replay (a lockstep cloud tier) then answer before the next event."""
    fast_path: bool = True
    """Validate and bar clean single-pass chunks with numpy (same output as the per-event path)."""

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.file is None):
            raise ValueError("MarketDataFeedConfig: set exactly one of dataset and file")
        if self.chunk_size < 1 or self.loops < 1:
            raise ValueError("MarketDataFeedConfig: chunk_size and loops must be >= 1")


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


class MarketDataFeed(Actor[MarketDataFeedConfig]):
    """The replay source; see the module docstring."""

    config_type = MarketDataFeedConfig

    async def on_start(self) -> None:
        cfg = self.config
        self._tape = self._load()
        self._sym: dict[str, _SymState] = {}
        self._aggs = [BarAggregator(spec) for spec in cfg.bars]
        self._topics: dict[str, tuple[str, str]] = {}
        m = self.ctx.metrics
        self._n_in = m.counter("md_events_in_total")
        self._n_out = m.counter("md_events_published_total")
        self._n_bars = m.counter("md_bars_published_total")
        self._n_seq_gaps = m.counter("md_seq_gaps_total")
        self._n_time_gaps = m.counter("md_time_gaps_total")
        self._n_conflated = m.counter("md_conflated_total")
        self._rejected: dict[str, Any] = {}
        self._alpha = 1.0 - 0.5 ** (1.0 / max(1, cfg.spike_halflife))
        self.done = False
        self.ctx.spawn(self._replay(), name=f"{self.ctx.name}:replay")

    def _load(self) -> Tape:
        cfg = self.config
        # A DatasetError here fails the start: there is nothing to replay, and the message says why.
        if cfg.file is not None:
            tape = load_file(cfg.file, cfg.mapping)
        else:
            assert cfg.dataset is not None
            tape = load_dataset(cfg.dataset, **cfg.synthetic)
        if cfg.symbols:
            keep = [s for s in cfg.symbols if s in tape.symbols]
            if not keep:
                raise DatasetError(f"{tape.name}: none of the symbols {cfg.symbols} is in the data")
            codes = [tape.symbols.index(s) for s in keep]
            mask = np.isin(tape.sym, codes)
            tape = Tape(
                name=tape.name,
                ts_ns=tape.ts_ns[mask],
                price=tape.price[mask],
                size=tape.size[mask],
                side=tape.side[mask],
                sym=tape.sym[mask],
                symbols=tape.symbols,
                extra={k: v[mask] for k, v in tape.extra.items()},
            )
        if cfg.limit is not None:
            tape = tape.head(cfg.limit)
        return tape

    @property
    def total_events(self) -> int:
        return len(self._tape) * self.config.loops

    # --- the replay loop ------------------------------------------------------

    async def _replay(self) -> None:
        await self.ctx.wait_started()  # every consumer has loaded its model before event one
        cfg = self.config
        tape = self._tape
        n = len(tape)
        span = int(tape.ts_ns[-1] - tape.ts_ns[0]) + 1 if n else 0
        bar = _progress(self.total_events, cfg.progress)
        perf = time.perf_counter_ns
        lat = self.ctx.metrics.histogram("handler_latency_us", actor=self.ctx.name)
        chunk = self._safe_chunk_size()
        try:
            for k in range(cfg.loops):
                shift = k * span
                if k:
                    # A new pass jumps back to the first price: a new session, not a spike.
                    for st in self._sym.values():
                        st.fresh = True
                for start in range(0, n, chunk):
                    stop = min(n, start + chunk)
                    t0 = perf()
                    runs = self._fast_chunk(tape, start, stop, shift) if cfg.fast_path else None
                    if runs is None:
                        runs = _to_runs(self._chunk(tape, start, stop, shift))
                    await self._publish_runs(runs)
                    # Wall-clock cost per event of this stage (the feed handles no messages of its own).
                    lat.observe((perf() - t0) / 1000.0 / (stop - start))
                    if bar is not None:
                        bar.update(stop - start)
                    await self.ctx.bus.wait_idle()
            await self._flush_bars()
            await self.ctx.bus.wait_idle()
        finally:
            if bar is not None:
                bar.close()
        self.done = True
        self.ctx.log.info("replay_finished", events=self._n_in.value, published=self._n_out.value)
        if cfg.shutdown_at_end:
            self.ctx.request_shutdown("replay finished")

    def _safe_chunk_size(self) -> int:
        """``chunk_size``, clamped so one chunk and what it causes fit every subscriber's mailbox.

        Between chunks the pipeline drains completely, so a mailbox holds at most
        one chunk of ticks plus the bars and forecasts they cause; a quarter of
        the smallest capacity leaves room for both, and replay never sheds.
        """
        cfg = self.config
        caps = [
            mb.capacity
            for sym in self._tape.symbols
            for topic in (f"{cfg.topic_prefix}.{sym}", f"bar.{sym}")
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

    def _chunk(self, tape: Tape, start: int, stop: int, shift: int) -> list[tuple[str, Any]]:
        """Validate, number and bar one chunk; return (topic, message) in publishing order."""
        cfg = self.config
        symbols = tape.symbols
        ts_l = (tape.ts_ns[start:stop] + shift).tolist() if shift else tape.ts_ns[start:stop].tolist()
        px_l = tape.price[start:stop].tolist()
        sz_l = tape.size[start:stop].tolist()
        sd_l = tape.side[start:stop].tolist()
        sy_l = tape.sym[start:stop].tolist()
        quotes = "is_quote" in tape.extra
        src_l = tape.extra["src_seq"][start:stop].tolist() if "src_seq" in tape.extra else None
        if quotes:
            q_l = tape.extra["is_quote"][start:stop].tolist()
            b_l = tape.extra["bid"][start:stop].tolist()
            a_l = tape.extra["ask"][start:stop].tolist()
            bs_l = tape.extra["bid_size"][start:stop].tolist()
            as_l = tape.extra["ask_size"][start:stop].tolist()
        out: list[tuple[str, Any]] = []
        append = out.append
        states = self._sym
        topics = self._topics
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
        clock = self.ctx.clock
        sim = isinstance(clock, SimClock)
        now = clock.now_ns()
        log = math.log
        self._n_in.inc(stop - start)
        for i in range(stop - start):
            ts = ts_l[i]
            sym = symbols[sy_l[i]]
            st = states.get(sym)
            if st is None:
                st = states[sym] = _SymState()
                topics[sym] = (f"{cfg.topic_prefix}.{sym}", f"bar.{sym}")
            is_quote = quotes and q_l[i]
            # --- validation -------------------------------------------------
            if is_quote:
                bid, ask = b_l[i], a_l[i]
                if not (bid > 0 and ask > 0):
                    self._reject("non_positive_price", sym, ts, bid=bid, ask=ask)
                    continue
                if bid >= ask:
                    self._reject("crossed_quote", sym, ts, bid=bid, ask=ask)
                    continue
                px = (bid + ask) / 2.0
                size = 1.0
            else:
                px = px_l[i]
                size = sz_l[i]
                if not px > 0:  # also catches NaN
                    self._reject("non_positive_price", sym, ts, price=px, size=size)
                    continue
                if not size > 0:
                    self._reject("non_positive_size", sym, ts, price=px, size=size)
                    continue
            if src_l is not None:
                src = int(src_l[i])
                if st.src_seq and src <= st.src_seq:
                    self._reject("duplicate_seq", sym, ts, src_seq=src, last_src_seq=st.src_seq)
                    continue
                if st.src_seq and src > st.src_seq + 1:
                    self._n_seq_gaps.inc(src - st.src_seq - 1)
                    self.ctx.log.warning("md_seq_gap", symbol=sym, expected=st.src_seq + 1, got=src)
                st.src_seq = src
            if ts < st.last_ts:
                self._reject("out_of_order", sym, ts, last_ts=st.last_ts)
                continue
            if stale_ns and ts < now - stale_ns:
                self._reject("stale", sym, ts, clock_ns=now)
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
                r = log(px / st.last_px)
                r2 = r * r
                var = st.var
                if st.nret < warm:
                    st.nret += 1
                    st.var = var + (r2 - var) / st.nret
                elif abs(r) > min_frac and r2 > k2 * var:
                    pend = st.pending
                    if pend and abs(log(px / pend[-1])) > min_frac:
                        pend.clear()
                    pend.append(px)
                    if len(pend) < cfg.spike_reset:
                        self._reject("spike", sym, ts, price=px, reference=st.last_px, sigma=math.sqrt(var))
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
            md_topic, bar_topic = topics[sym]
            if is_quote:
                j = held.get(sym) if conflate else None
                if j is not None:
                    # Conflation: the newer quote takes the older one's place and number.
                    seq = out[j][1].seq
                    n_conflated += 1
                else:
                    seq = st.seq = st.seq + 1
                q = Quote(
                    symbol=sym,
                    ts_event=ts,
                    ts_recv=now if not sim else ts,
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
            seq = st.seq = st.seq + 1
            if conflate:
                held.pop(sym, None)
            side = sd_l[i]
            for agg in aggs:
                b = agg.update(sym, ts, px, size, side, seq)
                if b is not None:
                    append((bar_topic, b))
            append(
                (
                    md_topic,
                    Trade(
                        symbol=sym,
                        ts_event=ts,
                        ts_recv=now if not sim else ts,
                        seq=seq,
                        price=px,
                        size=size,
                        side=side,
                    ),
                )
            )
        if n_conflated:
            self._n_conflated.inc(n_conflated)
        return out

    def _fast_chunk(
        self, tape: Tape, start: int, stop: int, shift: int
    ) -> list[tuple[str, list[Any]]] | None:
        """The vectorised path for a chunk of trades of symbols already seen.

        Returns None, leaving the chunk to the per-event path, whenever anything
        in it needs a decision: a bad value, disorder, a gap, a spike candidate,
        a quote, a symbol's first event, or a stale check.
        """
        cfg = self.config
        if "is_quote" in tape.extra or "src_seq" in tape.extra or cfg.stale_ns:
            return None
        sy = tape.sym[start:stop]
        code = int(sy[0])
        if not (sy == code).all():
            return None  # multi-symbol chunks take the per-event path
        sym = tape.symbols[code]
        st = self._sym.get(sym)
        if st is None or not st.seq or st.pending or st.fresh or st.nret < cfg.spike_warmup:
            return None
        ts = tape.ts_ns[start:stop]
        if shift:
            ts = ts + shift
        px = tape.price[start:stop]
        sz = tape.size[start:stop]
        if not ((px > 0).all() and (sz > 0).all()):
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
        n = stop - start
        seq0 = st.seq
        st.seq = seq0 + n
        st.last_ts = int(ts[-1])
        st.last_px = float(px[-1])
        st.var = float(var_after[-1])
        self._n_in.inc(n)
        sd = tape.side[start:stop]
        inserts: list[tuple[int, Bar]] = []
        for agg in self._aggs:
            inserts.extend(agg.update_many(sym, ts, px, sz, sd, seq0))
        ts_l = ts.tolist()
        # Simulated time: received when it happened; live: received now.
        recv = ts_l if isinstance(self.ctx.clock, SimClock) else [self.ctx.clock.now_ns()] * n
        trades = [
            Trade(symbol=sym, ts_event=t, ts_recv=rv, seq=q, price=p, size=z, side=d)
            for t, rv, q, p, z, d in zip(
                ts_l, recv, range(seq0 + 1, seq0 + n + 1), px.tolist(), sz.tolist(), sd.tolist(), strict=True
            )
        ]
        md_topic, bar_topic = self._topics[sym]
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

    async def _publish_runs(self, runs: list[tuple[str, list[Any]]]) -> None:
        """Publish runs of same-topic messages in order, firing sim timers where they fall."""
        bus = self.ctx.bus
        clock = self.ctx.clock
        sim = isinstance(clock, SimClock)
        n_bars = n_md = 0
        for topic, msgs in runs:
            if not msgs:
                continue
            if sim:
                nxt = clock.next_timer_ns  # type: ignore[attr-defined]
                if nxt is not None and msgs[-1].ts_event >= nxt:
                    # Split the run so each timer fires between the right events.
                    j = 0
                    for i, m in enumerate(msgs):
                        if nxt is not None and m.ts_event >= nxt:
                            if i > j:
                                bus.publish_many(topic, msgs[j:i])
                                j = i
                            clock.advance_to(m.ts_event)  # type: ignore[attr-defined]
                            nxt = clock.next_timer_ns  # type: ignore[attr-defined]
                    clock.advance_to(msgs[-1].ts_event)  # type: ignore[attr-defined]
                    bus.publish_many(topic, msgs[j:])
                else:
                    clock.advance_to(msgs[-1].ts_event)  # type: ignore[attr-defined]
                    bus.publish_many(topic, msgs)
            else:
                bus.publish_many(topic, msgs)
            if type(msgs[0]) is Bar:
                n_bars += len(msgs)
                if self.config.settle_after_bars:
                    await bus.wait_idle()
            else:
                n_md += len(msgs)
        self._n_bars.inc(n_bars)
        self._n_out.inc(n_md)

    async def _flush_bars(self) -> None:
        out: list[tuple[str, Any]] = []
        for agg in self._aggs:
            for b in agg.flush():
                out.append((self._topics[b.symbol][1], b))
        out.sort(key=lambda tm: (tm[1].ts_event, tm[1].symbol))
        await self._publish_runs(_to_runs(out))

    def _reject(self, reason: str, symbol: str, ts: int, **detail: Any) -> None:
        c = self._rejected.get(reason)
        if c is None:
            c = self._rejected[reason] = self.ctx.metrics.counter("md_rejected_total", reason=reason)
        c.inc()
        raw = msgspec.json.encode({"symbol": symbol, "ts_event": ts, **detail})
        self.ctx.dead_letter(reason, raw=raw, ts_event=ts, symbol=symbol, **detail)


def _to_runs(out: list[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
    runs: list[tuple[str, list[Any]]] = []
    for topic, msg in out:
        if runs and runs[-1][0] == topic:
            runs[-1][1].append(msg)
        else:
            runs.append((topic, [msg]))
    return runs


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr when asked for and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    import shutil

    from tqdm import tqdm

    # Some pseudo-terminals report 0 columns; tqdm would then draw nothing.
    cols = shutil.get_terminal_size((100, 20)).columns or 100
    return tqdm(
        total=total, unit="tick", unit_scale=True, desc="replay", mininterval=0.5, file=sys.stderr, ncols=cols
    )
