"""``finllm explain FORECAST_ID --run DIR``: print a forecast's versions and reasoning traces.

Reads ``DIR/forecasts.jsonl`` and ``DIR/traces.jsonl`` (one tagged message per
line, as the JSONL sinks write them) and prints, for the forecast id: every
version (edge, then refinements) with its figures, and every trace with the
features (name, value, contribution), the news ids, the models and the cloud
rationale.  ``--json`` prints one JSON object instead.  Exit 1 when the id is
not found, 2 when the run directory holds no forecasts file.  The reading and the
text live in the package (:func:`adapters.reporting.explain_forecast`,
:func:`adapters.reporting.render_explanation`); this module parses flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adapters.reporting import explain_forecast, render_explanation

__all__ = ["explain", "main"]

explain = explain_forecast
"""``explain(forecast_id, run_dir)``: :func:`adapters.reporting.explain_forecast` (the old name)."""


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
    print(json.dumps(info, indent=2) if args.json else render_explanation(info))
    return 0
