"""``policy = "block"`` means what it says.

What was seen: a block mailbox fed by ``Bus.publish`` never blocked: ``offer`` shed the
message as ``full``, like ``drop_newest``, and nothing said so.  Now an awaited publish
(``ctx.publish_wait``) really holds the publisher back; a sync publish that finds a block
mailbox full is shed as ``overflow`` (a reason of its own), counted and logged once; and the
loader refuses a block mailbox too small for the window it names in ``bound_by``, and warns
about a live one that names none.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from engine.bus import Bus
from engine.config import loads_config
from engine.errors import ConfigError
from engine.kernel import Engine
from engine.mailbox import Mailbox, OfferResult, Policy
from engine.messages import Trade
from engine.testing import capture_logs
from tests.engine.pipeline_parts import SlowSink


def _t(seq: int) -> Trade:
    return Trade(symbol="ES", ts_event=seq, seq=seq, price=1.0, size=1.0)


# --- the mailbox and the bus --------------------------------------------------------------------


def test_a_sync_offer_on_a_full_block_mailbox_is_an_overflow_logged_once() -> None:
    mb: Mailbox[Trade] = Mailbox(2, Policy.BLOCK, name="edge")
    bus = Bus()
    bus.subscribe("md.>", mb)
    with capture_logs() as logs:
        assert bus.publish("md.ES", _t(1)) == 1
        assert bus.publish("md.ES", _t(2)) == 1
        for i in range(3, 8):
            assert bus.publish("md.ES", _t(i)) == 0
    s = mb.statistics()
    assert s.shed_by_reason == {"overflow": 5} and s.offered == 7 and s.accepted == 2
    warned = [e for e in logs if e["event"] == "mailbox_overflow"]
    assert len(warned) == 1 and warned[0]["mailbox"] == "edge" and warned[0]["log_level"] == "warning"
    # drop_newest still sheds as "full": the reasons tell the policies apart
    dn: Mailbox[Trade] = Mailbox(1, Policy.DROP_NEWEST)
    dn.offer(_t(1))
    assert dn.offer(_t(2)) is OfferResult.SHED_FULL and dn.statistics().shed_by_reason == {"full": 1}


@pytest.mark.asyncio
async def test_publish_wait_holds_the_publisher_until_there_is_room() -> None:
    bus = Bus()
    block: Mailbox[Trade] = Mailbox(2, Policy.BLOCK, name="block")
    lossy: Mailbox[Trade] = Mailbox(2, Policy.DROP_NEWEST, name="lossy")
    bus.subscribe("md.>", lossy)  # offered first: subscribers are served in subscription order
    bus.subscribe("md.>", block)
    assert await bus.publish_wait("md.ES", _t(1)) == 2
    assert await bus.publish_wait("md.ES", _t(2)) == 2
    third = asyncio.ensure_future(bus.publish_wait("md.ES", _t(3)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not third.done(), "the publisher waits for the full block mailbox"
    assert block.statistics().waiting_senders == 1
    assert lossy.statistics().shed_by_reason == {"full": 1}, "other policies shed as usual, never wait"
    assert block.receive_nowait().seq == 1
    assert await third == 1
    assert [m.seq for m in block.drain(10)] == [2, 3]
    assert block.statistics().shed == 0


@pytest.mark.asyncio
async def test_publish_many_wait_delivers_everything_in_order() -> None:
    bus = Bus()
    mb: Mailbox[Trade] = Mailbox(4, Policy.BLOCK)
    bus.subscribe("md.ES", mb)
    got: list[int] = []

    async def consume() -> None:
        while len(got) < 25:
            got.extend(m.seq for m in await mb.receive_batch(3))

    consumer = asyncio.ensure_future(consume())
    assert await bus.publish_many_wait("md.ES", [_t(i) for i in range(1, 26)]) == 25
    await asyncio.wait_for(consumer, 5)
    s = mb.statistics()
    assert got == list(range(1, 26)) and s.shed == 0 and s.peak_depth <= 4


@pytest.mark.asyncio
async def test_a_mailbox_closed_while_a_publisher_waits_counts_the_message() -> None:
    bus = Bus()
    mb: Mailbox[Trade] = Mailbox(1, Policy.BLOCK)
    bus.subscribe("md.ES", mb)
    await bus.publish_wait("md.ES", _t(1))
    waiting = asyncio.ensure_future(bus.publish_wait("md.ES", _t(2)))
    many = asyncio.ensure_future(bus.publish_many_wait("md.ES", [_t(3), _t(4)]))
    await asyncio.sleep(0)
    mb.close()
    assert await waiting == 0 and await many == 0
    s = mb.statistics()
    assert s.shed_by_reason == {"closed": 3} and s.offered == s.accepted + s.shed


# --- in an engine -------------------------------------------------------------------------------


def _pipeline(*, awaited: bool, many: bool = False, clock: str = "live") -> str:
    return textwrap.dedent(
        f"""
        [engine]
        clock = "{clock}"
        shutdown_deadline_s = 5.0

        [[actors]]
        name = "source"
        class = "tests.engine.pipeline_parts:WaitingSource"
        [actors.config]
        n = 500
        awaited = {str(awaited).lower()}
        many = {str(many).lower()}

        [[actors]]
        name = "sink"
        class = "tests.engine.pipeline_parts:SlowSink"
        subscribe = ["md.>"]
        [actors.mailbox]
        capacity = 8
        policy = "block"
        """
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("many", [False, True], ids=["one", "many"])
async def test_an_awaiting_source_loses_nothing_to_a_slow_block_consumer(many: bool) -> None:
    SlowSink.seen = []
    engine = Engine(loads_config(_pipeline(awaited=True, many=many), path="bp.toml"))
    summary = await asyncio.wait_for(engine.run(install_signals=False), 30)
    st = summary.mailboxes["sink"]
    assert summary.reason == "source finished"
    assert SlowSink.seen == list(range(1, 501)) and st.shed == 0
    assert st.peak_depth <= 8


@pytest.mark.asyncio
async def test_a_sync_source_overflows_the_same_mailbox_and_it_is_counted() -> None:
    # The same pipeline with a sync publish: the source outruns the sink; what does not fit is
    # shed as "overflow" (not "full"), and offered == accepted + shed still holds.
    SlowSink.seen = []
    engine = Engine(loads_config(_pipeline(awaited=False), path="bp.toml"))
    with capture_logs() as logs:
        summary = await asyncio.wait_for(engine.run(install_signals=False), 30)
    st = summary.mailboxes["sink"]
    assert st.shed_by_reason.get("overflow", 0) > 0 and "full" not in st.shed_by_reason
    assert len(SlowSink.seen) + st.shed == 500 and st.offered == st.accepted + st.shed
    assert [e["mailbox"] for e in logs if e["event"] == "mailbox_overflow"] == ["sink"]
    # the loader warned about it: a live block mailbox that names no bound
    warnings = [e for e in logs if e["event"] == "config_warning"]
    assert (
        len(warnings) == 1
        and "actors[sink].mailbox: policy 'block' in a live pipeline" in warnings[0]["warning"]
    )


# --- the loader ---------------------------------------------------------------------------------


BOUND = """
[engine]
clock = "live"

[[actors]]
name = "source"
class = "tests.engine.pipeline_parts:WaitingSource"
[actors.config]
n = {window}

[[actors]]
name = "sink"
class = "tests.engine.pipeline_parts:SlowSink"
subscribe = ["md.>"]
[actors.mailbox]
capacity = 100
policy = "{policy}"
bound_by = "{bound_by}"
"""


def _bound(window: object = 100, policy: str = "block", bound_by: str = "actors[source].config.n") -> str:
    return BOUND.format(window=window, policy=policy, bound_by=bound_by)


def test_a_block_mailbox_sized_for_its_bound_loads_without_warnings() -> None:
    cfg = loads_config(_bound(100), path="b.toml")
    assert cfg.warnings == [] and cfg.actors[1].mailbox.bound_by == "actors[source].config.n"
    cfg = loads_config(_bound(100).replace('bound_by = "actors[source].config.n"\n', ""), path="b.toml")
    assert len(cfg.warnings) == 1 and cfg.warnings[0].startswith(
        "b.toml: actors[sink].mailbox: policy 'block'"
    )
    sim = (
        _bound(100)
        .replace('clock = "live"', 'clock = "sim"')
        .replace('bound_by = "actors[source].config.n"', "")
    )
    assert loads_config(sim, path="b.toml").warnings == []  # replay pacing bounds every source


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            _bound(101),
            "actors[sink].mailbox.capacity",
            "bounded by actors[source].config.n = 101 needs capacity >= 101",
        ),
        (_bound(bound_by="actors[source].config.m"), "actors[sink].mailbox.bound_by", "not set in the file"),
        (_bound(bound_by="actors[src].config.n"), "actors[sink].mailbox.bound_by", "no element named 'src'"),
        (_bound('"many"'), "actors[sink].mailbox.bound_by", "is 'many', not a positive integer"),
        (
            _bound(policy="drop_oldest"),
            "actors[sink].mailbox.bound_by",
            "only meaningful with policy 'block'",
        ),
    ],
)
def test_a_block_mailbox_that_cannot_hold_its_bound_is_refused(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(text, path="b.toml")
    assert (info.value.path, info.value.key) == ("b.toml", key) and problem in info.value.problem, info.value
