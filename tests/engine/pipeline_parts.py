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
                await self.ctx.bus.wait_idle()
        self.ctx.bus.publish_many("md.ES", chunk)
        await self.ctx.bus.wait_idle()
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
