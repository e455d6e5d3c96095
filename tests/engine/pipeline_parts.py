"""Actors referenced by dotted path from the kernel tests' TOML pipelines."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import msgspec

from engine.actor import Actor
from engine.messages import Trade


class CountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    n: int = 100
    chunk: int = 16
    finish: bool = True


class Counter(Actor[CountConfig]):
    """A replay-style source: publishes ``n`` trades in chunks, waiting idle between them."""

    config_type = CountConfig

    async def on_start(self) -> None:
        self.ctx.spawn(self._produce())

    async def _produce(self) -> None:
        clock: Any = self.ctx.clock
        chunk: list[Trade] = []
        for i in range(1, self.config.n + 1):
            if hasattr(clock, "advance_to"):
                clock.advance_to(i * 1_000)
            chunk.append(Trade(symbol="ES", ts_event=i * 1_000, seq=i, price=100.0, size=1.0))
            if len(chunk) == self.config.chunk:
                self.ctx.bus.publish_many("md.ES", chunk)
                chunk = []
                await self.ctx.wait_idle()
        self.ctx.bus.publish_many("md.ES", chunk)
        await self.ctx.wait_idle()
        if self.config.finish:
            self.ctx.request_shutdown("source finished")


class Doubler(Actor[Any]):
    def on_batch(self, msgs: list[Trade]) -> None:
        for m in msgs:
            self.ctx.publish("x2.ES", msgspec.structs.replace(m, price=m.price * 2))


class Collect(Actor[Any]):
    got: ClassVar[list[Any]] = []

    def on_message(self, msg: Any) -> Any:
        Collect.got.append(msg)
        return len(Collect.got)


class AlwaysFails(Actor[Any]):
    async def on_start(self) -> None:
        raise RuntimeError("cannot start")


class TierThenFails(Actor[Any]):
    """Reports for the ``news`` tier, then fails every start: the tier must not look IDLE."""

    async def on_start(self) -> None:
        self.ctx.tier("news").configured()
        raise RuntimeError("analyser crashed")


class Slow(Actor[Any]):
    async def on_message(self, msg: Any) -> None:
        await asyncio.sleep(0.001)


class SlowStart(Actor[Any]):
    started_at: ClassVar[float] = 0.0

    async def on_start(self) -> None:
        await asyncio.sleep(0.1)
        SlowStart.started_at = asyncio.get_running_loop().time()


class TierDown(Actor[Any]):
    """Declares the ``cloud`` tier and reports that it could not start (the node tests' FAILED tier)."""

    async def on_start(self) -> None:
        self.ctx.tier("cloud").start_failed("no LLM server at 127.0.0.1:1 (connection refused)")


class TagConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tag: str = ""
    path: str = ""
    items: list[dict[str, Any]] = []


class Tagged(Actor[TagConfig]):
    """A sink with a config of strings and a list of tables (the composition tests' target)."""

    config_type = TagConfig

    def on_message(self, msg: Any) -> None:
        return None


class WaitConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    n: int = 100
    awaited: bool = True
    """Publish with ``await ctx.publish_wait`` (back-pressure) or the sync ``ctx.publish``."""
    many: bool = False
    """In chunks of 10 with ``publish_many_wait`` / ``publish_many``."""


class WaitingSource(Actor[WaitConfig]):
    """A live source that never waits for idle: only an awaited publish can hold it back."""

    config_type = WaitConfig

    async def on_start(self) -> None:
        self.ctx.spawn(self._produce())

    async def _produce(self) -> None:
        await self.ctx.wait_started()
        cfg = self.config
        msgs = [Trade(symbol="ES", ts_event=i, seq=i, price=100.0, size=1.0) for i in range(1, cfg.n + 1)]
        step = 10 if cfg.many else 1
        for i in range(0, cfg.n, step):
            part = msgs[i : i + step]
            if cfg.many and cfg.awaited:
                await self.ctx.publish_many_wait("md.ES", part)
            elif cfg.many:
                self.ctx.publish_many("md.ES", part)
            elif cfg.awaited:
                await self.ctx.publish_wait("md.ES", part[0])
            else:
                self.ctx.publish("md.ES", part[0])
        await self.ctx.wait_idle()
        self.ctx.request_shutdown("source finished")


class SlowSink(Actor[Any]):
    """Takes a loop turn per message and remembers the sequence numbers it saw."""

    seen: ClassVar[list[int]] = []
    batch_size = 1

    async def on_message(self, msg: Any) -> None:
        await asyncio.sleep(0)
        SlowSink.seen.append(msg.seq)


class Holder(Actor[Any]):
    """Holds every trade it receives and hands them on only when the engine drains (like a
    checker's held items): on ``x2.held`` via ``on_drain``, or on ``x2.late`` from ``on_stop``."""

    held: ClassVar[list[Any]] = []

    def on_message(self, msg: Any) -> None:
        Holder.held.append(msg)

    async def on_drain(self) -> None:
        for m in Holder.held:
            self.ctx.publish("x2.held", m)
        Holder.held = []


class FailingDrain(Actor[Any]):
    async def on_drain(self) -> None:
        raise RuntimeError("drain broke")
