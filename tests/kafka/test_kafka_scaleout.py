"""Scale-out: several `finllm node` processes in one consumer group on a 6-partition topic.

Three nodes start, one leaves mid-stream (SIGTERM), another joins; at the end every input
record has a forecast, each node wrote some, duplicates stay within the in-flight windows
of the membership changes, and every input offset is committed.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from adapters.tansu import TansuBroker, free_port
from tests.kafka.kafkatest import (
    ForecastReader,
    NodeProcess,
    Topics,
    committed_and_end,
    http_get,
    node_toml,
    produce_trades,
    redelivery_events,
    standard_topics,
)

SYMBOLS = [f"SYM{i:02d}" for i in range(24)]
MAX_IN_FLIGHT = 1000
N_PER_SYMBOL = 800


def _assigned(log: str) -> list[list[str]]:
    out = []
    for line in log.splitlines():
        if line.startswith("{") and '"partitions_assigned"' in line:
            out.append(json.loads(line)["partitions"])
    return out


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_three_nodes_one_leaves_one_joins_every_record_forecast(
    tansu: TansuBroker, tmp_path: Path
) -> None:
    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t)
    nodes: dict[str, NodeProcess] = {}

    http = {name: f"127.0.0.1:{free_port()}" for name in ("node-a", "node-b", "node-c", "node-d")}

    def start(name: str) -> NodeProcess:
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            node_toml(tansu.bootstrap, t, node_id=name, max_in_flight=MAX_IN_FLIGHT, http=http[name])
        )
        nodes[name] = NodeProcess(cfg, tmp_path / f"{name}.log", name)
        return nodes[name]

    for name in ("node-a", "node-b", "node-c"):
        start(name)
    producing = asyncio.create_task(
        produce_trades(tansu.bootstrap, t.md, SYMBOLS, N_PER_SYMBOL, rate_per_s=2000)
    )
    try:
        async with ForecastReader(tansu.bootstrap, t.forecasts) as reader:
            async with asyncio.timeout(60):
                # Mid-stream, and only once the leaver did part of the work itself.
                while (
                    len(reader.seen.covered) < 0.2 * len(SYMBOLS) * N_PER_SYMBOL
                    or not reader.seen.origins["node-a"]
                ):
                    await reader.poll()
            nodes["node-a"].terminate()  # leaves the group gracefully, mid-stream
            assert await nodes["node-a"].wait() == 0, nodes["node-a"].log_text()[-3000:]
            start("node-d")  # and another joins
            expected = await producing
            seen = await reader.until(expected, timeout_s=60)
            missing = expected - seen.covered
            assert not missing, f"{len(missing)} records without a forecast, e.g. {sorted(missing)[:5]}"
            await reader.settle(1.0)
            # The live node's probes: healthy, and its metrics show the work it did.
            assert (await http_get(http["node-b"], "/readyz"))[0] == 200
            code, body = await http_get(http["node-b"], "/stats")
            status = json.loads(body)
            assert code == 200 and status["healthy"] and status["mode"] == "NORMAL", status
            assert status["node_id"] == "node-b" and set(status["actors"]) == {
                "kafka-source",
                "forecaster",
                "kafka-sink",
            }
            code, body = await http_get(http["node-b"], "/metrics")
            metric = re.search(rb'^finllm_kafka_records_in_total\{actor="kafka-source"\} (\d+)$', body, re.M)
            assert code == 200 and metric and int(metric.group(1)) > 0, body[:500]
            assert (await http_get(http["node-b"], "/nope"))[0] == 404
    finally:
        producing.cancel()
        for n in nodes.values():
            n.terminate()
        codes = {name: await n.wait() for name, n in nodes.items()}
    assert codes == dict.fromkeys(nodes, 0), codes

    assert seen.header_mismatch == 0
    # Every node did part of the work, the late joiner included: the group really scaled out.
    for name in nodes:
        assert seen.origins[name] > 0, (name, seen.origins)
    # At-least-once duplicates only come from re-delivery events, each re-delivering at most
    # one window (max_in_flight) of a member's uncommitted records: the clean leave, and every
    # revoke the rebalances (three staggered joins, one leave, one join) cause on every live
    # member, counted from the logs (derivation: tests/kafka/test_kafka_crash.py).
    ev = redelivery_events(n.log_text() for n in nodes.values())
    bound = ev.budget(MAX_IN_FLIGHT, leaves=1)
    assert all(r <= MAX_IN_FLIGHT for r in ev.redelivered), ev.redelivered
    assert seen.duplicates <= bound, (seen.duplicates, bound, ev)
    assert max(seen.counts.values()) <= 2 + ev.revokes + ev.restarts + ev.retried
    print(
        f"scale-out: {len(expected)} records, {seen.records} forecasts, {seen.duplicates} duplicates, "
        f"origins {dict(seen.origins)}"
    )
    committed, ends = await committed_and_end(tansu.bootstrap, t.group, t.md, 6)
    assert sum(ends.values()) == len(expected)
    assert committed == ends
    assert _assigned(nodes["node-d"].log_text()), "node-d was assigned partitions"
