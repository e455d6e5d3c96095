"""Actors: the unit of concurrency, isolation and supervision.

Subclass :class:`Actor`, give it one frozen config Struct, and override the
hooks you need::

    class EmaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        alpha: float = 0.1

    class Ema(Actor[EmaConfig]):
        config_type = EmaConfig

        def on_message(self, msg: Message) -> None:
            match msg:
                case Trade(price=p):
                    ...

Hooks: ``on_start`` (async), ``on_message`` or ``on_batch`` (sync or async),
``on_stop`` (async).  A handler runs on the event loop and must not block;
CPU-heavy work goes to ``ctx.run_in_executor`` or is batched and bounded.

The runtime (:class:`ActorCell`) owns the mailbox, so queued messages survive
a restart; the message whose handler raised is dead-lettered with the error,
and the rest of its batch is handed to the new incarnation first.  When an
actor stops, every request still pending fails with :class:`ActorStopped`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec
import structlog

from engine.clock import Clock, TimerHandle
from engine.errors import ActorStopped, MailboxClosed, RequestTimeout
from engine.health import TierRecorder
from engine.mailbox import Mailbox, OfferResult, Policy
from engine.messages import DeadLetter

if TYPE_CHECKING:
    from engine.bus import Bus
    from engine.mailbox import MailboxStatistics
    from engine.messages import Mode
    from engine.metrics import Metrics
    from engine.runtime import Runtime

__all__ = ["Actor", "ActorCell", "ActorContext", "ActorRef", "NoConfig"]

C = TypeVar("C", bound=msgspec.Struct)


class NoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The config of an actor that takes none."""


class _Drain:
    """The engine's request that the actor run ``on_drain`` (queued like a message, so the hook
    runs in the actor's own task between two batches)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[bool]) -> None:
        self.future = future


class _Request:
    """A message that wants an answer; the handler's return value resolves it."""

    __slots__ = ("future", "msg")

    def __init__(self, msg: Any, future: asyncio.Future[Any]) -> None:
        self.msg = msg
        self.future = future


class ActorRef:
    """A handle to send to an actor without touching it."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def mailbox(self) -> Mailbox[Any]:
        return self._cell.mailbox

    def tell(self, msg: Any) -> OfferResult:
        """Offer ``msg`` under the mailbox policy; never waits."""
        return self._cell.mailbox.offer(msg)

    async def send(self, msg: Any) -> OfferResult:
        """Queue ``msg``, waiting for room under the ``block`` policy."""
        return await self._cell.mailbox.send(msg)

    async def ask(self, msg: Any, timeout_s: float | None = 5.0) -> Any:
        """Send ``msg`` and wait for the handler's return value.

        Raises :class:`RequestTimeout`, :class:`ActorStopped` (the actor stopped or
        was shed the request), or whatever the handler raised.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        req = _Request(msg, fut)
        try:
            result = await self._cell.mailbox.send(req)
        except MailboxClosed as exc:
            raise ActorStopped(f"actor {self.name!r} is stopped") from exc
        if not result.queued:
            raise ActorStopped(f"actor {self.name!r} shed the request ({result.value})")
        self._cell.pending_requests += 1
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError as exc:
            raise RequestTimeout(f"{self.name!r} did not answer within {timeout_s}s") from exc

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"


class ActorContext:
    """What an actor may use of the engine: clock, bus (routing), runtime (mode, node id,
    start-up, idleness, shutdown, mailbox statistics), logs, metrics, timers, tasks."""

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell
        self.name = cell.name
        self.runtime: Runtime = cell.runtime
        self.clock: Clock = cell.clock
        self.bus: Bus = cell.bus
        self.metrics: Metrics = cell.metrics
        self.log = structlog.get_logger("finllm").bind(actor=cell.name)
        self._timers: set[TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def self_ref(self) -> ActorRef:
        return self._cell.ref

    @property
    def node_id(self) -> str:
        """This node's id from ``[engine] node_id``."""
        return self.runtime.node_id

    @property
    def mode(self) -> Mode | str:
        """The engine's current degradation mode (``NORMAL`` unless a controller says otherwise)."""
        return self.runtime.mode

    def mailbox_statistics(self) -> dict[str, MailboxStatistics]:
        """A snapshot of every mailbox of the engine, by actor name (controllers, ops views)."""
        return self.runtime.mailbox_statistics()

    def publish(self, topic: str, msg: Any) -> int:
        """Offer ``msg`` to every subscriber of ``topic``; returns how many queued it.

        Never waits: a full ``block`` subscriber sheds it as ``overflow`` (counted, logged
        once).  Handlers publish this way; sources that may wait use :meth:`publish_wait`.
        """
        return self.bus.publish(topic, msg)

    def publish_many(self, topic: str, msgs: list[Any]) -> int:
        """:meth:`publish` for several messages to one topic, in order (one wake-up per subscriber)."""
        return self.bus.publish_many(topic, msgs)

    async def publish_wait(self, topic: str, msg: Any) -> int:
        """Publish ``msg``, waiting for room in every full ``block`` subscriber (back-pressure).

        For sources (replay readers, consumer loops): the publisher slows to the pace of
        its slowest ``block`` subscriber instead of shedding.  Not from a handler whose
        actor sits on a cycle of ``block`` mailboxes (see :mod:`engine.bus`).
        """
        return await self.bus.publish_wait(topic, msg)

    async def publish_many_wait(self, topic: str, msgs: list[Any]) -> int:
        """:meth:`publish_wait` for several messages to one topic, in order."""
        return await self.bus.publish_many_wait(topic, msgs)

    def tier(self, name: str) -> TierRecorder:
        """The health record of pipeline tier ``name`` (see :mod:`engine.health`); this actor is
        recorded as one of its owners, so the tier fails if the actor is parked or abandoned."""
        rec = self.metrics.tiers.tier(name)
        rec.owners.add(self.name)
        return rec

    def dead_letter(self, reason: str, raw: bytes = b"", ts_event: int | None = None, **detail: Any) -> None:
        """Record unusable input on the ``deadletter`` topic, counted and never silent."""
        self._cell.dead_letter(reason, raw, ts_event, detail)

    def call_later(self, delay_ns: int, callback: Callable[[], object]) -> TimerHandle:
        """A one-shot timer on the engine clock, cancelled when the actor stops."""
        holder: list[TimerHandle] = []
        h = self.clock.call_later(delay_ns, self._guard(callback, holder))
        holder.append(h)
        self._timers.add(h)
        return h

    def call_every(self, interval_ns: int, callback: Callable[[], object]) -> TimerHandle:
        """A periodic timer on the engine clock, cancelled when the actor stops."""
        h = self.clock.call_every(interval_ns, self._guard(callback, None))
        self._timers.add(h)
        return h

    def _guard(
        self, callback: Callable[[], object], one_shot: list[TimerHandle] | None
    ) -> Callable[[], None]:
        timers = self._timers

        def run() -> None:
            if one_shot:
                # A fired one-shot timer is done: forget it, or actors that arm one
                # per batch would grow this set without bound.
                timers.discard(one_shot[0])
            try:
                callback()
            except Exception as exc:  # a failing timer fails the actor, like a failing handler
                self._cell.fail(exc)

        return run

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this actor: cancelled on stop; if it raises, the actor fails."""
        task = asyncio.get_running_loop().create_task(coro, name=name or f"{self.name}:task")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._cell.fail(exc)

    async def run_in_executor(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``fn(*args)`` in the default thread pool."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def request(self, topic: str, msg: Any, timeout_s: float | None = 5.0) -> Any:
        return await self.bus.request(topic, msg, timeout_s)

    def hold(self) -> None:
        """Count this actor as busy until :meth:`release` (``runtime.wait_idle`` waits for it).

        For work outside the handler that a replay must wait for, e.g. a spawned call
        whose answer should land at the simulated time it was asked.  Call ``hold``
        before spawning, ``release`` in the task's ``finally``.
        """
        self._cell.holds += 1

    def release(self) -> None:
        """Undo one :meth:`hold`."""
        if self._cell.holds > 0:
            self._cell.holds -= 1

    async def wait_started(self) -> None:
        """Wait until every actor of the engine has started (sources call this first)."""
        await self.runtime.wait_started()

    async def wait_idle(self) -> None:
        """Wait until the engine is idle: every mailbox empty, no handler running, no hold."""
        await self.runtime.wait_idle()

    def request_shutdown(self, reason: str) -> None:
        """Ask the whole engine to drain and stop (e.g. a replay source at end of data)."""
        self.runtime.request_shutdown(reason)

    def stop_self(self) -> None:
        """Finish after the current batch: a normal exit, not a failure."""
        self._cell.mailbox.close()

    async def _close(self) -> None:
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class Actor(Generic[C]):
    """Base class of every actor; see the module docstring."""

    config_type: ClassVar[type[msgspec.Struct]] = NoConfig
    batch_size: int = 256
    """Most messages handed to one ``on_batch`` call: per class, or per instance from its config
    in ``on_start`` (the mailbox loop reads it once, after ``on_start``)."""

    def __init__(self, config: C, ctx: ActorContext) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Called by the engine when it builds the pipeline, before anything starts: raise
        ValueError for a config that cannot work outside its own fields (a key file that does not
        load, an empty environment variable); the engine reports it as a ConfigError naming the
        file and ``actors[NAME].config``."""

    async def on_start(self) -> None:
        """Called once per incarnation before any message; raising fails the start."""

    def on_message(self, msg: Any) -> Any:
        """Handle one message; the return value answers a request.  May be ``async def``."""
        return None

    def on_batch(self, msgs: list[Any]) -> Any:
        """Handle several messages at once.  Override for vectorised work; may be ``async def``."""
        raise NotImplementedError  # sentinel: the cell calls on_message per message

    async def on_drain(self) -> None:
        """The engine is stopping and every actor still runs: publish what you hold (held items,
        partial batches) so that downstream actors handle it before anything stops.  Called
        once per engine stop, in the actor's own task, in start order with the pipeline settled
        after each; a failure is logged and counted, never stops the shutdown."""

    async def on_stop(self) -> None:
        """Called once per incarnation on the way out, after a stop or a failure."""


_BASE_ON_BATCH = Actor.on_batch
_BASE_ON_DRAIN = Actor.on_drain


class _Interrupted(Exception):
    """Marks an incarnation ended on purpose by its supervisor, not by a failure."""


_INTERRUPTED = _Interrupted()


class ActorCell:
    """The runtime shell around successive incarnations of one actor (internal to the engine)."""

    def __init__(
        self,
        name: str,
        factory: Callable[[ActorContext], Actor[Any]],
        mailbox: Mailbox[Any],
        *,
        runtime: Runtime,
    ) -> None:
        self.name = name
        self.factory = factory
        self.mailbox = mailbox
        self.runtime = runtime
        self.clock = runtime.clock
        self.bus = runtime.bus
        self.metrics = runtime.metrics
        self.ref = ActorRef(self)
        self.pending_requests = 0
        self.holds = 0
        self.incarnations = 0
        self.busy = False
        self.actor: Actor[Any] | None = None
        self._carry: deque[Any] = deque()
        self._failure: asyncio.Future[BaseException] | None = None  # set on failure or interrupt
        self._processed = self.metrics.counter("messages_processed_total", actor=name)
        self._failures = self.metrics.counter("actor_failures_total", actor=name)
        self._latency = self.metrics.histogram("handler_latency_us", actor=name)
        self._dead = self.metrics.counter("dead_letters_total", actor=name)
        self._drains = 0  # _Drain markers queued

    def overrides_on_drain(self) -> bool:
        """True when the current incarnation's actor has an ``on_drain`` of its own."""
        return self.actor is not None and type(self.actor).on_drain is not _BASE_ON_DRAIN

    async def drain(self, timeout_s: float) -> bool:
        """Have the running incarnation run ``on_drain`` in its own task; False when it is not
        running, its mailbox refused the request, or the hook failed or took past ``timeout_s``."""
        actor = self.actor
        if actor is None or self.mailbox.closed:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        mark = _Drain(fut)
        if self.mailbox.policy is Policy.CONFLATE:
            # A conflating mailbox keys every message by a field a marker lacks: run the hook
            # here, marked busy (the engine calls this with the pipeline settled).
            await self._run_on_drain(actor, [mark])
        else:
            self._drains += 1
            if not self.mailbox.offer(mark).queued:
                self._drains -= 1
                return False
        done, _ = await asyncio.wait({fut}, timeout=timeout_s)
        return bool(done) and fut.result()

    def is_idle(self) -> bool:
        """Nothing queued, nothing carried over, not inside a handler."""
        return not self.mailbox._depth and not self.busy and not self._carry and not self.holds

    def interrupt(self) -> None:
        """End the current incarnation now (``on_stop`` still runs); the mailbox stays open."""
        if self._failure is not None and not self._failure.done():
            self._failure.set_result(_INTERRUPTED)

    def fail(self, exc: BaseException) -> None:
        """Fail the current incarnation from a timer or a spawned task."""
        if self._failure is not None and not self._failure.done():
            self._failure.set_result(exc)

    async def run(self, *, started: Callable[[], None] | None = None, stop_timeout_s: float = 5.0) -> None:
        """Run one incarnation to completion; raise what it failed with."""
        self.incarnations += 1
        ctx = ActorContext(self)
        loop = asyncio.get_running_loop()
        self._failure = loop.create_future()
        actor = self.factory(ctx)
        self.actor = actor
        failure: BaseException | None = None
        main: asyncio.Task[None] | None = None
        try:
            await actor.on_start()
            if started is not None:
                started()
            main = loop.create_task(self._loop(actor), name=f"{self.name}:loop")
            waitables: set[asyncio.Future[Any]] = {main, self._failure}
            await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
            if self._failure.done():
                result = self._failure.result()
                failure = None if result is _INTERRUPTED else result
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            else:
                main.result()
        except asyncio.CancelledError:
            if main is not None:
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            raise
        except Exception as exc:
            failure = exc
        finally:
            await ctx._close()
            await self._call_on_stop(actor, stop_timeout_s)
            self.busy = False
            self.holds = 0  # holds die with the incarnation that took them
        if failure is not None:
            self._failures.inc()
            raise failure

    async def _run_on_drain(self, actor: Actor[Any], marks: list[_Drain]) -> None:
        self.busy = True
        ok = True
        try:
            await actor.on_drain()
        except Exception as exc:  # the shutdown goes on; the failure is visible
            ok = False
            self.metrics.counter("on_drain_failures_total", actor=self.name).inc()
            structlog.get_logger("finllm").error("on_drain_failed", actor=self.name, error=repr(exc))
        finally:
            self.busy = False
        for m in marks:
            if not m.future.done():
                m.future.set_result(ok)

    async def _call_on_stop(self, actor: Actor[Any], timeout_s: float) -> None:
        log = structlog.get_logger("finllm").bind(actor=self.name)
        task = asyncio.get_running_loop().create_task(actor.on_stop(), name=f"{self.name}:on_stop")
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            self.metrics.counter("on_stop_timeouts_total", actor=self.name).inc()
            log.error("on_stop_timeout", timeout_s=timeout_s)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif not task.cancelled() and (exc := task.exception()) is not None:
            log.error("on_stop_failed", error=repr(exc))

    async def _loop(self, actor: Actor[Any]) -> None:
        mb = self.mailbox
        limit = max(1, actor.batch_size)
        on_message = actor.on_message
        msg_async = asyncio.iscoroutinefunction(on_message)
        batched = type(actor).on_batch is not _BASE_ON_BATCH
        on_batch = actor.on_batch
        batch_async = asyncio.iscoroutinefunction(on_batch)
        processed = self._processed
        latency = self._latency
        perf = time.perf_counter_ns
        while True:
            if self._carry:
                batch = list(self._carry)
                self._carry.clear()
            else:
                if not len(mb):
                    try:
                        await mb.wait_nonempty()
                    except MailboxClosed:
                        return
                batch = mb.drain(limit)
            marks: list[_Drain] = []
            if self._drains:
                marks = [m for m in batch if type(m) is _Drain]
                if marks:
                    batch = [m for m in batch if type(m) is not _Drain]
                    self._drains -= len(marks)
            if marks and not batch:
                await self._run_on_drain(actor, marks)
                continue
            t0 = perf()
            self.busy = True
            if self.pending_requests or not batched:
                await self._one_by_one(batch, on_message, msg_async)
            else:
                try:
                    if batch_async:
                        await on_batch(batch)
                    else:
                        on_batch(batch)
                except Exception as exc:
                    self._dead_letter_batch(batch, exc)
                    raise
            self.busy = False
            processed.inc(len(batch))
            latency.observe((perf() - t0) / 1000.0 / len(batch))
            if marks:
                await self._run_on_drain(actor, marks)
            # Let the other actors run between batches: fairness over raw speed.
            await asyncio.sleep(0)

    async def _one_by_one(self, batch: list[Any], on_message: Callable[[Any], Any], is_async: bool) -> None:
        for i, item in enumerate(batch):
            req = item if type(item) is _Request else None
            msg = item.msg if req is not None else item
            if req is not None:
                self.pending_requests -= 1
            try:
                result = on_message(msg)
                if is_async or isinstance(result, Awaitable):
                    result = await result
            except Exception as exc:
                if req is not None and not req.future.done():
                    req.future.set_exception(exc)
                else:
                    self._dead_letter_batch([msg], exc)
                self._carry.extend(batch[i + 1 :])
                raise
            if req is not None and not req.future.done():
                req.future.set_result(result)

    def dead_letter(self, reason: str, raw: bytes, ts_event: int | None, detail: dict[str, Any]) -> None:
        """Count and publish one DeadLetter; log it when nobody subscribes to ``deadletter``."""
        self._dead.inc()
        dl = DeadLetter(
            source=self.name,
            reason=reason,
            ts_event=self.clock.now_ns() if ts_event is None else ts_event,
            raw=raw,
            detail=detail,
        )
        if self.bus.publish("deadletter", dl) == 0:
            structlog.get_logger("finllm").warning("dead_letter", actor=self.name, reason=reason, **detail)

    def _dead_letter_batch(self, batch: list[Any], exc: BaseException) -> None:
        reason = f"handler_error: {type(exc).__name__}: {exc}"
        for msg in batch:
            raw = msg.msg if type(msg) is _Request else msg
            try:
                encoded = msgspec.msgpack.encode(raw)
            except (TypeError, msgspec.EncodeError):
                encoded = repr(raw).encode()
            self.dead_letter(reason, encoded, None, {})

    def close(self) -> int:
        """Close the mailbox for good; fail pending requests loudly.  Returns messages discarded."""
        left = self.mailbox.close(discard=True)
        left.extend(self._carry)
        self._carry.clear()
        for item in left:
            if type(item) is _Request and not item.future.done():
                item.future.set_exception(ActorStopped(f"actor {self.name!r} stopped"))
        self.pending_requests = 0
        return len(left)
