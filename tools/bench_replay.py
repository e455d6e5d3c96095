"""``finllm bench replay``: replay throughput and memory on the 500k real E-mini trades.

Pipeline measured: MarketDataFeed -> EMA actor -> StrategyHost (ForecastThreshold
strategy) -> SimExchange.  The feed validates and numbers every tick and
publishes it on ``md.ES``; the EMA actor updates a fast and a slow EMA per tick
and publishes a Forecast each time they cross; the host matches every tick in
the simulated exchange and hands forecasts to the strategy, whose orders fill
there.  Simulated clock, chunked replay, as ``finllm replay`` runs.

Baseline, same run, same process: the same work (the same Trade messages, EMA
code, strategy class and SimExchange) wired with plain ``asyncio.Queue`` hops:
a producer task puts each tick into the EMA task's queue and the host task's
queue, the EMA task puts its forecasts into the host's queue.  (The baseline
skips the feed's validation; ours does it.)

Figures (DESIGN.md): ``replay_ticks_per_s`` (baseline asyncio.Queue, ratio),
``peak_rss_mb`` (peak RSS of a fresh process replaying the tape once, loading
included), ``rss_growth_pct_10x`` (the largest RSS sampled during the replay of
a fresh process replaying the tape ``--passes`` times, time-shifted, relative
to the same for one pass: bounded memory means ~0%).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from adapters.datasets import Tape, load_emini
from adapters.sim_exchange import SimExchange, SimExchangeConfig
from engine.actor import Actor
from engine.config import loads_config
from engine.kernel import Engine, run_on_loop
from engine.messages import Fill, Forecast, Order, OrderReject, Trade
from strategies.forecast_threshold import ForecastThreshold, ForecastThresholdParams
from tools.benchlib import emit

__all__ = ["EmaSignal", "EmaSignalConfig", "main"]


class EmaSignalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``fast``/``slow`` EMA spans in ticks."""

    fast: int = 50
    slow: int = 200


class _Ema:
    """Fast/slow EMA of trade prices per symbol; says when they cross."""

    __slots__ = ("af", "as_", "state")

    def __init__(self, fast: int, slow: int) -> None:
        self.af = 2.0 / (fast + 1)
        self.as_ = 2.0 / (slow + 1)
        self.state: dict[str, list[float]] = {}

    def step(self, t: Trade) -> Forecast | None:
        st = self.state.get(t.symbol)
        p = t.price
        if st is None:
            self.state[t.symbol] = [p, p, 0.0]
            return None
        f = st[0] + self.af * (p - st[0])
        s = st[1] + self.as_ * (p - st[1])
        st[0] = f
        st[1] = s
        sign = 1.0 if f > s else -1.0 if f < s else st[2]
        if sign == st[2]:
            return None
        st[2] = sign
        return self.forecast(t, sign)

    def forecast(self, t: Trade, sign: float) -> Forecast:
        return Forecast(
            forecast_id=f"ema-{t.symbol}-{t.seq}",
            symbol=t.symbol,
            horizon="cross",
            basis_seq=t.seq,
            ts_event=t.ts_event,
            tier="baseline",
            model_id="ema-cross",
            direction_prob=0.75 if sign > 0 else 0.25,
        )


class EmaSignal(Actor[EmaSignalConfig]):
    """The bench's EMA actor: every tick updates the EMAs; crosses become forecasts."""

    config_type = EmaSignalConfig
    batch_size = 4096

    async def on_start(self) -> None:
        self._ema = _Ema(self.config.fast, self.config.slow)

    def on_batch(self, msgs: list[Any]) -> None:
        ema = self._ema
        af, as_, state = ema.af, ema.as_, ema.state
        sym = ""
        st: list[float] = []
        for m in msgs:
            if type(m) is not Trade:
                continue
            # The EMA update inlined (same arithmetic as _Ema.step): this loop runs per tick.
            if m.symbol != sym:
                sym = m.symbol
                got = state.get(sym)
                if got is None:
                    ema.step(m)
                    sym = ""
                    continue
                st = got
            p = m.price
            f = st[0] + af * (p - st[0])
            s = st[1] + as_ * (p - st[1])
            st[0] = f
            st[1] = s
            sign = 1.0 if f > s else -1.0 if f < s else st[2]
            if sign != st[2]:
                st[2] = sign
                self.ctx.publish(f"forecast.{sym}", ema.forecast(m, sign))


_STRATEGY = {"long_prob": 0.6, "short_prob": 0.4, "qty": 1}


def _ours_config(passes: int, limit: int | None) -> Any:
    mailbox = {"capacity": 65536, "policy": "block"}
    actors = [
        {
            "name": "feed",
            "class": "actors.market_data:MarketDataFeed",
            "mailbox": {"capacity": 16},
            "config": {"dataset": "emini", "loops": passes, "limit": limit, "bars": [], "chunk_size": 4096},
        },
        {"name": "ema", "class": "tools.bench_replay:EmaSignal", "subscribe": ["md.>"], "mailbox": mailbox},
        {
            "name": "host",
            "class": "actors.strategy_host:StrategyHost",
            "subscribe": ["md.>", "forecast.>"],
            "mailbox": mailbox,
            "config": {
                "publish_fills": False,
                "strategies": [
                    {
                        "id": "ft",
                        "class": "strategies.forecast_threshold:ForecastThreshold",
                        "params": _STRATEGY,
                    }
                ],
            },
        },
    ]
    return loads_config("", overrides={"engine": {"clock": "sim", "log_level": "warning"}, "actors": actors})


async def _run_ours(passes: int, limit: int | None) -> tuple[int, float, dict[str, Any]]:
    eng = Engine(_ours_config(passes, limit))
    t0 = time.perf_counter()
    c0 = time.process_time()
    summary = await eng.run(install_signals=False)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if summary.reason != "replay finished":
        raise RuntimeError(f"bench pipeline ended abnormally: {summary.reason}")
    c = summary.metrics["counters"]
    shed = sum(mb.shed for mb in summary.mailboxes.values())
    return (
        int(c["md_events_published_total"]),
        wall,
        {"fills": c.get("strategy_fills_total", 0), "shed": shed, "cpu_s": cpu},
    )


class _PlainCtx:
    """A StrategyContext straight on a SimExchange, for the asyncio.Queue baseline."""

    def __init__(self, ex: SimExchange, sid: str) -> None:
        self._ex = ex
        self._sid = sid
        self.now = 0
        self.n = 0
        self.out: list[Fill | OrderReject] = []
        self.log = None

    @property
    def strategy_id(self) -> str:
        return self._sid

    @property
    def now_ns(self) -> int:
        return self.now

    def submit_order(
        self,
        symbol: str,
        side: Literal[1, -1],
        qty: float,
        order_type: Literal["market", "limit", "ioc"] = "market",
        limit_price: float | None = None,
    ) -> str:
        self.n += 1
        oid = f"{self._sid}-{self.n}"
        self.out.extend(
            self._ex.submit(
                Order(
                    order_id=oid,
                    strategy_id=self._sid,
                    symbol=symbol,
                    side=side,
                    qty=qty,
                    order_type=order_type,
                    limit_price=limit_price,
                    ts_event=self.now,
                )
            )
        )
        return oid

    def cancel_order(self, order_id: str) -> None:
        raise NotImplementedError

    def position(self, symbol: str) -> float:
        return float(self._ex.position(self._sid, symbol))

    @property
    def positions(self) -> Mapping[str, float]:
        return {}

    def pending(self, symbol: str) -> float:
        return float(sum(o.qty * o.side for o in self._ex.open_orders(self._sid) if o.symbol == symbol))

    def equity(self) -> float:
        return float(self._ex.equity(self._sid))


async def _run_baseline(tape: Tape, limit: int | None) -> tuple[int, float, dict[str, Any]]:
    n = len(tape) if limit is None else min(limit, len(tape))
    q_ema: asyncio.Queue[Any] = asyncio.Queue(4096)
    q_host: asyncio.Queue[Any] = asyncio.Queue(4096)
    ex = SimExchange(SimExchangeConfig())
    ctx = _PlainCtx(ex, "ft")
    strat = ForecastThreshold(ctx, msgspec.convert(_STRATEGY, ForecastThresholdParams))
    strat.on_start()
    ema = _Ema(50, 200)
    fills = 0

    async def producer() -> None:
        ts_l = tape.ts_ns[:n].tolist()
        px_l = tape.price[:n].tolist()
        sz_l = tape.size[:n].tolist()
        sd_l = tape.side[:n].tolist()
        for i in range(n):
            t = Trade(
                symbol="ES",
                ts_event=ts_l[i],
                ts_recv=ts_l[i],
                seq=i + 1,
                price=px_l[i],
                size=sz_l[i],
                side=sd_l[i],
            )
            await q_ema.put(t)
            await q_host.put(t)
        await q_ema.put(None)

    async def ema_task() -> None:
        while True:
            m = await q_ema.get()
            if m is None:
                await q_host.put(None)
                return
            fc = ema.step(m)
            if fc is not None:
                await q_host.put(fc)

    async def host_task() -> None:
        nonlocal fills
        while True:
            m = await q_host.get()
            if m is None:
                return
            ctx.now = m.ts_event
            if type(m) is Trade:
                out = ex.on_market(m)
            else:
                strat.on_forecast(m)
                out, ctx.out = ctx.out, []
            for f in out:
                if type(f) is Fill:
                    fills += 1
                    strat.on_fill(f)

    t0 = time.perf_counter()
    c0 = time.process_time()
    await asyncio.gather(producer(), ema_task(), host_task())
    return n, time.perf_counter() - t0, {"fills": fills, "cpu_s": time.process_time() - c0}


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def _child(passes: int, loop: str) -> None:
    """Run our pipeline ``passes`` times over the tape in this (fresh) process; print JSON.

    ``maxrss_kb`` is the process peak (loading included); ``replay_peak_kb`` the
    largest RSS sampled every 20 ms while the replay ran, which is what grows
    if the pipeline leaks.
    """
    load_emini()
    gc.collect()
    start_kb = _rss_kb()
    peak = [start_kb]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ticks, wall, info = run_on_loop(_run_ours(passes, None), loop)
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_kb())
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "ticks": ticks,
                "wall_s": wall,
                "maxrss_kb": rss_kb,
                "replay_start_kb": start_kb,
                "replay_peak_kb": peak[0],
                **info,
            }
        )
    )


def _spawn(passes: int, loop: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tools.bench_replay", "--child-passes", str(passes), "--loop", loop],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="finllm bench replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON object per figure")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--repeat", type=int, default=2, help="throughput runs of each pipeline (best kept)")
    p.add_argument("--limit", type=int, default=None, help="ticks per run (default: all 500k)")
    p.add_argument("--passes", type=int, default=10, help="passes for the memory-growth figure")
    p.add_argument("--no-memory", action="store_true", help="skip the RSS figures")
    p.add_argument("--child-passes", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child_passes:
        _child(a.child_passes, a.loop)
        return 0
    tape = load_emini()
    # Warm-up (imports, caches, allocator) outside the measurement.
    run_on_loop(_run_ours(1, 50_000), a.loop)
    run_on_loop(_run_baseline(tape, 50_000), a.loop)
    ours: list[tuple[int, float, dict[str, Any]]] = []
    base: list[tuple[int, float, dict[str, Any]]] = []
    for _ in range(max(1, a.repeat)):  # interleaved, so both see the same machine load
        gc.collect()
        ours.append(run_on_loop(_run_ours(1, a.limit), a.loop))
        gc.collect()
        base.append(run_on_loop(_run_baseline(tape, a.limit), a.loop))
    best = max(ours, key=lambda r: r[0] / r[1])
    best_base = max(base, key=lambda r: r[0] / r[1])
    ctx = {
        "dataset": "emini",
        "n": best[0],
        "loop": a.loop,
        "repeat": a.repeat,
        "fills": best[2]["fills"],
        "baseline_fills": best_base[2]["fills"],
        "shed": best[2]["shed"],
        # Ticks per CPU-second too: on a shared, loaded machine wall-clock rates swing with the load.
        "ticks_per_cpu_s": best[0] / best[2]["cpu_s"],
        "baseline_ticks_per_cpu_s": best_base[0] / best_base[2]["cpu_s"],
    }
    emit(
        "replay",
        "replay_ticks_per_s",
        best[0] / best[1],
        "ticks/s",
        baseline="asyncio.Queue",
        baseline_value=best_base[0] / best_base[1],
        as_json=a.json,
        **ctx,
    )
    if not a.no_memory:
        one = _spawn(1, a.loop)
        many = _spawn(a.passes, a.loop)
        emit(
            "replay",
            "peak_rss_mb",
            one["maxrss_kb"] / 1024,
            "MiB",
            as_json=a.json,
            dataset="emini",
            n=one["ticks"],
            loop=a.loop,
        )
        growth = (many["replay_peak_kb"] - one["replay_peak_kb"]) / one["replay_peak_kb"] * 100.0
        emit(
            "replay",
            "rss_growth_pct_10x",
            growth,
            "%",
            as_json=a.json,
            dataset="emini",
            n=many["ticks"],
            passes=a.passes,
            loop=a.loop,
            replay_peak_mb_1x=one["replay_peak_kb"] / 1024,
            replay_peak_mb_nx=many["replay_peak_kb"] / 1024,
            replay_start_mb_1x=one["replay_start_kb"] / 1024,
            process_peak_mb_nx=many["maxrss_kb"] / 1024,
            ticks_per_s_nx=many["ticks"] / many["wall_s"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
