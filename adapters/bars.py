"""Bar aggregation from trades: time, tick and dollar bars.

:class:`BarAggregator` takes trades one at a time (per symbol, in time order)
and returns the bars they close.  Rules:

``time`` (``size`` = interval in ns): a bar covers ``[k*size, (k+1)*size)``; it
    is emitted by the first trade at or after its end (or by :meth:`flush`),
    with ``ts_event`` = the interval end and ``ts_open`` = its start.  Intervals
    without trades produce no bar.
``tick`` (``size`` = trades per bar): emitted by its ``size``-th trade;
    ``ts_event`` = that trade's time, ``ts_open`` = the first trade's time.
``dollar`` (``size`` = notional per bar, price x size x ``multiplier``): emitted
    by the trade that brings the bar's notional to at least ``size``.

A bar's ``seq`` is the sequence number of its last trade.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from engine.messages import Bar

__all__ = ["BarAggregator", "BarSpec"]


class BarSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One bar series.  ``size``: ns (time), trades (tick), or notional (dollar).
    ``multiplier`` scales price x size into dollars (ES: 50)."""

    kind: Literal["time", "tick", "dollar"] = "time"
    size: float = 60e9
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise ValueError(f"bar size must be > 0, got {self.size}")


class _State:
    __slots__ = (
        "bucket",
        "buy",
        "close",
        "dollars",
        "high",
        "low",
        "n",
        "open",
        "ts_last",
        "ts_open",
        "volume",
    )

    def __init__(self) -> None:
        self.n = 0
        self.bucket = 0
        self.ts_open = self.ts_last = 0
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.dollars = self.buy = 0.0

    def start(self, ts: int, price: float, bucket: int) -> None:
        self.n = 0
        self.ts_open = ts
        self.bucket = bucket
        self.open = self.high = self.low = self.close = price
        self.volume = self.dollars = self.buy = 0.0


class BarAggregator:
    """Turns one series of trades into bars of one :class:`BarSpec` (any number of symbols)."""

    def __init__(self, spec: BarSpec) -> None:
        self.spec = spec
        self._kind = spec.kind
        self._size = spec.size
        self._int_size = int(spec.size)
        self._mult = spec.multiplier
        self._states: dict[str, _State] = {}
        self._seq: dict[str, int] = {}

    def update(self, symbol: str, ts: int, price: float, size: float, side: int, seq: int) -> Bar | None:
        """Add one trade; return the bar it closed, if any."""
        st = self._states.get(symbol)
        if st is None:
            st = self._states[symbol] = _State()
        out = None
        if self._kind == "time":
            bucket = ts // self._int_size
            if st.n and bucket != st.bucket:
                out = self._bar(symbol, st, (st.bucket + 1) * self._int_size, st.bucket * self._int_size)
                st.n = 0
            if not st.n:
                st.start(ts, price, bucket)
        elif not st.n:
            st.start(ts, price, 0)
        st.n += 1
        if price > st.high:
            st.high = price
        elif price < st.low:
            st.low = price
        st.close = price
        st.volume += size
        st.dollars += price * size * self._mult
        if side > 0:
            st.buy += size
        st.ts_last = ts
        self._seq[symbol] = seq
        if self._kind == "tick":
            if st.n >= self._size:
                out = self._bar(symbol, st, ts, st.ts_open)
                st.n = 0
        elif self._kind == "dollar" and st.dollars >= self._size:
            out = self._bar(symbol, st, ts, st.ts_open)
            st.n = 0
        return out

    def update_many(
        self,
        symbol: str,
        ts: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        side: np.ndarray,
        seq0: int,
    ) -> list[tuple[int, Bar]]:
        """Add consecutive trades of one symbol (numpy arrays, seq ``seq0+1``...).

        Returns ``(i, bar)`` pairs: ``bar`` was closed by trade ``i`` and goes
        just before it.  Same bars as calling :meth:`update` per trade.
        """
        n = len(ts)
        if n == 0:
            return []
        st = self._states.get(symbol)
        if st is None:
            st = self._states[symbol] = _State()
        kind = self._kind
        # closes: (trigger index, segment start, segment end exclusive)
        closes: list[tuple[int, int, int]] = []
        if kind == "time":
            bucket = ts // self._int_size
            starts = (np.flatnonzero(bucket[1:] != bucket[:-1]) + 1).tolist()
            if st.n and int(bucket[0]) != st.bucket:
                closes.append((0, 0, 0))
            prev = 0
            for j in starts:
                closes.append((j, prev, j))
                prev = j
        elif kind == "tick":
            need = int(self._size) - st.n
            j = need - 1
            prev = 0
            while j < n:
                closes.append((j, prev, j + 1))
                prev = j + 1
                j += int(self._size)
        else:
            cum = np.cumsum(price * size * self._mult)
            base = -st.dollars if st.n else 0.0
            prev = 0
            while True:
                j = int(np.searchsorted(cum, base + self._size, side="left"))
                if j >= n:
                    break
                closes.append((j, prev, j + 1))
                prev = j + 1
                base = float(cum[j])
        out: list[tuple[int, Bar]] = []
        seqs = seq0
        for trig, a, b in closes:
            if b > a:
                self._absorb(st, ts, price, size, side, a, b, kind)
            self._seq[symbol] = seqs + b if b > a else self._seq.get(symbol, 0)
            if kind == "time":
                bar = self._bar(symbol, st, (st.bucket + 1) * self._int_size, st.bucket * self._int_size)
            else:
                bar = self._bar(symbol, st, int(ts[trig]), st.ts_open)
            st.n = 0
            out.append((trig, bar))
        tail = closes[-1][2] if closes else 0
        if tail < n:
            self._absorb(st, ts, price, size, side, tail, n, kind)
            self._seq[symbol] = seq0 + n
        return out

    def _absorb(
        self,
        st: _State,
        ts: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        side: np.ndarray,
        a: int,
        b: int,
        kind: str,
    ) -> None:
        """Fold trades ``a:b`` into the open bar, in order (sums stay sequential, like update)."""
        px = price[a:b]
        if not st.n:
            st.start(int(ts[a]), float(px[0]), int(ts[a]) // self._int_size if kind == "time" else 0)
        hi = float(px.max())
        lo = float(px.min())
        if hi > st.high:
            st.high = hi
        if lo < st.low:
            st.low = lo
        st.close = float(px[-1])
        sz = size[a:b]
        # cumsum is strictly sequential, so these sums equal update()'s running totals bit for bit.
        st.volume = float(np.cumsum(np.concatenate(([st.volume], sz)))[-1])
        st.dollars = float(np.cumsum(np.concatenate(([st.dollars], px * sz * self._mult)))[-1])
        st.buy = float(np.cumsum(np.concatenate(([st.buy], np.where(side[a:b] > 0, sz, 0.0))))[-1])
        st.n += b - a
        st.ts_last = int(ts[b - 1])

    def due(self, symbol: str, now_ns: int) -> Bar | None:
        """A time bar whose interval ended by ``now_ns`` (for live clocks with no trade to close it)."""
        st = self._states.get(symbol)
        if self._kind != "time" or st is None or not st.n:
            return None
        end = (st.bucket + 1) * self._int_size
        if now_ns < end:
            return None
        st.n = 0
        return self._bar(symbol, st, end, st.bucket * self._int_size)

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s open bar and numbering, as if it had never traded (a live source's
        partition changed hands: its records are read again from a commit)."""
        self._states.pop(symbol, None)
        self._seq.pop(symbol, None)

    def flush(self) -> list[Bar]:
        """The partial bars still open (end of data), in symbol order."""
        out = []
        for symbol in sorted(self._states):
            st = self._states[symbol]
            if st.n:
                end = (st.bucket + 1) * self._int_size if self._kind == "time" else st.ts_last
                out.append(
                    self._bar(
                        symbol, st, end, st.bucket * self._int_size if self._kind == "time" else st.ts_open
                    )
                )
                st.n = 0
        return out

    def _bar(self, symbol: str, st: _State, ts_close: int, ts_open: int) -> Bar:
        return Bar(
            symbol=symbol,
            ts_event=ts_close,
            ts_open=ts_open,
            seq=self._seq.get(symbol, 0),
            open=st.open,
            high=st.high,
            low=st.low,
            close=st.close,
            volume=st.volume,
            dollar_volume=st.dollars,
            n_trades=st.n,
            buy_volume=st.buy,
            kind=self._kind,
            spec=self._size,
        )
