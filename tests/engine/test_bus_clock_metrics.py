from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.bus import Bus, topic_matches
from engine.clock import LiveClock, SimClock
from engine.errors import NoResponder
from engine.mailbox import Mailbox
from engine.metrics import Histogram, Metrics

tokens = st.lists(st.sampled_from(["md", "ES", "NQ", "bar", "1m"]), min_size=1, max_size=4)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("md.ES", "md.ES", True),
        ("md.*", "md.ES", True),
        ("md.*", "md.ES.x", False),
        ("md.>", "md.ES.x", True),
        ("md.>", "md", False),
        ("*.ES", "bar.ES", True),
        ("bar.*", "md.ES", False),
        (">", "anything.at.all", True),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


@given(tokens)
def test_exact_and_tail_wildcard_patterns_match_their_topic(toks: list[str]) -> None:
    topic = ".".join(toks)
    assert topic_matches(topic, topic)
    assert topic_matches(".".join(["*"] * len(toks)), topic)
    if len(toks) > 1:
        assert topic_matches(toks[0] + ".>", topic)


def test_publish_routes_to_matching_subscribers_and_counts_unrouted() -> None:
    bus = Bus()
    a: Mailbox[str] = Mailbox(10, name="a")
    b: Mailbox[str] = Mailbox(1, name="b")
    bus.subscribe("md.*", a)
    bus.subscribe("md.ES", b)
    assert bus.publish("md.ES", "x") == 2
    assert bus.publish("md.ES", "y") == 1  # b is full and sheds, a takes it
    assert bus.publish("news.raw", "z") == 0
    assert bus.unrouted == {"news.raw": 1}
    assert b.statistics().shed_by_reason == {"full": 1}
    bus.unsubscribe("md.*", a)
    assert bus.publish("md.NQ", "w") == 0
    with pytest.raises(ValueError):
        bus.subscribe("md.>.x", a)


@pytest.mark.asyncio
async def test_request_without_responder() -> None:
    with pytest.raises(NoResponder):
        await Bus().request("svc.none", 1)


def test_sim_clock_fires_timers_in_time_then_creation_order() -> None:
    clock = SimClock(start_ns=100)
    fired: list[str] = []
    clock.call_at(300, lambda: fired.append("c"))
    clock.call_at(200, lambda: fired.append("a"))
    clock.call_at(200, lambda: fired.append("b"))
    h = clock.call_at(250, lambda: fired.append("cancelled"))
    h.cancel()
    every = clock.call_every(150, lambda: fired.append(f"e{clock.now_ns()}"))
    assert clock.advance_to(400) == 5
    assert fired == ["a", "b", "e250", "c", "e400"]
    # a jump over more than 1,000 intervals fires once (at the first missed time),
    # then the timer is back on its 150 ns grid after the jump
    fired.clear()
    assert clock.advance_to(400 + 150 * 1_000_000) == 1
    assert fired == ["e550"]
    assert clock.next_timer_ns == 400 + 150 * 1_000_001
    every.cancel()
    assert clock.next_timer_ns is None
    clock.advance_to(50)  # never backwards
    assert clock.now_ns() == 400 + 150 * 1_000_000


@pytest.mark.asyncio
async def test_sim_clock_sleep_wakes_when_time_advances() -> None:
    clock = SimClock()
    task = asyncio.ensure_future(clock.sleep(1_000))
    await asyncio.sleep(0)
    clock.advance_to(999)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance_to(1_000)
    await asyncio.wait_for(task, 1)


@pytest.mark.asyncio
async def test_live_clock_timers_fire() -> None:
    clock = LiveClock()
    hits: list[int] = []
    h = clock.call_every(2_000_000, lambda: hits.append(1))
    once = asyncio.get_running_loop().create_future()
    clock.call_later(1_000_000, lambda: once.set_result(clock.now_ns()))
    assert await asyncio.wait_for(once, 1) > 0
    await asyncio.sleep(0.02)
    h.cancel()
    n = len(hits)
    assert n >= 3
    await asyncio.sleep(0.01)
    assert len(hits) == n


def test_histogram_percentiles_are_within_five_percent() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(3.0, 1.0, 20_000)
    h = Histogram()
    for v in values:
        h.observe(float(v))
    for q in (0.5, 0.99, 0.999):
        exact = float(np.quantile(values, q))
        assert abs(h.percentile(q) - exact) / exact < 0.05
    assert h.count == 20_000
    assert math.isclose(h.sum, float(values.sum()), rel_tol=1e-9)
    assert math.isnan(Histogram().percentile(0.5))


def test_metrics_registry_and_prometheus_text() -> None:
    m = Metrics()
    m.counter("shed_total", actor="feed", reason="full").inc(3)
    assert m.counter("shed_total", reason="full", actor="feed").value == 3  # label order is irrelevant
    m.gauge("mailbox_depth", actor="feed").set(7)
    m.histogram("handler_latency_us", actor="feed").observe(12.0)
    text = m.prometheus()
    assert 'finllm_shed_total{actor="feed",reason="full"} 3' in text
    assert "# TYPE finllm_handler_latency_us summary" in text
    assert 'finllm_handler_latency_us{actor="feed",quantile="0.99"}' in text
    snap = m.snapshot()
    assert snap["counters"]["shed_total{actor=feed,reason=full}"] == 3
    assert snap["histograms"]["handler_latency_us{actor=feed}"]["count"] == 1.0


def test_new_symbols_without_end_do_not_grow_the_bus_without_bound() -> None:
    from engine import bus as busmod

    bus = Bus()
    box: Mailbox[Any] = Mailbox(10, "drop_oldest", name="box")
    bus.subscribe("md.ES", box)
    for i in range(busmod._MAX_ROUTES + 10):
        bus.publish(f"md.X{i}", i)  # an attacker's ever-new symbols: nobody subscribes
    assert len(bus._routes) <= busmod._MAX_ROUTES
    assert len(bus.unrouted) == busmod._MAX_UNROUTED + 1
    assert sum(bus.unrouted.values()) == busmod._MAX_ROUTES + 10  # every message still counted
    assert bus.publish("md.ES", "real") == 1 and box.drain(10) == ["real"]


def test_the_bus_only_routes() -> None:
    """Runtime services (mode, node id, start-up, idleness, shutdown, mailbox statistics) live on
    the Runtime, never on the Bus: the bus's public surface is routing."""
    public = {n for n in dir(Bus()) if not n.startswith("_")}
    assert public == {
        "publish", "publish_many", "publish_wait", "publish_many_wait", "published", "register",
        "request", "subscribe", "subscribers", "unrouted", "unsubscribe",
    }  # fmt: skip


@pytest.mark.asyncio
async def test_the_runtime_holds_start_up_shutdown_and_one_service_per_name() -> None:
    from engine.runtime import Runtime

    rt = Runtime(node_id="n-7")
    assert rt.node_id == "n-7" and rt.mode == "NORMAL" and rt.is_idle()
    rt.hold_start()
    waiter = asyncio.ensure_future(rt.wait_started())
    await asyncio.sleep(0)
    assert not waiter.done()
    rt.mark_started()
    await asyncio.wait_for(waiter, 1)
    asked: list[str] = []
    rt.request_shutdown("ignored: no hook yet")
    rt.set_shutdown_hook(asked.append)
    rt.request_shutdown("done")
    assert asked == ["done"]
    made: list[int] = []
    first = rt.service("x", lambda: made.append(1) or object())
    assert rt.service("x", object) is first and made == [1]
    busy = [True]
    rt.add_idle_probe(lambda: not busy[0])
    assert not rt.is_idle() and await rt.wait_idle(max_spins=3) is False
    busy[0] = False
    assert await rt.wait_idle(max_spins=3) is True
