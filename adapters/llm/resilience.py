"""Resilience parts of the LLM client, each small and testable on its own.

- :class:`RetryBudget`: retries and hedges together stay under a fraction of requests.
- :func:`full_jitter`: exponential backoff with full jitter (sleep uniform in [0, cap]).
- :class:`CircuitBreaker`: closed -> open after consecutive failures -> half-open probe.
- :class:`LatencyWindow`: recent latencies and their quantiles (the hedge delay is the p95).
- :class:`VegasLimiter` (default) and :class:`Gradient2Limiter`: adaptive concurrency
  limits that shrink when round trips grow past a baseline (the server queues) and
  grow while they do not.

Times are seconds (floats) from an injectable monotonic clock.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Gradient2Limiter",
    "LatencyWindow",
    "RetryBudget",
    "VegasLimiter",
    "full_jitter",
]


class RetryBudget:
    """A token bucket: each original request deposits ``ratio`` tokens, each extra request takes one.

    With ``ratio=0.1`` extra requests (retries plus hedges) are at most 10% of the
    originals, plus ``reserve`` so that a quiet client can still retry at all.
    Tokens are capped at ``reserve + cap_requests * ratio``, so a long calm spell
    does not bank an unbounded burst of retries for the next outage.
    """

    def __init__(self, ratio: float = 0.1, reserve: float = 2.0, cap_requests: int = 100) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"retry budget ratio must be in [0, 1], got {ratio}")
        self.ratio = ratio
        self._cap = reserve + cap_requests * ratio
        self._tokens = reserve
        self.requests = 0
        self.extra = 0
        self.refused = 0

    def on_request(self) -> None:
        self.requests += 1
        self._tokens = min(self._cap, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry or a hedge; False (and counted) when there is none."""
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.extra += 1
            return True
        self.refused += 1
        return False

    @property
    def tokens(self) -> float:
        return self._tokens


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Backoff before retry number ``attempt`` (0-based): uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2.0**attempt)))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_s`` lets one probe through.

    A successful probe closes it; a failed one opens it again for another ``reset_s``.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_out = False
        return self._state

    def allows(self) -> bool:
        """Whether a call may go now, without claiming the half-open probe slot."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probe_out)

    def acquire(self) -> bool:
        """Claim permission for one call (the half-open probe slot when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def on_success(self) -> None:
        self._failures = 0
        self._probe_out = False
        self._state = BreakerState.CLOSED

    def on_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                self.opened_count += 1
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_out = False

    def on_abandon(self) -> None:
        """A call ended without a verdict (cancelled): free the probe slot."""
        self._probe_out = False


class LatencyWindow:
    """The last ``size`` latencies (seconds), kept sorted for quantiles in O(log n) per sample."""

    def __init__(self, size: int = 200) -> None:
        self.size = size
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []
        self.ewma = 0.0

    def observe(self, latency_s: float) -> None:
        self._fifo.append(latency_s)
        bisect.insort(self._sorted, latency_s)
        if len(self._fifo) > self.size:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self.ewma = latency_s if self.ewma == 0.0 else 0.8 * self.ewma + 0.2 * latency_s

    def __len__(self) -> int:
        return len(self._fifo)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile; NaN when empty."""
        if not self._sorted:
            return math.nan
        idx = min(len(self._sorted) - 1, max(0, math.ceil(q * len(self._sorted)) - 1))
        return self._sorted[idx]


class _Limiter:
    """Shared slot accounting: ``acquire`` waits while ``inflight >= limit``."""

    def __init__(self, initial: int, min_limit: int, max_limit: int) -> None:
        if not 1 <= min_limit <= initial <= max_limit:
            raise ValueError(
                f"need 1 <= min_limit <= initial <= max_limit, got {min_limit}, {initial}, {max_limit}"
            )
        self.min_limit = min_limit
        self.max_limit = max_limit
        self._limit = float(initial)
        self.inflight = 0
        self.peak_inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return max(self.min_limit, int(self._limit))

    async def acquire(self) -> int:
        """Wait for a slot; returns the in-flight count at the start (pass it to :meth:`release`)."""
        while self.inflight >= self.limit:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self._wake()  # we were woken but leave: pass the slot on
                raise
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        return self.inflight

    def release(self, rtt_s: float | None, inflight_at_start: int, *, dropped: bool = False) -> None:
        """Free the slot; ``rtt_s`` is None for calls that ended without a usable sample."""
        self.inflight -= 1
        if dropped:
            self._drop()
        elif rtt_s is not None and rtt_s > 0.0:
            self._sample(rtt_s, inflight_at_start)
        self._limit = max(float(self.min_limit), min(float(self.max_limit), self._limit))
        self._wake()

    def _drop(self) -> None:
        # An overload signal (5xx): back off multiplicatively.
        self._limit *= 0.9

    def _sample(self, rtt: float, inflight: int) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        free = self.limit - self.inflight
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1


class VegasLimiter(_Limiter):
    """Adaptive concurrency limit after TCP Vegas (our own implementation).

    The baseline is the smallest round trip seen (``rtt_noload``, re-probed every
    ``probe_every`` samples); ``queue = limit * (1 - rtt_noload / rtt)`` estimates how
    many of our requests wait in the server's queue.  Below ``alpha = 3 log10(limit)``
    the limit grows, above ``beta = 6 log10(limit)`` it shrinks, in between it holds.
    """

    def __init__(
        self,
        initial: int = 4,
        min_limit: int = 1,
        max_limit: int = 64,
        *,
        smoothing: float = 1.0,
        probe_every: int = 1000,
    ) -> None:
        super().__init__(initial, min_limit, max_limit)
        self.smoothing = smoothing
        self.probe_every = probe_every
        self.rtt_noload = 0.0
        self._samples = 0

    def _sample(self, rtt: float, inflight: int) -> None:
        self._samples += 1
        if self._samples % self.probe_every == 0:
            self.rtt_noload = rtt  # the baseline may have moved (another model, another host)
            return
        if self.rtt_noload == 0.0 or rtt < self.rtt_noload:
            self.rtt_noload = rtt
            return
        if inflight * 2 < self._limit:
            return  # the client, not the server, is the bottleneck: learn nothing
        limit = self._limit
        step = max(1.0, math.log10(limit))
        queue = limit * (1.0 - self.rtt_noload / rtt)
        if queue <= step:
            new = limit + 6.0 * step
        elif queue < 3.0 * step:
            new = limit + step
        elif queue > 6.0 * step:
            new = limit - step
        else:
            return
        self._limit = (1.0 - self.smoothing) * limit + self.smoothing * new


class Gradient2Limiter(_Limiter):
    """Adaptive concurrency limit (the Gradient2 idea, our own implementation).

    ``long_rtt`` is a slow exponential average of round trips (the baseline),
    ``short_rtt`` a fast one.  Each sample moves the limit toward
    ``limit * gradient + sqrt(limit)`` where ``gradient = clamp(tolerance * long / short, 0.5, 1)``:
    while round trips stay near the baseline the limit grows by about sqrt(limit);
    when they grow (the server queues) it shrinks.  The limit does not grow while
    fewer than half of it is in use.  Its weakness: a baseline learnt while the
    server already queued looks normal; :class:`VegasLimiter` keeps the minimum instead.
    """

    def __init__(
        self,
        initial: int = 4,
        min_limit: int = 1,
        max_limit: int = 64,
        *,
        smoothing: float = 0.2,
        tolerance: float = 1.5,
        long_window: int = 100,
        short_window: int = 5,
    ) -> None:
        super().__init__(initial, min_limit, max_limit)
        self.smoothing = smoothing
        self.tolerance = tolerance
        self._long_alpha = 2.0 / (long_window + 1)
        self._short_alpha = 2.0 / (short_window + 1)
        self.long_rtt = 0.0
        self.short_rtt = 0.0

    def _sample(self, rtt: float, inflight: int) -> None:
        if self.long_rtt == 0.0:
            self.long_rtt = self.short_rtt = rtt
        else:
            self.short_rtt += self._short_alpha * (rtt - self.short_rtt)
            self.long_rtt += self._long_alpha * (rtt - self.long_rtt)
            if self.long_rtt > 2.0 * self.short_rtt:
                # the baseline is stale after a slow spell: let it recover faster
                self.long_rtt *= 0.95
        if inflight < self._limit / 2.0:
            return
        gradient = max(0.5, min(1.0, self.tolerance * self.long_rtt / self.short_rtt))
        target = self._limit * gradient + math.sqrt(self._limit)
        self._limit = (1.0 - self.smoothing) * self._limit + self.smoothing * target
