"""Small actors used by the engine tests (each does one thing badly or well on purpose)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import msgspec

from engine.actor import Actor
from engine.clock import SimClock
from engine.mailbox import Mailbox
from engine.runtime import Runtime


class Behaviour(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a :class:`Scripted` actor does.  ``fail_start``: how many starts raise."""

    fail_start: int = 0
    hang_stop: bool = False
    fail_on: str = "boom"


class Scripted(Actor[Behaviour]):
    """Records its life in a class-level journal; raises or hangs as configured."""

    config_type = Behaviour
    journal: ClassVar[list[tuple[str, str]]] = []
    starts: ClassVar[dict[str, int]] = {}

    async def on_start(self) -> None:
        n = Scripted.starts.get(self.ctx.name, 0) + 1
        Scripted.starts[self.ctx.name] = n
        Scripted.journal.append((self.ctx.name, "start"))
        if n <= self.config.fail_start:
            raise RuntimeError(f"{self.ctx.name} start {n} fails")

    def on_message(self, msg: Any) -> Any:
        if msg == self.config.fail_on:
            raise ValueError(f"{self.ctx.name} cannot handle {msg!r}")
        Scripted.journal.append((self.ctx.name, f"msg:{msg}"))
        self.ctx.publish(f"out.{self.ctx.name}", msg)
        return f"{self.ctx.name}:{msg}"

    async def on_stop(self) -> None:
        Scripted.journal.append((self.ctx.name, "stop"))
        if self.config.hang_stop:
            await asyncio.sleep(3600)

    @classmethod
    def reset(cls) -> None:
        cls.journal = []
        cls.starts = {}


def plain_runtime() -> Runtime:
    """A runtime without an engine, on a simulated clock."""
    return Runtime(clock=SimClock())


def mailbox(name: str, capacity: int = 64) -> Mailbox[Any]:
    return Mailbox(capacity, "drop_newest", name=name)
