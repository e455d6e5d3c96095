"""Raw market-data records, as every source hands them to the market-data feed.

A :class:`MarketRecords` is a run of records from one source, columnar (numpy),
in source order.  Sources fill it and stop there: nothing in it is validated
(a NaN price, a crossed quote or a record out of time order stays as it came),
nothing is numbered or aggregated, and nobody has looked at a clock.  The feed
(:class:`actors.market_data.MarketDataFeed`) does all of that, for every source.

Positions: every record carries its **position** in its source, an int64
``stream << 48 | (offset + 1)`` (:func:`position`): ``stream`` names the input
(a file tape's index, or a Kafka topic index and partition, see
:func:`adapters.kafka.stream_id`), ``offset`` the record's place in it (a tape
row, a Kafka offset).  It is unique per input record and stable across restarts,
so a forecast id derived from it names the same input every time.  The layout is
the one :func:`adapters.kafka.record_position` uses, so positions from either
kind of source mean the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np

from engine.messages import Quote, Trade

__all__ = [
    "BAR_COLUMNS",
    "OFFSET_BITS",
    "QUOTE_COLUMNS",
    "MarketRecords",
    "MarketSource",
    "position",
    "records_from_messages",
    "split_position",
]

OFFSET_BITS: Final = 48
_OFFSET_MASK: Final = (1 << OFFSET_BITS) - 1
_MAX_STREAM: Final = (1 << (63 - OFFSET_BITS)) - 1

QUOTE_COLUMNS: Final = ("is_quote", "bid", "ask", "bid_size", "ask_size")
BAR_COLUMNS: Final = ("open", "high", "low")


def position(stream: int, offset: int) -> int:
    """The position of the record at ``offset`` (0-based) of input ``stream``; always >= 1."""
    if not 0 <= stream <= _MAX_STREAM or not 0 <= offset < _OFFSET_MASK:
        raise ValueError(f"stream {stream} / offset {offset} cannot carry a position")
    return (stream << OFFSET_BITS) | (offset + 1)


def split_position(pos: int) -> tuple[int, int]:
    """``(stream, offset)`` of a position made by :func:`position`."""
    return pos >> OFFSET_BITS, (pos & _OFFSET_MASK) - 1


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class MarketRecords:
    """Raw market-data records of one source, one row per record, in source order.

    ``ts_ns``  int64, event time, ns since the epoch, UTC (as the source says).
    ``price``  float64, trade price; bar rows: the close.
    ``size``   float64, trade size; bar rows: the volume.
    ``side``   int8, aggressor side 1 buy, -1 sell, 0 unknown.
    ``sym``    int32, index into ``symbols``.
    ``pos``    int64, each record's position in its source (:func:`position`).

    ``extra``: quote rows are flagged by ``is_quote`` (1.0) with ``bid``, ``ask``,
    ``bid_size``, ``ask_size``; ``src_seq`` is the source's own per-symbol numbering
    when it has one; bar rows have ``open``, ``high``, ``low``.

    ``kind``: ``"ticks"`` (trades and quotes) or ``"bars"`` (``bar_ns`` nominal bar
    length in ns, 0 unknown; a bar opens ``bar_open_ns`` before its close).
    ``pass_no``: the pass over a looping tape these records belong to (a new pass
    jumps back in price, so the feed restarts each symbol's reference).
    """

    source: str
    symbols: tuple[str, ...]
    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray
    sym: np.ndarray
    pos: np.ndarray
    extra: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    kind: Literal["ticks", "bars"] = "ticks"
    bar_ns: int = 0
    bar_open_ns: int = 0
    pass_no: int = 0

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        for name in ("price", "size", "side", "sym", "pos"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{self.source}: column {name!r} has {len(getattr(self, name))} rows, ts_ns {n}"
                )
        if self.kind == "bars" and any(c not in self.extra for c in BAR_COLUMNS):
            raise ValueError(f"{self.source}: bar records need extra columns {BAR_COLUMNS}")

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def has_quotes(self) -> bool:
        return "is_quote" in self.extra


@runtime_checkable
class MarketSource(Protocol):
    """A time-ordered source of market records a replay pulls from (a tape, a recording).

    :meth:`take` hands out the next records with time <= ``until_ns`` -- at least one,
    so a replay driver always progresses -- and at most ``limit``; :meth:`head_ns` is
    the time of the next record, None once exhausted.  ``total``/``taken`` count
    records (for progress).  :class:`~adapters.sources.TapeSource` is one.
    """

    @property
    def name(self) -> str: ...

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol the source may hand out (to size the feed's chunks by its subscribers)."""
        ...

    @property
    def total(self) -> int: ...

    @property
    def taken(self) -> int: ...

    def head_ns(self) -> int | None: ...

    def take(self, until_ns: int, limit: int) -> MarketRecords: ...


def records_from_messages(source: str, msgs: Sequence[Trade | Quote]) -> MarketRecords:
    """Decoded trades and quotes (a live source's) as records; each message's ``seq`` is its position.

    The messages' own ``ts_recv`` is dropped: the feed stamps arrival itself.
    """
    symbols: dict[str, int] = {}
    n = len(msgs)
    ts = np.empty(n, dtype=np.int64)
    price = np.empty(n, dtype=np.float64)
    size = np.empty(n, dtype=np.float64)
    side = np.zeros(n, dtype=np.int8)
    sym = np.empty(n, dtype=np.int32)
    pos = np.empty(n, dtype=np.int64)
    quote = np.zeros(n, dtype=np.float64)
    bid = np.zeros(n, dtype=np.float64)
    ask = np.zeros(n, dtype=np.float64)
    bid_size = np.zeros(n, dtype=np.float64)
    ask_size = np.zeros(n, dtype=np.float64)
    for i, m in enumerate(msgs):
        sym[i] = symbols.setdefault(m.symbol, len(symbols))
        ts[i] = m.ts_event
        pos[i] = m.seq
        if type(m) is Quote:
            quote[i] = 1.0
            bid[i], ask[i], bid_size[i], ask_size[i] = m.bid, m.ask, m.bid_size, m.ask_size
            price[i] = size[i] = 0.0
        else:
            assert type(m) is Trade
            price[i], size[i], side[i] = m.price, m.size, m.side
    extra = (
        dict(zip(QUOTE_COLUMNS, (quote, bid, ask, bid_size, ask_size), strict=True)) if quote.any() else {}
    )
    return MarketRecords(
        source=source,
        symbols=tuple(symbols),
        ts_ns=ts,
        price=price,
        size=size,
        side=side,
        sym=sym,
        pos=pos,
        extra=extra,
    )
