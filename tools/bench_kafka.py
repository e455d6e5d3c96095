"""``finllm bench kafka [--json]``: Kafka ingest and round-trip throughput against a real broker.

Figures (DESIGN.md):

``ingest_records_per_s``
    Records/s from the broker through :class:`~actors.kafka_io.KafkaSource` (batched
    ``getmany``, msgspec decode, routing, offset ledger) into the feed actor's mailbox.
    Baseline, same run, same broker: a bare aiokafka consumer counting records (no decode).
``roundtrip_records_per_s``
    Records/s through the whole node: consume, decode, baseline forecaster, sink
    (acks=all), acknowledgement back to the source, commit.  Baseline, same run: a bare
    aiokafka loop that consumes and re-produces each raw value (acks=all), no decode.

Times are measured from the first record seen to the last, so the consumer-group join
(seconds on Tansu) is excluded from every figure alike.  Without ``--bootstrap`` a Tansu
broker is started on loopback for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from actors.baseline_forecaster import BaselineForecaster, BaselineForecasterConfig
from actors.kafka_io import KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig
from adapters.kafka import ConsumerConfig, KafkaConfig
from adapters.tansu import TansuBroker
from engine.config import loads_config
from engine.kernel import Engine
from engine.mailbox import Mailbox
from engine.messages import Trade, msgpack_encoder
from tools.benchlib import emit

__all__ = ["main"]

_PARTITIONS = 6
_SYMBOLS = [f"S{i:02d}" for i in range(24)]


async def _produce(bootstrap: str, topic: str, n: int) -> int:
    """Write ``n`` msgpack trades keyed by symbol; returns the mean value size in bytes."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20)
    await p.start()
    size = 0
    try:
        futs = []
        for i in range(n):
            sym = _SYMBOLS[i % len(_SYMBOLS)]
            t = Trade(
                symbol=sym,
                ts_event=1_700_000_000_000_000_000 + i,
                seq=i // len(_SYMBOLS) + 1,
                price=100.0 + (i % 50) * 0.25,
                size=1.0,
            )
            v = msgpack_encoder.encode(t)
            size += len(v)
            futs.append(await p.send(topic, v, key=sym.encode()))
            if len(futs) >= 20_000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return size // max(n, 1)


async def _topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, _PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


def _group() -> dict[str, Any]:
    return {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 500}


async def _raw_consume(bootstrap: str, topic: str, n: int) -> float:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **_group(),
    )
    await c.start()
    try:
        got = 0
        t0 = 0.0
        while got < n:
            batch = await c.getmany(timeout_ms=200, max_records=10_000)
            for recs in batch.values():
                if not t0:
                    t0 = time.perf_counter()
                got += len(recs)
        return got / (time.perf_counter() - t0)
    finally:
        await c.stop()


async def _raw_pipe(bootstrap: str, src: str, dst: str, n: int) -> float:
    c = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=f"pipe-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **_group(),
    )
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await c.start()
    await p.start()
    try:
        done = 0
        t0 = 0.0
        while done < n:
            batch = await c.getmany(timeout_ms=200, max_records=10_000)
            futs = []
            for recs in batch.values():
                if not t0:
                    t0 = time.perf_counter()
                for r in recs:
                    futs.append(await p.send(dst, r.value, key=r.key))
            if futs:
                await asyncio.gather(*futs)
                done += len(futs)
                await c.commit()
        return done / (time.perf_counter() - t0)
    finally:
        await p.stop()
        await c.stop()


async def _wait_count(count: Any, n: int, timeout_s: float) -> float:
    """Wait until ``count()`` reaches ``n``; returns records/s from first to last."""
    deadline = time.perf_counter() + timeout_s
    t0 = 0.0
    while True:
        c = count()
        now = time.perf_counter()
        if c and not t0:
            t0 = now
        if c >= n:
            return n / (now - t0) if now > t0 else float("nan")
        if now > deadline:
            raise TimeoutError(f"only {c} of {n} records within {timeout_s}s")
        await asyncio.sleep(0.002)


def _source_config(bootstrap: str, topic: str, **kw: Any) -> KafkaSourceConfig:
    return KafkaSourceConfig(
        kafka=KafkaConfig(bootstrap_servers=bootstrap),
        consumer=ConsumerConfig(group_id=f"bench-{uuid.uuid4().hex[:6]}", **_group()),
        topics=(topic,),
        dead_letter_topic=f"{topic}-dlq",
        **kw,
    )


async def _ingest(bootstrap: str, topic: str, n: int) -> float:
    engine = Engine(loads_config(""))
    engine.add_actor(
        "source",
        KafkaSource,
        _source_config(bootstrap, topic, wait_for_forecast=False),
        subscribe=["kafka.acked.*"],
    )
    feed: Mailbox[Any] = Mailbox(n + 1, "drop_newest", name="feed")
    engine.bus.subscribe("md.*", feed)
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        return await _wait_count(lambda: len(feed), n, 120)
    finally:
        engine.request_shutdown("bench done")
        feed.close(discard=True)
        await task


async def _roundtrip(bootstrap: str, src: str, dst: str, n: int) -> float:
    engine = Engine(loads_config(""))
    engine.add_actor(
        "sink",
        KafkaSink,
        KafkaSinkConfig(kafka=KafkaConfig(bootstrap_servers=bootstrap), topic=dst),
        mailbox=Mailbox(65536, "block", name="sink"),
        subscribe=["forecast.*"],
    )
    engine.add_actor(
        "forecaster",
        BaselineForecaster,
        BaselineForecasterConfig(),
        mailbox=Mailbox(65536, "block", name="forecaster"),
        subscribe=["md.*"],
    )
    engine.add_actor(
        "source",
        KafkaSource,
        _source_config(bootstrap, src),
        mailbox=Mailbox(65536, "block", name="source"),
        subscribe=["kafka.acked.*"],
    )
    acked = engine.metrics.counter("kafka_forecasts_acked_total", actor="sink")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        return await _wait_count(lambda: acked.value, n, 300)
    finally:
        engine.request_shutdown("bench done")
        await task


async def _run(args: argparse.Namespace) -> None:
    broker: TansuBroker | None = None
    bootstrap = args.bootstrap
    if not bootstrap:
        broker = TansuBroker().start()
        bootstrap = broker.bootstrap
    try:
        tag = uuid.uuid4().hex[:6]
        src, rt_src = f"bench-in-{tag}", f"bench-rt-in-{tag}"
        dst, pipe = f"bench-out-{tag}", f"bench-pipe-{tag}"
        await _topics(bootstrap, src, rt_src, dst, pipe)
        n = args.n
        value_bytes = await _produce(bootstrap, src, n)
        ctx = {
            "n": n,
            "value_bytes": value_bytes,
            "partitions": _PARTITIONS,
            "loop": "uvloop",
            "broker": "tansu" if broker else bootstrap,
            "as_json": args.json,
        }
        raw = await _raw_consume(bootstrap, src, n)
        ingest = await _ingest(bootstrap, src, n)
        emit(
            "kafka",
            "ingest_records_per_s",
            ingest,
            "records/s",
            baseline="aiokafka getmany (no decode)",
            baseline_value=raw,
            **ctx,
        )
        # Its own input topic of exactly m records, so the node drains and stops promptly.
        m = args.roundtrip_n
        ctx["n"] = m
        await _produce(bootstrap, rt_src, m)
        pipe_rate = await _raw_pipe(bootstrap, rt_src, pipe, m)
        rt = await _roundtrip(bootstrap, rt_src, dst, m)
        emit(
            "kafka",
            "roundtrip_records_per_s",
            rt,
            "records/s",
            baseline="aiokafka consume+produce (no decode)",
            baseline_value=pipe_rate,
            **ctx,
        )
    finally:
        if broker is not None:
            broker.stop()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="finllm bench kafka", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.add_argument(
        "--n", type=int, default=200_000, help="records for the ingest figure (default %(default)s)"
    )
    p.add_argument(
        "--roundtrip-n", type=int, default=50_000, help="records for the round trip (default %(default)s)"
    )
    p.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    args = p.parse_args(argv)
    import logging

    import structlog

    # Per-record logs would distort the figures; keep warnings and errors.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    uvloop.run(_run(args))
    return 0
