"""The news panel of ``report.html`` (issue 15 item 7): what the checker did with each item.

Reads ``news.jsonl`` of a run (the ``news-sink`` of ``config/default.toml``: verdicts of every
item from ``news.verdict`` and ``news.quarantine``, the ``news.verified`` items and the
``news.retracted`` withdrawals) and returns figures for :func:`adapters.reporting.write_report`:

* the price with each item marked at its time: accepted, released (held, then corroborated),
  held-and-expired (quarantined as uncorroborated), other quarantined, rejected, retracted;
* a list of the held, quarantined and rejected items with their reasons (as the figure's note;
  the first ``max_listed``).

A run without that file (an older config, or no news) gets no panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.messages import NewsRetracted, NewsVerdict, VerifiedNews, json_decoder

__all__ = ["NewsMarks", "news_figures", "read_news_marks"]

Figure = tuple[str, bytes | None, str]

_STYLE = {
    "accepted": ("^", "tab:green"),
    "released": ("P", "tab:blue"),
    "expired": ("o", "tab:orange"),
    "quarantined": ("s", "tab:purple"),
    "rejected": ("v", "black"),
    "retracted": ("X", "tab:red"),
}


class NewsMarks:
    """Per item id: its time (ns), its class (a key of the legend) and reasons, in arrival order."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[int, str, tuple[str, ...]]] = {}

    def add(self, nid: str, ts: int, kind: str, reasons: tuple[str, ...] = ()) -> None:
        self.items[nid] = (ts, kind, reasons)


def read_news_marks(path: Path) -> NewsMarks:
    """Classify every item found in ``path`` (undecodable lines are skipped)."""
    marks = NewsMarks()
    released: set[str] = set()
    retracted: dict[str, str] = {}
    verdicts: list[NewsVerdict] = []
    for line in path.read_bytes().splitlines():
        try:
            m = json_decoder.decode(line)
        except Exception:  # a torn last line of a killed run: skip it
            continue
        if isinstance(m, VerifiedNews) and m.released:
            released.add(m.id)
        elif isinstance(m, NewsRetracted):
            for r in m.retracted:
                retracted[r] = m.by
        elif isinstance(m, NewsVerdict):
            verdicts.append(m)
    for v in verdicts:
        kind: str = v.verdict
        if v.id in retracted:
            kind = "retracted"
        elif v.verdict == "accepted" and v.id in released:
            kind = "released"
        elif v.verdict == "quarantined" and v.reasons and v.reasons[0].startswith("uncorroborated"):
            kind = "expired"
        reasons = v.reasons + ((f"retracted_by:{retracted[v.id]}",) if v.id in retracted else ())
        marks.add(v.id, v.ts_event, kind, reasons)
    return marks


def news_figures(
    out: Path, prices: Mapping[str, Sequence[Sequence[float]]], *, max_listed: int = 40
) -> list[Figure]:
    """The panel's figures for a run directory ``out`` (none without ``news.jsonl``)."""
    path = out / "news.jsonl"
    if not path.is_file():
        return []
    marks = read_news_marks(path)
    if not marks.items:
        return []
    counts: dict[str, int] = {}
    for _, kind, _ in marks.items.values():
        counts[kind] = counts.get(kind, 0) + 1
    sym = next(iter(prices), "")
    png = _plot(sym, prices.get(sym, []), marks) if sym else None
    listed = [
        f"{nid} [{kind}] {', '.join(reasons)}"
        for nid, (_, kind, reasons) in marks.items.items()
        if kind not in ("accepted", "released")
    ]
    more = f"; and {len(listed) - max_listed} more" if len(listed) > max_listed else ""
    note = (
        "Counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ". "
        "Held, quarantined, rejected and retracted items with their reasons: "
        + ("; ".join(listed[:max_listed]) + more if listed else "none")
    )
    return [("News on the price chart (what the checker decided)", png, note)]


def _plot(symbol: str, prices: Sequence[Sequence[float]], marks: NewsMarks) -> bytes | None:
    import bisect

    from adapters.reporting import _dt, _figure, _legend, _png

    if not prices:
        return None
    ts = [int(p[0]) for p in prices]
    px = [float(p[1]) for p in prices]
    fig, ax = _figure()
    ax.plot(_dt(ts), px, lw=0.8, color="black", label=f"{symbol} close")
    by_kind: dict[str, tuple[list[int], list[float]]] = {}
    for t, kind, _ in marks.items.values():
        i = bisect.bisect_right(ts, t) - 1
        if i < 0 or t > ts[-1]:
            continue  # outside the chart
        xs, ys = by_kind.setdefault(kind, ([], []))
        xs.append(t)
        ys.append(px[i])
    for kind, (xs, ys) in by_kind.items():
        marker, color = _STYLE.get(kind, ("o", "gray"))
        ax.scatter(_dt(xs), ys, marker=marker, color=color, s=36, zorder=3, label=f"{kind} ({len(xs)})")
    ax.set_ylabel("price")
    _legend(ax, loc="upper left", fontsize=8)
    png: bytes = _png(fig)
    return png
