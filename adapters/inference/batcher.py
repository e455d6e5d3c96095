"""Micro-batching with a deadline.

Items wait in a :class:`MicroBatcher` until one of these holds (checked by
:meth:`MicroBatcher.due` at a time the caller passes in, so the same code runs
on the live clock and on the simulated one):

* ``max_batch`` items are queued (a full batch);
* the oldest item has waited ``max_wait_ns``;
* the tightest deadline among queued items, minus the expected cost of running
  the batch (``cost_ns``), has been reached - a batch never waits past the
  point where an item's latency budget would be blown.

In deterministic replay the caller does not wait at all: it flushes everything
at the end of each chunk (:meth:`take_all`), so batch composition depends only
on the input order, never on wall time.  Items come out in arrival order.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """See the module docstring.  Times are integer nanoseconds on the caller's clock."""

    __slots__ = ("_items", "_min_deadline", "cost_ns", "max_batch", "max_wait_ns")

    def __init__(self, max_batch: int, max_wait_ns: int, cost_ns: int = 0) -> None:
        if max_batch < 1 or max_wait_ns < 0 or cost_ns < 0:
            raise ValueError("MicroBatcher: max_batch >= 1, max_wait_ns >= 0 and cost_ns >= 0 required")
        self.max_batch = max_batch
        self.max_wait_ns = max_wait_ns
        self.cost_ns = cost_ns
        self._items: deque[tuple[int, int, T]] = deque()  # (arrival, deadline, item)
        self._min_deadline: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now_ns: int, deadline_ns: int) -> bool:
        """Queue ``item`` that arrived at ``now_ns`` and must be answered by ``deadline_ns``.

        Returns true when the batcher is due right after this add.
        """
        self._items.append((now_ns, deadline_ns, item))
        if self._min_deadline is None or deadline_ns < self._min_deadline:
            self._min_deadline = deadline_ns
        return self.due(now_ns)

    def due_at(self) -> int | None:
        """The time at which the queued items become due (None when empty)."""
        if not self._items:
            return None
        if len(self._items) >= self.max_batch:
            return self._items[0][0]
        by_wait = self._items[0][0] + self.max_wait_ns
        assert self._min_deadline is not None
        return min(by_wait, self._min_deadline - self.cost_ns)

    def due(self, now_ns: int) -> bool:
        at = self.due_at()
        return at is not None and now_ns >= at

    def take(self) -> list[T]:
        """Up to ``max_batch`` items, oldest first."""
        n = min(self.max_batch, len(self._items))
        out = [self._items.popleft()[2] for _ in range(n)]
        self._min_deadline = min((d for _, d, _ in self._items), default=None)
        return out

    def take_all(self) -> list[list[T]]:
        """Everything queued, as consecutive batches of at most ``max_batch``."""
        batches = []
        while self._items:
            batches.append(self.take())
        return batches
