"""``finllm replay``: deterministic replay of a dataset or file through strategies.

    finllm replay --dataset emini --out runs/emini
    finllm replay --file ticks.csv --out runs/mine --strategy mypkg.mod:MyStrategy
    finllm replay --dataset emini --out runs/x --loop asyncio --limit 100000

Builds the pipeline from ``config/replay.toml`` (or ``--config``), runs it on the
engine with the simulated clock, and writes into ``--out``:

``fills.jsonl`` / ``forecasts.jsonl`` / ``deadletters.jsonl``
    Every fill and reject, forecast and dead letter, one JSON message per line.
    They carry simulated time only: two runs of one replay, on asyncio or on
    uvloop, write identical bytes; ``metrics.json`` records their SHA-256.
``results.json``
    The strategy host's results (equity curves, bar closes, fills).
``metrics.json``
    Per strategy: PnL, Sharpe, max drawdown, turnover, fills, fees; per stage
    (actor) handler latency percentiles in wall-clock microseconds; counters;
    mailbox statistics; wall time and ticks/s.  Wall-clock figures live only
    here, outside the hash.
``report.html``
    Plots (equity curves, price with fills, latency histogram).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from adapters.datasets import DATASETS, DatasetError, load_dataset, load_file
from engine.config import loads_config
from engine.errors import ConfigError
from engine.kernel import Engine, run_engine

__all__ = ["HASHED_FILES", "build_config", "digest", "main"]

HASHED_FILES = ("fills.jsonl", "forecasts.jsonl", "deadletters.jsonl")
_DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "config" / "replay.toml"
_FEED = "actors.market_data:MarketDataFeed"
_HOST = "actors.strategy_host:StrategyHost"
_EDGE = "actors.edge_reasoner:EdgeReasoner"
_BASELINE = "actors.baseline_forecaster:BaselineForecaster"

_EQUITY = {"symbol": "*", "tick_size": "0.01", "multiplier": "1", "fee_bps": "0.5"}

# Per dataset: bar series, the edge model that serves it (None: no edge forecasts), exchange
# defaults and a sensible order size.  Daily data: every row is a bar (tick bars of 1).
_PRESETS: dict[str, dict[str, Any]] = {
    "emini": {"bars": [{"kind": "time", "size": 60e9, "multiplier": 50.0}], "model": "es-1m", "qty": 1},
    "sp500": {"bars": [{"kind": "tick", "size": 1}], "model": "spx-1d", "qty": 100},
    "nasdaq": {"bars": [{"kind": "tick", "size": 1}], "model": "ndx-1d", "qty": 100},
    "sp500-tickers": {"bars": [{"kind": "tick", "size": 1}], "model": None, "qty": 100},
    "synthetic": {"bars": [{"kind": "time", "size": 1e9}], "model": None, "qty": 10},
    "file": {"bars": [{"kind": "time", "size": 60e9}], "model": None, "qty": 1},
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finllm replay", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=DATASETS, help="a bundled dataset")
    src.add_argument("--file", help="a CSV/Parquet file of trades (see --columns)")
    p.add_argument("--columns", default="", help="file column mapping, e.g. ts=time,price=px,size=qty,tz=UTC")
    p.add_argument("--news", help="a news JSONL file (enables the template's news actors)")
    p.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="DOTTED",
        help="package.module:Class (repeatable; replaces the template's strategies)",
    )
    p.add_argument(
        "--forecaster",
        choices=["auto", "edge", "baseline", "none"],
        default="auto",
        help="auto: the edge model when one serves the dataset, else none",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", default=str(_DEFAULT_TEMPLATE), help="pipeline template (TOML)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default=None)
    p.add_argument("--limit", type=int, default=None, help="replay only the first N rows")
    p.add_argument("--loops", type=int, default=1, help="passes over the data")
    p.add_argument("--latency-ns", type=int, default=None, help="order latency, simulated ns")
    p.add_argument("--slippage-ticks", type=int, default=None)
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    return p


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for c in name[1:]:
        out.append(f"_{c.lower()}" if c.isupper() else c)
    return "".join(out)


def _subst(node: Any, values: dict[str, str]) -> tuple[Any, bool]:
    """Replace ``${key}`` in every string; also say whether ``${news}`` appeared."""
    if isinstance(node, str):
        hit = "${news}" in node
        for k, v in values.items():
            node = node.replace("${" + k + "}", v)
        return node, hit
    if isinstance(node, dict):
        hit = False
        out = {}
        for k, v in node.items():
            out[k], h = _subst(v, values)
            hit = hit or h
        return out, hit
    if isinstance(node, list):
        hit = False
        items = []
        for v in node:
            x, h = _subst(v, values)
            items.append(x)
            hit = hit or h
        return items, hit
    return node, False


def _mapping(spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        k, sep, v = part.partition("=")
        if not sep:
            raise SystemExit(f"finllm replay: bad --columns entry {part!r} (want key=value)")
        out[k.strip()] = v.strip()
    return out


def build_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The pipeline as a raw dict (the template filled in) and the output directory."""
    template = Path(args.config)
    try:
        raw = tomllib.loads(template.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(template), "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(template), "", f"invalid TOML: {exc}") from None
    out = Path(args.out).resolve()
    values = {"out": str(out), "news": str(Path(args.news).resolve()) if args.news else ""}
    preset = _PRESETS[args.dataset or "file"]
    actors: list[dict[str, Any]] = []
    for actor in raw.get("actors", []):
        actor, mentions_news = _subst(actor, values)
        if mentions_news:
            if not args.news:
                continue
            actor["enabled"] = True
        actors.append(actor)
    raw["actors"] = actors
    by_class = {a.get("class"): a for a in actors}
    feed = by_class.get(_FEED)
    host = by_class.get(_HOST)
    if feed is None or host is None:
        raise ConfigError(str(template), "actors", f"a replay template needs {_FEED} and {_HOST}")
    fc = feed.setdefault("config", {})
    if args.dataset:
        fc["dataset"] = args.dataset
        fc.pop("file", None)
    else:
        fc["file"] = str(Path(args.file).resolve())
        fc["dataset"] = None
        if args.columns:
            fc["mapping"] = _mapping(args.columns)
    fc["bars"] = preset["bars"]
    if args.limit is not None:
        fc["limit"] = args.limit
    fc["loops"] = args.loops
    fc["progress"] = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    hc = host.setdefault("config", {})
    ex = hc.setdefault("exchange", {})
    if args.dataset not in ("emini", "sp500", "nasdaq"):
        ex.setdefault("default_instrument", _EQUITY)
    if args.latency_ns is not None:
        ex["latency_ns"] = args.latency_ns
    if args.slippage_ticks is not None:
        ex["slippage_ticks"] = args.slippage_ticks
    hc["results_path"] = str(out / "results.json")
    if args.strategy:
        hc["strategies"] = [
            {"id": _snake(d.rpartition(":")[2] or d.rpartition(".")[2]), "class": d} for d in args.strategy
        ]
    else:
        for s in hc.get("strategies", []):
            s.setdefault("params", {})["qty"] = preset["qty"]
    _choose_forecaster(raw, args.forecaster, preset["model"])
    if args.loop:
        raw.setdefault("engine", {})["loop"] = args.loop
    raw.setdefault("engine", {})["clock"] = "sim"
    return raw, out


def _choose_forecaster(raw: dict[str, Any], choice: str, model: str | None) -> None:
    actors = raw["actors"]
    edge = next((a for a in actors if a.get("class") == _EDGE), None)
    if choice == "auto":
        choice = "edge" if model is not None and edge is not None else "none"
    if choice != "edge" and edge is not None:
        actors.remove(edge)
    if choice == "edge":
        if edge is None:
            raise ConfigError(
                "<replay>", "actors", f"--forecaster edge needs a {_EDGE} actor in the template"
            )
        if model is None:
            raise ConfigError(
                "<replay>", "actors[edge]", "no edge model serves this dataset; use --forecaster baseline"
            )
        edge.setdefault("config", {})["model"] = model
    elif choice == "baseline":
        actors.insert(
            1,
            {
                "name": "baseline",
                "class": _BASELINE,
                "subscribe": ["bar.>"],
                "mailbox": {"capacity": 65536, "policy": "block"},
            },
        )


def _check_source(raw: dict[str, Any]) -> None:
    """Load the feed's data now (cached for the feed), so a bad source is a clear error, not a crash loop."""
    from actors.market_data import MarketDataFeedConfig

    feed = next(a for a in raw["actors"] if a.get("class") == _FEED)
    cfg = msgspec.convert(feed.get("config", {}), MarketDataFeedConfig, strict=False)
    if cfg.file is not None:
        load_file(cfg.file, cfg.mapping)
    else:
        assert cfg.dataset is not None
        load_dataset(cfg.dataset, **cfg.synthetic)


def digest(out: Path) -> str:
    """SHA-256 over the hashed outputs (name and bytes of each, in a fixed order)."""
    h = hashlib.sha256()
    for name in HASHED_FILES:
        p = out / name
        h.update(name.encode() + b"\0")
        h.update(p.read_bytes() if p.exists() else b"")
        h.update(b"\0")
    return h.hexdigest()


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _quantiles(engine: Engine, points: int = 200) -> dict[str, list[float]]:
    """Each stage's handler latency at ``points`` evenly spaced quantiles (the report's histogram)."""
    qs = [(i + 0.5) / points for i in range(points)]
    out: dict[str, list[float]] = {}
    for name, labels, h in engine.metrics.histograms():
        if name == "handler_latency_us" and h.count and "actor" in labels:
            out[labels["actor"]] = [h.percentile(q) for q in qs]
    return out


def _metrics(summary: Any, results: dict[str, Any], out: Path, wall_s: float, events: int) -> dict[str, Any]:
    snap = summary.metrics
    stages = {
        name.split("actor=", 1)[1].rstrip("}"): h
        for name, h in snap.get("histograms", {}).items()
        if name.startswith("handler_latency_us{")
    }
    strategies = {
        sid: {k: v for k, v in r.items() if k not in ("equity_curve", "fills_log")}
        for sid, r in results.get("strategies", {}).items()
    }
    metrics: dict[str, Any] = _finite(
        {
            "digest_sha256": digest(out),
            "hashed_files": list(HASHED_FILES),
            "reason": summary.reason,
            "exit_code": summary.exit_code,
            "drained": summary.drained,
            "wall_s": wall_s,
            "events": events,
            "events_per_s": events / wall_s if wall_s > 0 else None,
            "strategies": strategies,
            "stage_latency_us": stages,
            "loop_lag_us": snap.get("histograms", {}).get("loop_lag_us"),
            "counters": snap.get("counters", {}),
            "gauges": snap.get("gauges", {}),
            "mailboxes": {k: msgspec.to_builtins(v) for k, v in summary.mailboxes.items()},
        }
    )
    return metrics


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        raw, out = build_config(args)
        cfg = loads_config("", path=str(args.config), overrides=raw)
    except ConfigError as exc:
        print(f"finllm replay: config error: {exc}", file=sys.stderr)
        return 2
    try:
        _check_source(raw)
    except (DatasetError, msgspec.ValidationError, ValueError) as exc:
        print(f"finllm replay: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    engine = Engine(cfg)
    t0 = time.perf_counter()
    try:
        summary = run_engine(engine, args.loop or cfg.engine.loop)
    except (DatasetError, ConfigError) as exc:
        print(f"finllm replay: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    if summary.exit_code != 0 or summary.reason != "replay finished":
        print(f"finllm replay: run ended abnormally: {summary.reason}", file=sys.stderr)
    results_path = out / "results.json"
    results = json.loads(results_path.read_bytes()) if results_path.exists() else {}
    events = int(summary.metrics.get("counters", {}).get("md_events_in_total", 0))
    metrics = _metrics(summary, results, out, wall, events)
    metrics["stage_latency_quantiles_us"] = _quantiles(engine)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    if not args.no_report:
        from tools.report import write_report

        write_report(out, metrics, results)
    _print_summary(metrics, out)
    return 0 if summary.exit_code == 0 and summary.reason == "replay finished" else 1


def _print_summary(m: dict[str, Any], out: Path) -> None:
    print(
        f"replay: {m['events']:,} events in {m['wall_s']:.2f}s ({(m['events_per_s'] or 0):,.0f}/s), "
        f"reason: {m['reason']}"
    )
    for sid, s in m["strategies"].items():
        sharpe = s.get("sharpe")
        shown = "n/a" if sharpe is None else f"{sharpe:.2f}"
        print(
            f"  {sid:<22} pnl {float(s['pnl']):>12,.2f}  sharpe {shown:>7}"
            f"  maxdd {s['max_drawdown']:>10,.2f}  turnover {s['turnover']:>8.2f}  fills {s['fills']}"
        )
    print(f"  sha256 {m['digest_sha256']}  ->  {out}")
