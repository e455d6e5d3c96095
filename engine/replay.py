"""The replay driver: merges time-ordered inputs, alone moves the simulated clock, back-pressures.

A replayed input is a :class:`ReplayInput`: a time-ordered source (a data tape,
a news file, a recording) bound to the actor that consumes its records.  The
input knows when its next record happened (:meth:`ReplayInput.head_ns`) and,
asked to :meth:`~ReplayInput.take` its records up to a time, consumes them
(validates, numbers, aggregates...) and returns what is to be published, as
:class:`Emit` runs whose messages carry ``ts_event``.  It never publishes and
never moves the clock itself.

Per step the driver

1. picks the input whose next record is earliest (ties go to the input whose
   name sorts first, so the merge is the same on every run);
2. has it take its records up to the next record of any other input;
3. publishes the runs in order.  With a :class:`~engine.clock.SimClock` it first
   moves the clock to each run's last ``ts_event``, splitting a run where a
   timer falls due so the timer fires between the right messages (handlers see
   the clock at the end of the run they are handed, so they take event time
   from ``ts_event``); a run marked ``settle`` is followed by a wait until the
   pipeline is idle;
4. waits until the pipeline is idle (``runtime.wait_idle``: every mailbox empty,
   no handler running, no ``ctx.hold``): the back-pressure that keeps
   downstream from shedding and makes the run deterministic.

When every input is exhausted, each input's :meth:`~ReplayInput.finish` runs
are published (open bars, say), the pipeline drains, and the driver asks the
engine to stop with the first ``shutdown_reason`` an input gives (inputs in
name order), if any.

The driver holds the SimClock (:meth:`~engine.clock.SimClock.take_control`)
while it runs, so no input, actor or source can move time: two sources cannot
race each other for the clock, by construction.  With a live clock the driver
only merges and back-pressures.

Who runs it: one driver per engine (:meth:`ReplayDriver.of`).  Each input's
actor attaches its input in ``on_start`` and runs ``await driver.serve()`` in a
task it owns (``ctx.spawn``).  The first of those tasks runs the merge loop, the
others wait; when the running one is cancelled (its actor stops), a waiting one
takes over where it stopped, runs not yet published included.  So the loop
lives exactly as long as some input's actor, and no task outlives the engine.
An actor that restarts re-attaches a new input under the same name; sources
kept with :meth:`ReplayDriver.source` survive the restart, so the replay
resumes instead of starting over.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast, runtime_checkable

from engine.clock import Clock, SimClock

if TYPE_CHECKING:
    from engine.actor import ActorRef
    from engine.runtime import Runtime

__all__ = ["Emit", "ReplayDriver", "ReplayInput"]

T = TypeVar("T")

_NEVER = 2**63 - 1
_SERVICE = "replay-driver"


class Emit(NamedTuple):
    """One run to publish: ``msgs`` (each with ``ts_event``, ns, non-decreasing) to ``target``.

    ``target`` is a bus topic, or an :class:`~engine.actor.ActorRef` for records an
    actor hands to its own mailbox (its handler then runs them, and the bus counts
    it busy until done).  ``settle``: wait until the pipeline is idle right after.
    """

    target: str | ActorRef
    msgs: list[Any]
    settle: bool = False


@runtime_checkable
class ReplayInput(Protocol):
    """A time-ordered source bound to its consumer; see the module docstring."""

    @property
    def name(self) -> str:
        """Unique per engine; orders ties and names the input in logs."""
        ...

    @property
    def shutdown_reason(self) -> str | None:
        """Ask the engine to stop with this reason once the whole replay is done (None: don't)."""
        ...

    def head_ns(self) -> int | None:
        """When the next record happened (ns), or None when the source is exhausted."""
        ...

    def take(self, until_ns: int) -> Sequence[Emit]:
        """Consume the next records with time <= ``until_ns`` (at least one); return what to publish."""
        ...

    def finish(self) -> Sequence[Emit]:
        """Called once, after every input is exhausted: the last runs to publish (open bars...)."""
        ...


class ReplayDriver:
    """Merges the replayed inputs of one engine; see the module docstring."""

    @classmethod
    def of(cls, runtime: Runtime) -> ReplayDriver:
        """The engine's driver (made on first use); one per runtime.

        Kept as a service of the runtime, so it lives and dies with the engine: a registry
        outside would keep every finished engine alive through the driver's inputs.
        """
        return runtime.service(_SERVICE, lambda: cls(runtime))

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._bus = runtime.bus
        self._clock: Clock = runtime.clock
        self._inputs: list[ReplayInput] = []  # sorted by name
        self._sources: dict[str, object] = {}
        self._pending: deque[Emit] = deque()
        self._finished_inputs: set[str] = set()
        self._leader: asyncio.Task[Any] | None = None
        self._vacant = asyncio.Event()
        self.finished = False
        """True once every input is exhausted, finished and drained."""
        self.steps = 0
        """Takes so far (one per merge step)."""

    def __repr__(self) -> str:
        return f"<ReplayDriver inputs={[i.name for i in self._inputs]}>"

    # --- inputs ----------------------------------------------------------

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the attached inputs, in merge tie order."""
        return tuple(i.name for i in self._inputs)

    def attach(self, inp: ReplayInput) -> None:
        """Add ``inp`` (replacing an input of the same name: a restarted actor's new one)."""
        self._inputs = sorted([i for i in self._inputs if i.name != inp.name] + [inp], key=lambda i: i.name)

    def detach(self, inp: ReplayInput) -> None:
        """Remove ``inp`` if it is still the attached one of its name (its actor stopped)."""
        self._inputs = [i for i in self._inputs if i is not inp]

    def source(self, name: str, factory: Callable[[], T]) -> T:
        """The source kept under ``name``, made by ``factory`` the first time.

        Kept for the driver's (the engine's) lifetime, so an actor's new incarnation
        resumes its predecessor's source where it stopped.
        """
        if name not in self._sources:
            self._sources[name] = factory()
        return cast(T, self._sources[name])

    # --- running ---------------------------------------------------------

    async def serve(self) -> None:
        """Run the merge loop, or wait while another task runs it; return when the replay is done."""
        me = asyncio.current_task()
        while not self.finished:
            if self._leader is None:
                self._leader = me
                self._vacant.clear()
                try:
                    await self.run()
                finally:
                    self._leader = None
                    self._vacant.set()
            else:
                await self._vacant.wait()

    async def run(self) -> None:
        """The merge loop itself (:meth:`serve` calls it; call it directly to own the loop)."""
        rt = self._runtime
        await rt.wait_started()  # every consumer has loaded its model before record one
        clock = self._clock
        advance = clock.take_control(self) if isinstance(clock, SimClock) else None
        try:
            while True:
                await self._publish_pending(advance)
                inp, until = self._next()
                if inp is None:
                    break
                self.steps += 1
                self._pending.extend(inp.take(until))
                await self._publish_pending(advance)
                await rt.wait_idle()
            for inp in self._inputs:
                if inp.name not in self._finished_inputs:
                    self._finished_inputs.add(inp.name)
                    self._pending.extend(inp.finish())
            await self._publish_pending(advance)
            await rt.wait_idle()
        finally:
            if isinstance(clock, SimClock):
                clock.release_control(self)
        self.finished = True
        reason = next((r for r in (i.shutdown_reason for i in self._inputs) if r), None)
        if reason:
            rt.request_shutdown(reason)

    def _next(self) -> tuple[ReplayInput | None, int]:
        """The input to take from next, and the time up to which it may take."""
        best: ReplayInput | None = None
        best_ns = 0
        heads: list[tuple[ReplayInput, int]] = []
        for inp in self._inputs:
            h = inp.head_ns()
            if h is None:
                continue
            heads.append((inp, h))
            if best is None or h < best_ns:
                best, best_ns = inp, h
        if best is None:
            return None, 0
        until = _NEVER
        for inp, h in heads:
            if inp is not best:
                # Equal times go to the input whose name sorts first.
                until = min(until, h if inp.name > best.name else h - 1)
        return best, until

    async def _publish_pending(self, advance: Callable[[int], int] | None) -> None:
        pending = self._pending
        while pending:
            e = pending.popleft()  # first: a cancelled wait below never publishes a run twice
            if e.msgs:
                if advance is None:
                    self._deliver(e.target, e.msgs)
                else:
                    self._publish_timed(e.target, e.msgs, advance)
            if e.settle:
                await self._runtime.wait_idle()

    def _publish_timed(self, target: str | ActorRef, msgs: list[Any], advance: Callable[[int], int]) -> None:
        clock = cast(SimClock, self._clock)
        nxt = clock.next_timer_ns
        if nxt is None or msgs[-1].ts_event < nxt:
            advance(msgs[-1].ts_event)
            self._deliver(target, msgs)
            return
        # A timer falls due inside the run: split it so the timer fires between the right messages.
        j = 0
        for i, m in enumerate(msgs):
            if nxt is not None and m.ts_event >= nxt:
                if i > j:
                    self._deliver(target, msgs[j:i])
                    j = i
                advance(m.ts_event)
                nxt = clock.next_timer_ns
        advance(msgs[-1].ts_event)
        self._deliver(target, msgs[j:])

    def _deliver(self, target: str | ActorRef, msgs: list[Any]) -> None:
        if type(target) is str:
            self._bus.publish_many(target, msgs)
        else:
            # The driver waits for idle before every take, so the mailbox has room for what
            # one take returns; a shed here is counted by the mailbox, never silent.
            ref = cast("ActorRef", target)
            for m in msgs:
                ref.tell(m)
