"""A dataset or file tape as a time-ordered source of raw market records.

:class:`TapeSource` hands out consecutive rows of a :class:`~adapters.datasets.Tape`
as :class:`~adapters.sources.records.MarketRecords`, each row with its position
(stream = the source's ``stream``, offset = its row number counted over all passes).
It never validates, numbers, aggregates or looks at a clock.  ``loops`` passes
replay the tape again, each shifted by the tape's span so time keeps moving
forward.

:func:`open_tape` loads what a feed's config names: a dataset by name
(:data:`adapters.datasets.DATASETS`) or a CSV/Parquet file with its column
mapping, then keeps the chosen symbols and the first ``limit`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adapters.datasets import ColumnMapping, DatasetError, Tape, load_dataset, load_file
from adapters.sources.records import OFFSET_BITS, MarketRecords

__all__ = ["TapeSource", "open_tape"]


def open_tape(
    *,
    dataset: str | None = None,
    file: str | None = None,
    columns: ColumnMapping | None = None,
    synthetic: Mapping[str, Any] | None = None,
    symbols: Sequence[str] = (),
    limit: int | None = None,
) -> Tape:
    """The tape a source replays.  Raises :class:`DatasetError` saying what is wrong.

    Exactly one of ``dataset`` and ``file``; ``synthetic`` are the generator's options
    (dataset ``synthetic``); ``symbols`` keeps only these (empty: all); ``limit`` keeps
    the first N rows (after the symbol filter).
    """
    if (not dataset) == (not file):
        raise DatasetError("name exactly one of a dataset and a file")
    tape = load_file(file, columns) if file else load_dataset(str(dataset), **dict(synthetic or {}))
    if symbols:
        keep = [s for s in symbols if s in tape.symbols]
        if not keep:
            raise DatasetError(f"{tape.name}: none of the symbols {tuple(symbols)} is in the data")
        tape = tape.select(np.isin(tape.sym, [tape.symbols.index(s) for s in keep]))
    if limit is not None:
        tape = tape.head(limit)
    return tape


class TapeSource:
    """Rows of a tape, in tape order, ``loops`` times; see the module docstring.

    :meth:`take` is how a replay driver pulls: the next rows whose time is at or
    before a bound (at least one, so a driver always makes progress), at most a
    given number.  A row earlier than the one before it (a file kept in its own
    order) is simply handed out in its turn: disorder is for the feed to judge.
    """

    __slots__ = ("_i", "_k", "_n", "_span", "loops", "name", "stream", "tape")

    def __init__(self, tape: Tape, *, name: str = "", stream: int = 0, loops: int = 1) -> None:
        if loops < 1:
            raise ValueError(f"loops must be >= 1, got {loops}")
        if len(tape) * loops >= 1 << OFFSET_BITS:
            raise ValueError(f"{tape.name}: too many rows to carry positions")
        self.tape = tape
        self.name = name or tape.name
        self.stream = stream
        self.loops = loops
        self._n = len(tape)
        # The shift between passes: the tape's whole span, so pass k+1 starts after pass k ends.
        self._span = int(tape.ts_ns.max() - tape.ts_ns.min()) + 1 if self._n else 0
        self._i = 0  # next row of the current pass
        self._k = 0 if self._n else loops  # current pass (an empty tape is done at once)

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.tape.symbols

    @property
    def total(self) -> int:
        """Rows over all passes."""
        return self._n * self.loops

    @property
    def taken(self) -> int:
        """Rows handed out so far."""
        return self._k * self._n + self._i if self._k < self.loops else self.total

    def head_ns(self) -> int | None:
        """Event time of the next row (shifted for its pass), or None when every pass is done."""
        if self._k >= self.loops:
            return None
        return int(self.tape.ts_ns[self._i]) + self._k * self._span

    def take(self, until_ns: int, limit: int) -> MarketRecords:
        """The next rows with time <= ``until_ns`` (at least one), at most ``limit``.

        Raises ``IndexError`` when the source is exhausted (check :meth:`head_ns`).
        """
        if self._k >= self.loops:
            raise IndexError(f"{self.name}: no rows left")
        tape = self.tape
        i, k = self._i, self._k
        shift = k * self._span
        stop = min(self._n, i + max(1, limit))
        window = tape.ts_ns[i:stop]
        over = np.flatnonzero(window > until_ns - shift)
        if len(over):
            stop = i + max(1, int(over[0]))
        ts = tape.ts_ns[i:stop]
        first = k * self._n + i
        pos = np.arange(first + 1, first + 1 + (stop - i), dtype=np.int64)
        if self.stream:
            pos |= self.stream << OFFSET_BITS
        rec = MarketRecords(
            source=self.name,
            symbols=tape.symbols,
            ts_ns=ts + shift if shift else ts,
            price=tape.price[i:stop],
            size=tape.size[i:stop],
            side=tape.side[i:stop],
            sym=tape.sym[i:stop],
            pos=pos,
            extra={c: v[i:stop] for c, v in tape.extra.items()},
            kind=tape.kind,
            bar_ns=tape.bar_ns,
            bar_open_ns=tape.bar_open_ns,
            pass_no=k,
        )
        if stop >= self._n:
            self._i = 0
            self._k = k + 1
        else:
            self._i = stop
        return rec
