"""Reading news items from JSON lines (the DESIGN.md schema).

One item per line: ``{"id", "ts", "source", "headline", "body"?, "symbols"?}``.
``ts`` is integer nanoseconds since the Unix epoch, or an ISO-8601 string (a
string without a UTC offset is taken as UTC).  Other keys are ignored, so
labelled files (with ``expected`` or ``category``) read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from adapters.text.errors import NewsParseError
from engine.messages import NewsItem

__all__ = ["parse_news_line", "parse_ts", "read_news"]

_MAX_LINE = 1 << 20  # 1 MiB: a news item is never that long; bigger is an attack or a bug
_decoder = msgspec.json.Decoder(dict[str, Any])


def parse_ts(value: object) -> int:
    """Nanoseconds since the epoch from an int (ns) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise NewsParseError(f"ts must be integer nanoseconds or ISO-8601, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise NewsParseError(f"ts must not be negative, got {value}")
        return value
    if isinstance(value, str):
        s = value.strip()
        if s.isdigit():
            return int(s)
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError as exc:
            raise NewsParseError(f"ts {value!r} is not ISO-8601: {exc}") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    raise NewsParseError(f"ts must be integer nanoseconds or ISO-8601, got {type(value).__name__}")


def _str_field(obj: dict[str, Any], key: str, *, required: bool) -> str:
    v = obj.get(key)
    if v is None:
        if required:
            raise NewsParseError(f"missing required field {key!r}")
        return ""
    if not isinstance(v, str):
        raise NewsParseError(f"field {key!r} must be a string, got {type(v).__name__}")
    if required and not v.strip():
        raise NewsParseError(f"field {key!r} is empty")
    return v


def parse_news_line(line: str | bytes, *, ts_recv: int = 0) -> NewsItem:
    """Parse one JSON line into a :class:`NewsItem`; raise :class:`NewsParseError` saying why not."""
    if len(line) > _MAX_LINE:
        raise NewsParseError(f"line is {len(line)} bytes, over the {_MAX_LINE} limit")
    try:
        obj = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise NewsParseError(f"invalid JSON object: {exc}") from exc
    item_id = _str_field(obj, "id", required=True)
    if "ts" not in obj:
        raise NewsParseError("missing required field 'ts'")
    ts = parse_ts(obj["ts"])
    source = _str_field(obj, "source", required=True)
    headline = _str_field(obj, "headline", required=True)
    body = _str_field(obj, "body", required=False)
    syms = obj.get("symbols") or []
    if not isinstance(syms, list) or not all(isinstance(s, str) for s in syms):
        raise NewsParseError("field 'symbols' must be a list of strings")
    return NewsItem(
        id=item_id,
        ts_event=ts,
        ts_recv=ts_recv,
        source=source,
        headline=headline,
        body=body,
        symbols=tuple(syms),
    )


def read_news(path: str | Path) -> Iterator[tuple[int, str, NewsItem | NewsParseError]]:
    """Yield ``(line number, raw line, item or error)`` for every non-blank line of ``path``.

    Undecodable bytes are replaced (and then usually fail JSON parsing), so a
    bad line never stops the file.
    """
    with Path(path).open("r", encoding="utf-8", errors="replace", newline="\n") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                yield lineno, line, parse_news_line(line)
            except NewsParseError as exc:
                yield lineno, line, exc
