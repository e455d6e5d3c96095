"""Topic-based publish/subscribe and request/response between actors: routing only.

What else an engine's actors share (mode, node id, start-up, idleness, shutdown, mailbox
statistics) is the :class:`~engine.runtime.Runtime`.

Topics are dot-separated tokens (``md.ESU3``, ``forecast.ESU3.1m``).  In a
subscription pattern ``*`` matches exactly one token and ``>`` (last token
only) matches one or more.  Publishing offers the message to every matching
subscriber's mailbox, each under its own shedding policy; a message published
to a topic nobody subscribes to is counted as ``unrouted``.

Back-pressure: :meth:`Bus.publish` and :meth:`Bus.publish_many` are sync and never
wait (the hot path: one offer per subscriber).  A ``block`` mailbox they find full
sheds the message as ``overflow`` (counted, logged once; see :mod:`engine.mailbox`).
Sources that must not lose anything and may wait - a replay reader, a consumer
loop - publish with ``await`` :meth:`Bus.publish_wait` / :meth:`Bus.publish_many_wait`:
the same offers while there is room, and a wait for room on each full ``block``
mailbox (other policies shed as usual, never wait).  Only an actor outside every
cycle of block mailboxes should await a publish inside its handler, or two actors
waiting on each other's full mailboxes would stop both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import MailboxClosed, NoResponder
from engine.mailbox import Mailbox, Policy

if TYPE_CHECKING:
    from engine.actor import ActorRef
    from engine.metrics import Metrics

__all__ = ["Bus", "topic_matches"]


def topic_matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` matches subscription ``pattern`` (``*`` one token, ``>`` the rest)."""
    if pattern == topic:
        return True
    p = pattern.split(".")
    t = topic.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return i == len(p) - 1 and len(t) > i
        if i >= len(t):
            return False
        if tok != "*" and tok != t[i]:
            return False
    return len(p) == len(t)


_MAX_ROUTES = 65_536
_MAX_UNROUTED = 4_096
_UNROUTED_OTHER = "<other topics>"
"""The ``Bus.unrouted`` key that sums topics past the first 4,096 distinct ones."""


class Bus:
    """The engine's message bus.  One per engine; not thread-safe."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._subs: list[tuple[str, Mailbox[Any]]] = []
        self._routes: dict[str, tuple[Mailbox[Any], ...]] = {}
        self._responders: dict[str, ActorRef] = {}
        self._metrics = metrics
        self.published = 0
        self.unrouted: dict[str, int] = {}

    def subscribe(self, pattern: str, mailbox: Mailbox[Any]) -> None:
        if not pattern or any(not tok for tok in pattern.split(".")):
            raise ValueError(f"bad topic pattern {pattern!r}")
        if ">" in pattern.split(".")[:-1]:
            raise ValueError(f"'>' may only end a pattern: {pattern!r}")
        self._subs.append((pattern, mailbox))
        self._routes.clear()

    def unsubscribe(self, pattern: str, mailbox: Mailbox[Any]) -> None:
        self._subs = [(p, m) for p, m in self._subs if not (p == pattern and m is mailbox)]
        self._routes.clear()

    def subscribers(self, topic: str) -> tuple[Mailbox[Any], ...]:
        route = self._routes.get(topic)
        if route is None:
            seen: list[Mailbox[Any]] = []
            for pattern, mb in self._subs:
                if topic_matches(pattern, topic) and mb not in seen:
                    seen.append(mb)
            route = tuple(seen)
            if len(self._routes) >= _MAX_ROUTES:
                # Topics carry symbols, and an input topic's writer chooses those: an attacker
                # sending ever-new symbols must not grow the cache without bound.  Clearing is
                # rare and the next lookups rebuild what is live.
                self._routes.clear()
            self._routes[topic] = route
        return route

    def _unrouted(self, topic: str, n: int) -> None:
        # Bounded like the route cache: past _MAX_UNROUTED distinct topics, the rest are summed.
        if topic not in self.unrouted and len(self.unrouted) >= _MAX_UNROUTED:
            topic = _UNROUTED_OTHER
        self.unrouted[topic] = self.unrouted.get(topic, 0) + n

    def _route(self, topic: str, n: int) -> tuple[Mailbox[Any], ...]:
        """Count ``n`` published messages and return the subscribers of ``topic`` (counting the
        messages as unrouted when there are none).  :meth:`publish` inlines this: it is the hot
        path."""
        self.published += n
        route = self._routes.get(topic)
        if route is None:
            route = self.subscribers(topic)
        if not route:
            self._unrouted(topic, n)
        return route

    def publish(self, topic: str, msg: Any) -> int:
        """Offer ``msg`` to each subscriber of ``topic``; return how many queued it."""
        self.published += 1
        route = self._routes.get(topic)
        if route is None:
            route = self.subscribers(topic)
        if not route:
            self._unrouted(topic, 1)
            return 0
        n = 0
        for mb in route:
            if mb.offer(msg).queued:
                n += 1
        return n

    def publish_many(self, topic: str, msgs: list[Any]) -> int:
        """Publish several messages to one topic in order; return how many deliveries queued."""
        route = self._route(topic, len(msgs))
        if not route:
            return 0
        return sum(mb.offer_many(msgs) for mb in route)

    async def publish_wait(self, topic: str, msg: Any) -> int:
        """Like :meth:`publish`, but wait for room in every full ``block`` subscriber.

        Returns how many subscribers queued it.  A subscriber that closes while we wait
        counts the message as shed ``closed`` and is skipped.
        """
        route = self._route(topic, 1)
        if not route:
            return 0
        n = 0
        for mb in route:
            if mb.policy is Policy.BLOCK and len(mb) >= mb.capacity:
                try:
                    result = await mb.send(msg)
                except MailboxClosed:
                    continue
            else:
                result = mb.offer(msg)
            if result.queued:
                n += 1
        return n

    async def publish_many_wait(self, topic: str, msgs: list[Any]) -> int:
        """Like :meth:`publish_many`, but wait for room in ``block`` subscribers as needed.

        Each subscriber receives the messages in order; returns how many deliveries queued.
        """
        route = self._route(topic, len(msgs))
        if not route:
            return 0
        n = 0
        for mb in route:
            if mb.policy is Policy.BLOCK and len(mb) + len(msgs) > mb.capacity:
                try:
                    n += await mb.send_many(msgs)
                except MailboxClosed:
                    continue
            else:
                n += mb.offer_many(msgs)
        return n

    def register(self, topic: str, ref: ActorRef) -> None:
        """Make ``ref`` the responder for requests on ``topic`` (exact topic)."""
        self._responders[topic] = ref

    async def request(self, topic: str, msg: Any, timeout_s: float | None = 5.0) -> Any:
        """Ask the responder of ``topic``; see :meth:`ActorRef.ask` for the errors."""
        ref = self._responders.get(topic)
        if ref is None:
            raise NoResponder(f"no actor serves requests on {topic!r}")
        return await ref.ask(msg, timeout_s)
