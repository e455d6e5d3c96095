"""``finllm run [--config config/default.toml]``: the main job, and the blocks it is built from.

The command runs a pipeline config through the one loader
(:func:`engine.config.load_config`): the variable ``${out}`` is the run directory
``runs/<id>/``, ``--profile NAME`` applies ``[profiles.NAME]`` of the config and
``--set PATH=VALUE`` any typed override (``--set 'actors[feed].config.limit=100000'``);
it then measures the run's energy
(:mod:`adapters.energy`), and then writes from what the pipeline's sinks left
in the run directory:

* ``metrics.json`` - the engine's run summary, the energy report (joules and
  gCO2e per 1,000 forecasts), the mode timeline and the forecast calibration;
* ``report.html`` - one self-contained page with plots: price with the
  forecast quantile bands, calibration of the quantiles, latency histograms
  per tier, the degradation-mode timeline and each strategy's PnL;

and prints a short summary.  Files it reads when present: ``forecasts.jsonl``
(Forecast), ``modes.jsonl`` (ModeChange), ``results.json`` (the strategy
host's results: ``prices`` and per-strategy ``equity_curve``).

Every block below is a plain function of plain data, usable on its own:
:func:`new_run_dir`, :func:`substitute`, :func:`read_messages`,
:func:`mode_spans`, :func:`time_in_mode`, :func:`realised_returns`,
:func:`quantile_coverage`, the ``plot_*`` functions (PNG bytes), and
:func:`write_report`.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import html
import io
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from engine.health import TierState, TierStatus
from engine.messages import Forecast, ModeChange, json_decoder

__all__ = [
    "ModeSpan",
    "main",
    "mode_spans",
    "new_run_dir",
    "plot_calibration",
    "plot_latency",
    "plot_latency_summary",
    "plot_modes",
    "plot_pnl",
    "plot_price_bands",
    "quantile_coverage",
    "read_messages",
    "realised_returns",
    "substitute",
    "tier_lines",
    "time_in_mode",
    "warn_failed_tiers",
    "write_report",
]

T = TypeVar("T")
_MODE_ORDER = ("NORMAL", "CONSERVE", "DEGRADED", "SURVIVAL")
_MODE_COLORS = {"NORMAL": "#2ca02c", "CONSERVE": "#17becf", "DEGRADED": "#ff7f0e", "SURVIVAL": "#d62728"}
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}


# --- run directory and config ----------------------------------------------------------------


def new_run_dir(root: str | Path = "runs", *, now: datetime | None = None) -> Path:
    """Create and return ``root/<UTC yyyymmdd-HHMMSS>[-n]`` (a fresh directory, never reused)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        d = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory under {base} for {stamp}")


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """``obj`` (parsed TOML) with every ``${name}`` in its strings replaced from ``values``.

    The loader's own substitution (:func:`engine.compose.substitute`): an unknown name is a
    ConfigError.  ``main`` does not call it: the loader does, given ``variables``.
    """
    from engine.compose import substitute as _substitute

    return _substitute(obj, values)


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


# --- modes -------------------------------------------------------------------------------------


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


# --- calibration -----------------------------------------------------------------------------


def _horizon_ns(h: str) -> int | None:
    if len(h) < 2 or not h[:-1].isdigit() or h[-1] not in _UNIT_NS:
        return None  # event-count horizons ("50t") need the tape, not bar closes
    return int(h[:-1]) * _UNIT_NS[h[-1]]


def realised_returns(
    forecasts: Iterable[Forecast], prices: Mapping[str, Sequence[Sequence[float]]]
) -> list[tuple[Forecast, float]]:
    """Pair each forecast with its realised log return over its horizon.

    ``prices``: symbol -> [(ts_ns, price), ...] sorted by time (bar closes).  The
    price at a time is the last one at or before it; forecasts whose horizon ends
    after the series, or whose horizon is not a time span, are left out.
    """
    idx: dict[str, tuple[list[int], list[float]]] = {}
    for sym, series in prices.items():
        idx[sym] = ([int(p[0]) for p in series], [float(p[1]) for p in series])
    out: list[tuple[Forecast, float]] = []
    for f in forecasts:
        h = _horizon_ns(f.horizon)
        s = idx.get(f.symbol)
        if h is None or s is None or not s[0]:
            continue
        ts, px = s
        end = f.ts_event + h
        if end > ts[-1]:
            continue
        i0 = bisect.bisect_right(ts, f.ts_event) - 1
        i1 = bisect.bisect_right(ts, end) - 1
        if i0 < 0 or px[i0] <= 0 or px[i1] <= 0:
            continue
        out.append((f, math.log(px[i1] / px[i0])))
    return out


def quantile_coverage(pairs: Iterable[tuple[Forecast, float]]) -> dict[float, tuple[float, int]]:
    """For each quantile level: (fraction of realised returns at or below that quantile, n).

    A calibrated forecaster's coverage equals the level.
    """
    hits: dict[float, int] = {}
    counts: dict[float, int] = {}
    for f, r in pairs:
        if len(f.quantiles) != len(f.quantile_levels):
            continue
        for lv, q in zip(f.quantile_levels, f.quantiles, strict=True):
            counts[lv] = counts.get(lv, 0) + 1
            hits[lv] = hits.get(lv, 0) + (r <= q)
    return {lv: (hits[lv] / counts[lv], counts[lv]) for lv in sorted(counts)}


# --- plots (matplotlib, headless) --------------------------------------------------------


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


def plot_price_bands(
    symbol: str,
    prices: Sequence[Sequence[float]],
    forecasts: Sequence[Forecast],
    *,
    lo: float = 0.1,
    hi: float = 0.9,
) -> bytes:
    """Price (bar closes) with the forecasts' ``lo``..``hi`` quantile band and median, as prices."""
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


def plot_latency(samples_us: Mapping[str, Sequence[float]]) -> bytes:
    """Histograms (log-x) of latency samples per tier, microseconds."""
    import numpy as np

    fig, ax = _figure()
    finite = [v for vs in samples_us.values() for v in vs if v > 0]
    if finite:
        bins = np.logspace(math.log10(min(finite)), math.log10(max(finite)) + 1e-9, 50)
        for tier, vs in samples_us.items():
            pos = [v for v in vs if v > 0]
            if pos:
                ax.hist(pos, bins=bins, alpha=0.6, label=f"{tier} (n={len(pos)})")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency (us)")
    ax.set_ylabel("count")
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
    """Each strategy's PnL over time from its equity curve [(ts_ns, equity), ...]."""
    fig, ax = _figure()
    for sid, curve in curves.items():
        if not curve:
            continue
        base = (initial or {}).get(sid, float(curve[0][1]))
        ax.plot(_dt([int(c[0]) for c in curve]), [float(c[1]) - base for c in curve], lw=0.9, label=sid)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("PnL")
    if curves:
        ax.legend(fontsize=8)
    return _png(fig)


# --- the report --------------------------------------------------------------------------------


def write_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[str, bytes | None, str]],
    warnings: Sequence[str] = (),
) -> Path:
    """One self-contained HTML page: warnings first (a tier that failed), a summary table and
    (heading, PNG or None, note) sections."""
    banner = "".join(f'<p class="warning">WARNING: {html.escape(w)}</p>\n' for w in warnings)
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in summary.items()
    )
    parts = []
    for heading, png, note in figures:
        body = (
            f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            if png
            else "<p><em>no data</em></p>"
        )
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}\n<p>{html.escape(note)}</p>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
img{{max-width:100%}}.warning{{background:#fdd;border:1px solid #c00;padding:.5em;font-weight:bold}}</style>
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


def _latency_summaries(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    prefix = "handler_latency_us{actor="
    return {
        key[len(prefix) : -1]: summ
        for key, summ in metrics.get("histograms", {}).items()
        if key.startswith(prefix)
    }


def _pipeline_counts(counters: Mapping[str, int]) -> dict[str, Any]:
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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:,.4g}"
    return str(v)


# --- the command -------------------------------------------------------------------------------


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


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="finllm run", description="Run the main job and write runs/<id>/.")
    ap.add_argument("--config", default="config/default.toml")
    ap.add_argument("--runs", default="runs", help="where run directories go")
    ap.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="apply [profiles.NAME] of the config (repeatable, in order), e.g. edge-only",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override one key, value in TOML (repeatable), e.g. 'actors[feed].config.limit=100000'",
    )
    ap.add_argument(
        "--watts-per-core", type=float, default=12.0, help="CPU power model for the energy report"
    )
    ap.add_argument("--g-per-kwh", type=float, default=400.0, help="grid intensity for gCO2e")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when any configured tier (edge, news, cloud) did not start or failed every attempt",
    )
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg_path = Path(args.config)
    if not cfg_path.exists():
        print(f"finllm run: no config at {cfg_path}", file=sys.stderr)
        return 2
    from adapters.energy import EnergyConfig, EnergyMeter
    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.kernel import Engine, run_engine
    from engine.logging import configure_logging

    out = new_run_dir(args.runs)
    try:
        cfg = load_config(cfg_path, profiles=args.profile, sets=args.set, variables={"out": str(out)})
        configure_logging(cfg.engine.log_format, cfg.engine.log_level)
        engine = Engine(cfg)
        engine.build()
    except ConfigError as exc:
        out.rmdir()  # still empty: a refused config leaves no run behind
        print(f"finllm run: {exc}", file=sys.stderr)
        return 2
    meter = EnergyMeter(EnergyConfig(cpu_watts_per_core=args.watts_per_core, g_per_kwh=args.g_per_kwh))
    meter.begin()
    t0 = time.time_ns()
    summary = run_engine(engine)
    t1 = time.time_ns()
    forecasts, bad_f = read_messages(out / "forecasts.jsonl", Forecast)
    changes, bad_m = read_messages(out / "modes.jsonl", ModeChange)
    results: dict[str, Any] = {}
    if (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
    energy = meter.report(len(forecasts))
    prices = results.get("prices", {})
    coverage = quantile_coverage(realised_returns(forecasts, prices))
    ts_first = min((f.ts_event for f in forecasts), default=t0)
    ts_last = max((f.ts_event for f in forecasts), default=t1)
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
    figures: list[tuple[str, bytes | None, str]] = [
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
            plot_latency_summary(lat) if (lat := _latency_summaries(summary.metrics)) else None,
            "Per-message handler latency in each actor's mailbox loop (engine metrics).",
        ),
        ("Degradation mode", plot_modes(spans), "Every change is in metrics.json with its reason."),
        (
            "Strategy PnL",
            plot_pnl({k: v.get("equity_curve", []) for k, v in strategies.items()}) if strategies else None,
            "",
        ),
    ]
    head = {
        "config": str(cfg_path),
        "exit": f"{summary.exit_code} ({summary.reason})",
        "wall_s": summary.wall_s,
        "forecasts": len(forecasts),
        "energy_method": energy.method,
        "joules_per_1k_forecasts": energy.joules_per_1k_forecasts or math.nan,
        "gco2e_per_1k_forecasts": energy.g_co2e_per_1k_forecasts or math.nan,
        **tier_lines(summary.tiers),
        **_pipeline_counts(summary.metrics.get("counters", {})),
        **{f"pnl[{k}]": v.get("pnl_float", math.nan) for k, v in strategies.items()},
    }
    write_report(
        out / "report.html",
        title=f"finllm run {out.name}",
        summary=head,
        figures=figures,
        warnings=[f"tier {t.describe()}" for t in summary.failed_tiers()],
    )
    for k, v in head.items():
        print(f"{k:>26}: {_fmt(v)}")
    print(f"{'report':>26}: {out / 'report.html'}")
    failed = warn_failed_tiers(summary.tiers)
    if summary.exit_code == 0 and failed and args.strict:
        print(f"finllm run --strict: {len(failed)} tier(s) failed; exit 3", file=sys.stderr)
        return 3
    return summary.exit_code
