"""``finllm bench cloud [--json]``: the cloud tier's figures (names as in DESIGN.md).

1. ``proxy_overhead_ms``: median latency of :meth:`LLMClient.complete` (routing,
   limiter, breaker, budget, validation) minus the median of a raw HTTP call with
   the same body to the same fault server (no injected latency); baseline: the raw call.
2. ``p99_ms_no_hedge`` / ``p99_ms_hedge``: p99 latency under a heavy-tailed server
   (lognormal body, 3% Pareto tail) with hedging off and on (hedge after the observed
   p95, retries + hedges <= 10% of requests); same seed, same request count.
3. A paced replay of real E-mini 1-minute bars through the real edge model
   (``EdgeReasoner``, model ``es-1m``; an EWMA random walk stands in if it cannot load)
   and :class:`CloudReasonerProxy` backed by the real llama.cpp server with
   SmolLM2-135M-Instruct: ``escalation_rate`` (escalations / edge forecasts),
   ``adoption_rate`` (adopted / escalations), ``late_rate`` (late / refinements returned),
   ``crps_ratio_refined_vs_edge`` (mean CRPS of adopted refinements / of the edge
   forecasts they replaced, on realised 1-minute returns; < 1 means the cloud helped).
   The replay is paced (``--pace-s`` wall seconds per bar) so that the LLM's real
   latency meets a realistic event rate; ``--skip-replay`` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec

from tools.benchlib import emit
from tools.fault_llm_server import FaultConfig, FaultServer

__all__ = ["main"]

_MSGS = [{"role": "user", "content": "Refine the forecast."}]


class _Ok(msgspec.Struct):
    ok: bool


def _defined(x: Any) -> Any:
    """NaN (a rate with nothing to divide, say no refinement came back) becomes None: JSON null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _defined(v) for k, v in x.items()}
    return x


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def _overhead(n: int) -> dict[str, float]:
    from adapters.llm import EndpointConfig, LLMClient, LLMClientConfig
    from adapters.llm.dialects import schema_for, structured_output_fields
    from adapters.llm.http import HttpPool

    async with FaultServer(FaultConfig()) as srv:
        ep = EndpointConfig(name="fault", url=srv.url, model="m", stream=False)
        client = LLMClient(LLMClientConfig(endpoints=(ep,)))
        pool = HttpPool(srv.url)
        body: dict[str, Any] = {"model": "m", "messages": _MSGS, "temperature": 0.0, "max_tokens": 256}
        body.update(structured_output_fields("llamacpp", schema_for(_Ok), "answer"))
        raw_body = msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"}
        raw: list[float] = []
        via: list[float] = []
        # interleave so that machine noise hits both alike
        for _ in range(n):
            t0 = time.perf_counter()
            resp = await pool.request("POST", "/chat/completions", raw_body, headers)
            msgspec.json.decode(await resp.read())
            raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await client.complete(_MSGS, _Ok)
            via.append(time.perf_counter() - t0)
        pool.close()
        await client.aclose()
    return {"raw_ms": statistics.median(raw) * 1e3, "client_ms": statistics.median(via) * 1e3}


async def _tail(n: int, concurrency: int, hedge: bool, seed: int) -> dict[str, float]:
    from adapters.llm import EndpointConfig, LLMClient, LLMClientConfig

    cfg = FaultConfig(
        latency_s=0.02, latency_dist="pareto", tail_prob=0.03, tail_s=0.25, pareto_alpha=1.5,
        lognormal_sigma=0.3, seed=seed,
    )  # fmt: skip
    async with FaultServer(cfg) as srv:
        ep = EndpointConfig(
            name="fault", url=srv.url, model="m", stream=False, initial_concurrency=concurrency
        )
        client = LLMClient(
            LLMClientConfig(endpoints=(ep,), hedge=hedge, hedge_min_samples=20, retry_budget_ratio=0.1)
        )
        lat: list[float] = []
        it = iter(range(n))

        async def worker() -> None:
            for _ in it:
                t0 = time.perf_counter()
                await client.complete(_MSGS, _Ok)
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        hedges = client.metrics.counter("llm_hedges_total").value
        await client.aclose()
        return {
            "p50_ms": _pct(lat, 0.5) * 1e3,
            "p99_ms": _pct(lat, 0.99) * 1e3,
            "hedges": float(hedges),
            "server_requests": float(srv.stats.requests),
        }


class _Rig:
    """A bus with actors on it, outside the kernel: the benchmark drives the pacing itself."""

    def __init__(self) -> None:
        from engine.runtime import Runtime

        self.runtime = Runtime()
        self.metrics = self.runtime.metrics
        self.bus = self.runtime.bus
        self.clock = self.runtime.clock
        self.cells: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, factory: Callable[[Any], Any], topics: list[str]) -> Any:
        from engine.actor import ActorCell
        from engine.mailbox import Mailbox

        mb: Mailbox[Any] = Mailbox(1 << 16, "block", name=name)
        cell = ActorCell(name, factory, mb, runtime=self.runtime)
        for t in topics:
            self.bus.subscribe(t, mb)
        self.runtime.add_idle_probe(lambda: not len(mb) and not cell.busy)
        self.cells.append(cell)
        self.tasks.append(asyncio.get_running_loop().create_task(cell.run()))
        return cell

    async def started(self, cell: Any, attr: str, timeout_s: float = 180.0) -> Any:
        t0 = time.monotonic()
        while cell.actor is None or not hasattr(cell.actor, attr):
            for task in self.tasks:
                if task.done():
                    task.result()  # raises the start failure
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"{cell.name} did not start")
            await asyncio.sleep(0.05)
        return cell.actor

    async def stop(self) -> None:
        for cell in self.cells:
            cell.mailbox.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _emini_bars(limit_bars: int) -> list[Any]:
    from adapters.bars import BarAggregator, BarSpec
    from adapters.datasets import iter_trades, load_emini

    agg = BarAggregator(BarSpec(kind="time", size=60e9, multiplier=50.0))
    bars = []
    for seq, tr in enumerate(iter_trades(load_emini()), 1):
        bar = agg.update("ES", tr.ts_event, tr.price, tr.size, tr.side, seq)
        if bar is not None:
            bars.append(bar)
            if len(bars) >= limit_bars:
                break
    return bars


class _EwmaEdge:
    """Stand-in edge forecaster (random walk + EWMA volatility) when the edge model cannot load."""

    def __init__(self, publish: Callable[[str, Any], int]) -> None:
        self.publish = publish
        self.last = 0.0
        self.var = 0.0

    def on_bar(self, bar: Any) -> None:
        from engine.messages import Forecast

        if self.last > 0:
            r = math.log(bar.close / self.last)
            self.var = r * r if self.var == 0 else 0.94 * self.var + 0.06 * r * r
        self.last = bar.close
        sd = math.sqrt(self.var) or 1e-4
        z = (-1.6449, -0.6745, 0.0, 0.6745, 1.6449)
        self.publish(
            "forecast.ES",
            Forecast(
                forecast_id=f"ES-{bar.seq}", symbol="ES", horizon="1m", basis_seq=bar.seq,
                ts_event=bar.ts_event, tier="edge", model_id="ewma-rw", model_version="1",
                quantile_levels=(0.05, 0.25, 0.5, 0.75, 0.95), quantiles=tuple(sd * q for q in z),
                volatility=sd, confidence=0.2,
            ),
        )  # fmt: skip


async def _warm(server: Any) -> None:
    """One throw-away call: the first prompt of a fresh server pays for loading and caches."""
    from adapters.llm import EndpointConfig, LLMClient, LLMClientConfig, LLMError

    client = LLMClient(
        LLMClientConfig(endpoints=(EndpointConfig(name="warm", url=server.url, model=server.model_id),))
    )
    try:
        await client.complete([{"role": "user", "content": "Say ok as JSON."}], _Ok, deadline_s=120.0)
    except LLMError:
        pass  # warming only; the replay measures the real calls
    finally:
        await client.aclose()


async def _replay(args: argparse.Namespace) -> dict[str, Any]:
    from actors.cloud_reasoner import CloudReasonerConfig, CloudReasonerProxy
    from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
    from actors.forecast_store import ForecastStoreConfig, ShadowConfig
    from adapters.llm import EndpointConfig, LLMClientConfig
    from adapters.llm.local_server import LocalLlamaServer
    from engine.testing import settle

    bars = _emini_bars(args.warmup_bars + args.replay_bars + 2)
    warm, run, tail = (
        bars[: args.warmup_bars],
        bars[args.warmup_bars : args.warmup_bars + args.replay_bars],
        bars[args.warmup_bars + args.replay_bars :],
    )
    server = await LocalLlamaServer(threads=args.threads).start()
    await _warm(server)
    rig = _Rig()
    edge_kind = "model:es-1m"
    try:
        edge_cell = rig.add(
            "edge",
            lambda ctx: EdgeReasoner(EdgeReasonerConfig(model="es-1m", flush="chunk"), ctx),
            ["bar.ES"],
        )
        try:
            await rig.started(edge_cell, "_served", timeout_s=60)
            stand_in = None
        except Exception as exc:  # the bench must still say something about the cloud tier
            edge_kind = f"ewma-rw (edge model unavailable: {type(exc).__name__})"
            edge_cell.mailbox.close()
            rig.cells.remove(edge_cell)
            rig.bus.unsubscribe("bar.ES", edge_cell.mailbox)
            rig.runtime._idle_probes.clear()
            stand_in = _EwmaEdge(rig.bus.publish)
        for b in warm:
            rig.bus.publish("bar.ES", b)
            if stand_in is not None:
                stand_in.on_bar(b)
        if stand_in is None:
            await settle(rig.runtime, max_spins=10_000_000)
        llm = LLMClientConfig(
            endpoints=(EndpointConfig(name="local", url=server.url, model=server.model_id),),
            deadline_s=args.deadline_s,
            hedge=False,  # one local server serialises requests: a hedge would only queue behind
        )
        cfg = CloudReasonerConfig(
            llm=llm,
            always=args.always,
            max_escalation_fraction=args.fraction,
            escalation_burst=2.0,
            tokens_per_s=1000.0,
            max_inflight=1,
            deadline_s=args.deadline_s,
            max_tokens=args.max_tokens,
            require_consistent_direction=not args.lenient,
            # basis_seq counts trades (hundreds per bar), so the window is set in time
            store=ForecastStoreConfig(staleness_ns=args.staleness_bars * 60_000_000_000),
            shadow=ShadowConfig(window=args.shadow_window, min_pairs=args.shadow_min_pairs),
        )
        cloud_cell = rig.add(
            "cloud",
            lambda ctx: CloudReasonerProxy(cfg, ctx),
            ["forecast.*", "trace.*", "bar.*", "news.verified"],
        )
        cloud = await rig.started(cloud_cell, "client")
        t0 = time.perf_counter()
        for b in run + tail:
            rig.bus.publish("bar.ES", b)
            if stand_in is not None:
                stand_in.on_bar(b)
            await settle(rig.runtime, max_spins=10_000_000)
            await asyncio.sleep(args.pace_s)
        # the last escalations may still be in flight: give them their deadline, polled
        for _ in range(int((args.deadline_s + 5) / 0.1)):
            if not cloud._inflight:
                break
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - t0
        report: dict[str, Any] = cloud.report()
        report["edge"] = edge_kind
        report["wall_s"] = wall
        report["invalid_answers"] = rig.metrics.counter("cloud_invalid_answers_total", actor="cloud").value
        counters = rig.metrics.snapshot()["counters"]
        report["llm_errors"] = {k: v for k, v in counters.items() if k.startswith("cloud_llm_errors")}
        report["llm_latency_ms_p50"] = rig.metrics.histogram("llm_latency_ms", endpoint="local").percentile(
            0.5
        )
        return report
    finally:
        await rig.stop()
        await server.stop()


async def _run(args: argparse.Namespace) -> list[tuple[str, float, str, dict[str, Any]]]:
    out: list[tuple[str, float, str, dict[str, Any]]] = []
    ov = await _overhead(args.n_overhead)
    out.append(
        (
            "proxy_overhead_ms",
            ov["client_ms"] - ov["raw_ms"],
            "ms",
            {"baseline": "raw HTTP call", "baseline_value": ov["raw_ms"], "client_p50_ms": ov["client_ms"],
             "n": args.n_overhead, "server": "fault (no latency)"},
        )
    )  # fmt: skip
    plain = await _tail(args.n_tail, args.concurrency, False, args.seed)
    hedged = await _tail(args.n_tail, args.concurrency, True, args.seed)
    ctx = {
        "n": args.n_tail,
        "concurrency": args.concurrency,
        "server": "fault: 20 ms + 3% Pareto(1.5) x 250 ms tail",
    }
    out.append(("p99_ms_no_hedge", plain["p99_ms"], "ms", {**ctx, "p50_ms": plain["p50_ms"]}))
    out.append(
        (
            "p99_ms_hedge",
            hedged["p99_ms"],
            "ms",
            {**ctx, "p50_ms": hedged["p50_ms"], "baseline": "no hedge", "baseline_value": plain["p99_ms"],
             "hedges": hedged["hedges"],
             "extra_requests_pct": 100 * (hedged["server_requests"] / args.n_tail - 1)},
        )
    )  # fmt: skip
    if not args.skip_replay:
        rep = await _replay(args)
        shadow = rep["shadow"]
        rctx = {
            "dataset": "emini 1-minute bars", "bars": args.replay_bars, "edge": rep["edge"],
            "llm": "SmolLM2-135M-Instruct Q4_1 via llama.cpp", "pace_s": args.pace_s,
            "forecasts": rep["forecasts_seen"], "escalations": rep["escalations"], "adopted": rep["adopted"],
            "late": rep["late"], "invalid_answers": rep["invalid_answers"], "pairs": shadow["pairs"],
            "hit_rate_refined": shadow["hit_rate_refined"], "hit_rate_edge": shadow["hit_rate_edge"],
            "tier_enabled_at_end": rep["tier_enabled"], "llm_latency_ms_p50": rep["llm_latency_ms_p50"],
            "llm_errors": rep["llm_errors"], "wall_s": rep["wall_s"], "lenient": args.lenient,
            "threads": args.threads, "staleness_bars": args.staleness_bars,
            "reasons": rep["reasons"], "skipped": rep["skipped"],
        }  # fmt: skip
        out.append(("escalation_rate", rep["escalation_rate"], "ratio", rctx))
        out.append(("adoption_rate", rep["adoption_rate"], "ratio", rctx))
        out.append(("late_rate", rep["late_rate"], "ratio", rctx))
        out.append(("crps_ratio_refined_vs_edge", shadow["crps_ratio"], "ratio", rctx))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="finllm bench cloud", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n-overhead", type=int, default=300)
    ap.add_argument("--n-tail", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--warmup-bars", type=int, default=300)
    ap.add_argument("--replay-bars", type=int, default=60)
    ap.add_argument("--pace-s", type=float, default=2.0)
    ap.add_argument("--fraction", type=float, default=0.5, help="max escalation fraction")
    ap.add_argument("--always", action="store_true", help="escalate every forecast the budget allows")
    ap.add_argument(
        "--lenient", action="store_true", help="accept answers whose direction contradicts their point"
    )
    ap.add_argument("--deadline-s", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument(
        "--staleness-bars",
        type=int,
        default=3,
        help="refinement window: minutes behind the newest edge basis",
    )
    ap.add_argument("--shadow-window", type=int, default=30)
    ap.add_argument("--shadow-min-pairs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    from engine.logging import configure_logging

    configure_logging(level=args.log_level)  # stderr: stdout carries only the figures
    figures = asyncio.run(_run(args))
    for name, value, unit, ctx in figures:
        ctx = dict(ctx)
        baseline = ctx.pop("baseline", None)
        baseline_value = ctx.pop("baseline_value", None)
        emit(
            "cloud",
            name,
            value,
            unit,
            baseline=baseline,
            baseline_value=baseline_value,
            as_json=args.json,
            **ctx,
        )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
