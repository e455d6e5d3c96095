"""The runtime services of one engine, beside its bus: what actors share that is not routing.

The :class:`~engine.bus.Bus` only routes (topics, subscriptions, publish, requests).  Everything
else an engine's actors share lives here and reaches them through their context
(:class:`~engine.actor.ActorContext`):

* identity and state: ``node_id`` (``[engine] node_id``) and ``mode`` (the degradation mode, set by
  the degradation controller or the engine);
* start-up: :meth:`Runtime.wait_started` blocks until every actor has finished ``on_start``;
* idleness: each actor cell registers an idle probe; :meth:`Runtime.wait_idle` is the replay's
  back-pressure (every mailbox empty, no handler running, no hold);
* shutdown: :meth:`Runtime.request_shutdown` asks the engine to drain and stop;
* mailbox statistics by actor name, for controllers and ops views;
* one slot per named service made on first use (:meth:`Runtime.service`), e.g. the replay driver,
  so that it lives and dies with the engine.

A runtime without an engine (tests, tools) has a bus and a live clock of its own, counts as
started and ignores shutdown requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from engine.bus import Bus
from engine.clock import Clock, LiveClock
from engine.mailbox import Mailbox, MailboxStatistics
from engine.metrics import Metrics

if TYPE_CHECKING:
    from engine.messages import Mode

__all__ = ["Runtime"]

T = TypeVar("T")


class Runtime:
    """One engine's shared services (see the module docstring).  Not thread-safe."""

    def __init__(
        self,
        *,
        bus: Bus | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        node_id: str = "node-1",
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.bus = bus if bus is not None else Bus(self.metrics)
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.node_id = node_id
        """This node's id (``[engine] node_id``), for heartbeats and record keys."""
        self.mode: Mode | str = "NORMAL"
        """The current degradation mode; set by whoever controls degradation."""
        self._idle_probes: list[Callable[[], bool]] = []
        self._mailboxes: dict[str, Mailbox[Any]] = {}
        self._shutdown_hook: Callable[[str], None] | None = None
        self._services: dict[str, object] = {}
        # Set once every actor has started; a runtime without an engine counts as started.
        self._started = asyncio.Event()
        self._started.set()

    # --- idleness ---------------------------------------------------------

    def add_idle_probe(self, probe: Callable[[], bool]) -> None:
        """Register a callable that says whether one participant is idle (engine use)."""
        self._idle_probes.append(probe)

    def is_idle(self) -> bool:
        """True when every registered participant is idle (empty mailbox, not in a handler)."""
        return all(probe() for probe in self._idle_probes)

    async def wait_idle(self, max_spins: int | None = None) -> bool:
        """Yield to the loop until :meth:`is_idle`; False if ``max_spins`` ran out first.

        The replay driver calls this between chunks: it is the back-pressure that keeps
        downstream mailboxes from shedding and makes a replay deterministic.
        """
        spins = 0
        while not self.is_idle():
            if max_spins is not None and spins >= max_spins:
                return False
            spins += 1
            await asyncio.sleep(0)
        return True

    # --- mailboxes --------------------------------------------------------

    def track(self, name: str, mailbox: Mailbox[Any]) -> None:
        """Make ``mailbox`` visible to :meth:`mailbox_statistics` under ``name`` (engine use)."""
        self._mailboxes[name] = mailbox

    def mailbox_statistics(self) -> dict[str, MailboxStatistics]:
        """A snapshot of every tracked mailbox, by actor name."""
        return {name: mb.statistics() for name, mb in self._mailboxes.items()}

    # --- start and stop ---------------------------------------------------

    def hold_start(self) -> None:
        """Engine use: :meth:`wait_started` blocks until :meth:`mark_started`."""
        self._started.clear()

    def mark_started(self) -> None:
        """Engine use: every actor has finished ``on_start``."""
        self._started.set()

    async def wait_started(self) -> None:
        """Wait until every actor of the engine has started (sources wait before their first
        record, so nothing races ahead of a consumer that is still loading its model)."""
        await self._started.wait()

    def set_shutdown_hook(self, hook: Callable[[str], None]) -> None:
        """Engine use: what :meth:`request_shutdown` calls."""
        self._shutdown_hook = hook

    def request_shutdown(self, reason: str) -> None:
        """Ask the engine to drain and stop (a finished replay, a fatal condition)."""
        if self._shutdown_hook is not None:
            self._shutdown_hook(reason)

    # --- services ---------------------------------------------------------

    def service(self, name: str, factory: Callable[[], T]) -> T:
        """The service kept under ``name``, made by ``factory`` on first use (e.g. the replay
        driver): one per engine, released with it."""
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = factory()
        return cast(T, svc)  # one factory per name: the type it made
