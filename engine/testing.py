"""Helpers for testing actors and pipelines in users' own test suites.

* :class:`FakeClock` — a :class:`~engine.clock.SimClock` you move by hand.
* :func:`capture_logs` — collect structlog events as dicts.
* :class:`Probe` — an actor-less mailbox subscribed to topics, to see what was published.
* :func:`settle` — let the loop run until every actor is idle.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog

from engine.bus import Bus
from engine.clock import SimClock
from engine.mailbox import Mailbox
from engine.runtime import Runtime

__all__ = ["FakeClock", "Probe", "capture_logs", "settle"]


class FakeClock(SimClock):
    """A simulated clock for tests; ``advance(ns)`` moves it and fires due timers."""

    def advance(self, delta_ns: int) -> int:
        """Move time forward by ``delta_ns`` ns; returns how many timers fired."""
        return self.advance_to(self.now_ns() + delta_ns)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Collect every structlog event emitted in the block, as dicts with ``event`` and ``log_level``.

    Every level is captured, whatever level an earlier ``configure_logging`` set (a filtering
    wrapper would otherwise drop events before the capture sees them); the configuration is
    restored afterwards.
    """
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(wrapper_class=wrapper)


class Probe:
    """Records what is published on some topics (unbounded, for tests only)."""

    def __init__(self, bus: Bus, *patterns: str, capacity: int = 1_000_000) -> None:
        self.mailbox: Mailbox[Any] = Mailbox(capacity, "drop_newest", name="probe")
        for p in patterns:
            bus.subscribe(p, self.mailbox)

    def drain(self) -> list[Any]:
        """Everything received since the last drain, in arrival order."""
        return self.mailbox.drain(len(self.mailbox))

    async def next(self) -> Any:
        return await self.mailbox.receive()


async def settle(runtime: Runtime, max_spins: int = 100_000) -> None:
    """Let the loop run until every actor of ``runtime`` (``Engine.runtime``) is idle;
    AssertionError if it never is."""
    if not await runtime.wait_idle(max_spins=max_spins):
        raise AssertionError(f"pipeline did not settle within {max_spins} loop iterations")
