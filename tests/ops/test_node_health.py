"""/readyz and /healthz tell the truth: crash loops, parked actors, FAILED tiers, stalled partitions.

The probes of ``finllm node`` come from :func:`adapters.ops_http.health_checks` over
``Engine.health``; the control plane's come from the assessments the engine publishes
on ``control.health``.  Both are exercised here against real engines and real sockets,
and ``finllm top`` shows what they say.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from actors.control_plane import ControlPlane, ControlPlaneConfig
from adapters.ops_http import OpsHttpConfig, OpsHttpServer, health_checks
from engine.actor import Actor
from engine.config import EngineConfig, EngineSection
from engine.health import HealthConfig
from engine.kernel import Engine
from engine.supervisor import ChildSpec
from tools.commands import top


class Poisoned(Actor[Any]):
    """Fails on every message: an actor handed one hostile record over and over."""

    seen = 0

    def on_message(self, msg: Any) -> None:
        Poisoned.seen += 1
        raise ValueError(f"undecodable record {msg!r}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def _until(pred: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.005)):
        if pred():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def _engine(**health: Any) -> Engine:
    """An engine that parks after 5 failures and re-assesses every 50 ms, with one idle actor."""
    section = EngineSection(
        clock="sim",
        shutdown_deadline_s=2.0,
        park_after=5,
        root_max_restarts=100,
        health=HealthConfig(interval_s=0.05, **health),
    )
    engine = Engine(EngineConfig(engine=section))
    engine.add_actor("idle", Poisoned)  # keeps the engine running; never sent anything
    return engine


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Callable[[Engine], Awaitable[str]]]:
    """Run an engine with the node's ops server in front of it; yields its base URL."""
    stops: list[tuple[Engine, asyncio.Future[object], OpsHttpServer]] = []

    async def start(engine: Engine) -> str:
        live, ready = health_checks(engine.health, prefix="n1")
        srv = OpsHttpServer(
            OpsHttpConfig(port=0),
            metrics_text=engine.metrics.prometheus,
            stats=dict,
            healthy=live,
            ready=ready,
        )
        await srv.start()
        task = asyncio.ensure_future(engine.run(install_signals=False))
        stops.append((engine, task, srv))
        await engine.runtime.wait_started()
        return srv.url

    yield start
    for engine, task, srv in stops:
        engine.request_shutdown("test over")
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await srv.stop()


@pytest.mark.asyncio
async def test_a_crash_loop_turns_readyz_then_healthz_503_naming_the_actor(served: Any) -> None:
    Poisoned.seen = 0
    engine = _engine(unready_restarts=3, unlive_restarts=0)
    engine.add_actor("decoder", Poisoned, subscribe=["in"])
    url = await served(engine)
    assert (await asyncio.to_thread(_get, f"{url}/readyz")) == (200, "n1 ready (mode NORMAL)\n")
    assert (await asyncio.to_thread(_get, f"{url}/healthz"))[0] == 200

    async def fail_once() -> None:
        n = Poisoned.seen
        engine.bus.publish("in", n)
        await _until(lambda: Poisoned.seen > n)

    for _ in range(3):
        await fail_once()
    # restarting often: not ready (with the error), still live
    await _until(lambda: engine.cells["decoder"].incarnations == 4)
    status, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503
    assert "- actor decoder restarting: 3 failures in 60 s: ValueError: undecodable record 2" in body
    assert (await asyncio.to_thread(_get, f"{url}/healthz"))[0] == 200

    for _ in range(2):
        await fail_once()
    await _until(lambda: "decoder" in engine.root.parked)
    # parked (park_after = 5): not restarted again, and now not live either
    for probe in ("readyz", "healthz"):
        status, body = await asyncio.to_thread(_get, f"{url}/{probe}")
        assert status == 503, probe
        assert "actor decoder parked after 5 failures (crash loop): ValueError: undecodable record 4" in body
    assert engine.cells["decoder"].incarnations == 5
    engine.bus.publish("in", "more poison")  # refused by the closed mailbox, counted
    await asyncio.sleep(0.05)
    assert Poisoned.seen == 5
    metrics = (await asyncio.to_thread(_get, f"{url}/metrics"))[1]
    assert "finllm_node_ready 0.0" in metrics and "finllm_node_live 0.0" in metrics
    assert 'finllm_actor_parked{actor="decoder"} 1.0' in metrics
    assert 'finllm_actor_failures_recent{actor="decoder"} 5.0' in metrics


@pytest.mark.asyncio
async def test_a_failed_tier_turns_readyz_503_until_it_works_again(served: Any) -> None:
    engine = _engine()
    url = await served(engine)
    cloud = engine.metrics.tiers.tier("cloud")
    cloud.start_failed("llama.cpp server exited with SIGSEGV")
    status, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503
    assert "- tier cloud: failed - did not start: llama.cpp server exited with SIGSEGV" in body
    assert (await asyncio.to_thread(_get, f"{url}/healthz"))[0] == 200  # a tier is not a reason to restart
    cloud.configured()
    cloud.attempt()
    cloud.success()
    assert (await asyncio.to_thread(_get, f"{url}/readyz"))[0] == 200


@pytest.mark.asyncio
async def test_a_stalled_partition_and_lag_turn_readyz_503(served: Any) -> None:
    engine = _engine(max_consumer_lag=1000)
    url = await served(engine)
    stalled = engine.metrics.gauge("kafka_partition_stalled", topic="md", partition=2)
    lag = engine.metrics.gauge("kafka_consumer_lag", topic="md", partition=2)
    stalled.set(1.0)
    status, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503 and "- stalled: kafka_partition_stalled{partition=2,topic=md}" in body
    stalled.set(0.0)
    lag.set(5000.0)
    status, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503 and "kafka_consumer_lag{partition=2,topic=md} = 5000 records > 1000" in body
    lag.set(10.0)
    assert (await asyncio.to_thread(_get, f"{url}/readyz"))[0] == 200


@pytest.mark.asyncio
async def test_the_control_plane_serves_the_engines_health_and_top_shows_it(running: Any) -> None:
    Poisoned.seen = 0
    engine = _engine(unready_restarts=3)
    engine.add_actor("decoder", Poisoned, subscribe=["in"])
    engine.add_actor(
        "control",
        ControlPlane,
        ControlPlaneConfig(node_id="n1", http=OpsHttpConfig(port=0)),
        child=ChildSpec(critical=False),
    )
    running(engine)
    await engine.runtime.wait_started()
    cp = engine.cells["control"].actor
    assert isinstance(cp, ControlPlane) and cp.server is not None
    url = cp.server.url
    await _until(lambda: cp.health is not None)  # published by the engine every interval
    assert (await asyncio.to_thread(_get, f"{url}/readyz"))[0] == 200

    engine.metrics.tiers.tier("cloud").start_failed("connection refused")
    for n in range(5):
        engine.bus.publish("in", n)
        await _until(lambda n=n: Poisoned.seen > n)
    await _until(
        lambda: cp.health is not None and bool(cp.health.parked()) and bool(cp.health.failed_tiers())
    )
    status, body = await asyncio.to_thread(_get, f"{url}/readyz")
    assert status == 503
    assert "actor decoder parked after 5 failures" in body and "tier cloud: failed" in body
    status, body = await asyncio.to_thread(_get, f"{url}/healthz")
    assert status == 503 and "actor decoder parked" in body

    doc = json.loads((await asyncio.to_thread(_get, f"{url}/stats"))[1])
    assert doc["ready"] is False and doc["healthy"] is False
    assert doc["health"]["children"]["decoder"]["state"] == "parked"
    out = io.StringIO()
    rc = await asyncio.to_thread(top.main, ["--url", url, "--once", "--no-color"], out)
    frame = out.getvalue()
    assert rc == 0
    assert "health  NOT READY  NOT LIVE" in frame
    assert "  - actor decoder parked after 5 failures" in frame and "  - tier cloud: failed" in frame


def test_top_shows_actor_states_and_consumer_lag() -> None:
    doc = {
        "mode": "DEGRADED",
        "uptime_s": 3.0,
        "mailboxes": {
            "decoder": {"policy": "block", "capacity": 8, "depth": 0},
            "edge": {"policy": "drop_oldest", "capacity": 8, "depth": 1},
            "news": {"policy": "block", "capacity": 8, "depth": 0},
        },
        "health": {
            "ready": False,
            "live": True,
            "not_ready": ["actor news restarting: 3 failures in 60 s"],
            "children": {
                "decoder": {"state": "parked", "failures_recent": 5},
                "edge": {"state": "running", "failures_recent": 0},
                "news": {"state": "running", "failures_recent": 3},
            },
            "lag": {"kafka_consumer_lag{partition=0,topic=md}": 1234.0},
        },
    }
    frame = top.render(doc, color=False)
    lines = frame.splitlines()
    assert lines[1] == "health  NOT READY  live  consumer lag max 1,234"
    assert lines[2] == "  - actor news restarting: 3 failures in 60 s"
    row = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in doc["mailboxes"]}
    assert row["decoder"].rstrip().endswith("parked(5)")
    assert row["news"].rstrip().endswith("running(3)")
    assert row["edge"].rstrip().endswith("running")
    # a document without health (an older node) still renders
    assert "health" not in top.render({"mode": "NORMAL", "mailboxes": {}}, color=False)
