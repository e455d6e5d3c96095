"""The replay driver: time-ordered merge, sole control of the SimClock, back-pressure, hand-over."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from engine.clock import LiveClock, SimClock
from engine.messages import Trade
from engine.replay import Emit, ReplayDriver, ReplayInput
from engine.runtime import Runtime
from engine.testing import Probe

S = 1_000_000_000


def tick(ts: int, src: str) -> Trade:
    return Trade(symbol=src, ts_event=ts, price=1.0, size=1.0)


class ListInput:
    """A test input: given event times, taken in order, published on ``t.<name>``."""

    def __init__(
        self,
        name: str,
        times: list[int],
        *,
        per_take: int = 100,
        reason: str | None = None,
        settle: bool = False,
        on_take: Any = None,
    ) -> None:
        self.name = name
        self.shutdown_reason = reason
        self.events = deque(times)
        self.per_take = per_take
        self.settle = settle
        self.on_take = on_take
        self.takes: list[tuple[int, list[int]]] = []
        self.finished = 0

    def head_ns(self) -> int | None:
        return self.events[0] if self.events else None

    def take(self, until_ns: int) -> list[Emit]:
        if self.on_take is not None:
            self.on_take(self)
        out: list[int] = []
        while self.events and len(out) < self.per_take and (not out or self.events[0] <= until_ns):
            out.append(self.events.popleft())
        self.takes.append((until_ns, out))
        return [Emit(f"t.{self.name}", [tick(t, self.name) for t in out], self.settle)]

    def finish(self) -> list[Emit]:
        self.finished += 1
        return [Emit(f"t.{self.name}", [tick(10_000 * S, self.name + "-end")])]


def test_list_input_is_a_replay_input() -> None:
    assert isinstance(ListInput("a", []), ReplayInput)


def seen(probe: Probe) -> list[tuple[int, str]]:
    return [(m.ts_event, m.symbol) for m in probe.drain()]


@pytest.mark.asyncio
async def test_inputs_merge_in_time_order_ties_by_name_and_the_clock_follows() -> None:
    rt = Runtime(clock=SimClock())
    bus, clock = rt.bus, rt.clock
    probe = Probe(bus, "t.>")
    driver = ReplayDriver(rt)
    b = ListInput("b", [1 * S, 3 * S, 3 * S, 7 * S], reason="b done")
    a = ListInput("a", [2 * S, 3 * S, 8 * S, 9 * S], reason="a done")
    driver.attach(b)
    driver.attach(a)
    stops: list[str] = []
    rt.set_shutdown_hook(stops.append)
    await driver.run()
    assert seen(probe) == [
        (1 * S, "b"),
        (2 * S, "a"),
        (3 * S, "a"),  # a tie goes to the input whose name sorts first
        (3 * S, "b"),
        (3 * S, "b"),
        (7 * S, "b"),
        (8 * S, "a"),
        (9 * S, "a"),
        (10_000 * S, "a-end"),
        (10_000 * S, "b-end"),
    ]
    # Each take stopped short of the other input's next record.
    assert b.takes[0] == (2 * S - 1, [1 * S])
    assert a.takes[0] == (3 * S, [2 * S, 3 * S])
    assert clock.now_ns() == 10_000 * S
    assert driver.finished and a.finished == b.finished == 1
    assert stops == ["a done"]  # the first input (by name) that asks
    assert clock.controller is None  # released at the end


@pytest.mark.asyncio
async def test_nobody_else_moves_the_clock_while_the_driver_runs() -> None:
    rt = Runtime(clock=SimClock())
    clock = rt.clock
    driver = ReplayDriver(rt)
    errors: list[str] = []

    def sneaky(inp: ListInput) -> None:
        assert clock.controller is driver
        try:
            clock.advance_to(clock.now_ns() + 10 * S)  # what the old clock-pacing sources did
        except RuntimeError as exc:
            errors.append(str(exc))

    driver.attach(ListInput("a", [1 * S, 2 * S], per_take=1, on_take=sneaky))
    await driver.run()
    assert len(errors) == 2 and "sources never move time" in errors[0]
    assert clock.now_ns() == 10_000 * S
    clock.advance_to(20_000 * S)  # after the replay the clock is free again


@pytest.mark.asyncio
async def test_a_timer_fires_between_the_right_messages() -> None:
    rt = Runtime(clock=SimClock())
    bus, clock = rt.bus, rt.clock
    probe = Probe(bus, "t.>")
    fired: list[tuple[int, int]] = []
    clock.call_at(5 * S, lambda: fired.append((clock.now_ns(), len(probe.mailbox))))
    driver = ReplayDriver(rt)
    driver.attach(ListInput("a", [i * S for i in range(1, 10)]))  # one take, one run of 9
    await driver.run()
    assert fired == [(5 * S, 4)]  # after the 4 messages before 5 s, before the one at 5 s
    assert len(probe.drain()) == 10


@pytest.mark.asyncio
async def test_the_driver_waits_for_idle_between_takes_and_after_settling_runs() -> None:
    rt = Runtime(clock=SimClock())
    bus = rt.bus
    busy = [0]
    probe = Probe(bus, "t.>")
    rt.add_idle_probe(lambda: busy[0] == 0 and not len(probe.mailbox))
    log: list[str] = []

    async def worker() -> None:
        # A consumer that stays busy for a while after each message it sees.
        while True:
            msg = await probe.next()
            log.append(f"got {msg.ts_event // S}")
            busy[0] += 1
            for _ in range(5):
                await asyncio.sleep(0)
            log.append(f"done {msg.ts_event // S}")
            busy[0] -= 1

    def check_idle(inp: ListInput) -> None:
        log.append(f"take idle={rt.is_idle()}")

    task = asyncio.get_running_loop().create_task(worker())
    try:
        driver = ReplayDriver(rt)
        driver.attach(ListInput("a", [1 * S, 2 * S], per_take=1, on_take=check_idle, settle=True))
        await driver.run()
        await asyncio.sleep(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert log[:6] == ["take idle=True", "got 1", "done 1", "take idle=True", "got 2", "done 2"]


@pytest.mark.asyncio
async def test_a_waiting_server_takes_over_when_the_leader_is_cancelled() -> None:
    rt = Runtime(clock=SimClock())
    bus = rt.bus
    gate = asyncio.Event()
    held = [True]
    rt.add_idle_probe(lambda: not held[0])  # the pipeline stays busy until the test says so
    probe = Probe(bus, "t.>")
    driver = ReplayDriver(rt)
    driver.attach(ListInput("a", [1 * S, 2 * S, 3 * S], per_take=1, on_take=lambda _: gate.set()))
    loop = asyncio.get_running_loop()
    first = loop.create_task(driver.serve())
    second = loop.create_task(driver.serve())
    await gate.wait()  # the first server leads and waits for idle after its first take
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    held[0] = False
    await asyncio.wait_for(second, 5)
    assert driver.finished
    assert seen(probe) == [(1 * S, "a"), (2 * S, "a"), (3 * S, "a"), (10_000 * S, "a-end")]


@pytest.mark.asyncio
async def test_one_driver_per_bus_and_sources_survive_their_owner() -> None:
    rt = Runtime(clock=SimClock())
    clock = rt.clock
    driver = ReplayDriver.of(rt)
    assert ReplayDriver.of(rt) is driver and ReplayDriver.of(Runtime(clock=clock)) is not driver
    made: list[int] = []
    src = driver.source("feed:tape", lambda: made.append(1) or object())
    assert driver.source("feed:tape", object) is src and made == [1]
    old = ListInput("feed", [1 * S])
    new = ListInput("feed", [2 * S])
    driver.attach(old)
    driver.attach(new)  # a restarted actor's input replaces its predecessor's
    assert driver.inputs == ("feed",)
    driver.detach(old)  # the old incarnation's on_stop comes late: no effect
    assert driver.inputs == ("feed",)
    driver.detach(new)
    assert driver.inputs == ()


@pytest.mark.asyncio
async def test_a_live_clock_is_never_moved() -> None:
    rt = Runtime(clock=LiveClock())
    bus = rt.bus
    probe = Probe(bus, "t.>")
    driver = ReplayDriver(rt)
    driver.attach(ListInput("a", [1 * S, 2 * S]))
    await driver.run()
    assert [t for t, _ in seen(probe)] == [1 * S, 2 * S, 10_000 * S]


class TwoRuns(ListInput):
    """One take, two runs: the first marked ``settle``."""

    def take(self, until_ns: int) -> list[Emit]:
        self.events.clear()
        return [Emit("t.a", [tick(1 * S, "bar")], True), Emit("t.a", [tick(2 * S, "trade")])]


@pytest.mark.asyncio
async def test_a_settling_run_is_drained_before_the_next_run_of_the_same_take() -> None:
    rt = Runtime(clock=SimClock())
    bus = rt.bus
    probe = Probe(bus, "t.>")
    busy = [0]
    rt.add_idle_probe(lambda: busy[0] == 0 and not len(probe.mailbox))
    log: list[str] = []

    async def worker() -> None:
        while True:
            msg = await probe.next()
            busy[0] += 1
            await asyncio.sleep(0)
            log.append(f"{msg.symbol} handled, queued behind it: {len(probe.mailbox)}")
            busy[0] -= 1

    task = asyncio.get_running_loop().create_task(worker())
    try:
        driver = ReplayDriver(rt)
        driver.attach(TwoRuns("a", [1 * S]))
        await driver.run()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert log[:2] == ["bar handled, queued behind it: 0", "trade handled, queued behind it: 0"]
