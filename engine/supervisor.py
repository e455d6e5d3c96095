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

Crash loops: restart intensity alone never catches a child that fails a little
slower than ``max_restarts`` per ``period_s``, nor a loop that moves up the tree
(a supervisor escalates, its parent restarts it, and the parent's own restarts
are spaced too far apart to reach its limit).  So each child also keeps its own
failure history, which survives its supervisor's restarts: ``park_after`` failures within
``park_window_s`` and the child is *parked* - not restarted again, its mailbox
closed (what was queued is discarded and counted, pending requests fail with
``ActorStopped``), recorded in :attr:`Supervisor.parked` with its last error,
and reported through ``on_park``.  A parked child counts as done; its siblings
keep running.  Parking is checked before restart intensity.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, TypeAlias

import msgspec
import structlog

from engine.actor import ActorCell
from engine.errors import Escalation
from engine.health import ChildHealth, ChildState

__all__ = [
    "PARK_AFTER",
    "PARK_WINDOW_S",
    "ChildSpec",
    "Restart",
    "Strategy",
    "Supervisor",
    "SupervisorConfig",
]

_log = structlog.get_logger("finllm")


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


_NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
_PosFloat = Annotated[float, msgspec.Meta(gt=0)]
_NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]

PARK_AFTER = 10
"""Default crash-loop definition: this many failures of one child ..."""
PARK_WINDOW_S = 3600.0
"""... within this many seconds park it.  An hour: a child failing every few minutes forever is a loop too."""


class SupervisorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Restart policy.  Times are seconds.  ``park_after = 0`` never parks."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: _NonNegInt = 3
    period_s: _PosFloat = 5.0
    backoff_initial_s: _NonNegFloat = 0.01
    backoff_max_s: _NonNegFloat = 1.0
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    """Fraction of each backoff drawn at random: the wait is in [(1 - jitter) * d, d]."""
    seed: int = 0
    park_after: _NonNegInt = PARK_AFTER
    park_window_s: _PosFloat = PARK_WINDOW_S


class ChildSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a supervisor treats one child.  ``shutdown_timeout_s`` bounds its stop."""

    restart: Restart = Restart.TRANSIENT
    shutdown_timeout_s: _PosFloat = 5.0
    critical: bool = True


_Child: TypeAlias = "ActorCell | Supervisor"


# Failure times kept per child: enough for any sane park_after, bounded for a child failing forever.
_HISTORY = 256


class _Slot:
    __slots__ = (
        "child",
        "done",
        "failed_at",
        "failures_total",
        "generation",
        "last_error",
        "parked",
        "spec",
        "started",
        "task",
        "ts_last_failure",
    )

    def __init__(self, child: _Child, spec: ChildSpec, history: int) -> None:
        self.child = child
        self.spec = spec
        self.task: asyncio.Task[None] | None = None
        self.generation = 0
        self.started: asyncio.Event = asyncio.Event()
        self.done = False
        # Monotonic seconds of recent failures; lives as long as the supervisor object, so a
        # supervisor restarted by its parent still sees the loop its child is in.
        self.failed_at: deque[float] = deque(maxlen=history)
        self.failures_total = 0
        self.last_error = ""
        self.ts_last_failure = 0
        self.parked = False

    def failures_within(self, window_s: float, now: float) -> int:
        return sum(1 for t in self.failed_at if now - t <= window_s)

    def state(self) -> ChildState:
        if self.parked:
            return ChildState.PARKED
        if self.task is not None and not self.task.done():
            return ChildState.RUNNING
        return ChildState.STOPPED


class Supervisor:
    """Supervises children; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: SupervisorConfig | None = None,
        *,
        on_abandon: Callable[[str, BaseException], None] | None = None,
        on_park: Callable[[str, BaseException], None] | None = None,
        on_failure: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config or SupervisorConfig()
        self.on_abandon = on_abandon
        self.on_park = on_park
        """Called with (child name, last error) when a child is parked (a crash loop)."""
        self.on_failure = on_failure
        """Called with (child name, error) on every child failure, before any restart."""
        self._slots: list[_Slot] = []
        self._events: asyncio.Queue[tuple[int, int, BaseException | None]] | None = None
        self._restarts: deque[float] = deque()
        self._rng = random.Random(self.config.seed)
        self._stopping = False
        self.restarts_total = 0
        self.abandoned: list[str] = []
        self.parked: dict[str, str] = {}
        """Parked children by name -> their last error."""

    def add(self, child: _Child, spec: ChildSpec | None = None) -> None:
        """Add a child before :meth:`run`; children start in the order added."""
        self._slots.append(_Slot(child, spec or ChildSpec(), max(_HISTORY, self.config.park_after)))

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
            recent = self._record_failure(slot, exc)
            if slot.spec.restart is Restart.TEMPORARY:
                slot.done = True
                continue
            if self.config.park_after and recent >= self.config.park_after:
                self._park(slot, exc, recent)
                continue
            await self._restart(i, exc)

    def _record_failure(self, slot: _Slot, exc: BaseException) -> int:
        """Note one failure of ``slot``'s child; returns its failures within ``park_window_s``."""
        now = time.monotonic()
        slot.failed_at.append(now)
        slot.failures_total += 1
        slot.last_error = _describe(exc)
        slot.ts_last_failure = time.time_ns()
        if self.on_failure is not None:
            self.on_failure(_name(slot.child), exc)
        return slot.failures_within(self.config.park_window_s, now)

    def _park(self, slot: _Slot, exc: BaseException, recent: int) -> None:
        """Stop ``slot``'s child for good: it crash-loops (see the module docstring)."""
        name = _name(slot.child)
        slot.done = True
        slot.parked = True
        self.parked[name] = slot.last_error
        discarded = _close_for_good(slot.child)
        _log.error(
            "child_parked",
            supervisor=self.name,
            child=name,
            failures=recent,
            window_s=self.config.park_window_s,
            discarded=discarded,
            error=slot.last_error,
        )
        if self.on_park is not None:
            self.on_park(name, exc)

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
            discarded = _close_for_good(slot.child)
            _log.error("child_abandoned", supervisor=self.name, child=name, discarded=discarded)
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

    def children_health(self, window_s: float) -> list[ChildHealth]:
        """Each direct child's state and failures (``failures_recent``: within ``window_s``)."""
        now = time.monotonic()
        out: list[ChildHealth] = []
        for s in self._slots:
            name = _name(s.child)
            state = s.state()
            if name in self.abandoned:
                state = ChildState.ABANDONED
            out.append(
                ChildHealth(
                    name=name,
                    supervisor=self.name,
                    critical=s.spec.critical,
                    state=state,
                    failures_total=s.failures_total,
                    failures_recent=s.failures_within(window_s, now),
                    last_error=s.last_error,
                    ts_last_failure=s.ts_last_failure,
                )
            )
        return out

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


def _close_for_good(child: _Child) -> int:
    """Close what a parked or abandoned child reads from; returns the messages discarded (shed
    ``closed``).  Publishers must not block on (or queue for) an actor that will never read
    again, and the engine's idle wait (a replay's back-pressure) must not wait for it."""
    cells = child.cells() if isinstance(child, Supervisor) else [child]
    return sum(c.close() for c in cells)


def _name(child: _Child) -> str:
    return child.name


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a failure, following an escalation to the child failure behind it."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if isinstance(exc, Escalation) and cause is not None:
        text += f" <- {type(cause).__name__}: {cause}"
    return text[:500]
