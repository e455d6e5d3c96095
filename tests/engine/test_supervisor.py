"""Each restart strategy against each failure kind: handler exception, on_start exception, on_stop hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from engine.actor import ActorCell, ActorContext
from engine.errors import Escalation
from engine.supervisor import ChildSpec, Restart, Strategy, Supervisor, SupervisorConfig
from tests.engine.helpers import Behaviour, Scripted, mailbox, plain_runtime


@pytest.fixture(autouse=True)
def _fresh_journal() -> Iterator[None]:
    Scripted.reset()
    yield
    Scripted.reset()


def _tree(
    strategy: Strategy,
    behaviours: dict[str, Behaviour],
    *,
    max_restarts: int = 3,
    stop_timeout_s: float = 5.0,
) -> tuple[Supervisor, dict[str, ActorCell]]:
    rt = plain_runtime()
    sup = Supervisor(
        "sup",
        SupervisorConfig(strategy=strategy, max_restarts=max_restarts, period_s=60, backoff_initial_s=0.001),
    )
    cells: dict[str, ActorCell] = {}
    for name, beh in behaviours.items():

        def factory(ctx: ActorContext, beh: Behaviour = beh) -> Scripted:
            return Scripted(beh, ctx)

        cell = ActorCell(name, factory, mailbox(name), runtime=rt)
        cells[name] = cell
        sup.add(cell, ChildSpec(shutdown_timeout_s=stop_timeout_s, restart=Restart.PERMANENT))
    return sup, cells


async def _until(pred: Callable[[], bool], within: float = 2.0) -> None:
    async def spin() -> None:
        while not pred():  # noqa: ASYNC110 - polls actor state the test cannot get an event for
            await asyncio.sleep(0.001)

    await asyncio.wait_for(spin(), within)


EXPECTED_RESTARTED = {
    Strategy.ONE_FOR_ONE: {"b"},
    Strategy.ONE_FOR_ALL: {"a", "b", "c"},
    Strategy.REST_FOR_ONE: {"b", "c"},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", list(Strategy))
async def test_handler_exception_restarts_by_strategy(strategy: Strategy) -> None:
    sup, cells = _tree(strategy, {n: Behaviour() for n in "abc"})
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: all(Scripted.starts.get(n) == 1 for n in "abc"))
    cells["b"].mailbox.offer("boom")
    await _until(lambda: Scripted.starts.get("b") == 2)
    await _until(lambda: all(c.actor is not None for c in cells.values()))
    await asyncio.sleep(0.01)
    restarted = {n for n in "abc" if Scripted.starts[n] == 2}
    assert restarted == EXPECTED_RESTARTED[strategy]
    # the failing message was dead-lettered, the actor keeps serving after the restart
    cells["b"].mailbox.offer("after")
    await _until(lambda: ("b", "msg:after") in Scripted.journal)
    assert sup.restarts_total == 1
    await sup.stop()
    await asyncio.wait_for(task, 2)


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", list(Strategy))
async def test_on_start_exception_is_retried_then_succeeds(strategy: Strategy) -> None:
    sup, cells = _tree(strategy, {"a": Behaviour(), "b": Behaviour(fail_start=2), "c": Behaviour()})
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: Scripted.starts.get("c", 0) >= 1 and Scripted.starts.get("b") == 3)
    assert sup.restarts_total == 2
    cells["c"].mailbox.offer("x")
    await _until(lambda: ("c", "msg:x") in Scripted.journal)
    await sup.stop()
    await asyncio.wait_for(task, 2)


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", list(Strategy))
async def test_restart_intensity_exceeded_escalates(strategy: Strategy) -> None:
    sup, _ = _tree(strategy, {"a": Behaviour(), "b": Behaviour(fail_start=100)}, max_restarts=2)
    with pytest.raises(Escalation):
        await asyncio.wait_for(sup.run(), 5)
    assert Scripted.starts["b"] == 3  # first start + 2 restarts, then give up
    # every child was stopped on the way out
    assert ("a", "stop") in Scripted.journal


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", list(Strategy))
async def test_hang_in_on_stop_is_cut_by_the_shutdown_timeout(strategy: Strategy) -> None:
    sup, cells = _tree(
        strategy, {"a": Behaviour(), "b": Behaviour(hang_stop=True), "c": Behaviour()}, stop_timeout_s=0.05
    )
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: all(Scripted.starts.get(n) == 1 for n in "abc"))
    cells["b"].mailbox.offer("boom")  # restart path must not wait forever on b's on_stop
    await _until(lambda: Scripted.starts.get("b") == 2, within=3)
    await sup.stop()
    await asyncio.wait_for(task, 3)
    assert [n for n, ev in Scripted.journal if ev == "stop"][-3:] == ["c", "b", "a"]  # reverse start order


@pytest.mark.asyncio
async def test_non_critical_child_is_abandoned_not_escalated() -> None:
    rt = plain_runtime()
    abandoned: list[str] = []
    sup = Supervisor(
        "sup",
        SupervisorConfig(max_restarts=1, period_s=60, backoff_initial_s=0.001),
        on_abandon=lambda name, exc: abandoned.append(name),
    )

    def mk(beh: Behaviour, name: str) -> ActorCell:
        return ActorCell(name, lambda ctx: Scripted(beh, ctx), mailbox(name), runtime=rt)

    sup.add(mk(Behaviour(), "core"), ChildSpec(critical=True))
    extra = mk(Behaviour(fail_start=100), "extra")
    rt.add_idle_probe(extra.is_idle)
    for i in range(5):  # queued for it while it fails to start
        extra.mailbox.offer(i)
    sup.add(extra, ChildSpec(critical=False))
    task = asyncio.ensure_future(sup.run())
    await _until(lambda: abandoned == ["extra"])
    assert sup.abandoned == ["extra"]
    assert not task.done()  # the supervisor and the critical child live on
    # what it held is shed (counted), nothing more queues for it, and the engine can go idle:
    # a replay waiting for idle must not wait for an actor that will never read again
    assert extra.mailbox.closed and extra.mailbox.statistics().shed_by_reason == {"closed": 5}
    assert not extra.mailbox.offer("late").queued
    assert await rt.wait_idle(max_spins=10)
    await sup.stop()
    await asyncio.wait_for(task, 2)


@pytest.mark.asyncio
async def test_nested_supervisor_escalation_is_handled_by_the_parent() -> None:
    rt = plain_runtime()
    outer = Supervisor("outer", SupervisorConfig(max_restarts=1, period_s=60, backoff_initial_s=0.001))
    inner = Supervisor("inner", SupervisorConfig(max_restarts=0, period_s=60, backoff_initial_s=0.001))
    cell = ActorCell("w", lambda ctx: Scripted(Behaviour(fail_start=100), ctx), mailbox("w"), runtime=rt)
    inner.add(cell)
    outer.add(inner)
    with pytest.raises(Escalation):
        await asyncio.wait_for(outer.run(), 5)
    # inner escalated twice (initial + one restart by outer), each after one start of w
    assert Scripted.starts["w"] == 2
