from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.errors import MailboxClosed, MailboxEmpty
from engine.mailbox import Mailbox, OfferResult, Policy
from engine.messages import Quote, Trade


def _t(i: int, sym: str = "ES") -> Trade:
    return Trade(symbol=sym, ts_event=i, seq=i, price=100.0 + i, size=1.0)


def _check(mb: Mailbox[object]) -> None:
    s = mb.statistics()
    assert s.offered == s.accepted + s.shed
    assert s.accepted == s.delivered + s.depth
    assert s.shed == sum(s.shed_by_reason.values())
    assert s.depth == sum(s.depth_by_lane) == len(mb)
    assert s.depth <= s.capacity
    assert s.peak_depth >= s.depth


def test_drop_newest_sheds_the_offered_message() -> None:
    mb: Mailbox[Trade] = Mailbox(2, Policy.DROP_NEWEST)
    assert mb.offer(_t(1)) is OfferResult.ACCEPTED
    assert mb.offer(_t(2)) is OfferResult.ACCEPTED
    assert mb.offer(_t(3)) is OfferResult.SHED_FULL
    assert [m.seq for m in mb.drain(10)] == [1, 2]
    s = mb.statistics()
    assert s.shed_by_reason == {"full": 1}
    _check(mb)


def test_drop_oldest_evicts_the_oldest() -> None:
    mb: Mailbox[Trade] = Mailbox(2, Policy.DROP_OLDEST)
    for i in (1, 2, 3):
        mb.offer(_t(i))
    assert [m.seq for m in mb.drain(10)] == [2, 3]
    assert mb.statistics().shed_by_reason == {"evicted": 1}
    _check(mb)


def test_conflate_keeps_the_latest_per_key_in_first_arrival_order() -> None:
    mb: Mailbox[Quote] = Mailbox(8, Policy.CONFLATE, key=lambda q: q.symbol)
    mb.offer(Quote(symbol="ES", ts_event=1, bid=1, ask=2))
    mb.offer(Quote(symbol="NQ", ts_event=2, bid=1, ask=2))
    assert mb.offer(Quote(symbol="ES", ts_event=3, bid=1, ask=2)) is OfferResult.CONFLATED
    out = mb.drain(10)
    assert [(q.symbol, q.ts_event) for q in out] == [("ES", 3), ("NQ", 2)]
    assert mb.statistics().shed_by_reason == {"conflated": 1}
    # after draining, the key is free again
    assert mb.offer(Quote(symbol="ES", ts_event=4, bid=1, ask=2)) is OfferResult.ACCEPTED
    _check(mb)


def test_priority_lanes_drain_urgent_first_and_evict_least_urgent() -> None:
    mb: Mailbox[Trade] = Mailbox(3, Policy.DROP_OLDEST, lanes=2, lane=lambda m: 0 if m.symbol == "CTL" else 1)
    mb.offer(_t(1))
    mb.offer(_t(2))
    mb.offer(_t(3, "CTL"))
    mb.offer(_t(4, "CTL"))  # evicts seq 1 from the low lane, not a control message
    assert [(m.symbol, m.seq) for m in mb.drain(10)] == [("CTL", 3), ("CTL", 4), ("ES", 2)]
    _check(mb)


def test_invalid_construction_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)
    with pytest.raises(ValueError, match="key"):
        Mailbox(1, "conflate")
    with pytest.raises(ValueError, match="lane"):
        Mailbox(1, lanes=2)
    with pytest.raises(ValueError):
        Mailbox(1, "lifo")


def test_receive_nowait_and_close() -> None:
    mb: Mailbox[Trade] = Mailbox(4)
    with pytest.raises(MailboxEmpty):
        mb.receive_nowait()
    mb.offer(_t(1))
    mb.offer(_t(2))
    left = mb.close(discard=True)
    assert [m.seq for m in left] == [1, 2]
    assert mb.offer(_t(3)) is OfferResult.SHED_CLOSED
    s = mb.statistics()
    assert s.shed_by_reason == {"closed": 3}
    _check(mb)
    with pytest.raises(MailboxClosed):
        mb.receive_nowait()


@pytest.mark.asyncio
async def test_block_policy_send_waits_for_room() -> None:
    mb: Mailbox[Trade] = Mailbox(1, Policy.BLOCK)
    await mb.send(_t(1))
    sender = asyncio.ensure_future(mb.send(_t(2)))
    await asyncio.sleep(0)
    assert not sender.done()
    assert mb.statistics().waiting_senders == 1
    assert (await mb.receive()).seq == 1
    assert await sender is OfferResult.ACCEPTED
    assert (await mb.receive()).seq == 2
    # offer on a full block mailbox never waits: it sheds as "overflow" (not "full"), counted
    await mb.send(_t(3))
    assert mb.offer(_t(4)) is OfferResult.SHED_OVERFLOW
    assert mb.statistics().shed_by_reason == {"overflow": 1}
    _check(mb)


@pytest.mark.asyncio
async def test_close_wakes_blocked_sender_and_receiver() -> None:
    mb: Mailbox[Trade] = Mailbox(1, Policy.BLOCK)
    await mb.send(_t(1))
    sender = asyncio.ensure_future(mb.send(_t(2)))
    await asyncio.sleep(0)
    mb.close()
    with pytest.raises(MailboxClosed):
        await sender
    # queued messages are still delivered after a non-discarding close, then the end
    assert (await mb.receive()).seq == 1
    with pytest.raises(MailboxClosed):
        await mb.receive()
    _check(mb)


@pytest.mark.asyncio
async def test_receive_batch_waits_then_takes_up_to_n() -> None:
    mb: Mailbox[Trade] = Mailbox(100)
    getter = asyncio.ensure_future(mb.receive_batch(3))
    await asyncio.sleep(0)
    assert not getter.done()
    for i in range(5):
        mb.offer(_t(i))
    assert [m.seq for m in await getter] == [0, 1, 2]
    assert mb.statistics().waiting_receivers == 0


class MailboxMachine(RuleBasedStateMachine):
    """Random offers, drains, receives and closes never break the accounting."""

    @initialize(
        capacity=st.integers(1, 6),
        policy=st.sampled_from(list(Policy)),
        lanes=st.integers(1, 3),
    )
    def setup(self, capacity: int, policy: Policy, lanes: int) -> None:
        self.mb: Mailbox[Trade] = Mailbox(
            capacity,
            policy,
            lanes=lanes,
            lane=(lambda m: m.seq % lanes) if lanes > 1 else None,
            key=(lambda m: m.symbol) if policy is Policy.CONFLATE else None,
        )
        self.n = 0
        self.received: list[int] = []

    @rule(sym=st.sampled_from(["A", "B", "C", "D"]))
    def offer(self, sym: str) -> None:
        self.n += 1
        before = len(self.mb)
        res = self.mb.offer(Trade(symbol=sym, ts_event=self.n, seq=self.n, price=1.0, size=1.0))
        if res is OfferResult.ACCEPTED:
            assert len(self.mb) == before + 1
        elif res in (OfferResult.EVICTED_OLDEST, OfferResult.CONFLATED):
            assert len(self.mb) == before
        else:
            assert len(self.mb) == before

    @rule(syms=st.lists(st.sampled_from(["A", "B", "C"]), max_size=8))
    def offer_many(self, syms: list[str]) -> None:
        msgs = []
        for sym in syms:
            self.n += 1
            msgs.append(Trade(symbol=sym, ts_event=self.n, seq=self.n, price=1.0, size=1.0))
        before = self.mb.statistics()
        queued = self.mb.offer_many(msgs)
        after = self.mb.statistics()
        assert after.offered - before.offered == len(msgs)
        assert after.shed - before.shed == len(msgs) - queued + (
            after.shed_by_reason.get("evicted", 0)
            - before.shed_by_reason.get("evicted", 0)
            + after.shed_by_reason.get("conflated", 0)
            - before.shed_by_reason.get("conflated", 0)
        )

    @rule(n=st.integers(1, 5))
    def drain(self, n: int) -> None:
        before = len(self.mb)
        out = self.mb.drain(n)
        assert len(out) == min(n, before)
        self.received.extend(m.seq for m in out)

    @precondition(lambda self: len(self.mb) > 0)
    @rule()
    def receive_one(self) -> None:
        self.received.append(self.mb.receive_nowait().seq)

    @rule(discard=st.booleans())
    def close(self, discard: bool) -> None:
        self.mb.close(discard=discard)

    @invariant()
    def accounting(self) -> None:
        if hasattr(self, "mb"):
            _check(self.mb)
            assert self.mb.statistics().delivered == len(self.received)
            assert len(set(self.received)) == len(self.received)  # nothing delivered twice


TestMailboxMachine = MailboxMachine.TestCase
TestMailboxMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
