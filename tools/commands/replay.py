"""``finllm replay``: deterministic replay of a dataset or file through strategies.

    finllm replay --dataset emini --out runs/emini
    finllm replay --file ticks.csv --columns ts=time,price=px,size=qty --out runs/mine \
        --strategy mypkg.mod:MyStrategy
    finllm replay --dataset emini --out runs/x --loop asyncio --limit 100000
    finllm replay --dataset emini --out runs/x --set 'actors[feed].config.chunk_size=1024'
    finllm replay --recording rec/ --out runs/replayed
    finllm replay --file bars.csv --columns ts=Date,open=Open,high=High,low=Low,close=Close \
        --model models/mine --out runs/mine      # a model from finllm train (one id: served as is)

``--recording DIR`` replays what ``finllm node --record DIR`` recorded through the node's own
pipeline (the config, profiles and overrides in ``DIR/recording.json``, then the config's
``record`` and ``recording`` profiles: the recording as the source, a simulated clock that
follows the node's recorded one, cloud refinements and mode changes from the recording) and
writes ``forecasts.jsonl`` and ``traces.jsonl`` into ``--out``, byte-identical to the node's
``DIR/forecasts.jsonl`` and ``DIR/traces.jsonl`` (:mod:`adapters.sources.recording`); it prints
whether they are.

Runs the pipeline of ``config/replay.toml`` (or ``--config``) through the one loader
(:func:`engine.config.load_config`); every flag maps to a variable, a profile or an
override of that file (the table is in its header), so a user's own replay pipeline
takes the same flags.  ``--profile`` and ``--set`` reach anything else.  Writes into
``--out``:

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
from engine.compose import Override, compose
from engine.config import EngineConfig, loads_config
from engine.errors import ConfigError
from engine.kernel import Engine, run_engine

__all__ = ["HASHED_FILES", "ReplayPlan", "build_config", "digest", "main", "plan"]

HASHED_FILES = ("fills.jsonl", "forecasts.jsonl", "deadletters.jsonl")
_DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "config" / "replay.toml"
# The actors the flags address, by name (the pipeline's contract with this command).
_FEED = "actors[feed]"
_HOST = "actors[host]"
_EDGE = "actors[edge]"
_BASELINE = "actors[baseline]"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finllm replay", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=DATASETS, help="a bundled dataset (applies [profiles.NAME])")
    src.add_argument("--file", help="a CSV/Parquet file of trades (see --columns; applies [profiles.file])")
    src.add_argument("--recording", metavar="DIR", help="a live node's recording (finllm node --record DIR)")
    p.add_argument(
        "--columns",
        default="",
        help="file column mapping: actors[feed].config.mapping keys, e.g. ts=time,price=px,size=qty,tz=UTC",
    )
    p.add_argument(
        "--news", help="a news JSONL file: ${news}, [profiles.news] and the actors reading ${news}"
    )
    p.add_argument("--model", help="edge model id (actors[edge].config.model) or model directory (model_dir)")
    p.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="DOTTED",
        help="package.module:Class (repeatable; replaces the config's strategies)",
    )
    p.add_argument(
        "--forecaster",
        choices=["auto", "edge", "baseline", "none"],
        default="auto",
        help="auto: as the config and the dataset's profile say (the edge model where one serves it)",
    )
    p.add_argument("--out", required=True, help="output directory: ${out}")
    p.add_argument("--config", default=str(_DEFAULT_TEMPLATE), help="pipeline (TOML)")
    p.add_argument("--profile", action="append", default=[], metavar="NAME", help="apply [profiles.NAME]")
    p.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="override one key (TOML value)"
    )
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default=None)
    p.add_argument("--limit", type=int, default=None, help="replay only the first N rows")
    p.add_argument("--loops", type=int, default=1, help="passes over the data")
    p.add_argument("--latency-ns", type=int, default=None, help="order latency, simulated ns")
    p.add_argument("--slippage-ticks", type=int, default=None)
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    return p


class ReplayPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the flags map to: the loader's inputs, and the output directory."""

    profiles: tuple[str, ...]
    sets: tuple[Override, ...]
    variables: dict[str, str]
    out: Path


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for c in name[1:]:
        out.append(f"_{c.lower()}" if c.isupper() else c)
    return "".join(out)


def _columns(spec: str) -> list[Override]:
    out: list[Override] = []
    for part in filter(None, (s.strip() for s in spec.split(","))):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ConfigError("--columns", part, "bad entry (want key=value, e.g. ts=time)")
        out.append(Override(path=f"{_FEED}.config.mapping.{k.strip()}", value=v.strip(), origin="--columns"))
    return out


def _mentions(node: Any, needle: str) -> bool:
    if isinstance(node, str):
        return needle in node
    if isinstance(node, dict):
        return any(_mentions(v, needle) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, needle) for v in node)
    return False


def _single_model_id(directory: Path) -> str | None:
    """The model id of a model directory that holds exactly one (its manifest read, not verified:
    the edge reasoner verifies it when it loads); None otherwise."""
    try:
        models = json.loads((directory / "manifest.json").read_text(encoding="utf-8")).get("models", {})
    except (OSError, ValueError, AttributeError):
        return None
    return next(iter(models)) if isinstance(models, dict) and len(models) == 1 else None


def plan(args: argparse.Namespace, template: dict[str, Any]) -> ReplayPlan:
    """Map the flags to profiles, overrides and variables of ``template`` (the parsed config)."""
    out = Path(args.out).resolve()
    defined = template.get("profiles", {})
    profiles: list[str] = []
    sets: list[Override] = []

    def put(path: str, value: Any, origin: str) -> None:
        sets.append(Override(path=path, value=value, origin=origin))

    source = args.dataset or "file"
    if source in defined:
        profiles.append(source)
    if args.dataset:
        put(f"{_FEED}.config.dataset", args.dataset, "--dataset")
    else:
        put(f"{_FEED}.config.file", str(Path(args.file).resolve()), "--file")
        put(f"{_FEED}.config.dataset", None, "--file")
        sets.extend(_columns(args.columns))
    if args.news:
        if "news" in defined:
            profiles.append("news")
        for spec in template.get("actors", []):
            if spec.get("enabled") is False and _mentions(spec, "${news}"):
                put(f"actors[{spec['name']}].enabled", True, "--news")
    if args.limit is not None:
        put(f"{_FEED}.config.limit", args.limit, "--limit")
    put(f"{_FEED}.config.loops", args.loops, "--loops")
    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    put(f"{_FEED}.config.progress", progress, "--progress")
    if args.forecaster in ("edge", "baseline", "none"):
        put(f"{_EDGE}.enabled", args.forecaster == "edge", "--forecaster")
        put(f"{_BASELINE}.enabled", args.forecaster == "baseline", "--forecaster")
    if args.model:
        key = "model_dir" if Path(args.model).is_dir() else "model"
        put(
            f"{_EDGE}.config.{key}",
            str(Path(args.model).resolve()) if key == "model_dir" else args.model,
            "--model",
        )
        put(f"{_EDGE}.enabled", True, "--model")
        only = _single_model_id(Path(args.model)) if key == "model_dir" else None
        if only is not None:
            # A directory from finllm train holds one model: serve it without naming its id.
            put(f"{_EDGE}.config.model", only, "--model")
    if args.latency_ns is not None:
        put(f"{_HOST}.config.exchange.latency_ns", args.latency_ns, "--latency-ns")
    if args.slippage_ticks is not None:
        put(f"{_HOST}.config.exchange.slippage_ticks", args.slippage_ticks, "--slippage-ticks")
    if args.strategy:
        strategies = [
            {"id": _snake(d.rpartition(":")[2] or d.rpartition(".")[2]), "class": d} for d in args.strategy
        ]
        put(f"{_HOST}.config.strategies", strategies, "--strategy")
    if args.loop:
        put("engine.loop", args.loop, "--loop")
    put("engine.clock", "sim", "finllm replay")  # a replay is deterministic: simulated time only
    sets.extend(Override.parse(s, source=str(args.config)) for s in args.set)
    profiles.extend(args.profile)
    variables = {"out": str(out), "news": str(Path(args.news).resolve()) if args.news else ""}
    return ReplayPlan(profiles=tuple(profiles), sets=tuple(sets), variables=variables, out=out)


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid TOML: {exc}") from None


def build_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The composed pipeline as a table (enabled actors only) and the output directory.

    For inspection; :func:`main` loads the same plan with :func:`engine.config.loads_config`.
    """
    _, template = _read(Path(args.config))
    p = plan(args, template)
    doc, _ = compose(
        template, source=str(args.config), profiles=p.profiles, sets=p.sets, variables=p.variables
    )
    doc["actors"] = [a for a in doc.get("actors", []) if a.get("enabled", True)]
    return doc, p.out


def _load(args: argparse.Namespace) -> tuple[EngineConfig, Path]:
    text, template = _read(Path(args.config))
    p = plan(args, template)
    cfg = loads_config(text, path=str(args.config), profiles=p.profiles, sets=p.sets, variables=p.variables)
    return cfg, p.out


def _check_source(cfg: EngineConfig) -> None:
    """Load the feed's data now (cached for the feed), so a bad source is a clear error, not a crash loop."""
    from actors.market_data import MarketDataFeedConfig

    feed = next((a for a in cfg.actors if a.name == "feed"), None)
    if feed is None:
        raise ConfigError(cfg.source, "actors[feed]", "finllm replay needs an actor named 'feed'")
    fc = msgspec.convert(feed.config, MarketDataFeedConfig, strict=False)
    if fc.file:
        load_file(fc.file, getattr(fc, "columns", None) or fc.mapping)
    elif fc.dataset:
        load_dataset(fc.dataset, **fc.synthetic)


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


RECORDED_FILES = ("forecasts.jsonl", "traces.jsonl")
"""What a replay of a recording writes byte-identical to the node's own copies."""


def recording_plan(args: argparse.Namespace) -> tuple[Path, tuple[str, ...], list[Override], dict[str, str]]:
    """The node's pipeline, read from ``DIR/recording.json``: config, profiles, overrides, variables."""
    rec = Path(args.recording)
    manifest_path = rec / "recording.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(str(manifest_path), "", f"not a recording of finllm node --record: {exc}") from None
    config = Path(args.config) if args.config != str(_DEFAULT_TEMPLATE) else Path(manifest["config"])
    if not config.is_file():
        raise ConfigError(str(config), "", "the recorded node's config is not there (give --config)")
    profiles = (*manifest.get("profiles", []), "record", "recording", *args.profile)
    sets = [Override(path=o["path"], value=o["value"], origin="recording") for o in manifest.get("sets", [])]
    sets.extend(Override.parse(s, source=str(config)) for s in args.set)
    if args.loop:
        sets.append(Override(path="engine.loop", value=args.loop, origin="--loop"))
    variables = {
        **{str(k): str(v) for k, v in manifest.get("variables", {}).items()},
        "out": str(Path(args.out).resolve()),
        "recording": str(rec.resolve()),
    }
    return config, profiles, sets, variables


def _replay_recording(args: argparse.Namespace) -> int:
    from engine.config import load_config

    try:
        config, profiles, sets, variables = recording_plan(args)
        cfg = load_config(config, profiles=profiles, sets=sets, variables=variables)
        engine = Engine(cfg)
        engine.build()
    except ConfigError as exc:
        print(f"finllm replay: config error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = run_engine(engine, args.loop or cfg.engine.loop)
    wall = time.perf_counter() - t0
    ok = summary.exit_code == 0 and summary.reason == "recording replayed"
    if not ok:
        print(f"finllm replay: run ended abnormally: {summary.reason}", file=sys.stderr)
    rec = Path(args.recording)
    same = True
    for name in RECORDED_FILES:
        mine, theirs = out / name, rec / name
        a = mine.read_bytes() if mine.exists() else b""
        b = theirs.read_bytes() if theirs.exists() else b""
        verdict = "identical" if a == b else "DIFFERENT"
        same = same and a == b
        print(
            f"  {name:<16} {len(a.splitlines()):>8} lines  sha256 {hashlib.sha256(a).hexdigest()[:16]}  "
            f"{verdict} to the recording's"
        )
    print(f"replay of {rec}: {summary.reason} in {wall:.2f}s -> {out}")
    return 0 if ok and same else 1


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.recording:
        return _replay_recording(args)
    try:
        cfg, out = _load(args)
    except ConfigError as exc:
        print(f"finllm replay: config error: {exc}", file=sys.stderr)
        return 2
    try:
        _check_source(cfg)
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
