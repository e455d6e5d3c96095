"""``finllm explain FORECAST_ID --run DIR``: print a forecast's versions and reasoning traces.

Reads ``DIR/forecasts.jsonl`` and ``DIR/traces.jsonl`` (one tagged message per
line, as the JSONL sinks write them) and prints, for the forecast id: every
version (edge, then refinements) with its figures, and every trace with the
features (name, value, contribution), the news ids, the models and the cloud
rationale.  ``--json`` prints one JSON object instead.  Exit 1 when the id is
not found, 2 when the run directory holds no forecasts file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from engine.messages import Forecast, ReasoningTrace

__all__ = ["explain", "main"]

_decoder = msgspec.json.Decoder(Forecast | ReasoningTrace)


def _scan(path: Path, forecast_id: str) -> tuple[list[Any], int]:
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
                msg = _decoder.decode(line)
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


def explain(forecast_id: str, run_dir: Path) -> dict[str, Any]:
    """Everything recorded about one forecast: ``{"forecast_id", "versions", "traces", "undecodable"}``."""
    forecasts, bad_f = _scan(run_dir / "forecasts.jsonl", forecast_id)
    traces, bad_t = _scan(run_dir / "traces.jsonl", forecast_id)
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


def _render(info: dict[str, Any]) -> str:
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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="finllm explain", description="print a forecast's reasoning trace")
    ap.add_argument("forecast_id")
    ap.add_argument(
        "--run", required=True, type=Path, help="run directory (holds forecasts.jsonl, traces.jsonl)"
    )
    ap.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = ap.parse_args(argv)
    run_dir: Path = args.run
    if not (run_dir / "forecasts.jsonl").exists() and not (run_dir / "traces.jsonl").exists():
        print(f"error: {run_dir} holds neither forecasts.jsonl nor traces.jsonl", file=sys.stderr)
        return 2
    info = explain(args.forecast_id, run_dir)
    if not info["versions"] and not info["traces"]:
        print(f"error: forecast {args.forecast_id!r} not found in {run_dir}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2) if args.json else _render(info))
    return 0
