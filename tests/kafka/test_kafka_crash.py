"""Crash: kill -9 a node mid-stream ten times and restart it; no input record is left without a forecast."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.tansu import TansuBroker
from tests.kafka.kafkatest import (
    CRASH_GROUP,
    ForecastReader,
    NodeProcess,
    Topics,
    committed_and_end,
    node_toml,
    produce_trades,
    standard_topics,
)

SYMBOLS = [f"C{i:02d}" for i in range(12)]
MAX_IN_FLIGHT = 500
KILLS = 10


@pytest.mark.slow
@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_kill_9_ten_times_loses_nothing(tansu: TansuBroker, tmp_path: Path) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t)
    nodes: dict[str, NodeProcess] = {}
    generation: dict[str, int] = {}

    def start(name: str) -> NodeProcess:
        gen = generation.get(name, 0) + 1
        generation[name] = gen
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            node_toml(tansu.bootstrap, t, node_id=name, max_in_flight=MAX_IN_FLIGHT, group=CRASH_GROUP)
        )
        nodes[name] = NodeProcess(cfg, tmp_path / f"{name}-{gen}.log", name)
        return nodes[name]

    start("node-x")
    start("node-y")
    stop = asyncio.Event()
    producing = asyncio.create_task(
        produce_trades(tansu.bootstrap, t.md, SYMBOLS, 100_000, rate_per_s=1500, stop=stop)
    )
    killed_mid_stream = 0
    try:
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            for i in range(KILLS):
                victim = "node-x" if i % 2 == 0 else "node-y"
                before = reader.seen.origins[victim]
                # Kill only once the victim is visibly writing forecasts: mid-stream, not idle.
                async with asyncio.timeout(30):
                    while reader.seen.origins[victim] < before + 300:
                        await reader.poll(100)
                nodes[victim].kill9()
                assert await nodes[victim].wait() == -9
                killed_mid_stream += 1
                start(victim)
            stop.set()
            expected = await producing
            seen = await reader.until(expected, timeout_s=60)
            missing = expected - seen.covered
            assert not missing, f"{len(missing)} records without a forecast, e.g. {sorted(missing)[:5]}"
            await reader.settle(1.0)
    finally:
        stop.set()
        producing.cancel()
        for n in nodes.values():
            n.terminate()
        codes = {name: await n.wait() for name, n in nodes.items()}
    assert codes == {"node-x": 0, "node-y": 0}
    assert killed_mid_stream == KILLS
    assert seen.header_mismatch == 0
    # Each kill can repeat at most what was in flight or done-but-uncommitted on the victim
    # (and, through the rebalance, on the survivor).
    assert seen.duplicates <= KILLS * 2 * MAX_IN_FLIGHT, seen.duplicates
    print(
        f"crash: {len(expected)} records, {seen.records} forecasts, {seen.duplicates} duplicates "
        f"after {KILLS} kill -9"
    )
    committed, ends = await committed_and_end(tansu.bootstrap, t.group, t.md, 6)
    assert committed == ends
