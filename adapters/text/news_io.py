"""Reading news items from JSON lines (the DESIGN.md schema), with bounded cost per line.

One item per line: ``{"id", "ts", "source", "headline", "body"?, "symbols"?}``.
``ts`` is integer nanoseconds since the Unix epoch, or an ISO-8601 string (a
string without a UTC offset is taken as UTC).  Other keys are ignored, so
labelled files (with ``expected`` or ``category``) read the same way.

Every line is checked against :class:`NewsLimits` *before* it is decoded, so
no line can cost more than its byte limit in memory or blow the interpreter's
recursion limit: a line over ``max_line_bytes`` is refused without being held
whole (the rest of it is skipped in chunks), nesting deeper than ``max_depth``
is refused by a scan that stops at the first level too deep, and bytes that
are not UTF-8 are refused with their offset.  Each refusal is a
:class:`~adapters.text.errors.NewsParseError` with a ``code``, so a reader
reports the line and carries on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import msgspec

from adapters.text.errors import NewsParseError
from engine.messages import NewsItem

__all__ = [
    "DEFAULT_LIMITS",
    "NewsLimits",
    "NewsLine",
    "excerpt",
    "nesting_exceeds",
    "parse_news_line",
    "parse_ts",
    "read_news",
    "validate_item",
]


class NewsLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Bounds on one news line or item.

    ``max_line_bytes``: bytes of one line, newline excluded (default 1 MiB: a
    news item is never that long; bigger is an attack or a bug).
    ``max_depth``: deepest nesting of JSON objects and arrays, the item's own
    object counting 1 and ``symbols`` 2 (default 16; far below the recursion
    limit of any decoder).  ``max_symbols``: entries in ``symbols``.
    ``excerpt_bytes``: how many leading bytes of a refused line are kept for
    the report or dead letter.
    """

    max_line_bytes: int = 1 << 20
    max_depth: int = 16
    max_symbols: int = 64
    excerpt_bytes: int = 256

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1 or self.max_depth < 1 or self.max_symbols < 0 or self.excerpt_bytes < 0:
            raise ValueError(f"news limits must be positive, got {self}")


DEFAULT_LIMITS = NewsLimits()


class NewsLine(NamedTuple):
    """One non-blank line of a news file.

    ``raw`` is the line's bytes without the newline; for a refused line, at most
    ``NewsLimits.excerpt_bytes`` of them.  ``result`` is the item or why not.
    """

    lineno: int
    raw: bytes
    result: NewsItem | NewsParseError


_decoder = msgspec.json.Decoder(dict[str, Any])
# A JSON string (the unrolled form runs in C without backtracking) or one bracket.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_SKIP_CHUNK = 1 << 16


def excerpt(raw: bytes, limits: NewsLimits = DEFAULT_LIMITS) -> bytes:
    """The first ``limits.excerpt_bytes`` bytes of ``raw`` (what a report keeps of a bad line)."""
    return raw[: limits.excerpt_bytes]


def nesting_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether JSON text ``raw`` nests objects/arrays deeper than ``max_depth``.

    Brackets inside strings do not count.  Linear in ``len(raw)``; stops at the
    first bracket too deep, and costs two C-level counts when ``raw`` has no
    more brackets than ``max_depth`` (every ordinary news line).
    """
    if raw.count(b"{") + raw.count(b"[") <= max_depth:
        return False
    depth = 0
    for m in _STRUCTURE.finditer(raw):
        c = m.group()
        if c in (b"{", b"["):
            depth += 1
            if depth > max_depth:
                return True
        elif c in (b"}", b"]"):
            depth -= 1
    return False


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


def _symbols(obj: dict[str, Any], limits: NewsLimits) -> tuple[str, ...]:
    syms = obj.get("symbols") or []
    if not isinstance(syms, list) or not all(isinstance(s, str) for s in syms):
        raise NewsParseError("field 'symbols' must be a list of strings")
    if len(syms) > limits.max_symbols:
        raise NewsParseError(f"field 'symbols' has {len(syms)} entries, over the {limits.max_symbols} limit")
    return tuple(syms)


def _decode(raw: bytes, limits: NewsLimits) -> dict[str, Any]:
    """The line's JSON object, after the size, encoding and nesting checks."""
    if len(raw) > limits.max_line_bytes:
        raise NewsParseError(
            f"line is {len(raw)} bytes, over the {limits.max_line_bytes}-byte limit", code="too_large"
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NewsParseError(
            f"invalid UTF-8 at byte {exc.start}: {exc.reason}", code="invalid_utf8"
        ) from None
    if nesting_exceeds(raw, limits.max_depth):
        raise NewsParseError(f"JSON nested deeper than {limits.max_depth} levels", code="too_deep")
    try:
        obj = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise NewsParseError(f"invalid JSON object: {exc}", code="invalid_json") from None
    except RecursionError:  # unreachable after the nesting scan; kept so no line can ever crash a reader
        raise NewsParseError("JSON nested too deep for the decoder", code="too_deep") from None
    return obj


def parse_news_line(line: str | bytes, *, ts_recv: int = 0, limits: NewsLimits = DEFAULT_LIMITS) -> NewsItem:
    """Parse one JSON line into a :class:`NewsItem`; raise :class:`NewsParseError` saying why not."""
    if isinstance(line, str):
        try:
            line = line.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: not representable in UTF-8
            raise NewsParseError(f"invalid UTF-8 at character {exc.start}", code="invalid_utf8") from None
    obj = _decode(line, limits)
    raw_id = obj.get("id")
    try:
        item_id = _str_field(obj, "id", required=True)
        if "ts" not in obj:
            raise NewsParseError("missing required field 'ts'")
        ts = parse_ts(obj["ts"])
        source = _str_field(obj, "source", required=True)
        headline = _str_field(obj, "headline", required=True)
        body = _str_field(obj, "body", required=False)
        symbols = _symbols(obj, limits)
    except NewsParseError as exc:
        exc.item_id = raw_id if isinstance(raw_id, str) else None
        raise
    return NewsItem(
        id=item_id,
        ts_event=ts,
        ts_recv=ts_recv,
        source=source,
        headline=headline,
        body=body,
        symbols=symbols,
    )


def validate_item(item: NewsItem, limits: NewsLimits = DEFAULT_LIMITS) -> None:
    """Apply the same bounds to an item that arrived already decoded (a bus or Kafka message).

    The size bound is on the UTF-8 bytes of id, source, headline, body and
    symbols together.  Raises :class:`NewsParseError` saying why.
    """
    fields = (item.id, item.source, item.headline, item.body, *item.symbols)
    size = sum(len(f.encode("utf-8", "surrogatepass")) for f in fields)
    if size > limits.max_line_bytes:
        raise NewsParseError(
            f"item text is {size} bytes, over the {limits.max_line_bytes}-byte limit",
            code="too_large",
            item_id=item.id,
        )
    if len(item.symbols) > limits.max_symbols:
        raise NewsParseError(
            f"item has {len(item.symbols)} symbols, over the {limits.max_symbols} limit", item_id=item.id
        )
    for name in ("id", "source", "headline"):
        if not getattr(item, name).strip():
            raise NewsParseError(f"field {name!r} is empty", item_id=item.id)


def _skip_rest_of_line(f: IO[bytes]) -> int:
    """Read and discard up to the next newline; return how many bytes that was, newline excluded."""
    n = 0
    while True:
        chunk = f.readline(_SKIP_CHUNK)
        if not chunk:
            return n
        if chunk.endswith(b"\n"):
            return n + len(chunk) - 1
        n += len(chunk)


def read_news(path: str | Path, limits: NewsLimits = DEFAULT_LIMITS) -> Iterator[NewsLine]:
    """Yield a :class:`NewsLine` for every non-blank line of ``path``, valid or not.

    Memory per line is bounded by ``limits.max_line_bytes``: a longer line is
    reported as ``too_large`` (with its full length) without being read whole.
    A bad line never stops the file.
    """
    cap = limits.max_line_bytes + 2  # room for the line's own "\r\n"
    with Path(path).open("rb") as f:
        lineno = 0
        while chunk := f.readline(cap):
            lineno += 1
            if len(chunk) == cap and not chunk.endswith(b"\n"):
                size = len(chunk) + _skip_rest_of_line(f)
                err = NewsParseError(
                    f"line is {size} bytes, over the {limits.max_line_bytes}-byte limit", code="too_large"
                )
                yield NewsLine(lineno, excerpt(chunk, limits), err)
                continue
            line = chunk.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                yield NewsLine(lineno, line, parse_news_line(line, limits=limits))
            except NewsParseError as exc:
                yield NewsLine(lineno, excerpt(line, limits), exc)
