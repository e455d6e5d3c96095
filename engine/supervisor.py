"""Supervisors with Erlang/OTP semantics.

A :class:`Supervisor` starts its children in order (each after the previous
finished ``on_start``), watches them, and restarts failed ones by its strategy:

``one_for_one``
    only the failed child.
``one_for_all``
    every child: the others are stopped in reverse order, then all start again.
``rest_for_one``
    the failed child and every child started after it.

Restart intensity: more than ``max_restarts`` restarts within ``period_s``
seconds and the supervisor gives up.  For a ``critical`` child it stops every
child and raises :class:`Escalation` to its own parent; for a non-critical
child it abandons just that child and calls ``on_abandon`` (the engine turns
that into a degraded mode rather than a dead process).  Each restart waits an
exponential backoff with jitter first.  Children may be actor cells or other
supervisors.  Restart kinds: ``permanent`` (always), ``transient`` (only after a
failure; a normal exit is final) and ``temporary`` (never).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeAlias

import msgspec
import structlog

from engine.actor import ActorCell
from engine.errors import Escalation

__all__ = ["ChildSpec", "Restart", "Strategy", "Supervisor", "SupervisorConfig"]

_log = structlog.get_logger("finllm")


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class SupervisorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Restart policy.  Times are seconds."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    period_s: float = 5.0
    backoff_initial_s: float = 0.01
    backoff_max_s: float = 1.0
    jitter: float = 0.5
    """Fraction of each backoff drawn at random: the wait is in [(1 - jitter) * d, d]."""
    seed: int = 0


class ChildSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a supervisor treats one child.  ``shutdown_timeout_s`` bounds its stop."""

    restart: Restart = Restart.TRANSIENT
    shutdown_timeout_s: float = 5.0
    critical: bool = True


_Child: TypeAlias = "ActorCell | Supervisor"


class _Slot:
    __slots__ = ("child", "done", "generation", "spec", "started", "task")

    def __init__(self, child: _Child, spec: ChildSpec) -> None:
        self.child = child
        self.spec = spec
        self.task: asyncio.Task[None] | None = None
        self.generation = 0
        self.started: asyncio.Event = asyncio.Event()
        self.done = False


class Supervisor:
    """Supervises children; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: SupervisorConfig | None = None,
        *,
        on_abandon: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config or SupervisorConfig()
        self.on_abandon = on_abandon
        self._slots: list[_Slot] = []
        self._events: asyncio.Queue[tuple[int, int, BaseException | None]] | None = None
        self._restarts: deque[float] = deque()
        self._rng = random.Random(self.config.seed)
        self._stopping = False
        self.restarts_total = 0
        self.abandoned: list[str] = []

    def add(self, child: _Child, spec: ChildSpec | None = None) -> None:
        """Add a child before :meth:`run`; children start in the order added."""
        self._slots.append(_Slot(child, spec or ChildSpec()))

    @property
    def children(self) -> list[_Child]:
        return [s.child for s in self._slots]

    # --- running ---------------------------------------------------------

    async def run(self, *, started: Callable[[], None] | None = None, stop_timeout_s: float = 5.0) -> None:
        """Start the children and supervise them until stopped; raise Escalation past the limit."""
        self._events = asyncio.Queue()
        self._stopping = False
        try:
            for i in range(len(self._slots)):
                await self._start(i)
            if started is not None:
                started()
            await self._supervise()
        finally:
            await self._stop_children(range(len(self._slots)), final=self._stopping)

    async def _supervise(self) -> None:
        assert self._events is not None
        while True:
            if self._stopping or all(s.done for s in self._slots):
                return
            i, gen, exc = await self._events.get()
            if self._stopping:
                return
            slot = self._slots[i]
            if gen != slot.generation:
                continue
            name = _name(slot.child)
            if exc is None:
                if slot.spec.restart is Restart.PERMANENT:
                    await self._restart(i, None)
                else:
                    slot.done = True
                continue
            _log.error("child_failed", supervisor=self.name, child=name, error=repr(exc))
            if slot.spec.restart is Restart.TEMPORARY:
                slot.done = True
                continue
            await self._restart(i, exc)

    async def _restart(self, i: int, exc: BaseException | None) -> None:
        cfg = self.config
        slot = self._slots[i]
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > cfg.period_s:
            self._restarts.popleft()
        if len(self._restarts) > cfg.max_restarts:
            name = _name(slot.child)
            if slot.spec.critical:
                _log.error("supervisor_escalates", supervisor=self.name, child=name)
                raise Escalation(
                    f"supervisor {self.name!r}: more than {cfg.max_restarts} restarts in {cfg.period_s}s"
                ) from exc
            _log.error("child_abandoned", supervisor=self.name, child=name)
            slot.done = True
            self.abandoned.append(name)
            self._restarts.pop()
            if self.on_abandon is not None:
                self.on_abandon(name, exc or RuntimeError("restart limit"))
            return
        k = len(self._restarts)
        delay = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (k - 1))
        delay *= 1.0 - cfg.jitter * self._rng.random()
        await asyncio.sleep(delay)
        if cfg.strategy is Strategy.ONE_FOR_ONE:
            targets = [i]
        elif cfg.strategy is Strategy.ONE_FOR_ALL:
            targets = [j for j, s in enumerate(self._slots) if not s.done or j == i]
        else:
            targets = [j for j in range(i, len(self._slots)) if not self._slots[j].done or j == i]
        await self._stop_children(targets, final=False)
        self.restarts_total += 1
        for j in targets:
            self._slots[j].done = False
            await self._start(j)

    async def _start(self, i: int) -> None:
        slot = self._slots[i]
        slot.generation += 1
        slot.started = asyncio.Event()
        gen = slot.generation
        slot.task = asyncio.get_running_loop().create_task(
            self._run_child(i, gen), name=f"{self.name}/{_name(slot.child)}"
        )
        waiter = asyncio.ensure_future(slot.started.wait())
        await asyncio.wait({waiter, slot.task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _run_child(self, i: int, gen: int) -> None:
        slot = self._slots[i]
        exc: BaseException | None = None
        try:
            await slot.child.run(started=slot.started.set, stop_timeout_s=slot.spec.shutdown_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            exc = e
        if self._events is not None:
            self._events.put_nowait((i, gen, exc))

    # --- stopping --------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the supervisor to stop its children for good."""
        self._stopping = True
        if self._events is not None:
            self._events.put_nowait((-1, -1, None))

    async def _stop_children(self, indices: Any, *, final: bool) -> None:
        for j in reversed(list(indices)):
            slot = self._slots[j]
            task = slot.task
            if task is None:
                continue
            slot.generation += 1  # whatever this incarnation reports now is stale
            await _stop_child(slot.child, task, slot.spec.shutdown_timeout_s, final=final)
            slot.task = None

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every child (reverse start order), letting each drain its mailbox."""
        self._stopping = True
        await self._stop_children(range(len(self._slots)), final=True)
        self.request_stop()

    def cells(self) -> list[ActorCell]:
        """Every actor cell in this subtree, in start order."""
        out: list[ActorCell] = []
        for s in self._slots:
            if isinstance(s.child, Supervisor):
                out.extend(s.child.cells())
            else:
                out.append(s.child)
        return out


async def _stop_child(child: _Child, task: asyncio.Task[None], timeout_s: float, *, final: bool) -> None:
    if isinstance(child, Supervisor):
        if final:
            await child.stop(timeout_s)
        child.request_stop()
    elif final:
        child.mailbox.close()  # drain what is queued, then exit normally
    else:
        child.interrupt()
    # The cell bounds its own on_stop by timeout_s; the outer bound also covers draining.
    # asyncio.wait (not wait_for) so a task finishing right at the deadline is never
    # mistaken for a cancellation.
    done, _ = await asyncio.wait({task}, timeout=2 * timeout_s)
    if not done:
        _log.error("child_stop_timeout", child=_name(child), timeout_s=2 * timeout_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if final and isinstance(child, ActorCell):
        child.close()


def _name(child: _Child) -> str:
    return child.name
