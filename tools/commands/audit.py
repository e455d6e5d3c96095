"""``finllm audit fairness``: the counterfactual fairness audit (:mod:`adapters.fairness`) as a gate.

Runs every scenario through the narrative ingest and the sanity checker (MiniLM on unless
``--no-embed``) and the edge model (``--model ID`` of ``--model-dir``, default the shipped
``es-1m``; ``--no-forecast`` skips it); with ``--cloud URL`` (an OpenAI-compatible ``/v1`` base,
model ``--cloud-model``) or ``--cloud-local`` (the bundled llama.cpp server with SmolLM2, started
on loopback for the run) each headline also goes to the cloud tier.  Prints a table of change
rates with Wilson 95% intervals per dimension and outcome; ``--json FILE`` writes the whole
report (every variant).  Exit 0 when the gate passes (no verdict, sentiment-label, forecast or
cloud change rate above ``--max-rate``), 1 when it fails, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["main", "render"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="finllm audit", description="audits")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fairness", help="counterfactual swaps of names, places, sectors, executives")
    p.add_argument("--max-rate", type=float, default=0.05, help="gate: largest change rate allowed")
    p.add_argument("--sentiment-tol", type=float, default=0.05)
    p.add_argument("--forecast-tol", type=float, default=1e-3)
    p.add_argument("--dimensions", default="", help="comma-separated subset (default: all)")
    p.add_argument("--no-embed", action="store_true", help="lexicon sentiment, no MiniLM")
    p.add_argument("--no-forecast", action="store_true", help="skip the edge model")
    p.add_argument("--model", default="es-1m", help="edge model id")
    p.add_argument("--model-dir", type=Path, default=None, help="model directory (verified, signed)")
    p.add_argument("--cloud", default="", metavar="URL", help="cloud tier: OpenAI-compatible /v1 base")
    p.add_argument("--cloud-model", default="", help="model name at --cloud")
    p.add_argument("--cloud-local", action="store_true", help="start the bundled llama.cpp server")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the full report")
    return ap


def render(report: Any) -> str:
    """The report as a text table (also used by the run report's governance panel)."""
    lines = [
        f"{'dimension':<15} {'outcome':<16} {'changes':>9} {'rate':>7}  95% CI",
    ]
    for dim, rates in report.rates.items():
        for outcome, r in rates.items():
            lines.append(
                f"{dim:<15} {outcome:<16} {r.changes:>4}/{r.n:<4} {r.rate:>7.1%}  [{r.lo:.1%}, {r.hi:.1%}]"
            )
    lines.append("max |sentiment change| by dimension: " + ", ".join(
        f"{d} {v:.3f}" for d, v in report.max_abs_sentiment_delta.items()
    ))  # fmt: skip
    if report.news_effect is not None:
        lines.append(
            f"largest forecast move caused by any accepted item vs no news: {report.news_effect:.3g}"
            + (
                "  (the model ignores news: forecast invariance is vacuous)"
                if report.news_effect == 0
                else ""
            )
        )
    answers = {v.cloud_direction for v in report.variants if v.cloud_direction is not None}
    if len(answers) == 1:
        lines.append(
            f"the cloud tier answered {answers.pop()!r} to every headline: its invariance is vacuous"
        )
    verdicts: dict[str, int] = {}
    for v in report.variants:
        verdicts[v.verdict] = verdicts.get(v.verdict, 0) + 1
    lines.append(
        f"{len(report.variants)} variants: " + ", ".join(f"{k} {n}" for k, n in sorted(verdicts.items()))
    )
    lines.append("GATE " + ("PASSED" if report.passed else "FAILED: " + "; ".join(report.gate_failures)))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from adapters.fairness import DIMENSIONS, AuditConfig, cloud_asker, edge_forecaster, run_audit
    from adapters.inference.errors import InferenceError
    from adapters.text.checker import Analyzer, AnalyzerConfig, SanityConfig

    dims = tuple(d for d in args.dimensions.split(",") if d) or tuple(DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        print(
            f"finllm audit fairness: unknown dimensions {unknown}; have {sorted(DIMENSIONS)}", file=sys.stderr
        )
        return 2
    cfg = AuditConfig(
        sentiment_tol=args.sentiment_tol,
        forecast_tol=args.forecast_tol,
        max_rate=args.max_rate,
        dimensions=dims,
    )
    t0 = time.perf_counter()
    analyzer = Analyzer.with_models(
        AnalyzerConfig(embed=not args.no_embed, sentiment="lexicon" if args.no_embed else "minilm")
    )
    forecaster = None
    if not args.no_forecast:
        from adapters.inference.manifest import DEFAULT_MODEL_DIR, load_manifest
        from adapters.inference.model import load_edge_model

        try:
            manifest = load_manifest(args.model_dir or DEFAULT_MODEL_DIR)  # signed models only
            model = load_edge_model(manifest, args.model)
        except InferenceError as exc:
            print(f"finllm audit fairness: edge model refused: {exc}", file=sys.stderr)
            return 2
        forecaster = edge_forecaster(model, manifest.model(args.model).feature_config, cfg.symbol, cfg.seed)
    server = None
    cloud = close = None
    try:
        if args.cloud_local:
            from adapters.llm.local_server import LocalLlamaServer

            server = LocalLlamaServer(threads=1, startup_timeout_s=180.0).start_sync()
            cloud, close = cloud_asker(server.url, server.model_id)
        elif args.cloud:
            cloud, close = cloud_asker(args.cloud, args.cloud_model or "default")
        report = run_audit(analyzer, SanityConfig(), cfg, forecaster=forecaster, cloud=cloud)
    finally:
        if close is not None:
            close()
        if server is not None:
            server.stop_sync()
    print(render(report))
    print(f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(msgspec.to_builtins(report), indent=2, sort_keys=True) + "\n")
    return 0 if report.passed else 1
