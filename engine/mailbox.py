"""Bounded mailboxes with load shedding, in the spirit of Trio's memory channels.

A :class:`Mailbox` holds at most ``capacity`` messages.  What happens when it is
full is its :class:`Policy`:

``block``
    Back-pressure: ``await send()`` / ``await send_many()`` wait for room, and so
    do the publishers behind them (``Bus.publish_wait``, ``ctx.publish_wait``,
    ``ActorRef.send``/``ask``).  ``offer()`` - what a sync ``Bus.publish`` or
    ``tell`` does - never waits: a message it finds no room for is shed as
    ``overflow``, a reason of its own (not ``full``: the policy promised not to
    shed), counted and logged once per mailbox at WARNING.  The hot path stays
    sync; a block mailbox is either fed by awaiting publishers, or sized for
    whatever bounds its sync publishers (the replay's ``wait_idle`` pacing, a
    source's in-flight window: ``[actors.mailbox] bound_by`` in the config).
``drop_newest``
    The offered message is shed (``full``).
``drop_oldest``
    The oldest queued message of the lowest-priority non-empty lane is evicted
    (``evicted``) to make room.
``conflate``
    Messages carry a key (``key`` callable, e.g. the symbol); a message whose
    key is already queued replaces it in place (the replaced one is shed as
    ``conflated``).  A new key on a full mailbox is shed as ``full``.

Priority lanes: ``lanes`` > 1 with a ``lane`` callable mapping a message to a
lane (0 is the most urgent).  Receivers always drain lower lanes first.

Accounting, which :meth:`Mailbox.statistics` reports and the test suite proves:
``offered == accepted + shed`` and ``accepted == delivered + depth``.  A message
counts as accepted while it is, or was, on its way to a receiver; evicting or
conflating it moves it from accepted to shed.  Nothing leaves a mailbox without
being counted: :meth:`Mailbox.close` with ``discard=True`` sheds what is left as
``closed``.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, TypeVar

import msgspec
import structlog

from engine.errors import MailboxClosed, MailboxEmpty

__all__ = ["Mailbox", "MailboxStatistics", "OfferResult", "Policy"]

T = TypeVar("T")


class Policy(enum.StrEnum):
    BLOCK = "block"
    DROP_NEWEST = "drop_newest"
    DROP_OLDEST = "drop_oldest"
    CONFLATE = "conflate"


class OfferResult(enum.StrEnum):
    """What :meth:`Mailbox.offer` did with the offered message."""

    ACCEPTED = "accepted"
    """Queued; nothing was lost."""
    EVICTED_OLDEST = "evicted_oldest"
    """Queued, and an older message was shed to make room."""
    CONFLATED = "conflated"
    """Queued in place of an older message with the same key (which was shed)."""
    SHED_FULL = "shed_full"
    """Not queued: the mailbox was full."""
    SHED_OVERFLOW = "shed_overflow"
    """Not queued: a ``block`` mailbox was full and the sender did not wait (``offer``)."""
    SHED_CLOSED = "shed_closed"
    """Not queued: the mailbox was closed."""

    @property
    def queued(self) -> bool:
        return self in _QUEUED


_QUEUED: Final = frozenset({OfferResult.ACCEPTED, OfferResult.EVICTED_OLDEST, OfferResult.CONFLATED})


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one mailbox.  Counters are totals since creation."""

    name: str
    policy: str
    capacity: int
    depth: int
    peak_depth: int
    offered: int
    accepted: int
    delivered: int
    shed: int
    shed_by_reason: dict[str, int]
    depth_by_lane: tuple[int, ...]
    waiting_senders: int
    waiting_receivers: int
    closed: bool


class _Slot:
    """A conflation slot: the latest message for one key, updated in place."""

    __slots__ = ("key", "msg")

    def __init__(self, key: Hashable, msg: Any) -> None:
        self.key = key
        self.msg = msg


class Mailbox(Generic[T]):
    """A bounded, policy-governed queue with one or more priority lanes.

    Not thread-safe: use it from the event loop that runs the actors.
    """

    __slots__ = (
        "_closed",
        "_delivered",
        "_depth",
        "_key",
        "_lane",
        "_lanes",
        "_offered",
        "_overflow_logged",
        "_peak",
        "_recv_waiter",
        "_send_waiters",
        "_shed",
        "_slots",
        "capacity",
        "name",
        "policy",
    )

    def __init__(
        self,
        capacity: int,
        policy: Policy | str = Policy.DROP_NEWEST,
        *,
        name: str = "",
        lanes: int = 1,
        lane: Callable[[T], int] | None = None,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        if lanes < 1:
            raise ValueError(f"mailbox lanes must be >= 1, got {lanes}")
        policy = Policy(policy)
        if policy is Policy.CONFLATE and key is None:
            raise ValueError("a conflating mailbox needs a key function")
        if lanes > 1 and lane is None:
            raise ValueError("a mailbox with several lanes needs a lane function")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self._lane = lane
        self._key = key
        self._lanes: list[deque[Any]] = [deque() for _ in range(lanes)]
        # key -> slot for queued conflatable messages
        self._slots: dict[Hashable, _Slot] = {}
        self._depth = 0
        self._peak = 0
        self._offered = 0
        self._delivered = 0
        self._shed: dict[str, int] = {}
        self._closed = False
        self._overflow_logged = False
        self._recv_waiter: asyncio.Future[None] | None = None
        self._send_waiters: deque[asyncio.Future[None]] = deque()

    # --- sending ---------------------------------------------------------

    def offer(self, msg: T) -> OfferResult:
        """Apply the shedding policy to ``msg`` now; never waits."""
        self._offered += 1
        if self._closed:
            self._count_shed("closed")
            return OfferResult.SHED_CLOSED
        policy = self.policy
        if policy is Policy.CONFLATE:
            return self._offer_conflate(msg)
        if self._depth >= self.capacity:
            if policy is Policy.DROP_OLDEST:
                self._evict_one()
                self._push(msg)
                return OfferResult.EVICTED_OLDEST
            if policy is Policy.BLOCK:
                return self._overflow()
            self._count_shed("full")
            return OfferResult.SHED_FULL
        self._push(msg)
        return OfferResult.ACCEPTED

    def offer_many(self, msgs: list[T]) -> int:
        """Offer each message in order under the policy; return how many were queued.

        Same accounting as calling :meth:`offer` per message, but when they all fit
        in a single-lane, non-conflating mailbox they go in with one extend and
        one receiver wake-up (the replay hot path).
        """
        n = len(msgs)
        if self._lane is None and self._key is None and not self._closed and self._depth + n <= self.capacity:
            self._lanes[0].extend(msgs)
            self._offered += n
            depth = self._depth + n
            self._depth = depth
            if depth > self._peak:
                self._peak = depth
            waiter = self._recv_waiter
            if waiter is not None and n:
                self._recv_waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            return n
        offer = self.offer
        return sum(1 for m in msgs if offer(m) in _QUEUED)

    def _overflow(self) -> OfferResult:
        """A sync offer found a ``block`` mailbox full: shed it as ``overflow``, loudly once."""
        self._count_shed("overflow")
        if not self._overflow_logged:
            self._overflow_logged = True
            structlog.get_logger("finllm").warning(
                "mailbox_overflow",
                mailbox=self.name,
                capacity=self.capacity,
                hint="a sync publish found this block mailbox full and shed the message: make its "
                "publishers await (publish_wait) or size it for their window (mailbox.bound_by); "
                "every later one is counted in shed_by_reason['overflow']",
            )
        return OfferResult.SHED_OVERFLOW

    async def _wait_room(self) -> None:
        """Under ``block``: wait until there is room or the mailbox is closed."""
        while self._depth >= self.capacity and not self._closed:
            fut = asyncio.get_running_loop().create_future()
            self._send_waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._send_waiters:
                    self._send_waiters.remove(fut)

    async def send(self, msg: T) -> OfferResult:
        """Queue ``msg``; under ``block`` wait for room, otherwise like :meth:`offer`.

        Raises :class:`MailboxClosed` if the mailbox is or becomes closed while
        waiting (the message then counts as shed ``closed``).
        """
        if self.policy is Policy.BLOCK and self._depth >= self.capacity:
            await self._wait_room()
        result = self.offer(msg)
        if result is OfferResult.SHED_CLOSED:
            raise MailboxClosed(f"mailbox {self.name!r} is closed")
        return result

    async def send_many(self, msgs: list[T]) -> int:
        """Queue ``msgs`` in order; under ``block`` wait for room as needed, otherwise like
        :meth:`offer_many`.  Returns how many were queued.

        Raises :class:`MailboxClosed` if the mailbox is or becomes closed before all are
        queued (those left count as shed ``closed``).
        """
        if self.policy is not Policy.BLOCK:
            return self.offer_many(msgs)
        queued = 0
        i = 0
        n = len(msgs)
        while i < n:
            if self._depth >= self.capacity:
                await self._wait_room()
            if self._closed:
                self._offered += n - i
                self._count_shed("closed", n - i)
                raise MailboxClosed(f"mailbox {self.name!r} is closed")
            room = self.capacity - self._depth
            queued += self.offer_many(msgs[i : i + room] if i or room < n else msgs)
            i += room
        return queued

    def _offer_conflate(self, msg: T) -> OfferResult:
        assert self._key is not None
        k = self._key(msg)
        slot = self._slots.get(k)
        if slot is not None:
            slot.msg = msg
            self._count_shed("conflated")
            return OfferResult.CONFLATED
        if self._depth >= self.capacity:
            self._count_shed("full")
            return OfferResult.SHED_FULL
        slot = _Slot(k, msg)
        self._slots[k] = slot
        self._push(slot, msg)
        return OfferResult.ACCEPTED

    def _push(self, item: Any, msg: Any = None) -> None:
        lane = 0
        if self._lane is not None:
            lane = self._lane(item if msg is None else msg)
            if lane < 0 or lane >= len(self._lanes):
                lane = len(self._lanes) - 1
        self._lanes[lane].append(item)
        depth = self._depth + 1
        self._depth = depth
        if depth > self._peak:
            self._peak = depth
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _evict_one(self) -> None:
        for q in reversed(self._lanes):
            if q:
                item = q.popleft()
                if type(item) is _Slot:  # pragma: no cover - conflate never evicts
                    del self._slots[item.key]
                self._depth -= 1
                self._count_shed("evicted")
                return

    def _count_shed(self, reason: str, n: int = 1) -> None:
        self._shed[reason] = self._shed.get(reason, 0) + n

    # --- receiving -------------------------------------------------------

    def receive_nowait(self) -> T:
        """Take the next message; raise :class:`MailboxEmpty` if there is none
        (or :class:`MailboxClosed` once closed and drained)."""
        for q in self._lanes:
            if q:
                item = q.popleft()
                self._taken(1)
                if type(item) is _Slot:
                    del self._slots[item.key]
                    return item.msg  # type: ignore[no-any-return]
                return item  # type: ignore[no-any-return]
        if self._closed:
            raise MailboxClosed(f"mailbox {self.name!r} is closed")
        raise MailboxEmpty

    def drain(self, max_items: int) -> list[T]:
        """Take up to ``max_items`` queued messages, most urgent lane first; never waits."""
        out: list[Any] = []
        need = max_items
        for q in self._lanes:
            if not q:
                continue
            n = len(q) if len(q) <= need else need
            if n == len(q):
                out.extend(q)
                q.clear()
            else:
                pop = q.popleft
                out.extend([pop() for _ in range(n)])
            need -= n
            if need == 0:
                break
        if out:
            if self._slots:
                out = [self._unslot(item) for item in out]
            self._taken(len(out))
        return out

    def _unslot(self, item: Any) -> Any:
        if type(item) is _Slot:
            del self._slots[item.key]
            return item.msg
        return item

    def _taken(self, n: int) -> None:
        self._depth -= n
        self._delivered += n
        waiters = self._send_waiters
        while waiters and n > 0:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    async def wait_nonempty(self) -> None:
        """Wait until a message is queued; raise :class:`MailboxClosed` once closed and empty.

        One receiver at a time: a mailbox belongs to one actor.
        """
        while self._depth == 0:
            if self._closed:
                raise MailboxClosed(f"mailbox {self.name!r} is closed")
            fut = asyncio.get_running_loop().create_future()
            self._recv_waiter = fut
            try:
                await fut
            finally:
                if self._recv_waiter is fut:
                    self._recv_waiter = None

    async def receive(self) -> T:
        """Wait for and take the next message."""
        await self.wait_nonempty()
        return self.receive_nowait()

    async def receive_batch(self, max_items: int) -> list[T]:
        """Wait for at least one message, then take up to ``max_items``."""
        await self.wait_nonempty()
        return self.drain(max_items)

    # --- lifecycle -------------------------------------------------------

    def close(self, *, discard: bool = False) -> list[T]:
        """Refuse further messages; wake every waiter.

        With ``discard=True`` the queued messages are removed, counted as shed
        ``closed`` and returned so the caller can fail them loudly.
        """
        self._closed = True
        left: list[T] = []
        if discard and self._depth:
            for q in self._lanes:
                left.extend(self._unslot(item) for item in q)
                q.clear()
            self._slots.clear()
            self._count_shed("closed", self._depth)
            self._depth = 0
        if self._recv_waiter is not None and not self._recv_waiter.done():
            self._recv_waiter.set_result(None)
        for fut in self._send_waiters:
            if not fut.done():
                fut.set_result(None)
        return left

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return self._depth

    def statistics(self) -> MailboxStatistics:
        shed = sum(self._shed.values())
        return MailboxStatistics(
            name=self.name,
            policy=self.policy.value,
            capacity=self.capacity,
            depth=self._depth,
            peak_depth=self._peak,
            offered=self._offered,
            accepted=self._offered - shed,
            delivered=self._delivered,
            shed=shed,
            shed_by_reason=dict(self._shed),
            depth_by_lane=tuple(len(q) for q in self._lanes),
            waiting_senders=len(self._send_waiters),
            waiting_receivers=0 if self._recv_waiter is None else 1,
            closed=self._closed,
        )

    def __repr__(self) -> str:
        return f"<Mailbox {self.name!r} {self.policy.value} {self._depth}/{self.capacity}>"
