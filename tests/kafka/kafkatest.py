"""Helpers of the Kafka tests: topics, input producers, a forecast collector, node processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from adapters.kafka import record_position, stop_clients, stream_id
from adapters.kafka import send_settled as _send_settled
from adapters.tansu import parent_death_signal
from engine.config import loads_config
from engine.kernel import Engine, RunSummary
from engine.messages import Forecast, NewsItem, Trade, json_decoder, msgpack_decoder, msgpack_encoder
from engine.testing import Probe

REPO = Path(__file__).resolve().parents[2]

# Short group timings: rebalances on Tansu take about the rebalance timeout, and a member that
# left or died is forgotten after about the session timeout (longer ones slow every test).
FAST_GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 500}
# The crash test: a killed member is only noticed after its session timeout.
CRASH_GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300}


@dataclass
class Topics:
    md: str
    news: str
    forecasts: str
    dead: str
    group: str

    @classmethod
    def fresh(cls) -> Topics:
        tag = uuid.uuid4().hex[:8]
        return cls(f"md-{tag}", f"news-{tag}", f"fc-{tag}", f"dlq-{tag}", f"grp-{tag}")


async def http_get(address: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` from ``host:port`` over HTTP/1.0; returns (status, body)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def stop_bounded(*clients: Any, timeout_s: float = 15.0) -> None:
    """Stop aiokafka clients within ``timeout_s`` each (:func:`adapters.kafka.stop_clients`).

    A producer's ``stop()`` flushes first, and aiokafka expires a batch only when its partition has
    no leader: against a broker that is gone (a test that failed, a fixture torn down first) an
    unbounded stop waits for ever, and a task cancelled when the test's loop closes would hold the
    run.  Stop errors are not the test's subject and are dropped.
    """
    await stop_clients(clients, timeout_s)


async def send_settled(producer: AIOKafkaProducer, topic: str, value: bytes | None, **kw: Any) -> Any:
    """``producer.send_and_wait``, bounded to 30 s (:func:`adapters.kafka.send_settled`): a producer
    whose sender ended on a reset fails the test with ``ProducerStopped`` instead of hanging it."""
    return await _send_settled(producer, topic, value, timeout_s=30.0, **kw)


async def create_topics(bootstrap: str, topics: dict[str, int], **client: Any) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
    try:
        await admin.start()
        await admin.create_topics([NewTopic(name, n, 1) for name, n in topics.items()])
    finally:
        await admin.close()


async def standard_topics(bootstrap: str, t: Topics, md_partitions: int = 6, **client: Any) -> None:
    await create_topics(bootstrap, {t.md: md_partitions, t.news: 1, t.forecasts: 6, t.dead: 1}, **client)


def trade(sym: str, seq: int) -> Trade:
    return Trade(
        symbol=sym,
        ts_event=1_700_000_000_000_000_000 + seq * 1_000_000,
        seq=seq,
        price=100.0 + (seq % 17) * 0.25,
        size=1.0 + seq % 3,
    )


async def produce_trades(
    bootstrap: str,
    topic: str,
    symbols: Iterable[str],
    n_per_symbol: int,
    *,
    start_seq: int = 1,
    rate_per_s: float | None = None,
    chunk: int = 200,
    stop: asyncio.Event | None = None,
    topic_index: int = 0,
) -> set[tuple[str, int]]:
    """Produce trades keyed by symbol (round robin over symbols); returns their (symbol, position) set.

    The position (:func:`adapters.kafka.record_position`, from the partition and offset the
    broker acknowledged, ``topic`` being the node's ``topic_index``-th topic) is the
    ``basis_seq`` of the forecast a node makes from the record.  With ``stop``, production
    ends early (at a chunk boundary) once it is set.
    """
    syms = list(symbols)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent: set[tuple[str, int]] = set()
    futs: list[tuple[str, int, asyncio.Future[Any]]] = []

    async def send(sym: str, seq: int, attempts: int = 5) -> None:
        # On uvloop a reset can surface inside aiokafka's sender as an unexpected error (a write
        # to a closed transport); the producer then refuses every later send.  The fault tests
        # cut connections on purpose: such a producer is replaced, and the record sent again.
        nonlocal producer
        for attempt in range(attempts):
            try:
                fut = await producer.send(topic, msgpack_encoder.encode(trade(sym, seq)), key=sym.encode())
            except KafkaError:
                if attempt == attempts - 1:
                    raise
                # (the dead producer has failed its pending batches: settle() sends them again)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), 10)
                await asyncio.sleep(0.5)
                producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
                await producer.start()
                continue
            futs.append((sym, seq, fut))
            return

    async def settle(attempts: int = 5) -> None:
        # A batch cut by a connection reset (the fault tests) fails as a whole: send its records
        # again (an input record written twice is forecast twice, never lost).
        for attempt in range(attempts):
            metas = await asyncio.gather(*(f for _, _, f in futs), return_exceptions=True)
            failed: list[tuple[str, int]] = []
            for (sym, seq, _), meta in zip(futs, metas, strict=True):
                if isinstance(meta, BaseException):
                    if attempt == attempts - 1:
                        raise meta
                    failed.append((sym, seq))
                else:
                    sent.add((sym, position(meta, topic_index)))
            futs.clear()
            if not failed:
                return
            await asyncio.sleep(0.5)
            for sym, seq in failed:
                await send(sym, seq)

    try:
        await producer.start()  # inside try: a client that fails to start is still stopped
        t0 = time.monotonic()
        n = 0
        for seq in range(start_seq, start_seq + n_per_symbol):
            for sym in syms:
                await send(sym, seq)
                n += 1
                if rate_per_s and n % chunk == 0:
                    await settle()
                    if stop is not None and stop.is_set():
                        return sent
                    ahead = n / rate_per_s - (time.monotonic() - t0)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await settle()
    finally:
        await asyncio.gather(*(f for _, _, f in futs), return_exceptions=True)
        await stop_bounded(producer)
    return sent


def position(meta: Any, topic_index: int = 0) -> int:
    """The position of a produced record (``RecordMetadata`` or a consumed record) on a node
    whose ``topic_index``-th topic it is on."""
    return record_position(stream_id(topic_index, meta.partition), meta.offset)


async def read_positions(
    bootstrap: str, topic: str, topic_index: int = 0, **client: Any
) -> set[tuple[str, int]]:
    """(symbol, position) of every decodable trade on ``topic``, read back from the broker."""
    out: set[tuple[str, int]] = set()
    for r in await read_all(bootstrap, topic, **client):
        msg = msgpack_decoder.decode(r.value) if r.value[:1] != b"{" else json_decoder.decode(r.value)
        if isinstance(msg, Trade):
            out.add((msg.symbol, position(r, topic_index)))
    return out


async def read_all(bootstrap: str, topic: str, quiet_polls: int = 3, **client: Any) -> list[Any]:
    """Every record of ``topic`` from the beginning (no group), until ``quiet_polls`` empty polls."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", **client)
    out: list[Any] = []
    try:
        await c.start()
        parts = None
        for _ in range(100):
            parts = c.partitions_for_topic(topic)
            if parts:
                break
            await c._client.force_metadata_update()  # the topic was just created
            await asyncio.sleep(0.05)
        assert parts, f"no partitions for {topic}"
        c.assign([TopicPartition(topic, p) for p in sorted(parts)])
        quiet = 0
        while quiet < quiet_polls:
            got = await c.getmany(timeout_ms=150, max_records=50_000)
            quiet = 0 if got else quiet + 1
            for recs in got.values():
                out.extend(recs)
    finally:
        await stop_bounded(c)
    return out


@dataclass
class Collected:
    counts: Counter[str] = field(default_factory=Counter)
    covered: set[tuple[str, int]] = field(default_factory=set)
    origins: Counter[str] = field(default_factory=Counter)
    header_mismatch: int = 0
    nonfinite: int = 0
    """Forecasts carrying a NaN or infinite number (there must never be one)."""
    records: int = 0

    @property
    def duplicates(self) -> int:
        return self.records - len(self.counts)


class ForecastReader:
    """Reads a forecasts topic from the beginning (no group) and accumulates what it saw."""

    def __init__(self, bootstrap: str, topic: str, **client: Any) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client = client
        self.seen = Collected()
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> ForecastReader:
        c = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.client,
        )
        try:
            await c.start()
            parts = None
            for _ in range(100):
                parts = c.partitions_for_topic(self.topic)
                if parts:
                    break
                await c._client.force_metadata_update()  # the topic was just created
                await asyncio.sleep(0.05)
            assert parts, f"no partitions for {self.topic}"
            c.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        except BaseException:
            await stop_bounded(c)
            raise
        self._consumer = c
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await stop_bounded(self._consumer)

    async def poll(self, timeout_ms: int = 200) -> int:
        assert self._consumer is not None
        got = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=20_000)
        n = 0
        s = self.seen
        for recs in got.values():
            for r in recs:
                fc = msgpack_decoder.decode(r.value)
                assert isinstance(fc, Forecast)
                headers = dict(r.headers)
                if headers.get("forecast_id", b"").decode() != fc.forecast_id:
                    s.header_mismatch += 1
                numbers = (fc.point, fc.volatility, fc.direction_prob, fc.confidence, *fc.quantiles)
                if not all(math.isfinite(x) for x in numbers):
                    s.nonfinite += 1
                s.counts[fc.forecast_id] += 1
                s.covered.add((fc.symbol, fc.basis_seq))
                s.origins[headers.get("origin", b"").decode()] += 1
                s.records += 1
                n += 1
        return n

    async def until(self, expected: set[tuple[str, int]], timeout_s: float) -> Collected:
        """Poll until every expected (symbol, seq) has a forecast or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not expected <= self.seen.covered:
            await self.poll()
        return self.seen

    async def settle(self, quiet_s: float = 1.0) -> Collected:
        """Poll until nothing new arrives for ``quiet_s`` (late duplicates included)."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            if await self.poll(100):
                last = time.monotonic()
        return self.seen


async def committed_and_end(
    bootstrap: str, group: str, topic: str, partitions: int, **client: Any
) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and each partition's end (last offset + 1), by reading it.

    Tansu's ListOffsets answers the base offset of the last batch rather than the high
    watermark, so ``end_offsets()`` cannot be trusted against it: we read to the end instead.
    """
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **client)
    try:
        await c.start()
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp.partition: (await c.committed(tp)) or 0 for tp in tps}
    finally:
        await stop_bounded(c)
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", **client
    )
    ends = dict.fromkeys(range(partitions), 0)
    try:
        await reader.start()
        reader.assign(tps)
        quiet = 0
        while quiet < 3:
            got = await reader.getmany(timeout_ms=150, max_records=50_000)
            quiet = 0 if got else quiet + 1
            for tp, recs in got.items():
                ends[tp.partition] = max(ends[tp.partition], recs[-1].offset + 1)
    finally:
        await stop_bounded(reader)
    return committed, ends


@dataclass
class RedeliveryEvents:
    """What the nodes' JSON logs say about the events that can re-deliver input records."""

    revokes: int = 0
    """``partitions_revoked`` with at least one partition: a rebalance took partitions away."""
    restarts: int = 0
    """``child_failed`` in the kafka supervisor: source, forecaster and sink restarted in-process."""
    retried: int = 0
    """Forecasts re-sent after a failed send, which may have been written anyway."""
    redelivered: list[int] = field(default_factory=list)
    """Per revoke, the records its next owner re-reads (the node's own account)."""

    def budget(self, window: int, kills: int = 0, leaves: int = 0) -> int:
        """The most duplicate forecasts these events (plus ``kills`` kill -9 and ``leaves`` clean
        stops mid-stream) can cause, for nodes whose source has ``max_in_flight = window``.

        A source never holds more than ``window`` records consumed and not committed (it stops
        fetching until commits make room; safe-but-uncommitted records count), so each event
        that makes someone re-read a member's uncommitted records re-delivers at most
        ``window`` records, and each re-delivered record is forecast at most once more.
        A retried send adds at most one copy per retried forecast.
        """
        return window * (kills + leaves + self.revokes + self.restarts) + self.retried


def log_texts(folder: Path, pattern: str) -> list[str]:
    """The text of every log file in ``folder`` matching ``pattern`` (e.g. one per node generation)."""
    return [p.read_text(errors="replace") for p in sorted(folder.glob(pattern))]


def redelivery_events(texts: Iterable[str]) -> RedeliveryEvents:
    """Count the re-delivery events in node logs (``log_format = "json"``)."""
    ev = RedeliveryEvents()
    for text in texts:
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            event = rec.get("event")
            if event == "partitions_revoked" and rec.get("partitions", 0) > 0:
                ev.revokes += 1
                ev.redelivered.append(int(rec.get("redelivered", 0)))
            elif event == "child_failed":
                ev.restarts += 1
            elif event in ("forecast_batch_failed", "forecast_batch_send_failed"):
                ev.retried += int(rec.get("records", 0))
            elif event == "forecast_resend_failed":
                ev.retried += 1
    return ev


def node_toml(
    bootstrap: str,
    t: Topics,
    *,
    node_id: str = "edge-test",
    max_in_flight: int = 2000,
    group: dict[str, int] | None = None,
    kafka_extra: str = "",
    loop: str = "uvloop",
    http: str = "",
    source_extra: str = "",
) -> str:
    """A minimal node (source -> baseline forecaster -> sink, one forecast per record) on the test's
    topics and group: the Kafka plumbing alone (the full pipeline: :func:`edge_node_config`).

    ``source_extra``: more ``key = value`` lines for the source's config table.
    """
    g = {**FAST_GROUP, **(group or {})}
    consumer = "\n".join(f"{k} = {v}" for k, v in g.items())
    kafka = f'bootstrap_servers = "{bootstrap}"\nclient_id = "{node_id}"\n'
    kafka += f"request_timeout_ms = 5000\n{kafka_extra}"
    return f"""
[engine]
name = "edge-node"
node_id = "{node_id}"
loop = "{loop}"
shutdown_deadline_s = 3.0
log_format = "json"

[app]
http = "{http}"

[[supervisors]]
name = "kafka"
strategy = "one_for_all"
max_restarts = 5
period_s = 60.0

[[actors]]
name = "kafka-source"
class = "actors.kafka_io:KafkaSource"
supervisor = "kafka"
subscribe = ["kafka.acked.*", "control.partitions"]
[actors.mailbox]
capacity = 65536
policy = "block"
[actors.config]
topics = ["{t.md}", "{t.news}"]
dead_letter_topic = "{t.dead}"
max_in_flight = {max_in_flight}
commit_interval_ms = 100
{source_extra}
[actors.config.kafka]
{kafka}
[actors.config.consumer]
group_id = "{t.group}"
{consumer}

[[actors]]
name = "forecaster"
class = "actors.baseline_forecaster:BaselineForecaster"
supervisor = "kafka"
subscribe = ["md.*", "bar.*"]
[actors.mailbox]
capacity = 65536
policy = "block"

[[actors]]
name = "kafka-sink"
class = "actors.kafka_io:KafkaSink"
supervisor = "kafka"
subscribe = ["forecast.*"]
[actors.mailbox]
capacity = 65536
policy = "block"
[actors.config]
topic = "{t.forecasts}"
origin = "{node_id}"
[actors.config.kafka]
{kafka}
"""


@contextlib.asynccontextmanager
async def engine_running(toml_text: str) -> AsyncIterator[tuple[Engine, asyncio.Task[RunSummary]]]:
    """Run a node in this process and loop; stop it gracefully on exit."""
    engine = Engine(loads_config(toml_text, path="<test-node>"))
    engine.build()
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        yield engine, task
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(asyncio.shield(task), 30)


async def kill_alternately(
    reader: ForecastReader,
    nodes: dict[str, Any],
    start: Any,
    names: tuple[str, str],
    kills: int,
    *,
    min_new: int,
    timeout_s: float,
) -> int:
    """kill -9 the two nodes in turn, ``kills`` times, each once it has visibly written ``min_new``
    more forecasts (mid-stream, not idle), and restart it with ``start(name)``; returns the kills."""
    killed = 0
    for i in range(kills):
        victim = names[i % 2]
        before = reader.seen.origins[victim]
        async with asyncio.timeout(timeout_s):
            while reader.seen.origins[victim] < before + min_new:
                await reader.poll(100)
        nodes[victim].kill9()
        assert await nodes[victim].wait() == -9
        killed += 1
        start(victim)
    return killed


class NodeProcess:
    """``finllm node`` as a child process (its own session, so kill -9 hits it alone)."""

    def __init__(
        self, config_path: Path | None, log_path: Path, name: str, extra: list[str] | None = None
    ) -> None:
        """``config_path`` None: no ``--config`` (the packaged default.toml)."""
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        config = ["--config", str(config_path)] if config_path is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "node", *config, *(extra or [])],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=parent_death_signal(),  # a test run killed hard leaves no node behind
        )

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self, timeout_s: float = 20.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a child process has no awaitable exit here
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.kill9()
            self.proc.wait(5)
            self._log.close()
            raise AssertionError(f"node {self.name} did not stop within {timeout_s}s; log {self.log_path}")
        self._log.close()
        return int(self.proc.returncode)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


# --- the edge pipeline (config/default.toml under its node profile) ------------------------------

DEFAULT_CONFIG = REPO / "config" / "default.toml"
BAR_NS = 60_000_000_000
WARMUP_BARS = 21
"""Bars of a symbol the edge model answers without a forecast: the first (no previous close) and
20 of warm-up (adapters/features.py) - also the node's history_bars."""
T0_NS = 1_700_000_040_000_000_000  # a whole minute


@dataclass
class BarTape:
    """Trades of several symbols on one-minute bars: ``per_bar`` trades per bar per symbol."""

    symbols: list[str]
    bars: int
    per_bar: int
    seed: int = 7
    t0_ns: int = T0_NS
    """Open of the first bar (a whole minute)."""
    trades: list[Trade] = field(default_factory=list)

    def __post_init__(self) -> None:
        import random

        rnd = random.Random(self.seed)
        px = dict.fromkeys(self.symbols, 100.0)
        step = BAR_NS // self.per_bar
        # Round robin over symbols, in time order; one more trade per symbol after the last bar
        # closes it (that trade opens a bar that stays open).
        for b in range(self.bars + 1):
            for j in range(self.per_bar if b < self.bars else 1):
                for sym in self.symbols:
                    px[sym] *= math.exp(rnd.gauss(0.0, 4e-4))
                    self.trades.append(
                        Trade(
                            symbol=sym,
                            ts_event=self.t0_ns + b * BAR_NS + j * step,
                            price=round(px[sym], 2),
                            size=float(1 + rnd.randrange(5)),
                            side=rnd.choice((1, -1)),
                        )
                    )


def expected_forecasts(sent: list[tuple[Trade, int]], warmup: int = WARMUP_BARS) -> set[tuple[str, int]]:
    """(symbol, basis position) of every bar forecast the edge owes for ``sent`` (trades with the
    positions the broker gave them): per symbol, one per closed one-minute bar after ``warmup``,
    its basis the position of the bar's last trade."""
    last: dict[tuple[str, int], int] = {}
    for tr, pos in sent:
        key = (tr.symbol, tr.ts_event // BAR_NS)
        last[key] = max(last.get(key, 0), pos)
    out: set[tuple[str, int]] = set()
    by_sym: dict[str, list[tuple[int, int]]] = {}
    for (sym, bucket), pos in last.items():
        by_sym.setdefault(sym, []).append((bucket, pos))
    for sym, bars in by_sym.items():
        bars.sort()
        closed = bars[:-1]  # the last bar of a symbol stays open
        out.update((sym, pos) for _, pos in closed[warmup:])
    return out


async def produce_messages(
    bootstrap: str,
    topic: str | dict[str, str],
    msgs: list[Any],
    *,
    rate_per_s: float | None = None,
    chunk: int = 200,
    stop: asyncio.Event | None = None,
    encode: Any = None,
    topic_index: int = 0,
) -> list[tuple[Any, int]]:
    """Produce ``msgs`` keyed by symbol (msgpack unless ``encode``) to ``topic`` (or, a dict, to the
    topic named for each message's class); returns (message, position) of those acknowledged (the
    position on the node's ``topic_index``-th topic).  With ``stop``, production ends early (at a
    chunk boundary) once it is set."""
    enc = encode or msgpack_encoder.encode
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent: list[tuple[Any, int]] = []
    futs: list[tuple[Any, asyncio.Future[Any]]] = []
    topics = topic if isinstance(topic, dict) else None

    async def settle() -> None:
        metas = await asyncio.gather(*(f for _, f in futs))
        sent.extend((m, position(meta, topic_index)) for (m, _), meta in zip(futs, metas, strict=True))
        futs.clear()

    try:
        await producer.start()
        t0 = time.monotonic()
        for n, m in enumerate(msgs, start=1):
            key = (getattr(m, "symbol", None) or getattr(m, "id", "")).encode()
            dest = topics[type(m).__name__] if topics is not None else topic
            fut = await producer.send(dest, enc(m), key=key)
            futs.append((m, fut))
            if n % chunk == 0:
                await settle()
                if stop is not None and stop.is_set():
                    return sent
                if rate_per_s:
                    ahead = n / rate_per_s - (time.monotonic() - t0)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await settle()
    finally:
        await asyncio.gather(*(f for _, _, f in futs), return_exceptions=True)
        await stop_bounded(producer)
    return sent


def edge_node_sets(
    t: Topics,
    *,
    max_in_flight: int = 20_000,
    group: dict[str, int] | None = None,
    http: str = "",
    history_bars: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """``--set`` overrides that put config/default.toml's node on the test's topics (the group,
    bootstrap and node id go through --group, --bootstrap and --node-id)."""
    g = {**FAST_GROUP, **(group or {})}
    src = "actors[kafka-source].config"
    sets = [
        f'{src}.topics=["{t.md}", "{t.news}"]',
        f"{src}.dead_letter_topic={t.dead}",
        f"{src}.max_in_flight={max_in_flight}",
        f"{src}.commit_interval_ms=100",
        f"{src}.kafka.request_timeout_ms=5000",
        "actors[kafka-sink].config.kafka.request_timeout_ms=5000",
        f"actors[kafka-sink].config.topic={t.forecasts}",
        f"actors[heartbeats].config.topic=hb-{t.group}",
        f'app.http="{http}"',
        "engine.shutdown_deadline_s=5.0",
        # These tests count bar forecasts one by one on a shared CI machine: a loop-lag spike from a
        # neighbouring job must not switch the node to DEGRADED, where the edge conflates bars by
        # design.  Modes are proven by tests/ops/test_degradation.py and the overload test.
        "actors[degradation].config.loop_lag_us={ conserve = inf, degraded = inf, survival = inf }",
    ]
    sets += [f"{src}.consumer.{k}={v}" for k, v in g.items()]
    if history_bars is not None:
        sets.append(f"{src}.history_bars={history_bars}")
    return sets + list(extra or [])


def edge_node_args(
    bootstrap: str, t: Topics, node_id: str, *, profiles: tuple[str, ...] = ("edge-only",), **kw: Any
) -> list[str]:
    """``finllm node`` arguments for config/default.toml's node on the test's topics."""
    args = ["--bootstrap", bootstrap, "--group", t.group, "--node-id", node_id]
    for p in profiles:
        args += ["--profile", p]
    for s in edge_node_sets(t, **kw):
        args += ["--set", s]
    return args


def edge_node_config(
    bootstrap: str,
    t: Topics,
    node_id: str = "edge-test",
    *,
    profiles: tuple[str, ...] = ("edge-only",),
    **kw: Any,
) -> Any:
    """The node's EngineConfig (config/default.toml, profiles node + ``profiles``), for a node
    run in this process."""
    from engine.config import load_config

    return load_config(
        DEFAULT_CONFIG,
        profiles=["node", *profiles],
        sets=edge_node_sets(t, **kw),
        variables={"bootstrap": bootstrap, "group": t.group, "node_id": node_id, "out": "node-out"},
    )


@contextlib.asynccontextmanager
async def config_running(cfg: Any) -> AsyncIterator[tuple[Engine, asyncio.Task[RunSummary]]]:
    """Run an EngineConfig in this process and loop; stop it gracefully on exit."""
    engine = Engine(cfg)
    engine.build()
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        yield engine, task
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(asyncio.shield(task), 60)


class EdgeNodeProcess(NodeProcess):
    """``finllm node`` on config/default.toml (its node profile) as a child process."""

    def __init__(self, log_path: Path, name: str, extra: list[str]) -> None:
        super().__init__(DEFAULT_CONFIG, log_path, name, extra)


async def forecasts_in(bootstrap: str, topic: str, **client: Any) -> list[Forecast]:
    """Every forecast on ``topic`` (read from the beginning)."""
    return [msgpack_decoder.decode(r.value) for r in await read_all(bootstrap, topic, **client)]


def news_items(
    symbols: list[str], t0_ns: int, n: int, *, every_ns: int = 2 * BAR_NS, id_prefix: str = "n"
) -> list[NewsItem]:
    """``n`` news items about ``symbols``, one every ``every_ns`` from ``t0_ns``: the bundled demo
    tape's headlines (config/data), retimed, two sources per story so some are corroborated."""
    lines = (REPO / "config" / "data" / "news_emini_2013-09.jsonl").read_text().splitlines()
    out: list[NewsItem] = []
    for i in range(n):
        d = json.loads(lines[i % len(lines)])
        out.append(
            NewsItem(
                id=f"{id_prefix}-{i:03d}",
                ts_event=t0_ns + i * every_ns,
                source=d["source"],
                headline=d["headline"],
                body=d.get("body", ""),
                symbols=tuple(symbols),
            )
        )
    return out


async def wait_for_log(node: NodeProcess, event: str, timeout_s: float = 60.0) -> None:
    """Wait until ``node`` logged ``event`` (its JSON log), e.g. ``partitions_assigned``."""
    needle = f'"event": "{event}"'
    async with asyncio.timeout(timeout_s):
        while needle not in node.log_text():
            if node.proc.poll() is not None:
                raise AssertionError(f"node {node.name} exited: {node.log_text()[-2000:]}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def probed_node(toml: str, *topics: str, path: str = "<node>") -> AsyncIterator[tuple[Engine, Probe]]:
    """Run a TOML pipeline in this process with a probe on ``topics``; on exit it must stop
    cleanly (exit 0, nothing abandoned)."""
    engine = Engine(loads_config(toml, path=path))
    engine.build()
    probe = Probe(engine.bus, *topics)
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        yield engine, probe
    finally:
        engine.request_shutdown("test done")
        summary = await asyncio.wait_for(asyncio.shield(task), 20)
        assert summary.exit_code == 0 and not summary.abandoned, summary.reason
