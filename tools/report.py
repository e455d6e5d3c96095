"""report.html for a replay run: equity curves, price with fills, latency histogram.

Plots are drawn with matplotlib (Agg backend, no display) and embedded as
base64 PNG, so the report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _legend(ax: Any, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty run has nothing to label
        ax.legend(**kw)


def _dt(ts: list[int]) -> Any:
    import numpy as np

    return np.array(ts, dtype="datetime64[ns]")


def _equity_plot(results: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    for sid, r in results.get("strategies", {}).items():
        curve = r.get("equity_curve") or []
        if curve:
            initial = float(r.get("equity", 0)) - float(r.get("pnl_float", 0))
            ax.plot(
                _dt([t for t, _ in curve]),
                [e - initial for _, e in curve],
                label=sid,
                lw=1,
            )
    ax.set_title("PnL (equity minus initial cash), sampled at bars, UTC")
    ax.set_ylabel("account currency")
    ax.grid(alpha=0.3)
    _legend(ax, loc="best")
    return _png(fig)


def _price_plot(results: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    prices = results.get("prices", {})
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if prices:
        sym = max(prices, key=lambda s: len(prices[s]))
        pts = prices[sym]
        ax.plot(_dt([t for t, _ in pts]), [p for _, p in pts], color="0.3", lw=0.8, label=f"{sym} bar close")
        markers = ["^", "v"]
        for i, (sid, r) in enumerate(results.get("strategies", {}).items()):
            fills = [f for f in r.get("fills_log", []) if f[1] == sym]
            for side, m in ((1, markers[0]), (-1, markers[1])):
                sel = [f for f in fills if f[2] == side]
                if sel:
                    ax.scatter(
                        _dt([f[0] for f in sel]),
                        [f[4] for f in sel],
                        marker=m,
                        s=14,
                        label=f"{sid} {'buy' if side > 0 else 'sell'}",
                        alpha=0.7,
                        color=f"C{i}" if side > 0 else f"C{i + 2}",
                    )
        ax.set_title(f"{sym}: price with fills")
        _legend(ax, loc="best", fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def _latency_plot(metrics: dict[str, Any]) -> str:
    """Histogram of per-message handler latency per stage.

    Built from the engine's log-bucketed histograms, read at evenly spaced
    quantiles: each quantile point carries the same share of the batches, so
    a histogram of the points is the latency distribution.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    quantiles = metrics.get("stage_latency_quantiles_us", {})
    fig, ax = plt.subplots(figsize=(10, 3.4))
    values = [v for vs in quantiles.values() for v in vs if v and v > 0]
    if values:
        bins = np.logspace(np.log10(min(values)), np.log10(max(values)), 40).tolist()
        for name in sorted(quantiles):
            pts = [v for v in quantiles[name] if v and v > 0]
            if pts:
                ax.hist(pts, bins=bins, histtype="step", lw=1.4, label=name, density=False)
        ax.set_xscale("log")
    ax.set_xlabel("µs per message (wall clock, per mailbox batch)")
    ax.set_ylabel("quantile points (0.5% of batches each)")
    ax.set_title("Handler latency per stage")
    _legend(ax, fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        try:
            x = float(x)
        except ValueError:
            return str(x)
    return f"{x:,.{nd}f}"


def write_report(out: Path, metrics: dict[str, Any], results: dict[str, Any]) -> Path:
    """Write ``out/report.html``; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    strat_rows = [
        [
            sid,
            s.get("class", ""),
            _fmt(s.get("pnl")),
            _fmt(s.get("sharpe")),
            _fmt(s.get("max_drawdown")),
            _fmt(s.get("turnover")),
            str(s.get("fills")),
            _fmt(s.get("fees")),
            str(s.get("failures")),
        ]
        for sid, s in metrics.get("strategies", {}).items()
    ]
    lat_rows = [
        [n, _fmt(h.get("p50")), _fmt(h.get("p99")), _fmt(h.get("p999")), _fmt(h.get("count"), 0)]
        for n, h in sorted(metrics.get("stage_latency_us", {}).items())
    ]
    counters = metrics.get("counters", {})
    interesting = [
        [k, str(v)] for k, v in sorted(counters.items()) if v and not k.startswith("actor_failures")
    ]
    imgs = [
        ("Equity", _equity_plot(results)),
        ("Price and fills", _price_plot(results)),
        ("Latency", _latency_plot(metrics)),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>finllm replay report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        "img{max-width:100%}</style></head><body>",
        "<h1>Replay report</h1>",
        f"<p>{metrics.get('events', 0):,} events in {_fmt(metrics.get('wall_s'))} s wall clock "
        f"({_fmt(metrics.get('events_per_s'), 0)} events/s); "
        f"ended: {html.escape(str(metrics.get('reason')))}.<br>"
        f"SHA-256 of {', '.join(metrics.get('hashed_files', []))}: "
        f"<code>{metrics.get('digest_sha256')}</code></p>",
        "<h2>Strategies</h2>",
        _table(
            strat_rows,
            ["id", "class", "PnL", "Sharpe (ann.)", "max DD", "turnover", "fills", "fees", "failures"],
        ),
        "<p>PnL is exact (Decimal) in account currency; Sharpe is annualised from bar-sampled equity; "
        "turnover is traded notional / initial cash.</p>",
    ]
    for title, b64 in imgs:
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>"
        )
    parts += [
        "<h2>Stage latency (µs per message, wall clock)</h2>",
        _table(lat_rows, ["stage", "p50", "p99", "p99.9", "messages"]),
        "<h2>Counters</h2>",
        _table(interesting, ["counter", "value"]),
        "</body></html>",
    ]
    path = out / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
