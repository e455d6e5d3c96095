"""Stopping: every Kafka client is closed, also when the engine cuts an actor's ``on_stop`` short.

Issue 11: ``test_commit_failures_are_survived_and_later_commits_catch_up`` once failed on an
"Unclosed AIOKafkaProducer" ResourceWarning.  A producer is left unclosed exactly when its
``stop()`` never starts, and before the fix that happened whenever ``on_stop`` outlived the
actor's ``shutdown_timeout_s`` (5 s by default) and was cancelled: the source closed its
dead-letter producer only after a final commit (up to ``request_timeout_ms``) and after the
consumer had left its group; the sink closed its producer only after a flush of up to 10 s.
The warning then surfaced at garbage collection, in whichever test ran next.  Here the
final commit and the flush hang on purpose and the engine's bound is 0.5 s.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from adapters.tansu import TansuBroker
from tests.kafka.kafkatest import (
    ForecastReader,
    Topics,
    engine_running,
    node_toml,
    produce_trades,
    standard_topics,
)


async def _hang(*_args: Any, **_kwargs: Any) -> None:
    await asyncio.sleep(3600)


def _short_shutdown(toml: str) -> str:
    """Give source and sink a 0.5 s ``shutdown_timeout_s``: their on_stop is cut at 0.5 s."""
    for sub in ('subscribe = ["kafka.acked.*", "control.partitions"]', 'subscribe = ["forecast.*"]'):
        assert sub in toml
        toml = toml.replace(sub, f"{sub}\nshutdown_timeout_s = 0.5")
    return toml


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_clients_are_closed_when_on_stop_is_cut_short(tansu: TansuBroker) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t)
    first = await produce_trades(tansu.bootstrap, t.md, ["ES", "NQ"], 20)
    async with engine_running(_short_shutdown(node_toml(tansu.bootstrap, t))) as (engine, _task):
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            assert first <= (await reader.until(first, timeout_s=30)).covered
        source = engine.cells["kafka-source"].actor
        sink = engine.cells["kafka-sink"].actor
        # From now on commits never answer and flushes never end.
        source._consumer.commit = _hang
        sink._producer.flush = _hang
        later = await produce_trades(tansu.bootstrap, t.md, ["ES", "NQ"], 20, start_seq=21)
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            assert later <= (await reader.until(later, timeout_s=30)).covered
        assert source._tracker.to_commit(), "something is left to commit at stop: the final commit hangs"
        clients = [source._producer, source._consumer, sink._producer]
    counters = engine.metrics.snapshot()["counters"]
    assert counters.get("on_stop_timeouts_total{actor=kafka-source}", 0) == 1, "on_stop was cut short"
    assert counters.get("on_stop_timeouts_total{actor=kafka-sink}", 0) == 1
    assert all(c._closed for c in clients), [type(c).__name__ for c in clients if not c._closed]
    del clients, source, sink
    gc.collect()  # an unclosed client would warn here (and warnings are errors)
