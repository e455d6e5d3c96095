"""Run reports: reading what a pipeline's sinks wrote, the plots, and the one HTML writer.

Everything here works from the files a run leaves in its directory (``forecasts.jsonl``,
``modes.jsonl``, ``results.json``, the engine's run summary), never from a separate offline
path, and is a plain function of plain data:

* reading: :func:`read_messages` (tagged messages from a JSON-lines sink), :func:`mode_spans`
  and :func:`time_in_mode` (the degradation-mode timeline);
* plots (matplotlib, headless, PNG bytes): :func:`plot_price_bands`, :func:`plot_calibration`,
  :func:`plot_latency`, :func:`plot_latency_summary`, :func:`plot_modes`, :func:`plot_pnl`,
  :func:`plot_price_fills`;
* the one HTML writer, :func:`write_report`: a self-contained page (warnings, a summary table,
  tables, then figures embedded as base64 PNG);
* the two reports built with it: :func:`write_run_outputs` (``finllm run``: ``metrics.json`` and
  ``report.html`` with price and forecast bands, calibration, latency, modes and PnL) and
  :func:`write_replay_report` (``finllm replay``: PnL, price with fills, latency per stage,
  strategy and latency tables);
* :func:`explain_forecast` and :func:`render_explanation` (``finllm explain``): every version
  and reasoning trace recorded for one forecast id.

Scores (coverage, realised returns) come from :mod:`adapters.scoring`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from adapters.report_governance import governance_tables
from adapters.report_news import news_figures
from adapters.report_skill import with_skill_panel
from adapters.scoring import quantile_coverage, realised_returns
from engine.health import TierState, TierStatus
from engine.messages import Forecast, ModeChange, ReasoningTrace, json_decoder

if TYPE_CHECKING:
    from adapters.energy import EnergyMeter
    from engine.kernel import RunSummary

__all__ = [
    "Figure",
    "ModeSpan",
    "Table",
    "explain_forecast",
    "fmt_number",
    "latency_summaries",
    "mode_spans",
    "pipeline_counts",
    "plot_calibration",
    "plot_latency",
    "plot_latency_summary",
    "plot_modes",
    "plot_pnl",
    "plot_price_bands",
    "plot_price_fills",
    "print_summary",
    "read_messages",
    "render_explanation",
    "tier_lines",
    "time_in_mode",
    "warn_failed_tiers",
    "write_replay_report",
    "write_report",
    "write_run_outputs",
]

T = TypeVar("T")
Figure = tuple[str, bytes | None, str]
"""(heading, PNG bytes or None for "no data", note)."""
Table = tuple[str, Sequence[str], Sequence[Sequence[str]], str]
"""(heading, column names, rows of cell text, note)."""

_MODE_ORDER = ("NORMAL", "CONSERVE", "DEGRADED", "SURVIVAL")
_MODE_COLORS = {"NORMAL": "#2ca02c", "CONSERVE": "#17becf", "DEGRADED": "#ff7f0e", "SURVIVAL": "#d62728"}


# --- reading what the sinks wrote --------------------------------------------------------------


def read_messages(path: str | Path, kind: type[T]) -> tuple[list[T], int]:
    """The messages of type ``kind`` in a JSON-lines file, and how many lines could not be decoded.

    A missing file reads as nothing.  Lines of other message types are skipped silently
    (sinks may record several types); undecodable lines are counted, never dropped unseen.
    """
    p = Path(path)
    if not p.exists():
        return [], 0
    out: list[T] = []
    bad = 0
    with p.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                msg = json_decoder.decode(line)
            except msgspec.DecodeError:
                bad += 1
                continue
            if isinstance(msg, kind):
                out.append(msg)
    return out, bad


class ModeSpan(msgspec.Struct, frozen=True, kw_only=True):
    """One stretch of time in one mode: ``[ts_start, ts_end)`` in ns, with why it began."""

    mode: str
    ts_start: int
    ts_end: int
    reason: str = ""


def mode_spans(changes: Iterable[ModeChange], ts_start: int, ts_end: int) -> list[ModeSpan]:
    """The timeline from ``ts_start`` to ``ts_end``: NORMAL until the first change, and so on."""
    spans: list[ModeSpan] = []
    mode, since, reason = "NORMAL", ts_start, "start"
    for c in sorted(changes, key=lambda c: c.ts_event):
        t = min(max(c.ts_event, ts_start), ts_end)
        if t > since:
            spans.append(ModeSpan(mode=mode, ts_start=since, ts_end=t, reason=reason))
        mode, since, reason = c.mode, t, c.reason
    if ts_end > since or not spans:
        spans.append(ModeSpan(mode=mode, ts_start=since, ts_end=max(since, ts_end), reason=reason))
    return spans


def time_in_mode(spans: Iterable[ModeSpan]) -> dict[str, float]:
    """Seconds spent in each mode."""
    out = dict.fromkeys(_MODE_ORDER, 0.0)
    for s in spans:
        out[s.mode] = out.get(s.mode, 0.0) + (s.ts_end - s.ts_start) / 1e9
    return out


def latency_summaries(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per actor, the handler-latency histogram summary (p50, p99, p999, ...) of a run's metrics."""
    prefix = "handler_latency_us{actor="
    return {
        key[len(prefix) : -1]: summ
        for key, summ in metrics.get("histograms", {}).items()
        if key.startswith(prefix)
    }


def pipeline_counts(counters: Mapping[str, int]) -> dict[str, Any]:
    """What the news and cloud tiers did, from the engine's counters (absent tiers are left out)."""

    def total(prefix: str) -> int:
        return sum(v for k, v in counters.items() if k.startswith(prefix))

    out: dict[str, Any] = {}
    if any(k.startswith("news_verdicts_total") for k in counters):
        out["news accepted/quarantined/rejected"] = "/".join(
            str(total(f"news_verdicts_total{{actor=sanity,verdict={v}}}"))
            for v in ("accepted", "quarantined", "rejected")
        )
    if any(k.startswith("cloud_escalations_total") for k in counters):
        out["cloud escalated/adopted/late"] = "/".join(
            str(n)
            for n in (
                total("cloud_escalations_total"),
                total("cloud_refinements_total{actor=cloud,outcome=adopted}"),
                total("cloud_refinements_total{actor=cloud,outcome=late}"),
            )
        )
    out["dead letters"] = total("dead_letters_total")
    return out


def tier_lines(tiers: Mapping[str, TierStatus]) -> dict[str, str]:
    """``{"tier[cloud]": "failed - 13 attempts, 13 failed (first error: ...)"}`` for the summary."""
    out: dict[str, str] = {}
    for name, st in tiers.items():
        out[f"tier[{name}]"] = st.describe().split(": ", 1)[1]
    return out


def warn_failed_tiers(tiers: Mapping[str, TierStatus], prog: str = "finllm run") -> list[TierStatus]:
    """Print one WARNING line on stderr per tier that did not work; returns those tiers."""
    failed = [t for t in tiers.values() if t.state is TierState.FAILED]
    for t in failed:
        print(f"WARNING {prog}: tier {t.describe()}", file=sys.stderr)
    for t in tiers.values():
        if t.state is TierState.DEGRADED:
            print(f"warning {prog}: tier {t.describe()}", file=sys.stderr)
    return failed


# --- plots (matplotlib, headless) ----------------------------------------------------------------


def _figure(width: float = 9.0, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _dt(ts: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1e9, UTC) for t in ts]


def _legend(ax: Any, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty run has nothing to label
        ax.legend(**kw)


def plot_price_bands(
    symbol: str,
    prices: Sequence[Sequence[float]],
    forecasts: Sequence[Forecast],
    *,
    lo: float = 0.1,
    hi: float = 0.9,
) -> bytes:
    """Price (bar closes) with the forecasts' ``lo``..``hi`` quantile band and median, as prices."""
    import bisect

    fig, ax = _figure()
    ts = [int(p[0]) for p in prices]
    px = [float(p[1]) for p in prices]
    ax.plot(_dt(ts), px, lw=0.8, color="black", label=f"{symbol} close")
    band_t: list[int] = []
    band_lo: list[float] = []
    band_hi: list[float] = []
    med: list[float] = []
    for f in forecasts:
        levels = f.quantile_levels
        if lo not in levels or hi not in levels or 0.5 not in levels or not ts:
            continue
        i = bisect.bisect_right(ts, f.ts_event) - 1
        if i < 0:
            continue
        base = px[i]
        band_t.append(f.ts_event)
        band_lo.append(base * math.exp(f.quantiles[levels.index(lo)]))
        band_hi.append(base * math.exp(f.quantiles[levels.index(hi)]))
        med.append(base * math.exp(f.quantiles[levels.index(0.5)]))
    if band_t:
        d = _dt(band_t)
        ax.fill_between(d, band_lo, band_hi, color="tab:blue", alpha=0.25, lw=0, label=f"q{lo:g}-q{hi:g}")
        ax.plot(d, med, lw=0.6, color="tab:blue", label="median forecast")
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def plot_calibration(coverage: Mapping[float, tuple[float, int]]) -> bytes:
    """Observed coverage against the nominal quantile level (the diagonal is perfect)."""
    fig, ax = _figure(4.5, 4.0)
    levels = list(coverage)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.plot(levels, [coverage[lv][0] for lv in levels], marker="o")
    ax.set_xlabel("quantile level")
    ax.set_ylabel("fraction of outcomes below")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _png(fig)


def plot_latency(samples_us: Mapping[str, Sequence[float]], *, quantile_points: bool = False) -> bytes:
    """Histograms (log-x) of latency samples per tier or stage, microseconds.

    ``quantile_points``: the samples are a histogram read at evenly spaced quantiles, not
    messages (each point carries the same share of the messages, so their histogram is the
    distribution; their count says nothing, so the legend leaves it out).
    """
    import numpy as np

    fig, ax = _figure()
    finite = [v for vs in samples_us.values() for v in vs if v and v > 0]
    if finite:
        bins = np.logspace(math.log10(min(finite)), math.log10(max(finite)) + 1e-9, 50)
        for tier in sorted(samples_us):
            pos = [v for v in samples_us[tier] if v and v > 0]
            if pos:
                label = tier if quantile_points else f"{tier} (n={len(pos)})"
                ax.hist(pos, bins=bins, alpha=0.6, label=label)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency (us)")
    ax.set_ylabel("share of messages (quantile points)" if quantile_points else "count")
    return _png(fig)


def plot_latency_summary(summaries: Mapping[str, Mapping[str, float]]) -> bytes:
    """p50 / p99 / p99.9 bars per actor (or tier) from histogram summaries, microseconds, log scale."""
    import numpy as np

    fig, ax = _figure()
    names = list(summaries)
    x = np.arange(len(names))
    for k, (q, label) in enumerate((("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))):
        vals = [float(summaries[n].get(q) or 0.0) for n in names]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (us)")
    if names:
        ax.legend(fontsize=8)
    return _png(fig)


def plot_modes(spans: Sequence[ModeSpan]) -> bytes:
    """The degradation-mode timeline as coloured bars on one row per mode."""
    fig, ax = _figure(9.0, 2.2)
    for s in spans:
        y = _MODE_ORDER.index(s.mode) if s.mode in _MODE_ORDER else 0
        start = datetime.fromtimestamp(s.ts_start / 1e9, UTC)
        width = (s.ts_end - s.ts_start) / 1e9 / 86_400  # matplotlib dates are in days
        ax.barh(y, width, left=start, height=0.8, color=_MODE_COLORS.get(s.mode, "grey"))
    ax.set_yticks(range(len(_MODE_ORDER)), list(_MODE_ORDER))
    ax.xaxis_date()
    return _png(fig)


def plot_pnl(
    curves: Mapping[str, Sequence[Sequence[float]]], initial: Mapping[str, float] | None = None
) -> bytes:
    """Each strategy's PnL over time from its equity curve [(ts_ns, equity), ...].

    ``initial``: each strategy's starting equity (default: the curve's first point).
    """
    fig, ax = _figure()
    for sid, curve in curves.items():
        if not curve:
            continue
        base = (initial or {}).get(sid, float(curve[0][1]))
        ax.plot(_dt([int(c[0]) for c in curve]), [float(c[1]) - base for c in curve], lw=0.9, label=sid)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("PnL")
    _legend(ax, fontsize=8)
    return _png(fig)


def plot_price_fills(
    symbol: str, prices: Sequence[Sequence[float]], fills: Mapping[str, Sequence[Sequence[Any]]]
) -> bytes:
    """Bar closes of ``symbol`` with each strategy's fills on it (buys ^, sells v).

    ``fills``: strategy id -> fills as the strategy host logs them, ``(ts_ns, symbol, side,
    qty, price, ...)`` with side +1 (buy) or -1 (sell); fills of other symbols are left out.
    """
    fig, ax = _figure(10.0, 3.5)
    if prices:
        ax.plot(
            _dt([int(p[0]) for p in prices]),
            [float(p[1]) for p in prices],
            color="0.3",
            lw=0.8,
            label=f"{symbol} bar close",
        )
    for i, (sid, log) in enumerate(fills.items()):
        mine = [f for f in log if f[1] == symbol]
        for side, marker in ((1, "^"), (-1, "v")):
            sel = [f for f in mine if f[2] == side]
            if sel:
                ax.scatter(
                    _dt([int(f[0]) for f in sel]),
                    [float(f[4]) for f in sel],
                    marker=marker,
                    s=14,
                    label=f"{sid} {'buy' if side > 0 else 'sell'}",
                    alpha=0.7,
                    color=f"C{i}" if side > 0 else f"C{i + 2}",
                )
    ax.set_ylabel("price")
    _legend(ax, loc="best", fontsize=7)
    return _png(fig)


# --- the one HTML writer -------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:,.4g}"
    return str(v)


def fmt_number(x: Any, nd: int = 2) -> str:
    """``1,234.50``-style text of a number (or of a numeric string, e.g. an exact Decimal PnL)."""
    if x is None:
        return "n/a"
    if isinstance(x, str):
        try:
            x = float(x)
        except ValueError:
            return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:,.{nd}f}"


def _table_html(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>\n" for r in rows)
    return f'<table class="grid"><tr>{th}</tr>\n{body}</table>'


def _table_section(table: Table) -> str:
    heading, head, cells, note = table
    text = f"<h2>{html.escape(heading)}</h2>\n{_table_html(head, cells)}\n"
    return text + (f"<p>{html.escape(note)}</p>" if note else "")


def write_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[Figure] = (),
    warnings: Sequence[str] = (),
    tables: Sequence[Table] = (),
    appendix: Sequence[Table] = (),
) -> Path:
    """One self-contained HTML page; returns its path.

    In order: ``warnings`` (e.g. a tier that failed) as banners, the ``summary`` as a
    two-column table (floats to 4 significant digits, NaN as ``n/a``), ``tables``
    ``(heading, column names, rows, note)``, ``figures`` ``(heading, PNG or None, note)``
    embedded as base64 (a missing figure reads "no data"), then the ``appendix`` tables.
    """
    banner = "".join(f'<p class="warning">WARNING: {html.escape(w)}</p>\n' for w in warnings)
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in summary.items()
    )
    parts = [_table_section(t) for t in tables]
    for heading, png, note in figures:
        body = (
            f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            if png
            else "<p><em>no data</em></p>"
        )
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}\n<p>{html.escape(note)}</p>")
    parts += [_table_section(t) for t in appendix]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
img{{max-width:100%}}.warning{{background:#fdd;border:1px solid #c00;padding:.5em;font-weight:bold}}
table.grid{{border-collapse:collapse;margin:1em 0}}table.grid td,table.grid th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}}table.grid th{{background:#eee}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
{banner}<table>
{rows}
</table>
{"".join(parts)}
</body></html>
"""
    p = Path(path)
    p.write_text(page, encoding="utf-8")
    return p


# --- finllm run: metrics.json and report.html ------------------------------------------------------


def write_run_outputs(
    out: Path,
    summary: RunSummary,
    *,
    meter: EnergyMeter,
    config: str,
    ts_start: int,
    ts_end: int,
) -> dict[str, Any]:
    """Write ``out/metrics.json`` and ``out/report.html`` of a finished run; return the summary lines.

    Reads what the sinks left in ``out`` (``forecasts.jsonl``, ``modes.jsonl``,
    ``results.json``, each optional); ``meter`` was begun before the run (the energy report
    is per 1,000 forecasts written); ``ts_start``/``ts_end`` (ns) bound the mode timeline
    when the run wrote no forecasts.
    """
    forecasts, bad_f = read_messages(out / "forecasts.jsonl", Forecast)
    changes, bad_m = read_messages(out / "modes.jsonl", ModeChange)
    results: dict[str, Any] = {}
    if (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
    energy = meter.report(len(forecasts))
    prices = results.get("prices", {})
    coverage = quantile_coverage(realised_returns(forecasts, prices))
    ts_first = min((f.ts_event for f in forecasts), default=ts_start)
    ts_last = max((f.ts_event for f in forecasts), default=ts_end)
    spans = mode_spans(
        changes, min(ts_first, *(c.ts_event for c in changes)) if changes else ts_first, ts_last
    )
    doc = {
        "summary": msgspec.to_builtins(summary),
        "energy": msgspec.to_builtins(energy),
        "modes": [msgspec.to_builtins(s) for s in spans],
        "time_in_mode_s": time_in_mode(spans),
        "tiers": {k: msgspec.to_builtins(v) for k, v in summary.tiers.items()},
        "coverage": {str(k): v for k, v in coverage.items()},
        "undecodable_lines": {"forecasts.jsonl": bad_f, "modes.jsonl": bad_m},
    }
    (out / "metrics.json").write_text(json.dumps(doc, indent=1, default=str))
    strategies = results.get("strategies", {})
    sym = next(iter(prices), "")
    figures: list[Figure] = [
        (
            f"Price and forecast quantile bands ({sym})",
            plot_price_bands(sym, prices[sym], [f for f in forecasts if f.symbol == sym]) if sym else None,
            "10%-90% band and median of each edge forecast, mapped to prices from the close it saw.",
        ),
        (
            "Calibration of the quantiles",
            plot_calibration(coverage) if coverage else None,
            "On the diagonal is ideal.",
        ),
        (
            "Handler latency per actor",
            plot_latency_summary(lat) if (lat := latency_summaries(summary.metrics)) else None,
            "Per-message handler latency in each actor's mailbox loop (engine metrics).",
        ),
        ("Degradation mode", plot_modes(spans), "Every change is in metrics.json with its reason."),
        (
            "Strategy PnL",
            plot_pnl({k: v.get("equity_curve", []) for k, v in strategies.items()}) if strategies else None,
            "",
        ),
    ]
    figures += news_figures(out, prices)
    # issue 14: the same skill panel as a replay's report (edge vs baselines, from what this run wrote)
    skill_tables, figures = with_skill_panel(out, prices, [], figures)
    head = {
        "config": config,
        "exit": f"{summary.exit_code} ({summary.reason})",
        "wall_s": summary.wall_s,
        "forecasts": len(forecasts),
        "energy_method": energy.method,
        "joules_per_1k_forecasts": energy.joules_per_1k_forecasts or math.nan,
        "gco2e_per_1k_forecasts": energy.g_co2e_per_1k_forecasts or math.nan,
        **tier_lines(summary.tiers),
        **pipeline_counts(summary.metrics.get("counters", {})),
        **{f"pnl[{k}]": v.get("pnl_float", math.nan) for k, v in strategies.items()},
    }
    write_report(
        out / "report.html",
        title=f"finllm run {out.name}",
        summary=head,
        figures=figures,
        warnings=[f"tier {t.describe()}" for t in summary.failed_tiers()],
        # issue 16: models, shadow, breaker, audit
        tables=[*skill_tables, *governance_tables(out, summary.metrics)],
    )
    return head


def print_summary(head: Mapping[str, Any], report: Path) -> None:
    """The summary lines of :func:`write_run_outputs` on stdout, then where the report is."""
    for k, v in head.items():
        print(f"{k:>26}: {_fmt(v)}")
    print(f"{'report':>26}: {report}")


# --- finllm replay: report.html ---------------------------------------------------------------------


def write_replay_report(out: Path, metrics: Mapping[str, Any], results: Mapping[str, Any]) -> Path:
    """Write ``out/report.html`` of a replay from its metrics and the strategy host's results.

    ``metrics``: ``events``, ``wall_s``, ``events_per_s``, ``reason``, ``hashed_files``,
    ``digest_sha256``, ``strategies`` (per id: class, pnl, sharpe, max_drawdown, turnover,
    fills, fees, failures), ``stage_latency_us`` (per stage: p50, p99, p999, count),
    ``stage_latency_quantiles_us`` (per stage: the histogram read at evenly spaced
    quantiles) and ``counters``; ``results``: ``prices`` and per strategy ``equity_curve``,
    ``equity``, ``pnl_float``, ``fills_log``.
    """
    strategies = results.get("strategies", {})
    curves = {sid: r.get("equity_curve") or [] for sid, r in strategies.items()}
    initial = {sid: float(r.get("equity", 0)) - float(r.get("pnl_float", 0)) for sid, r in strategies.items()}
    prices = results.get("prices", {})
    sym = max(prices, key=lambda s: len(prices[s])) if prices else ""
    fills = {sid: r.get("fills_log", []) for sid, r in strategies.items()}
    figures: list[Figure] = [
        ("PnL (equity minus initial cash), sampled at bars, UTC", plot_pnl(curves, initial), ""),
        (
            f"{sym}: price with fills" if sym else "Price with fills",
            plot_price_fills(sym, prices[sym], fills) if sym else None,
            "",
        ),
        (
            "Handler latency per stage",
            plot_latency(metrics.get("stage_latency_quantiles_us", {}), quantile_points=True)
            if metrics.get("stage_latency_quantiles_us")
            else None,
            "Per-message handler latency (wall clock, per mailbox batch), from the engine's histograms "
            "read at evenly spaced quantiles: each point carries the same share of the batches.",
        ),
    ]
    strat_rows = [
        [
            sid,
            str(s.get("class", "")),
            fmt_number(s.get("pnl")),
            fmt_number(s.get("sharpe")),
            fmt_number(s.get("max_drawdown")),
            fmt_number(s.get("turnover")),
            str(s.get("fills")),
            fmt_number(s.get("fees")),
            str(s.get("failures")),
        ]
        for sid, s in metrics.get("strategies", {}).items()
    ]
    lat_rows = [
        [n, fmt_number(h.get("p50")), fmt_number(h.get("p99")), fmt_number(h.get("p999")),
         fmt_number(h.get("count"), 0)]
        for n, h in sorted(metrics.get("stage_latency_us", {}).items())
    ]  # fmt: skip
    counters = metrics.get("counters", {})
    interesting = [
        [k, str(v)] for k, v in sorted(counters.items()) if v and not k.startswith("actor_failures")
    ]
    tables: list[Table] = [
        (
            "Strategies",
            ["id", "class", "PnL", "Sharpe (ann.)", "max DD", "turnover", "fills", "fees", "failures"],
            strat_rows,
            "PnL is exact (Decimal) in account currency; Sharpe is annualised from bar-sampled equity; "
            "turnover is traded notional / initial cash.",
        ),
    ]
    appendix: list[Table] = [
        ("Stage latency (µs per message, wall clock)", ["stage", "p50", "p99", "p99.9", "messages"],
         lat_rows, ""),
        ("Counters", ["counter", "value"], interesting, ""),
    ]  # fmt: skip
    summary = {
        "events": f"{int(metrics.get('events', 0)):,}",
        "wall_s": fmt_number(metrics.get("wall_s")),
        "events_per_s": fmt_number(metrics.get("events_per_s"), 0),
        "ended": str(metrics.get("reason")),
        f"sha256 of {', '.join(metrics.get('hashed_files', []))}": str(metrics.get("digest_sha256")),
    }
    tables, figures = with_skill_panel(out, prices, tables, figures)  # issue 14: edge vs baselines
    return write_report(
        out / "report.html",
        title=f"finllm replay {out.name}",
        summary=summary,
        figures=figures,
        tables=tables,
        appendix=appendix,
    )


# --- finllm explain: one forecast's versions and reasoning traces ----------------------------------


_explain_decoder = msgspec.json.Decoder(Forecast | ReasoningTrace)


def _scan_for(path: Path, forecast_id: str) -> tuple[list[Any], int]:
    """Messages about ``forecast_id`` in ``path``, and how many lines could not be decoded."""
    found: list[Any] = []
    bad = 0
    if not path.exists():
        return found, bad
    needle = forecast_id.encode()
    with path.open("rb") as f:
        for line in f:
            if needle not in line:
                continue  # cheap pre-filter: a run can hold millions of lines
            try:
                msg = _explain_decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                # other message types (fills, dead letters) may share a file; only count real damage
                try:
                    if msgspec.json.decode(line).get("type") in {"forecast", "trace"}:
                        bad += 1
                except (msgspec.DecodeError, AttributeError):
                    bad += 1
                continue
            if msg.forecast_id == forecast_id:
                found.append(msg)
    return found, bad


def explain_forecast(forecast_id: str, run_dir: Path) -> dict[str, Any]:
    """Everything recorded about one forecast: ``{"forecast_id", "versions", "traces", "undecodable"}``."""
    forecasts, bad_f = _scan_for(run_dir / "forecasts.jsonl", forecast_id)
    traces, bad_t = _scan_for(run_dir / "traces.jsonl", forecast_id)
    # a run may write everything to one file; keep each kind where it belongs
    versions = sorted((m for m in forecasts + traces if isinstance(m, Forecast)), key=lambda f: f.version)
    trace_list = sorted(
        (m for m in forecasts + traces if isinstance(m, ReasoningTrace)), key=lambda t: t.version
    )
    return {
        "forecast_id": forecast_id,
        "versions": [msgspec.to_builtins(v) for v in _unique(versions)],
        "traces": [msgspec.to_builtins(t) for t in _unique(trace_list)],
        "undecodable": bad_f + bad_t,
    }


def _unique(items: list[Any]) -> list[Any]:
    seen: set[bytes] = set()
    out = []
    for it in items:
        key = msgspec.json.encode(it)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def _bps(x: float) -> str:
    return f"{x * 1e4:+.2f} bps"


def render_explanation(info: Mapping[str, Any]) -> str:
    """The text ``finllm explain`` prints for :func:`explain_forecast`'s result."""
    lines = [f"forecast {info['forecast_id']}"]
    for v in info["versions"]:
        lines.append(
            f"  v{v['version']} {v['tier']:<8} {v['symbol']} {v['horizon']} basis_seq={v['basis_seq']} "
            f"ts={v['ts_event']} model={v['model_id']}@{v['model_version']}"
        )
        lines.append(
            f"      point {_bps(v['point'])}  vol {v['volatility'] * 1e4:.2f} bps  "
            f"P(up) {v['direction_prob']:.2f}  confidence {v['confidence']:.2f}"
        )
        if v["quantiles"]:
            qs = "  ".join(
                f"q{lv:g} {q * 1e4:+.1f}" for lv, q in zip(v["quantile_levels"], v["quantiles"], strict=False)
            )
            lines.append(f"      quantiles (bps): {qs}")
    if not info["traces"]:
        lines.append("  no reasoning trace recorded (below the significance threshold, or not escalated)")
    for t in info["traces"]:
        lines.append(
            f"  trace {t['trace_id']} (v{t['version']}, {t['tier']}, {t['model_id']}@{t['model_version']})"
        )
        if t["summary"]:
            lines.append(f"      summary: {t['summary']}")
        for name, value, contrib in t["features"]:
            lines.append(f"      feature {name:<24} = {value:>12.6g}   contribution {contrib:+.4g}")
        if t["news_ids"]:
            lines.append(f"      news: {', '.join(t['news_ids'])}")
        if t["rationale"]:
            lines.append(f"      rationale: {t['rationale']}")
    if info["undecodable"]:
        lines.append(f"  warning: {info['undecodable']} matching line(s) could not be decoded")
    return "\n".join(lines)
