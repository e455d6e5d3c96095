"""A JSON-lines news file as a time-ordered source of raw news records.

:class:`NewsFileSource` reads lines lazily (:func:`adapters.text.news_io.read_news`:
bounded, a bad line never stops the file) and hands them out in file order as
:class:`~adapters.text.news_io.NewsLine` records (line number, raw bytes, the
decoded item or why it is not one).  It never looks at a clock and judges
nothing beyond decoding: the narrative actor dead-letters bad lines and checks
items.

A line's time is its item's ``ts_event``; a line that is not an item has no time
of its own and goes out right after the line before it (its head time is the
last item time seen).  ``untimed`` sources report every line as due at once, so
a driver hands them out before anything later.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.text.news_io import DEFAULT_LIMITS, NewsLimits, NewsLine, read_news
from engine.messages import NewsItem

__all__ = ["NewsFileSource"]

_EARLIEST = -(2**63)


class NewsFileSource:
    """Lines of a news file, in file order; see the module docstring."""

    __slots__ = ("_last_ns", "_lines", "_next", "name", "path", "taken", "untimed")

    def __init__(
        self, path: str | Path, limits: NewsLimits = DEFAULT_LIMITS, *, name: str = "", untimed: bool = False
    ) -> None:
        self.path = str(path)
        self.name = name or Path(path).name
        self.untimed = untimed
        self.taken = 0
        self._lines: Iterator[NewsLine] | None = read_news(self.path, limits)
        self._last_ns = _EARLIEST
        self._next: NewsLine | None = None
        self._advance()

    def _advance(self) -> None:
        if self._lines is None:
            self._next = None
            return
        self._next = next(self._lines, None)
        if self._next is None:
            self.close()

    def head_ns(self) -> int | None:
        """Time of the next line (see the module docstring), or None at the end of the file."""
        line = self._next
        if line is None:
            return None
        if self.untimed:
            return _EARLIEST
        if isinstance(line.result, NewsItem):
            return line.result.ts_event
        return self._last_ns

    def take(self, until_ns: int, limit: int) -> list[NewsLine]:
        """The next lines with time <= ``until_ns`` (at least one), at most ``limit``."""
        out: list[NewsLine] = []
        while self._next is not None and len(out) < max(1, limit):
            head = self.head_ns()
            if out and head is not None and head > until_ns:
                break
            line = self._next
            out.append(line)
            if isinstance(line.result, NewsItem):
                self._last_ns = max(self._last_ns, line.result.ts_event)
            self._advance()
        self.taken += len(out)
        return out

    def close(self) -> None:
        """Close the file now (also done at its end)."""
        lines, self._lines = self._lines, None
        if lines is not None and hasattr(lines, "close"):
            lines.close()
