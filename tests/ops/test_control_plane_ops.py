"""Control plane decisions and actor, the ops HTTP endpoints, and ``finllm top``."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from actors.control_plane import (
    ControlPlane,
    ControlPlaneConfig,
    EscalationRoute,
    PartitionAction,
    PeerState,
    PeerStatusChange,
    SelfState,
    assess_self,
    choose_route,
    peer_status,
)
from adapters.ops_http import OpsHttpConfig, OpsHttpServer
from engine.clock import SimClock
from engine.kernel import Engine
from engine.mailbox import Mailbox
from engine.messages import Heartbeat, ModeChange
from engine.testing import Probe
from tools.commands import top

MS = 1_000_000
S = 1_000_000_000
CFG = ControlPlaneConfig(node_id="a", heartbeat_interval_ms=1000, latency_objective_us=500.0, miss_limit=3)


def hb(node: str, ts: int = 0, **kw: object) -> Heartbeat:
    return Heartbeat(node_id=node, ts_event=ts, **kw)  # type: ignore[arg-type]


# --- pure decisions -----------------------------------------------------------------------


def test_peer_status() -> None:
    p = PeerState(last=hb("b", latency_p99_us=100.0), last_seen_ns=10 * S)
    assert peer_status(p, 10 * S + 900 * MS, CFG)[0] == "alive"
    assert peer_status(p, 11 * S + 600 * MS, CFG)[0] == "suspect"
    status, why = peer_status(p, 13 * S + 1, CFG)
    assert status == "dead" and "3 missed" in why
    assert peer_status(PeerState(last=hb("b", healthy=False), last_seen_ns=0), 0, CFG)[0] == "unhealthy"
    slow = PeerState(last=hb("b", latency_p99_us=900.0), last_seen_ns=0)
    assert peer_status(slow, 0, CFG) == ("breaching", "latency 900 us > objective 500 us")
    no_slo = ControlPlaneConfig(node_id="a")
    assert peer_status(slow, 0, no_slo)[0] == "alive"


def test_assess_self_releases_after_consecutive_breaches_and_rejoins_after_good_ones() -> None:
    s = SelfState()
    actions = []
    # two breaches, one good interval (resets), then three breaches: release on the third
    for lat in (900, 900, 100, 900, 900, 900, 900):
        s, action, reason = assess_self(s, CFG, latency_us=lat, lag_us=0.0, late_intervals=0.0)
        actions.append(action)
    assert actions == [None, None, None, None, None, "release", None]
    assert s.released and s.breaches == 4
    for _ in range(4):
        s, action, _ = assess_self(s, CFG, latency_us=100, lag_us=0.0, late_intervals=0.0)
        assert action is None and s.released
    s, action, reason = assess_self(s, CFG, latency_us=100, lag_us=0.0, late_intervals=0.0)
    assert action == "rejoin" and not s.released and "5 good intervals" in reason
    # a stalled loop (heartbeat 3 intervals late) counts as a breach even with good latency
    s2, _, why = assess_self(SelfState(), CFG, latency_us=0.0, lag_us=0.0, late_intervals=3.2)
    assert s2.breaches == 1 and "peers saw this node as dead" in why
    lag_cfg = ControlPlaneConfig(lag_objective_us=1000.0)
    s3, _, why = assess_self(SelfState(), lag_cfg, latency_us=0.0, lag_us=5000.0, late_intervals=0.0)
    assert s3.breaches == 1 and "loop lag 5000 us" in why


def test_choose_route() -> None:
    peers = {
        "b": PeerState(last=hb("b", latency_p99_us=300.0), last_seen_ns=0, status="alive"),
        "c": PeerState(last=hb("c", latency_p99_us=200.0), last_seen_ns=0, status="alive"),
        "d": PeerState(last=hb("d", latency_p99_us=10.0), last_seen_ns=0, status="dead"),
        "e": PeerState(last=hb("e", latency_p99_us=10.0), last_seen_ns=0, status="breaching"),
    }
    assert choose_route("a", False, peers) == "a"
    assert choose_route("a", True, peers) == "c"
    assert choose_route("a", True, {k: v for k, v in peers.items() if k in "de"}) == "a"


# --- the actor -------------------------------------------------------------------------------


async def _until(pred: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.005)):
        if pred():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def _armed(clock: SimClock) -> None:
    for _ in range(500):
        if clock.next_timer_ns is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("control plane never armed its heartbeat timer")


@pytest.mark.asyncio
async def test_heartbeats_peer_watch_release_and_reroute(sim_engine: Engine, running: object) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    cfg = ControlPlaneConfig(
        node_id="a",
        heartbeat_interval_ms=1000,
        latency_objective_us=500.0,
        breach_limit=2,
        recover_limit=5,
        partitions=(0, 3),
        also_publish=("kafka.out.heartbeats",),
    )
    engine.add_actor("control", ControlPlane, cfg, subscribe=["control.heartbeat"])
    probe = Probe(engine.bus, "control.heartbeat", "control.partitions", "control.route", "control.peers")
    kafka = Probe(engine.bus, "kafka.out.heartbeats")
    running(engine)  # type: ignore[operator]
    await _armed(clock)
    cp = engine.cells["control"].actor
    assert isinstance(cp, ControlPlane)

    async def beat(peers: dict[str, float]) -> list[object]:
        for node, lat in peers.items():
            engine.bus.publish("control.heartbeat", hb(node, clock.now_ns(), latency_p99_us=lat))
        for _ in range(20):
            await asyncio.sleep(0)
        clock.advance_to(clock.now_ns() + S)
        for _ in range(20):
            await asyncio.sleep(0)
        return probe.drain()

    out = await beat({"b": 100.0, "c": 50.0})
    own = [m for m in out if isinstance(m, Heartbeat) and m.node_id == "a"]
    assert len(own) == 1 and own[0].partitions == (0, 3) and own[0].healthy
    assert len(kafka.drain()) == 1
    assert set(cp.peers) == {"b", "c"} and all(p.status == "alive" for p in cp.peers.values())
    # this node's edge stage breaks its objective for two intervals: it releases and reroutes
    engine.metrics.histogram("handler_latency_us", actor="edge").observe(2000.0)
    await beat({"b": 100.0, "c": 50.0})
    engine.metrics.histogram("handler_latency_us", actor="edge").observe(2000.0)
    out = await beat({"b": 100.0, "c": 50.0})
    (release,) = [m for m in out if isinstance(m, PartitionAction)]
    assert (
        release.action == "release"
        and release.partitions == (0, 3)
        and "edge latency 2000 us" in release.reason
    )
    (route,) = [m for m in out if isinstance(m, EscalationRoute)]
    assert route.route_to == "c"
    (mine,) = [m for m in out if isinstance(m, Heartbeat) and m.node_id == "a"]
    assert mine.partitions == () and not mine.healthy and mine.latency_p99_us == pytest.approx(2000.0)
    # peer c goes silent: dead after 3 missed intervals, escalations move to b
    out = []
    for _ in range(4):
        out += await beat({"b": 100.0})
    dead = [m for m in out if isinstance(m, PeerStatusChange) and m.peer == "c"]
    assert [d.status for d in dead] == ["suspect", "dead"]
    assert [m.route_to for m in out if isinstance(m, EscalationRoute)] == ["b"]
    # latency recovered (no new observations): the fifth good interval rejoins and routes home
    assert cp.self_state.released and cp.self_state.goods == 4
    out = await beat({"b": 100.0})
    assert [m.action for m in out if isinstance(m, PartitionAction)] == ["rejoin"]
    assert [m.route_to for m in out if isinstance(m, EscalationRoute)] == ["a"]
    (mine,) = [m for m in out if isinstance(m, Heartbeat) and m.node_id == "a"]
    assert mine.healthy and mine.partitions == (0, 3)


@pytest.mark.asyncio
async def test_rejoin_after_recovery(sim_engine: Engine, running: object) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    cfg = ControlPlaneConfig(
        node_id="a", latency_objective_us=500.0, breach_limit=1, recover_limit=3, partitions=(1,)
    )
    engine.add_actor("control", ControlPlane, cfg, subscribe=["control.heartbeat"])
    probe = Probe(engine.bus, "control.partitions", "control.route")
    running(engine)  # type: ignore[operator]
    await _armed(clock)
    cp = engine.cells["control"].actor
    assert isinstance(cp, ControlPlane)
    cp.heartbeat_once(clock.now_ns(), latency_us=800.0, lag_us=0.0, late_intervals=0.0)
    actions = [m.action for m in probe.drain() if isinstance(m, PartitionAction)]
    assert actions == ["release"] and cp.route_to == "a"  # no peers: escalations stay local
    for _ in range(2):
        cp.heartbeat_once(clock.now_ns(), latency_us=100.0, lag_us=0.0, late_intervals=0.0)
    assert probe.drain() == [] and cp.self_state.released
    cp.heartbeat_once(clock.now_ns(), latency_us=100.0, lag_us=0.0, late_intervals=0.0)
    (rejoin,) = probe.drain()
    assert isinstance(rejoin, PartitionAction) and rejoin.action == "rejoin" and rejoin.partitions == (1,)
    assert engine.metrics.counter("partition_actions_total", action="rejoin").value == 1


# --- ops HTTP --------------------------------------------------------------------------------


def _get(url: str, method: str = "GET") -> tuple[int, str, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return out


@pytest.mark.asyncio
async def test_ops_endpoints_of_a_node_and_top(sim_engine: Engine, running: object) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    edge: Mailbox[int] = Mailbox(8, "drop_newest", name="edge")
    cls = ControlPlane.with_stats_source(lambda: {**engine.mailbox_statistics(), "edge": edge.statistics()})
    cfg = ControlPlaneConfig(
        node_id="n1", http=OpsHttpConfig(port=0), latency_objective_us=500.0, breach_limit=1
    )
    engine.add_actor("control", cls, cfg, subscribe=["control.heartbeat"])
    running(engine)  # type: ignore[operator]
    await _armed(clock)
    cp = engine.cells["control"].actor
    assert isinstance(cp, ControlPlane) and cp.server is not None
    url = cp.server.url
    for i in range(12):
        edge.offer(i)
    engine.metrics.histogram("handler_latency_us", actor="edge").observe(120.0)
    engine.metrics.histogram("loop_lag_us").observe(300.0)
    status, _, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 200 and body.startswith("ready n1")
    engine.runtime.mode = "DEGRADED"
    # The probes answer from the engine's assessment (published on control.health every
    # interval); hand the control plane one now rather than wait for the next.
    engine.bus.publish("control.health", engine.health())
    await _until(lambda: cp.health is not None and cp.health.mode == "DEGRADED")

    status, _, body = await asyncio.to_thread(_get, f"{url}/healthz")
    assert status == 200 and "mode=DEGRADED" in body  # degraded is still alive
    status, _, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503 and "mode DEGRADED (ready in NORMAL, CONSERVE)" in body
    status, ctype, body = await asyncio.to_thread(_get, f"{url}/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert "# TYPE finllm_handler_latency_us summary" in body
    assert 'finllm_handler_latency_us_count{actor="edge"} 1' in body
    status, ctype, body = await asyncio.to_thread(_get, f"{url}/stats?x=1")
    doc = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert doc["mode"] == "DEGRADED" and doc["node_id"] == "n1"
    assert doc["mailboxes"]["edge"]["shed"] == 4 and doc["mailboxes"]["edge"]["depth"] == 8
    assert doc["metrics"]["histograms"]["handler_latency_us{actor=edge}"]["p50"] == pytest.approx(
        120.0, rel=0.06
    )

    status, _, _ = await asyncio.to_thread(_get, f"{url}/nope")
    assert status == 404
    status, _, body = await asyncio.to_thread(_get, f"{url}/healthz", "HEAD")
    assert status == 200 and body == ""
    assert (await _raw(cp.server.port, b"POST /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
    assert (await _raw(cp.server.port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
    assert (await _raw(cp.server.port, b"GET /" + b"x" * 20_000)).startswith(b"HTTP/1.1 413")

    # a node that released its partitions is alive but not ready
    cp.heartbeat_once(clock.now_ns(), latency_us=900.0, lag_us=0.0, late_intervals=0.0)
    status, _, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503 and "released its partitions" in body

    # finllm top, one frame, against the live endpoint
    out = io.StringIO()
    rc = await asyncio.to_thread(top.main, ["--url", url, "--once", "--no-color"], out)
    frame = out.getvalue()
    assert rc == 0
    assert "mode DEGRADED" in frame and "RELEASED" in frame and "shed 4" in frame
    edge_line = next(line for line in frame.splitlines() if line.startswith("edge "))
    assert "drop_newest" in edge_line and "[############]" in edge_line and " 120 " in edge_line


def test_top_rates_and_unreachable_node() -> None:
    prev = {
        "uptime_s": 10.0,
        "mode": "NORMAL",
        "mailboxes": {"edge": {"shed": 100, "capacity": 10, "depth": 0}},
    }
    doc = {
        "uptime_s": 12.0,
        "mode": "SURVIVAL",
        "mailboxes": {"edge": {"shed": 700, "capacity": 10, "depth": 5}},
    }
    frame = top.render(doc, prev, color=True)
    assert "\x1b[31mSURVIVAL" in frame
    edge_line = next(line for line in frame.splitlines() if line.startswith("edge "))
    assert " 300 " in edge_line and "[######......]" in edge_line  # (700 - 100) / 2 s
    assert top.main(["--url", "http://127.0.0.1:9", "--once"]) == 1


@pytest.mark.asyncio
async def test_a_broken_probe_answers_500() -> None:
    def boom() -> tuple[bool, str]:
        raise RuntimeError("probe exploded")

    srv = OpsHttpServer(OpsHttpConfig(), metrics_text=lambda: "", stats=dict, ready=boom)
    await srv.start()
    try:
        status, _, body = await asyncio.to_thread(_get, f"{srv.url}/readyz")
        assert status == 500 and "probe exploded" in body and srv.errors == 1
    finally:
        await srv.stop()


@pytest.mark.asyncio
async def test_a_mode_change_is_heartbeaten_at_once(sim_engine: Engine, running: object) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    engine.add_actor("control", ControlPlane, ControlPlaneConfig(node_id="a"), subscribe=["control.mode"])
    probe = Probe(engine.bus, "control.heartbeat")
    running(engine)  # type: ignore[operator]
    await _armed(clock)
    engine.runtime.mode = "SURVIVAL"
    engine.bus.publish("control.mode", ModeChange(mode="SURVIVAL", previous="NORMAL", reason="x", ts_event=0))
    for _ in range(50):
        await asyncio.sleep(0)
        if len(probe.mailbox):
            break
    (beat,) = probe.drain()
    assert isinstance(beat, Heartbeat) and beat.mode == "SURVIVAL" and beat.node_id == "a"
