"""``finllm check-news --in ITEMS.jsonl --out VERDICTS.jsonl``: the news checker, offline.

Runs the same ingest and checking logic as the ``NarrativeIngest`` and
``SanityChecker`` actors over a file of news items (one JSON object per line,
DESIGN.md schema), in file order, and writes one verdict per non-blank input
line, in input order::

    {"line", "id", "verdict", "reasons", "scores", "symbols", "sentiment", "sentiment_label"}

``verdict`` is ``accepted``, ``quarantined``, ``rejected``, or ``invalid`` for
a line that is not a valid news item or whose analysis failed.  An invalid
record says why in ``reasons`` (``parse_error: ...`` or ``analysis_error:
...``) and carries two more keys: ``error`` (the refusal code: ``too_large``,
``too_deep``, ``invalid_utf8``, ``invalid_json``, ``invalid_field``,
``analysis``) and ``raw`` (the line's first ``--excerpt-bytes`` bytes, decoded
with undecodable bytes shown as ``\\xNN``).  Lines are bounded before they are
decoded (``--max-line-bytes``, ``--max-depth``), so no line can stop the run or
cost more than its byte limit.  Items held for corroboration get their final
verdict when their window ends or the input does.  Exit status 0 whatever the
lines hold (the bad ones are in the output and counted on stderr); 2 when the
files cannot be opened.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from adapters.text.checker import (
    AnalysedNews,
    Analyzer,
    AnalyzerConfig,
    Decision,
    SanityConfig,
    SanityCore,
)
from adapters.text.errors import NewsParseError
from adapters.text.news_io import DEFAULT_LIMITS, NewsLimits, excerpt, read_news
from adapters.text.sentiment import label_of
from engine.messages import NewsItem

__all__ = ["check_file", "main"]


def _record(line: int, d: Decision) -> dict[str, Any]:
    v = d.verdict
    return {
        "line": line,
        "id": v.id,
        "verdict": v.verdict,
        "reasons": list(v.reasons),
        "scores": v.scores,
        "symbols": list(v.symbols),
        "sentiment": v.sentiment,
        "sentiment_label": label_of(v.sentiment, 0.2),
    }


def _invalid(line: int, item_id: str | None, reason: str, code: str, raw: bytes) -> dict[str, Any]:
    return {
        "line": line,
        "id": item_id,
        "verdict": "invalid",
        "reasons": [reason],
        "scores": {},
        "symbols": [],
        "sentiment": 0.0,
        "sentiment_label": "neutral",
        "error": code,
        "raw": raw.decode("utf-8", "backslashreplace"),
    }


class _Ordered:
    """Verdict records in input order: a slot per line, filled when its verdict is final."""

    def __init__(self) -> None:
        self.slots: list[dict[str, Any] | None] = []
        self.lines: list[int] = []
        self.by_item: dict[str, list[int]] = {}
        self.emitted = 0

    def reserve(self, lineno: int, item_id: str | None = None) -> int:
        self.slots.append(None)
        self.lines.append(lineno)
        if item_id is not None:
            self.by_item.setdefault(item_id, []).append(len(self.slots) - 1)
        return len(self.slots) - 1

    def fail(self, slot: int, item_id: str, rec: dict[str, Any]) -> None:
        """File ``rec`` for an item that will get no decision (its analysis or check failed)."""
        waiting = self.by_item.get(item_id)
        if waiting is not None and slot in waiting:
            waiting.remove(slot)
            if not waiting:
                del self.by_item[item_id]
        self.slots[slot] = rec

    def place(self, d: Decision) -> None:
        """File a final decision under the oldest open slot of its item id."""
        waiting = self.by_item.get(d.verdict.id)
        if waiting:
            slot = waiting.pop(0)
            if not waiting:
                del self.by_item[d.verdict.id]
            self.slots[slot] = _record(self.lines[slot], d)

    def ready(self) -> Iterator[dict[str, Any]]:
        """Records now final at the head of the input, in order (each yielded once, then freed)."""
        while self.emitted < len(self.slots) and (rec := self.slots[self.emitted]) is not None:
            self.slots[self.emitted] = None  # written out: do not keep 200k records alive
            self.emitted += 1
            yield rec

    def rest(self) -> Iterator[dict[str, Any]]:
        """Everything left, at the end of input."""
        while self.emitted < len(self.slots):
            rec = self.slots[self.emitted]
            if rec is None:  # cannot happen: every submitted item gets a final verdict on flush
                rec = _invalid(self.lines[self.emitted], None, "internal: no verdict", "internal", b"")
            self.emitted += 1
            yield rec


def _submit(core: SanityCore, out: _Ordered, a: AnalysedNews, slot: int) -> None:
    try:
        decisions = core.submit(a)
    except Exception as exc:  # one item's failure is reported on its line; the run goes on
        reason = f"analysis_error: check failed: {type(exc).__name__}: {exc}"[:500]
        out.fail(slot, a.item.id, _invalid(out.lines[slot], a.item.id, reason, "analysis", b""))
        return
    for d in decisions:
        out.place(d)


def check_file(
    path: Path,
    analyzer: Analyzer,
    core: SanityCore,
    *,
    batch: int = 64,
    limits: NewsLimits = DEFAULT_LIMITS,
) -> Iterator[dict[str, Any]]:
    """Yield one verdict record per non-blank line of ``path``, in input order."""
    out = _Ordered()
    pending: list[tuple[int, NewsItem, bytes]] = []

    def run_batch() -> None:
        outcomes = analyzer.analyse_each([it for _, it, _ in pending])
        for (slot, it, raw), a in zip(pending, outcomes, strict=True):
            if isinstance(a, AnalysedNews):
                _submit(core, out, a, slot)
            else:
                rec = _invalid(
                    out.lines[slot], it.id, f"analysis_error: {a.error}", "analysis", excerpt(raw, limits)
                )
                out.fail(slot, it.id, rec)
        pending.clear()

    for lineno, raw, parsed in read_news(path, limits):
        if isinstance(parsed, NewsParseError):
            out.slots[out.reserve(lineno)] = _invalid(
                lineno, parsed.item_id, f"parse_error: {parsed}", parsed.code, raw
            )
        else:
            pending.append((out.reserve(lineno, parsed.id), parsed, raw))
            if len(pending) >= batch:
                run_batch()
        yield from out.ready()
    if pending:
        run_batch()
    for d in core.flush():
        out.place(d)
    yield from out.rest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="finllm check-news", description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", type=Path, required=True, help="news items, JSON lines")
    ap.add_argument("--out", type=Path, required=True, help="verdicts, JSON lines ('-' for stdout)")
    ap.add_argument("--k", type=int, default=2, help="independent sources needed (default 2)")
    ap.add_argument("--window-s", type=float, default=3600.0, help="corroboration window, seconds")
    ap.add_argument("--no-embed", action="store_true", help="skip MiniLM (lexicon sentiment only)")
    ap.add_argument("--universe", default="", help="instrument file (default: bundled)")
    ap.add_argument("--sources", default="", help="source priors file (default: bundled)")
    d = DEFAULT_LIMITS
    ap.add_argument("--max-line-bytes", type=int, default=d.max_line_bytes,
                    help=f"longest accepted line, bytes (default {d.max_line_bytes})")  # fmt: skip
    ap.add_argument("--max-depth", type=int, default=d.max_depth,
                    help=f"deepest accepted JSON nesting (default {d.max_depth})")  # fmt: skip
    ap.add_argument("--excerpt-bytes", type=int, default=d.excerpt_bytes,
                    help=f"bytes of a bad line kept in its record (default {d.excerpt_bytes})")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        limits = NewsLimits(
            max_line_bytes=args.max_line_bytes, max_depth=args.max_depth, excerpt_bytes=args.excerpt_bytes
        )
    except ValueError as exc:
        print(f"check-news: {exc}", file=sys.stderr)
        return 2
    if not args.inp.is_file():
        print(f"check-news: no such file: {args.inp}", file=sys.stderr)
        return 2
    acfg = AnalyzerConfig(
        universe=args.universe,
        embed=not args.no_embed,
        sentiment="lexicon" if args.no_embed else "minilm",
    )
    scfg = SanityConfig(k=args.k, window_s=args.window_s, sources=args.sources)
    t0 = time.perf_counter()
    analyzer = Analyzer.with_models(acfg)
    core = SanityCore(scfg)
    counts: dict[str, int] = {}
    enc = msgspec.json.Encoder()
    out = sys.stdout.buffer if str(args.out) == "-" else None
    try:
        f = out or args.out.open("wb")
    except OSError as exc:
        print(f"check-news: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    n = 0
    try:
        for rec in check_file(args.inp, analyzer, core, limits=limits):
            f.write(enc.encode(rec) + b"\n")
            counts[rec["verdict"]] = counts.get(rec["verdict"], 0) + 1
            n += 1
    finally:
        if out is None:
            f.close()
    dt = time.perf_counter() - t0
    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"check-news: {n} lines in {dt:.2f}s: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
