"""Heartbeats across nodes over a real Tansu broker (actors/heartbeat_bridge.py).

Two engines in this process, each a ControlPlane + HeartbeatBridge, share only the broker:
each control plane hears the other, node A (released on purpose) routes its escalations to
node B, and when node B stops, node A marks it dead after the miss limit and takes its
escalations back.  The same across two ``finllm node`` processes (peer states read from
the control plane's ``/stats``), with the silent node killed by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from actors.control_plane import ControlPlane, EscalationRoute, PeerStatusChange
from actors.heartbeat_bridge import HeartbeatBridge, HeartbeatBridgeConfig
from adapters.kafka import KafkaConfig
from adapters.tansu import TansuBroker, free_port
from engine.config import loads_config
from engine.kernel import Engine
from engine.messages import DeadLetter, Heartbeat, Trade, msgpack_decoder, msgpack_encoder
from engine.testing import Probe
from tests.kafka.kafkatest import (
    NodeProcess,
    create_topics,
    http_get,
    probed_node,
    send_settled,
    stop_bounded,
)

INTERVAL_MS = 200
T0 = 1_700_000_000_000_000_000
"""A heartbeat time (ns) inside the window every consumed heartbeat must be in (1990..2100)."""
MISS_LIMIT = 4


def _node_toml(bootstrap: str, topic: str, node_id: str, *, released: bool, partitions: int = 3) -> str:
    # A node whose bridge handles any message breaches its (tiny) latency objective at once and
    # releases its partitions: its escalations then go to the fittest alive peer.
    objective = 'latency_actor = "heartbeats"\nlatency_objective_us = 0.001\nbreach_limit = 1\n'
    objective += "recover_limit = 100000\n"
    return f"""
[engine]
name = "hb-{node_id}"
node_id = "{node_id}"
shutdown_deadline_s = 2.0

[[actors]]
name = "control"
class = "actors.control_plane:ControlPlane"
subscribe = ["control.heartbeat"]
[actors.config]
heartbeat_interval_ms = {INTERVAL_MS}
miss_limit = {MISS_LIMIT}
{objective if released else ""}

[[actors]]
name = "heartbeats"
class = "actors.heartbeat_bridge:HeartbeatBridge"
subscribe = ["control.heartbeat"]
[actors.mailbox]
capacity = 64
policy = "drop_oldest"
[actors.config]
topic = "{topic}"
partitions = {partitions}
max_age_ms = 3000
[actors.config.kafka]
bootstrap_servers = "{bootstrap}"
client_id = "{node_id}"
request_timeout_ms = 5000
"""


def _node(toml: str) -> contextlib.AbstractAsyncContextManager[tuple[Engine, Probe]]:
    return probed_node(
        toml, "control.peers", "control.route", "control.heartbeat", "deadletter", path="<hb-node>"
    )


class _Seen:
    """Everything a node's probe saw, accumulated across polls."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.msgs: list[Any] = []

    def poll(self) -> list[Any]:
        self.msgs.extend(self.probe.drain())
        return self.msgs

    async def until(self, pred: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            for m in self.poll():
                if pred(m):
                    return m
            if time.monotonic() > deadline:
                kinds = Counter(type(m).__name__ for m in self.msgs)
                raise AssertionError(f"no {what} within {timeout_s} s; saw {dict(kinds)}")
            await asyncio.sleep(0.02)


def _peer_event(peer: str, status: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, PeerStatusChange) and m.peer == peer and m.status == status


def _control(engine: Engine) -> ControlPlane:
    actor = engine.cells["control"].actor
    assert isinstance(actor, ControlPlane)
    return actor


async def _read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    out = []
    try:
        await c.start()
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        quiet = 0
        while quiet < 3:
            got = await c.getmany(timeout_ms=150)
            quiet = 0 if got else quiet + 1
            for recs in got.values():
                out.extend(recs)
    finally:
        await stop_bounded(c)
    return out


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_two_nodes_see_each_other_and_a_stopped_node_is_marked_dead(tansu: TansuBroker) -> None:
    topic = f"hb-{uuid.uuid4().hex[:8]}"  # the bridges create it themselves (3 partitions)
    a_toml = _node_toml(tansu.bootstrap, topic, "node-a", released=True)
    b_toml = _node_toml(tansu.bootstrap, topic, "node-b", released=False)
    async with _node(a_toml) as (engine_a, probe_a):
        seen_a = _Seen(probe_a)
        async with _node(b_toml) as (engine_b, probe_b):
            seen_b = _Seen(probe_b)
            # Each control plane hears the other, through Kafka only.
            await seen_a.until(_peer_event("node-b", "alive"), 10, "node-b alive at node-a")
            # Node A reports itself unhealthy (released): node B learns it from A's heartbeats.
            await seen_b.until(_peer_event("node-a", "unhealthy"), 10, "node-a unhealthy at node-b")
            # Released node A sends its escalations to the alive peer.
            route = await seen_a.until(
                lambda m: isinstance(m, EscalationRoute) and m.route_to == "node-b", 5, "route to node-b"
            )
            assert route.node_id == "node-a"
            assert _control(engine_a).peers["node-b"].status == "alive"
            assert _control(engine_b).peers["node-a"].last.healthy is False
            # A stream of peer heartbeats, whole, with their health and mode.
            from_b = lambda: [  # noqa: E731 - re-evaluated on each poll
                m for m in seen_a.poll() if isinstance(m, Heartbeat) and m.node_id == "node-b"
            ]
            await seen_a.until(lambda _: len(from_b()) >= 5, 5, "five heartbeats of node-b")
            assert all(h.healthy and h.mode == "NORMAL" for h in from_b())
            ts = [h.ts_event for h in from_b()]
            assert ts == sorted(ts) and len(set(ts)) == len(ts), "each heartbeat heard once, in order"
        stopped = time.monotonic()  # node B's bridge and control plane are gone
        timeout_s = MISS_LIMIT * INTERVAL_MS / 1000
        dead = await seen_a.until(_peer_event("node-b", "dead"), timeout_s + 5, "node-b dead at node-a")
        waited = time.monotonic() - stopped
        # Marked dead by the miss limit, not earlier: B's last heartbeat left before it stopped.
        assert waited >= timeout_s - 2 * INTERVAL_MS / 1000, waited
        assert f"{MISS_LIMIT} missed" in dead.reason and dead.node_id == "node-a"
        back = await seen_a.until(
            lambda m: isinstance(m, EscalationRoute) and m.route_to == "node-a", 3, "route back to node-a"
        )
        assert back.reason == "no alive peer to take escalations"
        assert _control(engine_a).peers["node-b"].status == "dead"
        assert _control(engine_a).route_to == "node-a"
        snap_a = engine_a.metrics.snapshot()
        assert not [m for m in seen_a.poll() if isinstance(m, DeadLetter)]

    # On the topic: each node's own heartbeats only, keyed by node id, none echoed back.
    records = await _read_all(tansu.bootstrap, topic, 3)
    by_node: Counter[str] = Counter()
    for r in records:
        hb = msgpack_decoder.decode(r.value)
        assert isinstance(hb, Heartbeat)
        assert r.key == hb.node_id.encode() == dict(r.headers)["origin"], (r.key, hb, r.headers)
        by_node[hb.node_id] += 1
    assert set(by_node) == {"node-a", "node-b"} and min(by_node.values()) >= 5, by_node
    produced = _metric(snap_a, "heartbeats_produced_total")
    assert produced >= by_node["node-a"] - 1 >= 2, (produced, by_node)
    assert _metric(snap_a, "heartbeats_consumed_total") >= 2
    # Node A never heard itself back: its own heartbeats were skipped, not published again.
    assert _metric(snap_a, "heartbeats_own_skipped_total") >= 1


def _metric(snapshot: Any, name: str) -> float:
    """Sum of a counter over its label sets in a metrics snapshot."""
    total = 0.0
    for key, value in snapshot["counters"].items():
        if key == name or key.startswith(name + "{"):
            total += value
    return total


def _counter(engine: Engine, name: str) -> float:
    return _metric(engine.metrics.snapshot(), name)


async def _wait_counter(engine: Engine, name: str, at_least: float, timeout_s: float) -> float:
    """The counter's value once it reaches ``at_least`` or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = _counter(engine, name)
        if value >= at_least or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_bad_own_and_stale_records_are_not_published(tansu: TansuBroker) -> None:
    topic = f"hb-{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    try:
        await producer.start()
        old_ms = int(time.time() * 1000) - 60_000  # a heartbeat of a node gone a minute ago
        records = [
            (msgpack_encoder.encode(Heartbeat(node_id="node-gone", ts_event=T0 + 1)), b"node-gone", old_ms),
            (b"\xc1garbage", b"x", None),
            (msgpack_encoder.encode(Trade(symbol="ES", ts_event=T0, price=1.0, size=1.0)), b"ES", None),
            (msgpack_encoder.encode(Heartbeat(node_id="node-a", ts_event=T0 + 1)), b"node-a", None),
            (msgpack_encoder.encode(Heartbeat(node_id="node-c", ts_event=T0 + 2)), b"node-c", None),
        ]
        for value, key, ts in records:
            await send_settled(producer, topic, value, key=key, timestamp_ms=ts)
    finally:
        await stop_bounded(producer)
    cfg = HeartbeatBridgeConfig(
        kafka=KafkaConfig(bootstrap_servers=tansu.bootstrap, request_timeout_ms=5000),
        topic=topic,
        create_topic=False,
        start_from="earliest",  # read what was written before the start, through the age filter
        max_age_ms=10_000,
    )
    engine = Engine(loads_config('[engine]\nnode_id = "node-a"\n', path="<bridge>"))
    engine.add_actor("heartbeats", HeartbeatBridge, cfg, subscribe=["control.heartbeat"])
    seen = _Seen(Probe(engine.bus, "control.heartbeat", "deadletter"))
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        got = await seen.until(
            lambda m: isinstance(m, Heartbeat) and m.node_id == "node-c", 10, "node-c heartbeat"
        )
        assert got.ts_event == T0 + 2
        await asyncio.sleep(0.2)
        msgs = seen.poll()
        reasons = sorted(m.reason for m in msgs if isinstance(m, DeadLetter))
        assert len(reasons) == 2, reasons
        assert reasons[0].startswith("decode_error: ") and "msgpack heartbeat" in reasons[0], reasons
        assert reasons[1].startswith("unsupported_type: 'trade'"), reasons
        dl = next(m for m in msgs if isinstance(m, DeadLetter))
        assert dl.raw == b"\xc1garbage" and dl.detail["topic"] == topic and dl.detail["offset"] == 1
        # Only the live peer's heartbeat: not our own id, not the stale one; not produced back.
        assert [m.node_id for m in msgs if isinstance(m, Heartbeat)] == ["node-c"]
        assert _counter(engine, "heartbeats_stale_total") == 1
        assert _counter(engine, "heartbeats_own_skipped_total") == 1
        assert _counter(engine, "heartbeats_produced_total") == 0
        # A heartbeat of this node on the bus goes out to Kafka, keyed by node id.
        engine.bus.publish("control.heartbeat", Heartbeat(node_id="node-a", ts_event=T0 + 3))
        assert await _wait_counter(engine, "heartbeats_produced_total", 1, 5) == 1
        # ... and, read back by the bridge itself, is skipped by its origin header.
        assert await _wait_counter(engine, "heartbeats_own_skipped_total", 2, 5) == 2
    finally:
        engine.request_shutdown("test done")
        summary = await asyncio.wait_for(task, 20)
    assert summary.exit_code == 0 and not summary.abandoned, summary.reason
    assert [m.node_id for m in seen.poll() if isinstance(m, Heartbeat)] == ["node-c", "node-a"]
    last = (await _read_all(tansu.bootstrap, topic, 1))[-1]
    assert msgpack_decoder.decode(last.value) == Heartbeat(node_id="node-a", ts_event=T0 + 3)
    assert last.key == b"node-a" and dict(last.headers)["origin"] == b"node-a"


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_starting_at_latest_never_revives_an_old_heartbeat(tansu: TansuBroker) -> None:
    # Tansu's "latest" is the base offset of the last batch: the old record is re-read there,
    # and the age filter must drop it (on Apache Kafka it is simply not read).
    topic = f"hb-{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    engine = Engine(loads_config('[engine]\nnode_id = "node-a"\n', path="<bridge>"))
    try:
        await producer.start()
        old_ms = int(time.time() * 1000) - 60_000
        gone = msgpack_encoder.encode(Heartbeat(node_id="node-gone", ts_event=T0 + 1))
        await send_settled(producer, topic, gone, key=b"node-gone", timestamp_ms=old_ms)
        cfg = HeartbeatBridgeConfig(
            kafka=KafkaConfig(bootstrap_servers=tansu.bootstrap, request_timeout_ms=5000), topic=topic
        )
        engine.add_actor("heartbeats", HeartbeatBridge, cfg, subscribe=["control.heartbeat"])
        seen = _Seen(Probe(engine.bus, "control.heartbeat", "deadletter"))
        task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
        try:
            start = await _bridge_position(engine, TopicPartition(topic, 0))
            assert start in (0, 1), start  # Tansu: 0, the last batch's base; Kafka: 1, the end
            # A live peer beats every 50 ms until the bridge, positioned at the end, hears it.
            deadline = time.monotonic() + 10
            n = 0
            while not any(isinstance(m, Heartbeat) for m in seen.poll()):
                assert time.monotonic() < deadline, "no peer heartbeat heard"
                n += 1
                live = msgpack_encoder.encode(Heartbeat(node_id="node-c", ts_event=T0 + n))
                await send_settled(producer, topic, live, key=b"node-c")
                await asyncio.sleep(0.05)
        finally:
            engine.request_shutdown("test done")
            summary = await asyncio.wait_for(task, 20)
    finally:
        await stop_bounded(producer)
    assert summary.exit_code == 0 and not summary.abandoned, summary.reason
    msgs = seen.poll()
    assert {m.node_id for m in msgs if isinstance(m, Heartbeat)} == {"node-c"}
    assert not [m for m in msgs if isinstance(m, DeadLetter)]
    # Re-read at the start or not, the old heartbeat was never published: dropped as stale.
    assert _metric(summary.metrics, "heartbeats_stale_total") == (1 if start == 0 else 0)


async def _bridge_position(engine: Engine, tp: TopicPartition) -> int:
    """Where the running bridge's consumer starts reading ``tp`` (waits for its start)."""
    deadline = time.monotonic() + 10
    while True:
        actor = engine.cells["heartbeats"].actor
        consumer = getattr(actor, "_consumer", None)
        if consumer is not None and tp in consumer.assignment():
            return int(await consumer.position(tp))
        assert time.monotonic() < deadline, "bridge did not start"
        await asyncio.sleep(0.02)


def _process_toml(bootstrap: str, topic: str, node_id: str, port: int) -> str:
    return f"""
[engine]
name = "hb-{node_id}"
node_id = "{node_id}"
shutdown_deadline_s = 2.0
log_format = "json"

[[actors]]
name = "control"
class = "actors.control_plane:ControlPlane"
subscribe = ["control.heartbeat", "control.mode"]
[actors.config]
heartbeat_interval_ms = {INTERVAL_MS}
miss_limit = {MISS_LIMIT}
[actors.config.http]
port = {port}

[[actors]]
name = "heartbeats"
class = "actors.heartbeat_bridge:HeartbeatBridge"
subscribe = ["control.heartbeat"]
[actors.config]
topic = "{topic}"
[actors.config.kafka]
bootstrap_servers = "{bootstrap}"
request_timeout_ms = 5000
"""


async def _peers(port: int) -> dict[str, str]:
    code, body = await http_get(f"127.0.0.1:{port}", "/stats")
    assert code == 200, body
    return dict(json.loads(body)["peers"])


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_two_node_processes_watch_each_other_over_kafka(tansu: TansuBroker, tmp_path: Path) -> None:
    topic = f"hb-{uuid.uuid4().hex[:8]}"
    ports = {"node-a": free_port(), "node-b": free_port()}
    nodes: dict[str, NodeProcess] = {}
    for name, port in ports.items():
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(_process_toml(tansu.bootstrap, topic, name, port))
        nodes[name] = NodeProcess(cfg, tmp_path / f"{name}.log", name)
    try:
        deadline = time.monotonic() + 15
        while True:  # each sees the other alive, through the broker only
            try:
                seen = {n: await _peers(p) for n, p in ports.items()}
            except OSError:  # not listening yet
                seen = {}
            if seen == {"node-a": {"node-b": "alive"}, "node-b": {"node-a": "alive"}}:
                break
            assert time.monotonic() < deadline, (seen, nodes["node-a"].log_text()[-2000:])
            await asyncio.sleep(0.1)
        nodes["node-b"].kill9()  # no goodbye: only the silence tells
        await nodes["node-b"].wait()
        deadline = time.monotonic() + MISS_LIMIT * INTERVAL_MS / 1000 + 5
        while (peers := await _peers(ports["node-a"]))["node-b"] != "dead":
            assert time.monotonic() < deadline, peers
            await asyncio.sleep(0.1)
    finally:
        for n in nodes.values():
            n.terminate()
        codes = {name: await n.wait() for name, n in nodes.items()}
    assert codes["node-a"] == 0, nodes["node-a"].log_text()[-2000:]
