"""``finllm bench node [--json]``: the live edge node, wire to wire, on a real Kafka-protocol broker.

The node is ``finllm node`` itself - the shipped pipeline (config/default.toml under its node
profile: Kafka source, MarketDataFeed, narrative and sanity, the es-1m EdgeReasoner, the
degradation controller, control plane, Kafka sink) in a child process - with two overrides for
the measurement: ``--profile edge-only`` (the cloud tier is asynchronous and off the forecast's
path) and tick bars of one trade (every record is a bar and gets a forecast, so every record is
a latency sample; the shipped one-minute bars answer one record in many).

Figures (DESIGN.md):

``node_records_per_s``
    Capacity, in NORMAL mode (the degradation controller's wall-clock signals off: saturated, it
    would shed bars by design): records/s one node consumes, validates, bars, forecasts, writes (acks=all) and
    has acknowledged, while ``--capacity-n`` records are written as fast as a producer on the same
    machine can (faster than the node takes them); from the first record it counted in to the
    last forecast acknowledged (the node started and joined its group before).  Baseline,
    same run, same broker: a bare aiokafka process that consumes each record, decodes it and
    produces one record back (acks=all) - Kafka without the engine.
``wire_to_wire_p50_ms``, ``wire_to_wire_p99_ms``
    At ``--load`` (default 0.5) of that capacity, in NORMAL mode like the capacity (the
    controller's wall-clock signals off; ``--live-controller`` keeps them, and the context says
    which mode the node ended in and how many bars it shed), paced for ``--duration`` seconds: from each
    record's timestamp (the producer stamps the trade's ``ts_event`` and the Kafka record
    timestamp with the wall clock at send, unbatched) to the broker's acknowledgement of the
    forecast made from it (the sink's ``kafka_forecast_event_to_ack_us``, read from the node's
    ``/stats``).  Baseline: the bare aiokafka process at the same offered rate, timestamp to
    acknowledgement of its echo record.
``node_records_per_s_bars_1m``
    The shipped one-minute bars (event times 1 s apart: one forecast per 60 records of a
    symbol): records/s until the feed has taken every record of the backlog (each folded into
    its bar, the closed bars forecast), when most records only fold into bars.

Without ``--bootstrap`` a Tansu broker is started on loopback for the run.  Everything runs on
this machine: broker, node, producer and baseline share its cores.  Tansu holds a fetch for the
consumer's whole ``fetch_max_wait_ms`` even when records arrive meanwhile (Apache Kafka answers
at once), so that wait is a floor under every figure: ``--fetch-wait-ms`` (default 5) sets it
for the node and the baseline alike (the shipped node keeps aiokafka's 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters.tansu import TansuBroker, free_port
from engine.messages import Trade, msgpack_encoder
from engine.metrics import Histogram
from tools.benchlib import emit

__all__ = ["main"]

_REPO = Path(__file__).resolve().parents[1]
_PARTITIONS = 6
_WARMUP = 21  # bars a symbol needs before the edge forecasts (first bar + 20 of warm-up)
_decode_trade = msgspec.msgpack.Decoder(Trade).decode


def _symbols(n: int) -> list[str]:
    return [f"S{i:02d}" for i in range(n)]


async def _topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.create_topics([NewTopic(n, _PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


def _trade(sym: str, i: int, ts: int) -> Trade:
    return Trade(
        symbol=sym, ts_event=ts, price=100.0 * math.exp(1e-4 * math.sin(i * 0.7)), size=1.0 + i % 3, side=1
    )


async def _preload(bootstrap: str, topic: str, symbols: list[str], n: int, spacing_ns: int) -> None:
    """``n`` trades round robin over ``symbols``, event times ``spacing_ns`` apart per symbol."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20)
    try:
        await p.start()
        t0 = (time.time_ns() - 10**9 * 3600 * 24) // 60_000_000_000 * 60_000_000_000
        futs = []
        for i in range(n):
            sym = symbols[i % len(symbols)]
            tr = _trade(sym, i, t0 + (i // len(symbols)) * spacing_ns)
            futs.append(await p.send(topic, msgpack_encoder.encode(tr), key=sym.encode()))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def _paced(bootstrap: str, topic: str, symbols: list[str], rate: float, duration_s: float) -> int:
    """Trades at ``rate``/s for ``duration_s``, each stamped (event time and record timestamp)
    with the wall clock when it is sent; unbatched (linger 0).  Returns how many were sent."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    n = 0
    try:
        await p.start()
        t0 = time.monotonic()
        futs = []
        while (elapsed := time.monotonic() - t0) < duration_s:
            due = int(elapsed * rate) + 1
            while n < due:
                sym = symbols[n % len(symbols)]
                now = time.time_ns()
                tr = _trade(sym, n, now)
                futs.append(
                    await p.send(
                        topic, msgpack_encoder.encode(tr), key=sym.encode(), timestamp_ms=now // 1_000_000
                    )
                )
                n += 1
            if len(futs) > 2000:
                await asyncio.gather(*futs)
                futs.clear()
            await asyncio.sleep(min(0.002, max(0.0, (n / rate) - (time.monotonic() - t0))))
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return n


# --- the node ------------------------------------------------------------------------------------


class _Node:
    """``finllm node`` (the shipped config) on the bench's topics, in a child process."""

    def __init__(
        self, bootstrap: str, md: str, fc: str, *, bars: str, log: Path, extra: list[str] | None = None
    ) -> None:
        self.http = f"127.0.0.1:{free_port()}"
        tag = uuid.uuid4().hex[:6]
        src = "actors[kafka-source].config"
        sets = [
            f'{src}.topics=["{md}", "news-{tag}"]',
            f"{src}.dead_letter_topic=dlq-{tag}",
            f"actors[kafka-sink].config.topic={fc}",
            f"actors[heartbeats].config.topic=hb-{tag}",
            f"actors[feed].config.bars={bars}",
            *(extra or []),
        ]
        args = [sys.executable, "-m", "engine.cli", "node", "--profile", "edge-only"]
        args += ["--bootstrap", bootstrap, "--group", f"bench-{tag}", "--node-id", f"bench-{tag}"]
        args += ["--http", self.http]
        for s in sets:
            args += ["--set", s]
        self.md = md
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            args, cwd=_REPO, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL
        )

    def stats(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://{self.http}/stats", timeout=2) as r:
                doc: dict[str, Any] = json.loads(r.read())
                return doc
        except OSError:
            return None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def counter(self, doc: dict[str, Any], name: str) -> float:
        return float(doc["metrics"]["counters"].get(name, 0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


async def _wait_ready(node: _Node, timeout_s: float = 120.0) -> None:
    """Until every actor of the node started and its source holds its partitions (its log says
    so) and it answers /readyz 200: the measurement never includes the node's start."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"the node exited with {node.proc.returncode}: see {node.log_path}")
        text = await asyncio.to_thread(node.log_path.read_text, errors="replace")
        started = '"node_started"' in text and '"partitions_assigned"' in text and node.md in text
        if started and await asyncio.to_thread(node.ready):
            await asyncio.sleep(0.5)  # the first fetch requests out
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the node did not become ready: see {node.log_path}")


async def _node_capacity(
    node: _Node,
    n: int,
    answers: int,
    timeout_s: float = 600.0,
    until: str = "kafka_forecasts_acked_total{actor=kafka-sink}",
) -> float:
    """Records/s from the first record counted in to ``answers`` of ``until`` (a counter; default
    the forecasts acknowledged)."""
    t_first = t_last = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = await asyncio.to_thread(node.stats)
        now = time.monotonic()
        if doc is not None:
            seen = node.counter(doc, "kafka_records_in_total{actor=kafka-source}")
            acked = node.counter(doc, until)
            if seen and not t_first:  # polled every 100 ms: +-0.1 s over a run of seconds
                t_first = now
            if acked >= answers:
                t_last = now
                break
        await asyncio.sleep(_POLL_S)  # /stats runs on the node's loop: poll gently
    if not t_last:
        raise TimeoutError(f"the node did not answer {answers} forecasts within {timeout_s}s")
    return n / max(t_last - t_first, _POLL_S)


_POLL_S = 0.1
"""How often :func:`_node_capacity` polls ``/stats``: the resolution of its elapsed time."""
_MIN_POLLS = 10
"""A capacity measured over fewer polls than this is reported as undefined (JSON null): at
0.1 s resolution a shorter run's figure could be off by more than 10%."""


async def _node_latency(node: _Node, sent: int, timeout_s: float = 90.0) -> dict[str, Any]:
    """Once the node took in all ``sent`` records and its acknowledgements stopped for 2 s (or
    ``timeout_s`` passed: it could not keep up, ``saturated``): the wire-to-wire histogram so far,
    the mode it ended in and the bars it shed."""
    deadline = time.monotonic() + timeout_s
    last = -1.0
    still_since = time.monotonic()
    doc: dict[str, Any] | None = None
    saturated = True
    while time.monotonic() < deadline:
        doc = await asyncio.to_thread(node.stats) or doc
        if doc is not None and node.counter(doc, "kafka_records_in_total{actor=kafka-source}") >= sent:
            acked = node.counter(doc, "kafka_forecasts_acked_total{actor=kafka-sink}")
            if acked != last:
                last, still_since = acked, time.monotonic()
            elif time.monotonic() - still_since > 2.0:
                saturated = False
                break
        await asyncio.sleep(0.2)
    if doc is None:
        raise RuntimeError("the node never answered /stats")
    counters = doc["metrics"]["counters"]
    return {
        "hist": doc["metrics"]["histograms"]["kafka_forecast_event_to_ack_us{actor=kafka-sink}"],
        "taken_in": int(node.counter(doc, "kafka_records_in_total{actor=kafka-source}")),
        "saturated": saturated,
        "shed": int(
            sum(
                v for k, v in counters.items() if k.startswith("edge_bars_dropped_total") and "conflated" in k
            )
        ),
        "mode": doc["mode"],
    }


# --- the baseline: aiokafka consume -> produce, no engine ------------------------------------------


async def _pipe(bootstrap: str, src: str, dst: str, n: int, out: Path, fetch_wait_ms: int = 5) -> None:
    """Consume ``n`` records of ``src``, decode each, produce one record back to ``dst`` per record
    (acks=all); write {"records_per_s", latency summary} to ``out``."""
    c = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=f"pipe-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_wait_ms,
    )
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    hist = Histogram()
    done = 0
    t_first = t_last = 0.0
    finished = asyncio.Event()

    def acked(ts: int, fut: asyncio.Future[Any]) -> None:
        nonlocal done, t_last
        if fut.cancelled() or fut.exception() is not None:
            return
        hist.observe(max(0, time.time_ns() - ts) / 1000.0)
        done += 1
        t_last = time.monotonic()
        if done >= n:
            finished.set()

    try:
        await p.start()
        await c.start()
        quiet_since = 0.0
        while not finished.is_set():
            batches = await c.getmany(timeout_ms=100, max_records=10_000)
            now = time.monotonic()
            if batches or not t_first:
                quiet_since = now
            elif now - quiet_since > 3.0 and done:  # a paced run ended short of n: what came is all
                break
            for recs in batches.values():
                if not t_first:
                    t_first = time.monotonic()
                for r in recs:
                    tr = _decode_trade(r.value)
                    fut = await p.send(dst, r.value, key=r.key)
                    fut.add_done_callback(lambda f, ts=tr.ts_event: acked(ts, f))
            if batches:
                await c.commit()
    finally:
        await c.stop()
        await p.stop()
    result = {"records_per_s": done / max(t_last - t_first, 1e-9), "latency_us": hist.summary()}
    await asyncio.to_thread(out.write_text, json.dumps(result))


def _pipe_process(
    bootstrap: str, src: str, dst: str, n: int, out: Path, fetch_wait_ms: int = 5
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.bench_node",
            "_pipe",
            bootstrap,
            src,
            dst,
            str(n),
            str(out),
            str(fetch_wait_ms),
        ],
        cwd=_REPO,
        stdin=subprocess.DEVNULL,
    )


async def _after(delay_s: float, coro: Any) -> None:
    await asyncio.sleep(delay_s)
    await coro


async def _baseline(
    bootstrap: str, src: str, dst: str, n: int, work: Path, produce: Any, fetch_wait_ms: int
) -> dict[str, Any]:
    """Run the bare pipe over ``n`` records that ``produce()`` writes (before or while it runs)."""
    out = work / f"pipe-{uuid.uuid4().hex[:6]}.json"
    proc = _pipe_process(bootstrap, src, dst, n, out, fetch_wait_ms)
    await _run_child(proc, produce(), 300)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def _run_child(proc: subprocess.Popen[bytes], work: Any, timeout_s: float) -> None:
    """Await ``work`` while the child ``proc`` runs, then wait up to ``timeout_s`` for it to exit;
    a child still running then (or after a failure) is killed."""
    try:
        await work
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a child process
            await asyncio.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# --- the run -----------------------------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> None:
    broker: TansuBroker | None = None
    bootstrap = args.bootstrap
    if not bootstrap:
        broker = TansuBroker().start()
        bootstrap = broker.bootstrap
    work = Path(tempfile.mkdtemp(prefix="bench-node-"))
    symbols = _symbols(args.symbols)
    tick = '[{kind="tick", size=1}]'
    minute = '[{kind="time", size=60e9, multiplier=50.0}]'
    ctx: dict[str, Any] = {
        "broker": "tansu" if broker else bootstrap,
        "partitions": _PARTITIONS,
        "symbols": len(symbols),
        "pipeline": "config/default.toml --profile node --profile edge-only (es-1m)",
        "fetch_max_wait_ms": args.fetch_wait_ms,
        "as_json": args.json,
    }
    wait = [f"actors[kafka-source].config.consumer.fetch_max_wait_ms={args.fetch_wait_ms}"]
    # Capacity is the sustainable rate of the full pipeline in NORMAL mode (as in the overload
    # experiment): saturated, the controller would move to DEGRADED and shed bars by design.
    steady = ["actors[degradation].config.wall_clock_signals=off"]
    try:
        tag = uuid.uuid4().hex[:6]
        names = {k: f"{k}-{tag}" for k in ("cap", "capfc", "bar", "barfc", "pcap", "pcapout")}
        await _topics(bootstrap, list(names.values()))
        n = args.capacity_n
        answers = n - _WARMUP * len(symbols)

        # 1. capacity of the node: records as fast as the producer writes them (faster than the
        # node takes them), every record a bar and a forecast; the node joined first
        node = _Node(
            bootstrap, names["cap"], names["capfc"], bars=tick, log=work / "node-cap.log", extra=wait + steady
        )
        try:
            await _wait_ready(node)
            producing = asyncio.create_task(_preload(bootstrap, names["cap"], symbols, n, 1_000_000_000))
            capacity = await _node_capacity(node, n, answers)
            await producing
        finally:
            node.stop()
        raw = await _baseline(
            bootstrap,
            names["pcap"],
            names["pcapout"],
            n,
            work,
            lambda: _after(args.join_s, _preload(bootstrap, names["pcap"], symbols, n, 1_000_000_000)),
            args.fetch_wait_ms,
        )
        emit(
            "node",
            "node_records_per_s",
            capacity,
            "records/s",
            baseline="aiokafka consume+decode+produce (no engine)",
            baseline_value=raw["records_per_s"],
            n=n,
            bars="tick-1 (every record forecast)",
            **ctx,
        )

        # 2. wire to wire at fractions of that capacity, each on a fresh node
        for load in args.load or [0.5]:
            rate = load * capacity
            lat_topic, lat_fc = f"lat-{uuid.uuid4().hex[:6]}", f"latfc-{uuid.uuid4().hex[:6]}"
            pipe_in, pipe_out = f"plat-{uuid.uuid4().hex[:6]}", f"platout-{uuid.uuid4().hex[:6]}"
            await _topics(bootstrap, [lat_topic, lat_fc, pipe_in, pipe_out])
            node = _Node(
                bootstrap,
                lat_topic,
                lat_fc,
                bars=tick,
                log=work / f"node-lat-{load}.log",
                extra=wait + ([] if args.live_controller else steady),
            )
            try:
                await _wait_ready(node)
                sent = await _paced(bootstrap, lat_topic, symbols, rate, args.duration)
                res = await _node_latency(node, sent)
            finally:
                node.stop()
            # the bare pipe reads the paced records as they come: start it, let it join, produce
            out = work / f"pipe-lat-{load}.json"
            proc = _pipe_process(bootstrap, pipe_in, pipe_out, sent, out, args.fetch_wait_ms)
            paced = _paced(bootstrap, pipe_in, symbols, rate, args.duration)
            await _run_child(proc, _after(args.join_s, paced), 120)
            # a pipe that could not keep up was stopped without a result: no baseline figure then
            raw_lat = (
                json.loads(out.read_text())["latency_us"] if out.exists() else {"p50": None, "p99": None}
            )
            lat = res["hist"]
            lat_ctx = {
                **ctx,
                "offered_per_s": round(rate, 1),
                "load": load,
                "duration_s": args.duration,
                "records": sent,
                "samples": int(lat["count"]),
                "edge_bars_conflated": res["shed"],
                "saturated": res["saturated"],
                "taken_in_before_timeout": res["taken_in"],
                "mode_at_end": res["mode"],
                "controller": "live" if args.live_controller else "wall-clock signals off (NORMAL)",
                "bars": "tick-1 (every record forecast)",
            }
            for q in ("p50", "p99"):
                emit(
                    "node",
                    f"wire_to_wire_{q}_ms",
                    lat[q] / 1000.0,
                    "ms",
                    baseline="aiokafka consume+decode+produce (no engine)",
                    baseline_value=None if (b := raw_lat[q]) is None else b / 1000.0,
                    **lat_ctx,
                )
            emit("node", "wire_to_wire_p999_ms", lat["p999"] / 1000.0, "ms", **lat_ctx)

        # 3. the shipped one-minute bars: most records only fold into a bar
        nb = args.capacity_n
        node = _Node(
            bootstrap,
            names["bar"],
            names["barfc"],
            bars=minute,
            log=work / "node-bar.log",
            extra=wait + steady,
        )
        try:
            await _wait_ready(node)
            producing = asyncio.create_task(_preload(bootstrap, names["bar"], symbols, nb, 1_000_000_000))
            # every record validated and folded into its bar (the bars that closed forecast)
            cap_bars = await _node_capacity(node, nb, nb, until="md_events_in_total")
            await producing
        finally:
            node.stop()
        # the node folds records into minute bars faster than it forecasts them: a backlog of
        # nb records may drain within a few polls, too short a run for a figure
        defined = nb / cap_bars >= _MIN_POLLS * _POLL_S
        emit(
            "node",
            "node_records_per_s_bars_1m",
            cap_bars if defined else None,
            "records/s",
            n=nb,
            bars="time 60 s",
            elapsed_s=round(nb / cap_bars, 2),
            **ctx,
        )
    finally:
        if broker is not None:
            broker.stop()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_pipe":  # the baseline's child process
        bootstrap, src, dst, n, out, wait = argv[1:7]
        uvloop.run(_pipe(bootstrap, src, dst, int(n), Path(out), int(wait)))
        return 0
    p = argparse.ArgumentParser(prog="finllm bench node", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    p.add_argument("--symbols", type=int, default=12, help="symbols (default %(default)s)")
    p.add_argument(
        "--capacity-n",
        type=int,
        default=30_000,
        help="records of the capacity backlogs (default %(default)s)",
    )
    p.add_argument(
        "--load",
        type=float,
        action="append",
        default=[],
        help="offered load as a fraction of capacity (repeatable: one paced run each; default 0.5)",
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds of paced load (default %(default)s)")
    p.add_argument("--join-s", type=float, default=6.0, help="time the baseline pipe gets to join its group")
    p.add_argument(
        "--live-controller",
        action="store_true",
        help="latency runs with the degradation controller's wall-clock signals on (as shipped): on a "
        "busy machine its loop-lag thresholds move the node to DEGRADED/SURVIVAL, which sheds bars",
    )
    p.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=5,
        help="consumers' fetch_max_wait_ms, node and baseline (Tansu holds every fetch that long: it "
        "does not answer early when records arrive, so this bounds latency from below; default %(default)s)",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvloop.run(_run(args))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
