"""Clocks: wall time for live running, simulated time for deterministic replay.

Both implement :class:`Clock`.  Times are integer nanoseconds since the Unix
epoch; intervals are integer nanoseconds.  Timer callbacks are plain
synchronous callables run on the event loop; they must not block.

:class:`SimClock` only moves when someone calls :meth:`SimClock.advance_to`;
timers due at or before the new time fire first, in (time, creation) order, so
a replay sees the same timer firings on every run and every event loop.  In a
replay that someone is the replay driver (:mod:`engine.replay`) alone: it takes
control of the clock (:meth:`SimClock.take_control`), after which
:meth:`SimClock.advance_to` from anyone else raises, so no source can move time
behind the driver's back.  A
periodic timer fires once per interval a jump covers, up to 1,000 of them;
past that the skipped intervals are coalesced into one firing (a replay jumping
from the epoch to its first event stays cheap).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "LiveClock", "SimClock", "TimerHandle"]

_MAX_CATCH_UP = 1_000


class TimerHandle:
    """Returned by ``call_at``/``call_later``/``call_every``; ``cancel()`` stops it."""

    __slots__ = ("_cancelled", "_inner", "callback", "interval_ns", "when_ns")

    def __init__(self, when_ns: int, callback: Callable[[], object], interval_ns: int = 0) -> None:
        self.when_ns = when_ns
        self.callback = callback
        self.interval_ns = interval_ns
        self._cancelled = False
        self._inner: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self._cancelled = True
        if self._inner is not None:
            self._inner.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled


@runtime_checkable
class Clock(Protocol):
    """What actors may ask of time."""

    def now_ns(self) -> int:
        """Current time, ns since the epoch."""
        ...

    def call_at(self, when_ns: int, callback: Callable[[], object]) -> TimerHandle: ...

    def call_later(self, delay_ns: int, callback: Callable[[], object]) -> TimerHandle: ...

    def call_every(self, interval_ns: int, callback: Callable[[], object]) -> TimerHandle:
        """Fire every ``interval_ns``, first at now + interval."""
        ...

    async def sleep(self, delay_ns: int) -> None: ...


class LiveClock:
    """Wall-clock time; timers ride on the running event loop."""

    def now_ns(self) -> int:
        return time.time_ns()

    def call_at(self, when_ns: int, callback: Callable[[], object]) -> TimerHandle:
        return self._schedule(TimerHandle(when_ns, callback))

    def call_later(self, delay_ns: int, callback: Callable[[], object]) -> TimerHandle:
        return self.call_at(time.time_ns() + delay_ns, callback)

    def call_every(self, interval_ns: int, callback: Callable[[], object]) -> TimerHandle:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        return self._schedule(TimerHandle(time.time_ns() + interval_ns, callback, interval_ns))

    def _schedule(self, handle: TimerHandle) -> TimerHandle:
        loop = asyncio.get_running_loop()
        delay_s = max(0.0, (handle.when_ns - time.time_ns()) / 1e9)
        handle._inner = loop.call_later(delay_s, self._fire, handle)
        return handle

    def _fire(self, handle: TimerHandle) -> None:
        if handle.cancelled:
            return
        if handle.interval_ns:
            # Schedule from the planned time, not from now, so periodic timers don't drift.
            handle.when_ns += handle.interval_ns
            self._schedule(handle)
        handle.callback()

    async def sleep(self, delay_ns: int) -> None:
        await asyncio.sleep(max(0, delay_ns) / 1e9)


class SimClock:
    """Simulated time that only the replay driver advances.  Deterministic."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._heap: list[tuple[int, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._controller: object | None = None

    def now_ns(self) -> int:
        return self._now

    def call_at(self, when_ns: int, callback: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(when_ns, callback)
        heapq.heappush(self._heap, (when_ns, next(self._seq), handle))
        return handle

    def call_later(self, delay_ns: int, callback: Callable[[], object]) -> TimerHandle:
        return self.call_at(self._now + delay_ns, callback)

    def call_every(self, interval_ns: int, callback: Callable[[], object]) -> TimerHandle:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        handle = TimerHandle(self._now + interval_ns, callback, interval_ns)
        heapq.heappush(self._heap, (handle.when_ns, next(self._seq), handle))
        return handle

    @property
    def next_timer_ns(self) -> int | None:
        """When the earliest live timer is due, or None."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    @property
    def controller(self) -> object | None:
        """Whoever took control of this clock (:meth:`take_control`), or None."""
        return self._controller

    def take_control(self, controller: object) -> Callable[[int], int]:
        """Make ``controller`` the only one that moves this clock; return its ``advance_to``.

        Afterwards :meth:`advance_to` raises ``RuntimeError`` until
        :meth:`release_control`.  Taking control again by the same controller is
        allowed; by another one raises ``RuntimeError``.
        """
        if self._controller is not None and self._controller is not controller:
            raise RuntimeError(f"this SimClock is already controlled by {self._controller!r}")
        self._controller = controller
        return self._advance

    def release_control(self, controller: object) -> None:
        """Give control back (a no-op unless ``controller`` holds it)."""
        if self._controller is controller:
            self._controller = None

    def advance_to(self, ts_ns: int) -> int:
        """Move time forward to ``ts_ns``, firing due timers in order; returns how many fired.

        Time never goes backwards: an earlier ``ts_ns`` leaves the clock where it is.
        Raises ``RuntimeError`` while a controller (the replay driver) holds the clock.
        """
        if self._controller is not None:
            raise RuntimeError(
                f"this SimClock is moved by {self._controller!r} alone; sources never move time"
            )
        return self._advance(ts_ns)

    def _advance(self, ts_ns: int) -> int:
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= ts_ns:
            when, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            if when > self._now:
                self._now = when
            if handle.interval_ns:
                step = handle.interval_ns
                nxt = when + step
                if (ts_ns - when) // step > _MAX_CATCH_UP:
                    # Coalesce a long jump: one firing, then back on the grid after ts_ns.
                    # Otherwise a replay jumping from 0 to 2013 would run one callback per
                    # missed interval (tens of millions).
                    nxt = when + step * ((ts_ns - when) // step + 1)
                handle.when_ns = nxt
                heapq.heappush(heap, (nxt, next(self._seq), handle))
            handle.callback()
            fired += 1
        if ts_ns > self._now:
            self._now = ts_ns
        return fired

    async def sleep(self, delay_ns: int) -> None:
        """Wait until simulated time has advanced by ``delay_ns``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_later(delay_ns, wake)
        try:
            await fut
        finally:
            handle.cancel()
