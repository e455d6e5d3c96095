"""Network faults between node and broker (tools/faultproxy.py): latency, resets, stalls, refusals.

The broker advertises the proxy's address, so every client connection, including the ones
opened after a reset, goes through the faults.  The node reconnects and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.tansu import TansuBroker, free_port
from engine.kernel import Engine
from tests.kafka.kafkatest import (
    BarTape,
    ForecastReader,
    Topics,
    committed_and_end,
    config_running,
    edge_node_config,
    engine_running,
    expected_forecasts,
    node_toml,
    produce_messages,
    produce_trades,
    standard_topics,
)
from tools.faultproxy import FaultProxy

SYMBOLS = [f"F{i:02d}" for i in range(12)]
MAX_IN_FLIGHT = 500


async def _faults(proxy: FaultProxy) -> None:
    await asyncio.sleep(1.5)
    proxy.latency_s = 0.05
    await asyncio.sleep(1.0)
    proxy.latency_s = 0.0
    assert proxy.reset_all() > 0
    await asyncio.sleep(0.5)
    await proxy.stall(2.0)
    await asyncio.sleep(0.5)
    proxy.refuse = True
    proxy.reset_all()
    await asyncio.sleep(1.0)
    proxy.refuse = False
    await asyncio.sleep(0.5)
    proxy.reset_all()


@contextlib.asynccontextmanager
async def _proxied(fresh_tansu: Callable[[int], TansuBroker]) -> AsyncIterator[FaultProxy]:
    """A fresh broker that advertises a fault proxy's address, and the proxy."""
    port = free_port()
    broker = fresh_tansu(port)
    proxy = await FaultProxy("127.0.0.1", broker.port, listen_port=port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def _redelivery_bound(engine: Engine) -> tuple[int, dict[str, float]]:
    """Duplicates allowed: one window per re-delivery event (revoke or source restart) plus the
    retried sends (derivation: tests/kafka/test_kafka_crash.py), from the node's own metrics."""
    counters = engine.metrics.snapshot()["counters"]
    revokes = counters.get("kafka_revokes_total{actor=kafka-source}", 0)
    retried = counters.get("kafka_forecast_retries_total{actor=kafka-sink}", 0)
    restarts = engine.cells["kafka-source"].incarnations - 1
    return int(MAX_IN_FLIGHT * (revokes + restarts) + retried), counters


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_node_survives_latency_resets_stalls_and_refusals(
    fresh_tansu: Callable[[int], TansuBroker],
) -> None:
    async with _proxied(fresh_tansu) as proxy:
        bootstrap = proxy.address
        t = Topics.fresh()
        await standard_topics(bootstrap, t)
        # Resets hit the input producer too; let it retry for long enough.
        async with engine_running(node_toml(bootstrap, t, max_in_flight=MAX_IN_FLIGHT)) as (engine, task):
            producing = asyncio.create_task(produce_trades(bootstrap, t.md, SYMBOLS, 600, rate_per_s=1200))
            await _faults(proxy)
            expected = await producing
            async with ForecastReader(bootstrap, t.forecasts) as reader:
                seen = await reader.until(expected, timeout_s=60)
                missing = expected - seen.covered
                assert not missing, f"{len(missing)} records without a forecast, e.g. {sorted(missing)[:5]}"
            assert not task.done(), "the node kept running through the faults"
        stats = proxy.stats.as_dict()
        assert stats["resets"] >= 3 and stats["refused"] >= 1, stats
        assert stats["accepted"] > 3, "clients reconnected after the resets"
        assert seen.header_mismatch == 0
        bound, counters = _redelivery_bound(engine)
        assert seen.duplicates <= bound, (seen.duplicates, bound, counters)
        print(f"faults: {len(expected)} records, {seen.duplicates} duplicates, proxy {stats}")
        committed, ends = await committed_and_end(bootstrap, t.group, t.md, 6)
        assert committed == ends


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_the_edge_pipeline_survives_the_faults_with_no_bar_forecast_lost(
    fresh_tansu: Callable[[int], TansuBroker],
) -> None:
    """The shipped node pipeline (config/default.toml, profiles node + edge-only: feed, bars,
    the es-1m edge model) through the same faults, from its start-up on: group join, fetches,
    forecast writes and commits all cross the proxy.  Every bar forecast owed is written, with
    the forecast id of its bar, and the group's commits reach the settled records."""
    async with _proxied(fresh_tansu) as proxy:
        bootstrap = proxy.address
        t = Topics.fresh()
        await standard_topics(bootstrap, t, md_partitions=2)
        tape = BarTape([f"E{i:02d}" for i in range(6)], bars=40, per_bar=5)
        sent = await produce_messages(bootstrap, t.md, tape.trades)  # before the faults start
        expected = expected_forecasts(sent)
        async with config_running(edge_node_config(bootstrap, t, max_in_flight=MAX_IN_FLIGHT)) as (
            engine,
            task,
        ):
            await _faults(proxy)
            async with ForecastReader(bootstrap, t.forecasts) as reader:
                seen = await reader.until(expected, timeout_s=90)
                missing = expected - seen.covered
                assert not missing, f"{len(missing)} bar forecasts lost, e.g. {sorted(missing)[:5]}"
                await reader.settle(1.0)
            assert not task.done(), "the node kept running through the faults"
            bound, counters = _redelivery_bound(engine)
        stats = proxy.stats.as_dict()
        assert stats["resets"] >= 3 and stats["refused"] >= 1, stats
        assert seen.header_mismatch == 0 and seen.nonfinite == 0
        assert seen.duplicates <= bound, (seen.duplicates, bound, counters)
        print(f"edge faults: {len(expected)} bar forecasts, {seen.duplicates} duplicates, proxy {stats}")
