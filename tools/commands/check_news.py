"""``finllm check-news --in ITEMS.jsonl --out VERDICTS.jsonl``: the news checker, offline.

Runs the same ingest and checking logic as the ``NarrativeIngest`` and
``SanityChecker`` actors over a file of news items (one JSON object per line,
DESIGN.md schema), in file order, and writes one verdict per non-blank input
line, in input order::

    {"line", "id", "verdict", "reasons", "scores", "symbols", "sentiment", "sentiment_label"}

``verdict`` is ``accepted``, ``quarantined``, ``rejected``, or ``invalid`` for
a line that is not a valid news item (``reasons`` holds the parse error).  A
bad line never stops the run.  Items held for corroboration get their final
verdict when their window ends or the input does.  Exit status 0 unless the
files cannot be opened (2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from adapters.text.checker import Analyzer, AnalyzerConfig, Decision, SanityConfig, SanityCore
from adapters.text.errors import NewsParseError
from adapters.text.news_io import read_news
from adapters.text.sentiment import label_of
from engine.messages import NewsItem

__all__ = ["check_file", "main"]


def _id_of(raw: str) -> str | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    v = obj.get("id") if isinstance(obj, dict) else None
    return v if isinstance(v, str) else None


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


def check_file(
    path: Path,
    analyzer: Analyzer,
    core: SanityCore,
    *,
    batch: int = 64,
) -> Iterator[dict[str, Any]]:
    """Yield one verdict record per non-blank line of ``path``, in input order."""
    slots: list[dict[str, Any] | None] = []
    by_item: dict[str, list[int]] = {}
    lines: list[int] = []
    emitted = 0
    pending: list[tuple[int, NewsItem]] = []

    def place(d: Decision) -> None:
        slots_for = by_item.get(d.verdict.id) or []
        if not slots_for:
            return
        slot = slots_for.pop(0)
        slots[slot] = _record(lines[slot], d)

    def run_batch() -> None:
        if not pending:
            return
        for an in analyzer.analyse_batch([it for _, it in pending]):
            for d in core.submit(an):
                place(d)
        pending.clear()

    for lineno, raw, parsed in read_news(path):
        slot = len(slots)
        slots.append(None)
        lines.append(lineno)
        if isinstance(parsed, NewsParseError):
            slots[slot] = {
                "line": lineno,
                "id": _id_of(raw),
                "verdict": "invalid",
                "reasons": [f"parse_error: {parsed}"],
                "scores": {},
                "symbols": [],
                "sentiment": 0.0,
                "sentiment_label": "neutral",
            }
        else:
            by_item.setdefault(parsed.id, []).append(slot)
            pending.append((slot, parsed))
            if len(pending) >= batch:
                run_batch()
        while emitted < len(slots) and slots[emitted] is not None:
            yield slots[emitted]  # type: ignore[misc]
            emitted += 1
    run_batch()
    for d in core.flush():
        place(d)
    while emitted < len(slots):
        rec = slots[emitted]
        if rec is None:  # cannot happen: every submitted item gets a final verdict on flush
            rec = {"line": lines[emitted], "id": None, "verdict": "invalid",
                   "reasons": ["internal: no verdict"], "scores": {}, "symbols": [],
                   "sentiment": 0.0, "sentiment_label": "neutral"}  # fmt: skip
        yield rec
        emitted += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="finllm check-news", description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", type=Path, required=True, help="news items, JSON lines")
    ap.add_argument("--out", type=Path, required=True, help="verdicts, JSON lines ('-' for stdout)")
    ap.add_argument("--k", type=int, default=2, help="independent sources needed (default 2)")
    ap.add_argument("--window-s", type=float, default=3600.0, help="corroboration window, seconds")
    ap.add_argument("--no-embed", action="store_true", help="skip MiniLM (lexicon sentiment only)")
    ap.add_argument("--universe", default="", help="instrument file (default: bundled)")
    ap.add_argument("--sources", default="", help="source priors file (default: bundled)")
    args = ap.parse_args(argv)
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
        for rec in check_file(args.inp, analyzer, core):
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
