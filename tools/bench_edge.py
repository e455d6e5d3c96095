"""``finllm bench edge [--json]``: edge-model latency, throughput and forecast quality.

Figures (names as in DESIGN.md):

* per backend and batch size: ``latency_p50_us`` / ``latency_p99_us`` (one
  ``predict`` call on real feature rows, wall clock, after warm-up) and
  ``throughput_rows_per_s`` (rows / mean call time);
* the forecast path in replay: ``e2e_latency_p50_us`` / ``e2e_latency_p99_us``
  from a bar entering the EdgeReasoner's handler to its Forecast being
  published (sim-clock engine, real E-mini bars), with the replay source
  publishing one bar at a time (``chunk`` 1) and 16 at a time (micro-batches);
  ``tick_to_forecast_p50_us`` / ``_p99_us``: from the trade that closes a bar
  entering the shared bar aggregator to a downstream actor handling that bar's
  forecast (md + bar publish, the EdgeReasoner, one more bus hop);
* per dataset, **from the product's own output**: the bench runs ``finllm replay --dataset X
  --forecaster edge`` (the feed and the edge reasoner, as in production), reads the
  ``forecasts.jsonl`` it wrote, pairs each forecast with the next bar's log return and scores
  the held-out period (from the serving model's ``splits.test``; for ``sp500-tickers`` the
  tickers withheld from training, from each one's 101st bar) against baselines fitted one step
  ahead on the same bars in the same run (:mod:`adapters.baselines`: rolling random walk 250
  days / 390 minutes, EWMA 0.94, GARCH(1,1) and GJR-GARCH(1,1) refitted every ``--refit-every``
  bars on an expanding window, HAR on Parkinson range variance).  Figures: ``crps``,
  ``qlike_norm`` (baseline GARCH(1,1)), ``crps_ratio_vs_{rw,ewma,garch,gjr,har}``,
  ``qlike_norm_ratio_vs_{...}``, ``dm_pvalue_vs_{...}`` (Diebold-Mariano on normalised QLIKE,
  HAC), ``dm_crps_pvalue_vs_{...}``, ``coverage_80``, ``coverage_90``, ``hit_rate``, ``brier``,
  ``pt_pvalue``, ``pit_ks_pvalue``; for the withheld tickers also ``*_median_ticker`` and
  ``share_tickers_qlike_below_garch``.  ``FINLLM_SKILL_OUT=DIR`` also writes each dataset's
  figures (pooled and per symbol) to ``DIR/skill-<dataset>.json``.  ``--replay-set PATH=VALUE``
  passes ``--set`` to those replays (``actors[edge].config.gate.enabled=false``: the network
  without the serve-time gate of :mod:`adapters.inference.gate`).  ``gate_served_share_{model,
  blend,baseline}``: what that gate served over the whole replay (from its metrics).

Conventions of the statistics: :mod:`adapters.scoring`.  The replay loads the weights of
``--model-dir`` (default ``models/edge``) through the signed manifest, as the product does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np

from adapters import scoring
from adapters.features import FEATURE_NAMES
from adapters.inference.errors import BackendUnavailable
from adapters.inference.manifest import DEFAULT_MODEL_DIR, Manifest, load_manifest
from adapters.inference.model import load_edge_model
from tools.benchlib import emit

__all__ = ["main"]

_QUALITY_FIGURES = (
    ("crps", "log-return", "crps_rw", "random_walk_empirical"),
    ("crps_ratio_vs_rw", "ratio", None, None),
    ("crps_ratio_vs_rw_rolling", "ratio", None, None),
    ("qlike", "loss", "qlike_garch", "garch11"),
    ("qlike_garch", "loss", None, None),
    ("qlike_ewma", "loss", None, None),
    ("hit_rate", "fraction", None, None),
    ("brier", "score", None, None),
    ("pt_pvalue", "p", None, None),
    ("dm_pvalue", "p", None, None),
    ("coverage_90", "fraction", None, None),
    ("coverage_80", "fraction", None, None),
    ("qlike_norm", "loss", "qlike_norm_garch", "garch11"),
    ("qlike_norm_ratio_vs_garch", "ratio", None, None),
    ("qlike_norm_ratio_vs_ewma", "ratio", None, None),
    ("dm_pvalue_vs_garch", "p", None, None),
)


def _latency(
    manifest: Manifest, backends: list[str], batches: list[int], iters: int, as_json: bool, rows: np.ndarray
) -> None:
    for name in backends:
        try:
            model = load_edge_model(
                manifest,
                "es-1m",
                backend=name,
                device="cuda" if name == "tensorrt" else "cpu",
                max_batch=max(batches),
            )
        except BackendUnavailable as exc:
            print(f"# backend {name} skipped: {exc}", file=sys.stderr)
            continue
        predict = model.backend.predict
        for batch in batches:
            xs = [np.ascontiguousarray(rows[(i * batch) % (len(rows) - batch) :][:batch]) for i in range(64)]
            for i in range(min(200, iters)):  # warm-up: allocator, caches, lazy init
                predict(xs[i % 64])
            times = np.empty(iters)
            perf = time.perf_counter_ns
            for i in range(iters):
                x = xs[i % 64]
                t0 = perf()
                predict(x)
                times[i] = perf() - t0
            us = times / 1000.0
            ctx: dict[str, Any] = {
                "backend": name,
                "device": model.backend.device,
                "batch": batch,
                "n": iters,
                "model": "es-1m student",
                "threads": 1,
                "loadavg_1m": os.getloadavg()[0],
            }
            if not as_json:
                print(f"# backend={name} batch={batch} iters={iters} loadavg={os.getloadavg()[0]:.2f}")
            emit("edge", "latency_p50_us", float(np.percentile(us, 50)), "us", as_json=as_json, **ctx)
            emit("edge", "latency_p99_us", float(np.percentile(us, 99)), "us", as_json=as_json, **ctx)
            emit(
                "edge",
                "throughput_rows_per_s",
                batch / (float(us.mean()) / 1e6),
                "rows/s",
                as_json=as_json,
                **ctx,
            )
        model.close()


def _e2e(as_json: bool, n_bars: int) -> None:
    from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
    from adapters.datasets import load_emini
    from engine.clock import SimClock
    from engine.config import EngineConfig, EngineSection
    from engine.kernel import Engine, run_on_loop
    from engine.mailbox import Mailbox
    from tools.train_edge import bars_from_trades

    bars = list(bars_from_trades(load_emini()))[:n_bars]

    async def go(chunk: int) -> dict[str, Any]:
        clock = SimClock(0)
        engine = Engine(EngineConfig(engine=EngineSection(clock="sim")), clock=clock)
        engine.add_actor(
            "edge",
            EdgeReasoner,
            EdgeReasonerConfig(model="es-1m"),
            subscribe=["bar.>"],
            mailbox=Mailbox(1 << 16, "block", name="edge"),
        )
        task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
        for i in range(0, len(bars), chunk):
            for b in bars[i : i + chunk]:
                clock.advance_to(b.ts_event)
                engine.bus.publish("bar.ES", b)
            await engine.runtime.wait_idle()
        engine.request_shutdown("bench done")
        summary = await task
        hist: dict[str, Any] = summary.metrics["histograms"]["edge_forecast_latency_us{actor=edge}"]
        return hist

    for chunk in (1, 16):
        h = run_on_loop(go(chunk), "uvloop")
        ctx: dict[str, Any] = {
            "backend": "onnxruntime",
            "dataset": "emini",
            "n": int(h["count"]),
            "loop": "uvloop",
            "chunk": chunk,
            "path": "bar enters the handler -> its Forecast is published (traces after)",
            "loadavg_1m": os.getloadavg()[0],
        }
        if not as_json:
            print(f"# forecast path in replay, chunks of {chunk} bar(s): {ctx['path']}, n={ctx['n']}")
        emit("edge", "e2e_latency_p50_us", h["p50"], "us", as_json=as_json, **ctx)
        emit("edge", "e2e_latency_p99_us", h["p99"], "us", as_json=as_json, **ctx)


class _Stamp:
    """A sink actor that timestamps each forecast as it is handled (bench only)."""

    stamps: ClassVar[dict[int, int]] = {}


def _tick_to_forecast(as_json: bool, n_trades: int) -> None:
    """Tick in -> forecast out: per trade, the bench (acting as the feed) updates the shared
    bar aggregator and publishes ``md.ES`` and, when a bar closes, ``bar.ES``; a sink actor on
    ``forecast.ES`` stamps the forecast.  Latency is from just before the trade that closed a bar
    entered the aggregator to the sink handling that bar's forecast (two bus hops included).
    Each trade is handled before the next is published, as on a live feed that keeps up."""
    from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
    from adapters.bars import BarAggregator, BarSpec
    from adapters.datasets import iter_trades, load_emini
    from engine.actor import Actor
    from engine.clock import SimClock
    from engine.config import EngineConfig, EngineSection
    from engine.kernel import Engine, run_on_loop
    from engine.mailbox import Mailbox
    from engine.messages import Forecast

    class Sink(Actor[Any]):
        def on_message(self, msg: Any) -> None:
            if isinstance(msg, Forecast):
                _Stamp.stamps[msg.basis_seq] = time.perf_counter_ns()

    trades = list(iter_trades(load_emini(), 0, n_trades))
    _Stamp.stamps = {}

    async def go() -> dict[int, int]:
        clock = SimClock(0)
        engine = Engine(EngineConfig(engine=EngineSection(clock="sim")), clock=clock)
        engine.add_actor(
            "edge",
            EdgeReasoner,
            EdgeReasonerConfig(model="es-1m"),
            subscribe=["bar.>", "md.>"],
            mailbox=Mailbox(1 << 16, "block", name="edge"),
        )
        engine.add_actor(
            "sink", Sink, subscribe=["forecast.>"], mailbox=Mailbox(1 << 16, "block", name="sink")
        )
        task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
        agg = BarAggregator(BarSpec(kind="time", size=60e9, multiplier=50.0))
        t0: dict[int, int] = {}
        bus = engine.bus
        perf = time.perf_counter_ns
        for seq, tr in enumerate(trades, 1):
            start = perf()
            clock.advance_to(tr.ts_event)
            bar = agg.update(tr.symbol, tr.ts_event, tr.price, tr.size, tr.side, seq)
            bus.publish("md.ES", msgspec.structs.replace(tr, seq=seq))
            if bar is not None:
                t0[bar.seq] = start
                bus.publish("bar.ES", bar)
            # Live-like: every tick is handled before the next one arrives.
            await engine.runtime.wait_idle()
        engine.request_shutdown("bench done")
        await task
        return t0

    t0 = run_on_loop(go(), "uvloop")
    lat = np.array([(_Stamp.stamps[s] - t) / 1000.0 for s, t in t0.items() if s in _Stamp.stamps])
    ctx: dict[str, Any] = {
        "backend": "onnxruntime",
        "dataset": "emini",
        "n": len(lat),
        "trades": n_trades,
        "loop": "uvloop",
        "path": "bar-closing trade -> aggregator -> bar.ES -> EdgeReasoner -> forecast.ES -> sink",
        "loadavg_1m": os.getloadavg()[0],
    }
    if not as_json:
        print(f"# tick in -> forecast out: {ctx['path']}, n={len(lat)}")
    emit("edge", "tick_to_forecast_p50_us", float(np.percentile(lat, 50)), "us", as_json=as_json, **ctx)
    emit("edge", "tick_to_forecast_p99_us", float(np.percentile(lat, 99)), "us", as_json=as_json, **ctx)


_SKILL_FIGURES = (
    ("crps", "log-return"),
    ("qlike_norm", "loss"),
    *((f"crps_ratio_vs_{b}", "ratio") for b in ("rw", "ewma", "garch", "gjr", "har")),
    *((f"qlike_norm_ratio_vs_{b}", "ratio") for b in ("rw", "ewma", "garch", "gjr", "har")),
    *((f"dm_pvalue_vs_{b}", "p") for b in ("rw", "ewma", "garch", "gjr", "har")),
    *((f"dm_crps_pvalue_vs_{b}", "p") for b in ("rw", "ewma", "garch", "gjr", "har")),
    ("coverage_80", "fraction"),
    ("coverage_90", "fraction"),
    ("hit_rate", "fraction"),
    ("brier", "score"),
    ("pt_pvalue", "p"),
    ("pit_ks_pvalue", "p"),
)

# dataset -> the replay profile's bar length (ns) for trade tapes, and the random walk's window.
_REPLAY_BARS = {
    "emini": (60_000_000_000, 50.0, 390),
    "sp500": (0, 1.0, 250),
    "nasdaq": (0, 1.0, 250),
    "sp500-tickers": (0, 1.0, 250),
}
_MEDIAN_FIGURES = (
    "crps_ratio_vs_garch",
    "crps_ratio_vs_gjr",
    "crps_ratio_vs_rw",
    "qlike_norm_ratio_vs_garch",
    "qlike_norm_ratio_vs_gjr",
    "dm_pvalue_vs_garch",
    "coverage_80",
    "coverage_90",
)


def replay_forecasts(dataset: str, out: Path, model_dir: str, extra: list[str] | None = None) -> Path:
    """Run ``finllm replay --dataset`` (the product path) into ``out``; return forecasts.jsonl."""
    from tools.commands import replay

    argv = [
        "--dataset", dataset, "--out", str(out), "--forecaster", "edge", "--no-report",
        "--progress", "off", "--model", model_dir,
    ]  # fmt: skip
    for s in extra or []:
        argv += ["--set", s]
    rc = replay.main(argv)
    if rc != 0:
        raise RuntimeError(f"finllm replay --dataset {dataset} exited {rc}")
    return out / "forecasts.jsonl"


def _withheld(manifest: Manifest, model_id: str) -> list[str]:
    import json

    raw = json.loads((manifest.directory / "manifest.json").read_text())
    return list(raw["models"].get(model_id, {}).get("withheld_symbols", []))


def _test_start_ns(manifest: Manifest, model_id: str) -> tuple[int, str]:
    first = manifest.model(model_id).splits["test"]["first_basis"]
    return int(np.datetime64(first.rstrip("Z"), "ns").astype(np.int64)), str(first)


def _quality(
    manifest: Manifest, datasets: list[str], as_json: bool, refit_every: int, sets: list[str] | None = None
) -> None:
    """Quality from the forecasts a real ``finllm replay`` wrote over each held-out period."""
    import tempfile

    from adapters.datasets import load_dataset
    from adapters.report_skill import bars_from_tape, run_skill, write_skill_json

    for name in datasets:
        bar_ns, mult, rw_window = _REPLAY_BARS.get(name, (0, 1.0, 250))
        tape = load_dataset(name)
        with tempfile.TemporaryDirectory(prefix=f"bench-edge-{name}-") as tmp:
            t0 = time.perf_counter()
            fpath = replay_forecasts(name, Path(tmp), str(manifest.directory), sets)
            fcs = scoring.read_forecasts(fpath)
            served = _gate_served(Path(tmp) / "metrics.json")
            replay_s = time.perf_counter() - t0
        model_id = str(fcs[0]["model_id"]).split(".")[0]
        bars = bars_from_tape(tape, bar_ns or 60_000_000_000, mult)
        t1 = time.perf_counter()
        withheld = _withheld(manifest, model_id) if name == "sp500-tickers" else None
        if name == "sp500-tickers":
            # Held out by ticker, not by time: the tickers the model never saw, from their 101st bar
            # (the baselines need a history to fit).
            if not withheld:
                print(f"# {name}: model {model_id} lists no withheld tickers; skipped", file=sys.stderr)
                continue
            start_ns, first = 0, f"withheld tickers ({len(withheld)}), from each one's bar 101"
            sk = run_skill(
                fcs, bars, symbols=withheld, rw_window=rw_window, refit_every=refit_every, min_history=100
            )
        else:
            start_ns, first = _test_start_ns(manifest, model_id)
            sk = run_skill(fcs, bars, start_ns=start_ns, rw_window=rw_window, refit_every=refit_every)
        if _SKILL_OUT:
            write_skill_json(sk, Path(_SKILL_OUT) / f"skill-{name}.json")
        m = sk.pooled
        ctx: dict[str, Any] = {
            "dataset": name,
            "model_id": model_id,
            "source": "forecasts.jsonl of finllm replay --dataset " + name,
            "test_from": first,
            "n": int(m["n"]),
            "n_qlike": int(m["n_qlike"]),
            "missing_forecasts": sk.missing,
            "refit_every": refit_every,
            "rw_window": rw_window,
            "replay_set": list(sets or []),
            "replay_s": round(replay_s, 2),
            "baselines_s": round(time.perf_counter() - t1, 2),
        }
        if not as_json:
            print(f"# dataset={name} model={model_id} held-out from {first} n={ctx['n']} (from the replay)")
        for fig, unit in _SKILL_FIGURES:
            if fig not in m:
                continue
            value: float | None = m[fig]
            kw: dict[str, Any] = {}
            base = fig.rsplit("_vs_", 1)[1] if "_vs_" in fig else None
            if fig in ("crps", "qlike_norm") and f"{fig}_garch" in m:
                kw = {"baseline": "garch", "baseline_value": m[f"{fig}_garch"]}
            if base and fig.startswith(("crps_ratio", "qlike_norm_ratio")):
                key = ("crps_" if fig.startswith("crps") else "qlike_norm_") + base
                kw = {"vs": base, "baseline_loss": m[key]}
            if value is not None and math.isnan(value):
                kw["note"] = "undefined"
                if as_json:
                    value = None
            emit("edge", fig, value, unit, as_json=as_json, **kw, **ctx)
        total = sum(served.values())
        for kind, count in served.items():
            # What the serve-time gate served over the whole replay (not only the scored period).
            emit("edge", f"gate_served_share_{kind}", count / total if total else math.nan, "fraction",
                 as_json=as_json, forecasts=total, **ctx)  # fmt: skip
        if withheld:
            per = sk.per_symbol
            for fig in _MEDIAN_FIGURES:
                vals = np.asarray([d[fig] for d in per.values() if fig in d and math.isfinite(d[fig])])
                unit = "p" if "pvalue" in fig else "fraction" if fig.startswith("coverage") else "ratio"
                emit(
                    "edge",
                    f"{fig}_median_ticker",
                    float(np.median(vals)),
                    unit,
                    as_json=as_json,
                    tickers=len(vals),
                    **ctx,
                )
            q = np.asarray([d["qlike_norm_ratio_vs_garch"] for d in per.values()])
            emit(
                "edge",
                "share_tickers_qlike_below_garch",
                float(np.mean(q < 1.0)),
                "fraction",
                as_json=as_json,
                tickers=len(q),
                **ctx,
            )


def _gate_served(path: Path) -> dict[str, int]:
    """The replay's ``edge_gate_served_total`` counters: kind -> forecasts (empty: gate off)."""
    import json

    try:
        counters = json.loads(path.read_text())["counters"]
    except (OSError, ValueError, KeyError):
        return {}
    out = {}
    for key, v in counters.items():
        if key.startswith("edge_gate_served_total{") and "served=" in key:
            out[key.split("served=", 1)[1].rstrip("}")] = int(v)
    return out if sum(out.values()) else {}


_SKILL_OUT = os.environ.get("FINLLM_SKILL_OUT", "")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="finllm bench edge", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON object per figure")
    ap.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--backends", default="onnxruntime,torch,tensorrt")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--datasets", default="emini,sp500,nasdaq,sp500-tickers")
    ap.add_argument("--e2e-bars", type=int, default=2264)
    ap.add_argument("--tick-trades", type=int, default=100_000)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: latency,e2e,quality")
    ap.add_argument("--refit-every", type=int, default=20, help="GARCH/GJR/HAR refit interval, bars")
    ap.add_argument(
        "--replay-set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="passed to the quality replays as --set (e.g. actors[edge].config.gate.enabled=false: the "
        "network's forecasts without the serve-time gate)",
    )
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    manifest = load_manifest(args.model_dir)
    if "latency" not in skip:
        from tools.train_edge import prepare

        rows = prepare("emini").x
        assert rows.shape[1] == len(FEATURE_NAMES)
        _latency(
            manifest,
            args.backends.split(","),
            [int(b) for b in args.batches.split(",")],
            args.iters,
            args.json,
            rows,
        )
    if "e2e" not in skip:
        _e2e(args.json, args.e2e_bars)
        _tick_to_forecast(args.json, args.tick_trades)
    if "quality" not in skip:
        _quality(manifest, args.datasets.split(","), args.json, args.refit_every, args.replay_set)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
