from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec
import pytest

from engine.actor import Actor, ActorCell, ActorContext
from engine.errors import ActorStopped, RequestTimeout
from engine.messages import DeadLetter, Trade, msgpack_decoder
from engine.runtime import Runtime
from engine.testing import FakeClock, Probe, capture_logs, settle
from tests.engine.helpers import Behaviour, Scripted, mailbox, plain_runtime


@pytest.fixture(autouse=True)
def _fresh_journal() -> Iterator[None]:
    Scripted.reset()
    yield
    Scripted.reset()


def _cell(name: str = "a", beh: Behaviour | None = None, capacity: int = 64) -> ActorCell:
    rt = plain_runtime()
    b = beh or Behaviour()
    cell = ActorCell(name, lambda ctx: Scripted(b, ctx), mailbox(name, capacity), runtime=rt)
    rt.add_idle_probe(cell.is_idle)
    return cell


@pytest.mark.asyncio
async def test_ask_returns_the_handler_result() -> None:
    cell = _cell()
    task = asyncio.ensure_future(cell.run())
    assert await cell.ref.ask("hello", timeout_s=1) == "a:hello"
    cell.mailbox.close()
    await task


@pytest.mark.asyncio
async def test_ask_propagates_the_handler_error_to_the_caller() -> None:
    cell = _cell()
    task = asyncio.ensure_future(cell.run())
    with pytest.raises(ValueError, match="cannot handle"):
        await cell.ref.ask("boom", timeout_s=1)
    with pytest.raises(ValueError):
        await task  # and the actor failed, so its supervisor would restart it


@pytest.mark.asyncio
async def test_pending_requests_fail_loudly_when_the_actor_stops() -> None:
    cell = _cell()  # never started: requests queue up
    fut = asyncio.ensure_future(cell.ref.ask("x", timeout_s=5))
    await asyncio.sleep(0)
    assert cell.close() == 1
    with pytest.raises(ActorStopped):
        await fut
    with pytest.raises(ActorStopped):
        await cell.ref.ask("y")


@pytest.mark.asyncio
async def test_ask_times_out() -> None:
    cell = _cell()
    with pytest.raises(RequestTimeout):
        await cell.ref.ask("x", timeout_s=0.01)


@pytest.mark.asyncio
async def test_failing_message_is_dead_lettered_and_the_rest_of_the_batch_survives() -> None:
    cell = _cell()
    probe = Probe(cell.bus, "deadletter", "out.>")
    for m in ("m1", "boom", "m2", "m3"):
        cell.mailbox.offer(m)
    with pytest.raises(ValueError):
        await cell.run()
    # second incarnation processes the carried-over tail first
    task = asyncio.ensure_future(cell.run())
    await settle(cell.runtime)
    cell.mailbox.close()
    await task
    got = probe.drain()
    dead = [m for m in got if isinstance(m, DeadLetter)]
    assert len(dead) == 1 and "cannot handle" in dead[0].reason
    assert msgspec.msgpack.decode(dead[0].raw) == "boom"
    assert [m for m in got if isinstance(m, str)] == ["m1", "m2", "m3"]
    assert cell.incarnations == 2


class Ticker(Actor[Any]):
    fired: list[int]

    async def on_start(self) -> None:
        self.fired = []
        self.ctx.call_every(1_000, lambda: self.fired.append(self.ctx.clock.now_ns()))
        self.ctx.call_later(2_500, lambda: self.ctx.publish("done", self.fired[:]))


@pytest.mark.asyncio
async def test_timers_follow_the_engine_clock() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock)
    cell = ActorCell("t", lambda ctx: Ticker(msgspec.Struct(), ctx), mailbox("t"), runtime=rt)
    probe = Probe(rt.bus, "done")
    task = asyncio.ensure_future(cell.run())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.advance(3_000)
    assert probe.drain() == [[1_000, 2_000]]
    cell.mailbox.close()
    await task
    # timers die with the incarnation
    assert clock.advance(10_000) == 0


class SpawnFails(Actor[Any]):
    async def on_start(self) -> None:
        self.ctx.spawn(self._bad())

    async def _bad(self) -> None:
        await asyncio.sleep(0)
        raise OSError("feed disconnected")


@pytest.mark.asyncio
async def test_a_failing_spawned_task_fails_the_actor() -> None:
    rt = plain_runtime()
    cell = ActorCell("s", lambda ctx: SpawnFails(msgspec.Struct(), ctx), mailbox("s"), runtime=rt)
    with pytest.raises(OSError, match="disconnected"):
        await asyncio.wait_for(cell.run(), 2)


class Batcher(Actor[Any]):
    batch_size = 3
    seen: ClassVar[list[int]] = []

    def on_batch(self, msgs: list[Trade]) -> None:
        Batcher.seen.append(len(msgs))


class ConfiguredBatcher(Batcher):
    async def on_start(self) -> None:
        self.batch_size = 2  # per instance, from its config say: the loop reads it after on_start


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("cls", "n", "expected"),
    [(Batcher, 7, [3, 3, 1]), (ConfiguredBatcher, 5, [2, 2, 1])],
    ids=["per-class", "per-instance-in-on_start"],
)
async def test_on_batch_receives_bounded_batches(cls: type[Batcher], n: int, expected: list[int]) -> None:
    rt = plain_runtime()
    Batcher.seen = []
    cell = ActorCell("b", lambda ctx: cls(msgspec.Struct(), ctx), mailbox("b"), runtime=rt)
    for i in range(n):
        cell.mailbox.offer(Trade(symbol="ES", ts_event=i, price=1.0, size=1.0))
    cell.mailbox.close()
    await cell.run()
    assert Batcher.seen == expected
    assert rt.metrics.counter("messages_processed_total", actor="b").value == n


def test_dead_letter_without_subscribers_still_logs_and_counts() -> None:
    rt = plain_runtime()
    cell = ActorCell("x", lambda ctx: Scripted(Behaviour(), ctx), mailbox("x"), runtime=rt)
    ctx = ActorContext(cell)
    with capture_logs() as logs:
        ctx.dead_letter("bad tick", raw=b"\x00", field="price")
    assert rt.metrics.counter("dead_letters_total", actor="x").value == 1
    assert logs[0]["event"] == "dead_letter" and logs[0]["reason"] == "bad tick"


def test_dead_letters_round_trip_through_the_union_decoder() -> None:
    dl = DeadLetter(source="feed", reason="r", ts_event=1, raw=b"\xff", detail={"k": 1})
    assert msgpack_decoder.decode(msgspec.msgpack.encode(dl)) == dl


class ManyTimers(Actor[Any]):
    async def on_start(self) -> None:
        for i in range(1_000):
            self.ctx.call_later(i + 1, lambda: None)
        self.ctx.call_every(10, lambda: None)


@pytest.mark.asyncio
async def test_fired_one_shot_timers_are_forgotten() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock)
    cell = ActorCell("m", lambda ctx: ManyTimers(msgspec.Struct(), ctx), mailbox("m"), runtime=rt)
    task = asyncio.ensure_future(cell.run())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert cell.actor is not None
    live = cell.actor.ctx._timers
    assert len(live) == 1_001
    clock.advance(2_000)
    assert len(live) == 1  # only the periodic timer is still armed
    cell.mailbox.close()
    await task


@pytest.mark.asyncio
async def test_hold_keeps_the_bus_busy_until_released() -> None:
    cell = _cell()
    task = asyncio.ensure_future(cell.run())
    await asyncio.sleep(0)
    assert cell.actor is not None
    ctx = cell.actor.ctx
    ctx.hold()
    assert not cell.runtime.is_idle()
    assert await cell.runtime.wait_idle(max_spins=50) is False
    ctx.release()
    assert await cell.runtime.wait_idle(max_spins=50) is True
    cell.mailbox.close()
    await task
