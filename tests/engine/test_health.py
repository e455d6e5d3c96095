"""engine.health: tier records, the node's ready/live assessment, and crash-loop parking.

Tiers: what a run summary, a report and /readyz say about each configured tier.
Node health: every rule of :func:`engine.health.assess` on its own, then the real thing -
supervisors parking a crash-looping child (also one that fails too slowly for restart
intensity, and a loop that moves up the supervision tree) and an engine whose
``health()`` names it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from engine.actor import Actor, ActorCell, ActorContext
from engine.config import EngineConfig, EngineSection, loads_config
from engine.errors import ActorStopped, Escalation
from engine.health import (
    ChildHealth,
    ChildState,
    HealthConfig,
    HealthLogger,
    NodeHealth,
    TierHealth,
    TierState,
    TierStatus,
    assess,
)
from engine.kernel import Engine, RunSummary
from engine.metrics import Metrics
from engine.runtime import Runtime
from engine.supervisor import ChildSpec, Restart, Supervisor, SupervisorConfig
from engine.testing import Probe, capture_logs
from tests.engine.helpers import Behaviour, Scripted, mailbox, plain_runtime


@pytest.fixture(autouse=True)
def _fresh_journal() -> Iterator[None]:
    Scripted.reset()
    yield
    Scripted.reset()


async def _until(pred: Callable[[], bool], within: float = 5.0) -> None:
    async def spin() -> None:
        while not pred():  # noqa: ASYNC110 - polls supervisor state the test cannot get an event for
            await asyncio.sleep(0.001)

    await asyncio.wait_for(spin(), within)


# --- tiers ------------------------------------------------------------------------------


def test_tier_states_follow_the_counts() -> None:
    reg = TierHealth()
    idle = reg.tier("news")
    idle.configured()
    assert idle.status().state is TierState.IDLE

    ok = reg.tier("edge")
    ok.attempt(3)
    ok.success(3)
    assert ok.status().state is TierState.OK

    mixed = reg.tier("cloud")
    mixed.attempt(2)
    mixed.success()
    mixed.failure("timeout after 5 s", ts_ns=7)
    mixed_status = mixed.status()
    assert mixed_status.state is TierState.DEGRADED
    assert (mixed_status.first_error, mixed_status.ts_first_error) == ("timeout after 5 s", 7)

    mixed.attempt()
    mixed.failure("connection refused", ts_ns=9)
    mixed.attempt()
    mixed.failure("connection refused", ts_ns=11)
    # two of four failed: still degraded; the first error is kept, the latest too
    st = mixed.status()
    assert st.state is TierState.DEGRADED and st.failures == 3 and st.attempts == 4
    assert st.first_error == "timeout after 5 s" and st.last_error == "connection refused"


def test_every_attempt_failing_or_no_start_is_failed_and_configured_clears_a_start_failure() -> None:
    reg = TierHealth()
    cloud = reg.tier("cloud")
    for _ in range(13):
        cloud.attempt()
        cloud.failure("server exited with SIGSEGV")
    st = cloud.status()
    assert st.state is TierState.FAILED
    assert st.describe() == (
        "cloud: failed - 13 attempts, 13 failed (first error: server exited with SIGSEGV)"
    )

    edge = reg.tier("edge")
    edge.start_failed("model signature invalid " + "x" * 1000)
    st = edge.status()
    assert st.state is TierState.FAILED and st.describe().startswith("edge: failed - did not start: model")
    assert len(st.start_error) == 500  # long errors are cut, not carried whole
    edge.configured()  # a restart worked
    assert edge.status().state is TierState.IDLE

    assert [t.tier for t in reg.failed()] == ["cloud"]
    assert list(reg.snapshot()) == ["cloud", "edge"]  # sorted by name
    assert reg.tier("cloud") is cloud  # one recorder per name


def test_tiers_in_metrics_snapshot_prometheus_and_run_summary() -> None:
    m = Metrics()
    cloud = m.tiers.tier("cloud")
    cloud.attempt()
    cloud.failure("refused")
    m.tiers.tier("edge").configured()
    snap = m.snapshot()["tiers"]
    assert snap["cloud"]["state"] == "failed" and snap["edge"]["state"] == "idle"
    text = m.prometheus()
    assert 'finllm_tier_state{tier="cloud",state="failed"} 1' in text
    assert 'finllm_tier_state{tier="cloud",state="ok"} 0' in text
    assert 'finllm_tier_failures{tier="cloud"} 1' in text
    summary = RunSummary(
        reason="x",
        exit_code=0,
        wall_s=0.0,
        drained=True,
        discarded_on_stop=0,
        abandoned=[],
        mailboxes={},
        metrics={},
        tiers=m.tiers.snapshot(),
    )
    assert [t.tier for t in summary.failed_tiers()] == ["cloud"]
    # the summary round-trips through JSON (metrics.json, run reports)
    back = msgspec.json.decode(msgspec.json.encode(summary), type=RunSummary)
    assert back.tiers["cloud"].state is TierState.FAILED


# --- assess: one rule at a time ------------------------------------------------------------


def _child(name: str, **kw: Any) -> ChildHealth:
    base: dict[str, Any] = {"supervisor": "root", "critical": True, "state": ChildState.RUNNING}
    return ChildHealth(name=name, **{**base, **kw})


CFG = HealthConfig(unready_restarts=3, unlive_restarts=6, restart_window_s=60.0)


def test_a_quiet_node_is_ready_and_live() -> None:
    h = assess(CFG, children=[_child("feed"), _child("edge", failures_total=1, failures_recent=1)])
    assert h.ready and h.live and h.not_ready == () and h.not_live == ()
    assert h.describe() == "ready (mode NORMAL)" and h.describe("live") == "live (mode NORMAL)"


def test_a_parked_actor_is_neither_ready_nor_live_and_named_with_its_error() -> None:
    bad = _child(
        "kafka-source", state=ChildState.PARKED, failures_total=10, last_error="ValueError: bad record"
    )
    h = assess(CFG, children=[bad, _child("sink")])
    assert not h.ready and not h.live
    assert h.not_live == ("actor kafka-source parked after 10 failures (crash loop): ValueError: bad record",)
    assert h.not_ready == h.not_live  # not live is not ready either
    assert [c.name for c in h.parked()] == ["kafka-source"]
    text = h.describe()
    assert text.splitlines()[0] == "not ready: 1 problem(s)" and "- actor kafka-source parked" in text
    # an operator may choose to keep a node with a parked optional actor alive
    soft = assess(HealthConfig(parked_is_fatal=False), children=[bad])
    assert soft.live and not soft.ready


def test_restarting_actors_make_the_node_unready_and_a_crash_looping_critical_one_unlive() -> None:
    h = assess(CFG, children=[_child("edge", failures_total=3, failures_recent=3, last_error="boom")])
    assert h.live and not h.ready
    assert h.not_ready == ("actor edge restarting: 3 failures in 60 s: boom",)

    h = assess(CFG, children=[_child("edge", failures_total=9, failures_recent=6)])
    assert not h.live and h.not_live[0].startswith("critical actor edge crash-looping: 6 failures in 60 s")

    # the same loop in an optional actor costs readiness only
    h = assess(CFG, children=[_child("news", critical=False, failures_total=9, failures_recent=6)])
    assert h.live and not h.ready

    # old failures do not count; 0 turns a rule off
    assert assess(CFG, children=[_child("edge", failures_total=50, failures_recent=0)]).ready
    off = HealthConfig(unready_restarts=0, unlive_restarts=0)
    assert assess(off, children=[_child("edge", failures_total=9, failures_recent=9)]).ready


def test_abandoned_actor_failed_tier_stalled_partition_lag_and_mode() -> None:
    failed = TierStatus(tier="cloud", state=TierState.FAILED, attempts=2, successes=0, failures=2,
                        first_error="refused")  # fmt: skip
    fine = TierStatus(tier="edge", state=TierState.OK, attempts=5, successes=5, failures=0)
    gauges = [
        ("kafka_partition_stalled", {"topic": "md", "partition": "3"}, 1.0),
        ("kafka_partition_stalled", {"topic": "md", "partition": "4"}, 0.0),
        ("kafka_consumer_lag", {"topic": "md", "partition": "3"}, 5000.0),
        ("kafka_consumer_lag", {"topic": "md", "partition": "4"}, 10.0),
        ("loop_lag_us_last", {}, 1e6),  # not consumer lag
    ]
    h = assess(
        HealthConfig(max_consumer_lag=1000),
        children=[_child("opt", state=ChildState.ABANDONED, critical=False, last_error="E: x")],
        tiers={"cloud": failed, "edge": fine},
        gauges=gauges,
        mode="SURVIVAL",
    )
    assert h.live and not h.ready
    assert h.not_ready == (
        "actor opt abandoned by supervisor root: E: x",
        "tier cloud: failed - 2 attempts, 2 failed (first error: refused)",
        "stalled: kafka_partition_stalled{partition=3,topic=md}",
        "lagging: kafka_consumer_lag{partition=3,topic=md} = 5000 records > 1000",
        "mode SURVIVAL (ready in NORMAL, CONSERVE)",
    )
    assert h.stalled == ("kafka_partition_stalled{partition=3,topic=md}",)
    assert h.lag == {
        "kafka_consumer_lag{partition=3,topic=md}": 5000.0,
        "kafka_consumer_lag{partition=4,topic=md}": 10.0,
    }
    assert [t.tier for t in h.failed_tiers()] == ["cloud"]
    # lag is reported but never judged while max_consumer_lag is 0
    assert assess(HealthConfig(), gauges=gauges[2:]).ready
    # NodeHealth travels as JSON (/stats) and back
    back = msgspec.json.decode(msgspec.json.encode(h), type=NodeHealth)
    assert back == h


def test_health_logger_warns_once_per_failed_tier_and_parked_actor() -> None:
    failed = TierStatus(tier="cloud", state=TierState.FAILED, attempts=1, successes=0, failures=1,
                        last_error="refused")  # fmt: skip
    parked = _child("bad", state=ChildState.PARKED, failures_total=10, last_error="ValueError: x")
    sick = assess(CFG, children=[parked], tiers={"cloud": failed})
    well = assess(CFG, children=[_child("bad")])
    listener = HealthLogger()
    with capture_logs() as logs:
        listener(sick)
        listener(sick)  # no repeats while nothing changes
        listener(well)
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [
        ("tier_failed", "warning"),
        ("actor_parked", "warning"),
        ("node_not_ready", "warning"),
        ("node_not_live", "warning"),
        ("tier_recovered", "info"),
        ("node_ready", "info"),
        ("node_live", "info"),
    ]
    assert (
        logs[0]["tier"] == "cloud" and logs[1]["actor"] == "bad" and logs[1]["last_error"] == "ValueError: x"
    )


# --- parking: the supervisor ---------------------------------------------------------------


def _cell(name: str, beh: Behaviour, rt: Runtime) -> ActorCell:

    def factory(ctx: ActorContext) -> Scripted:
        return Scripted(beh, ctx)

    return ActorCell(name, factory, mailbox(name), runtime=rt)


@pytest.mark.asyncio
async def test_a_crash_looping_child_is_parked_after_n_failures_in_the_window() -> None:
    rt = plain_runtime()
    metrics = rt.metrics
    parked: list[tuple[str, str]] = []
    sup = Supervisor(
        "sup",
        # Restart intensity never trips (100 per 60 s): parking alone must stop the loop.
        SupervisorConfig(
            max_restarts=100, period_s=60, backoff_initial_s=0.001, park_after=4, park_window_s=60
        ),
        on_park=lambda name, exc: parked.append((name, repr(exc))),
    )
    good, bad = _cell("good", Behaviour(), rt), _cell("bad", Behaviour(), rt)
    sup.add(good, ChildSpec(restart=Restart.PERMANENT))
    sup.add(bad, ChildSpec(restart=Restart.PERMANENT))
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: Scripted.starts.get("bad") == 1)
    for i in range(6):
        bad.mailbox.offer("boom")  # the same hostile input, re-offered after each restart
        await _until(lambda i=i: Scripted.starts.get("bad") == i + 2 or bool(sup.parked))
        if sup.parked:
            break
    assert sup.parked.keys() == {"bad"} and parked[0][0] == "bad"
    assert sup.parked["bad"] == "ValueError: bad cannot handle 'boom'"
    assert Scripted.starts["bad"] == 4  # started, failed 4 times, never started again
    # each failing message was dead-lettered by the cell, one per failure
    assert metrics.snapshot()["counters"]["dead_letters_total{actor=bad}"] == 4
    # its mailbox is closed: publishers are told (shed "closed"), nothing queues for it
    assert bad.mailbox.closed and bad.mailbox.offer("later").value == "shed_closed"
    (health,) = [c for c in sup.children_health(60.0) if c.name == "bad"]
    assert health.state is ChildState.PARKED and health.failures_recent == 4 and health.failures_total == 4
    # the sibling keeps serving
    good.mailbox.offer("still here")
    await _until(lambda: ("good", "msg:still here") in Scripted.journal)
    assert not task.done()
    await sup.stop()
    await asyncio.wait_for(task, 2)


@pytest.mark.asyncio
async def test_a_child_failing_too_slowly_for_restart_intensity_is_still_parked() -> None:
    rt = plain_runtime()
    # max_restarts=1 per 1 ms, each restart 5 ms apart: every failure falls outside the
    # intensity window, so the supervisor never gives up; the per-child history over an
    # hour (the default window) still sees a loop.
    sup = Supervisor(
        "sup",
        SupervisorConfig(max_restarts=1, period_s=0.001, backoff_initial_s=0.005, jitter=0.0, park_after=5),
    )
    cell = _cell("slow", Behaviour(fail_start=1000), rt)
    sup.add(cell, ChildSpec(restart=Restart.PERMANENT))
    # a supervisor whose only child is parked has nothing left to do: it returns normally
    await asyncio.wait_for(sup.run(), 5)
    assert list(sup.parked) == ["slow"] and Scripted.starts["slow"] == 5
    assert sup.parked["slow"] == "RuntimeError: slow start 5 fails"


@pytest.mark.asyncio
async def test_a_loop_that_moves_up_the_tree_is_parked_below() -> None:
    rt = plain_runtime()
    # The scenario seen live: the inner supervisor escalates on each failure, the outer one
    # restarts it and never reaches its own limit.  The child's history survives the restarts.
    outer = Supervisor("outer", SupervisorConfig(max_restarts=1000, period_s=60, backoff_initial_s=0.001))
    inner = Supervisor(
        "inner", SupervisorConfig(max_restarts=0, period_s=60, backoff_initial_s=0.001, park_after=3)
    )
    inner.add(_cell("w", Behaviour(fail_start=1000), rt))
    outer.add(inner)
    await asyncio.wait_for(outer.run(), 5)
    assert list(inner.parked) == ["w"] and Scripted.starts["w"] == 3
    assert outer.parked == {}
    (w,) = inner.children_health(60.0)
    assert w.state is ChildState.PARKED and w.failures_total == 3


@pytest.mark.asyncio
async def test_parking_fails_pending_requests_and_park_after_zero_never_parks() -> None:
    rt = plain_runtime()
    sup = Supervisor(
        "sup", SupervisorConfig(max_restarts=100, period_s=60, backoff_initial_s=0.001, park_after=1)
    )
    cell = _cell("bad", Behaviour(), rt)
    sup.add(cell, ChildSpec(restart=Restart.PERMANENT))
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: Scripted.starts.get("bad") == 1)
    cell.mailbox.offer("boom")
    cell.mailbox.offer("queued behind the bad one")
    await asyncio.wait_for(task, 5)
    assert list(sup.parked) == ["bad"]
    with pytest.raises(ActorStopped):
        await cell.ref.ask("anyone?", timeout_s=1)

    Scripted.reset()
    never = Supervisor(
        "never", SupervisorConfig(max_restarts=3, period_s=60, backoff_initial_s=0.001, park_after=0)
    )
    never.add(_cell("x", Behaviour(fail_start=1000), plain_runtime()))
    with pytest.raises(Escalation):  # with parking off, restart intensity decides as before
        await asyncio.wait_for(never.run(), 5)
    assert never.parked == {} and Scripted.starts["x"] == 4


# --- parking and health: the engine ------------------------------------------------------


class Hostile(Actor[Any]):
    """Fails on every message, like an actor handed one poison record again and again."""

    seen: int = 0

    def on_message(self, msg: Any) -> None:
        Hostile.seen += 1
        raise ValueError(f"cannot decode record {msg!r}")


@pytest.mark.asyncio
async def test_the_engine_parks_a_crash_looping_actor_degrades_and_reports_it() -> None:
    Hostile.seen = 0
    cfg = EngineConfig(engine=EngineSection(clock="sim", park_after=3, root_max_restarts=100))
    engine = Engine(cfg)
    engine.add_actor("hostile", Hostile, subscribe=["in"])
    engine.add_actor("fine", Hostile)  # never sent anything: stays healthy
    modes = Probe(engine.bus, "control.mode")
    health_seen = Probe(engine.bus, cfg.engine.health.topic)
    task = asyncio.ensure_future(engine.run(install_signals=False))
    await engine.runtime.wait_started()
    assert engine.health().ready
    for n in itertools.count():
        if engine.root.parked:
            break
        engine.bus.publish("in", n)
        await _until(lambda n=n: Hostile.seen > n or bool(engine.root.parked))
    h = engine.health()
    assert not h.ready and not h.live
    assert any(r.startswith("actor hostile parked after 3 failures") for r in h.not_live)
    assert "ValueError: cannot decode record 2" in h.not_live[0]
    assert h.children["fine"].state is ChildState.RUNNING
    mode = await asyncio.wait_for(modes.next(), 2)
    assert mode.mode == "DEGRADED" and "parked" in mode.reason
    # the health monitor publishes every assessment while someone listens
    published = await asyncio.wait_for(health_seen.next(), 3)
    assert isinstance(published, NodeHealth)
    snap = engine.metrics.snapshot()
    assert snap["gauges"]["actor_parked{actor=hostile}"] == 1.0
    assert snap["gauges"]["node_ready"] == 0.0 and snap["gauges"]["node_live"] == 0.0
    assert snap["gauges"]["actor_failures_recent{actor=hostile}"] == 3.0
    assert snap["counters"]["actors_parked_total"] == 1
    assert snap["counters"]["dead_letters_total{actor=hostile}"] == 3
    engine.request_shutdown("test over")
    summary = await asyncio.wait_for(task, 5)
    assert summary.parked == {"hostile": "ValueError: cannot decode record 2"}
    assert summary.exit_code == 0 and summary.drained  # the closed mailbox never holds up the drain


@pytest.mark.asyncio
async def test_a_run_whose_every_actor_is_parked_ends_with_an_error() -> None:
    cfg = loads_config(
        """
        [engine]
        park_after = 2
        root_max_restarts = 50
        [[actors]]
        name = "bad"
        class = "tests.engine.pipeline_parts:AlwaysFails"
        """
    )
    summary = await asyncio.wait_for(Engine(cfg).run(install_signals=False), 5)
    assert summary.exit_code == 1 and "parked" in summary.reason and "bad" in summary.reason
    assert summary.parked == {"bad": "RuntimeError: cannot start"}


@pytest.mark.asyncio
async def test_a_tier_whose_actor_was_parked_has_failed() -> None:
    cfg = loads_config(
        """
        [engine]
        park_after = 2
        root_max_restarts = 50
        [[actors]]
        name = "narrative"
        class = "tests.engine.pipeline_parts:TierThenFails"
        critical = false
        """
    )
    summary = await asyncio.wait_for(Engine(cfg).run(install_signals=False), 5)
    news = summary.tiers["news"]
    assert news.state is TierState.FAILED and news.attempts == 0
    assert news.start_error == "actor narrative parked: RuntimeError: analyser crashed"
    assert [t.tier for t in summary.failed_tiers()] == ["news"]


@pytest.mark.asyncio
async def test_supervisor_park_settings_come_from_the_engine_or_the_supervisor_table() -> None:
    cfg = loads_config(
        """
        [engine]
        park_after = 7
        park_window_s = 120.0
        [[supervisors]]
        name = "inherits"
        [[supervisors]]
        name = "own"
        park_after = 0
        park_window_s = 30.0
        """
    )
    engine = Engine(cfg)
    engine.build()
    sups = {s.name: s for s in engine._supervisors()}
    assert (sups["root"].config.park_after, sups["root"].config.park_window_s) == (7, 120.0)
    assert (sups["inherits"].config.park_after, sups["inherits"].config.park_window_s) == (7, 120.0)
    assert (sups["own"].config.park_after, sups["own"].config.park_window_s) == (0, 30.0)
