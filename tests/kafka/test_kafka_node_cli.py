"""The shipped config/edge-node.toml, run as `finllm node` with command-line overrides."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from adapters.tansu import TansuBroker, free_port
from tests.kafka.kafkatest import REPO, ForecastReader, NodeProcess, create_topics, http_get, produce_trades


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_finllm_node_with_the_shipped_config(tansu: TansuBroker, tmp_path: Path) -> None:
    # The shipped config reads "md" and "news" and writes "forecasts" / "deadletter".
    await create_topics(tansu.bootstrap, {"md": 6, "news": 1, "forecasts": 6, "deadletter": 1})
    group = f"cli-{uuid.uuid4().hex[:6]}"
    http = f"127.0.0.1:{free_port()}"
    extra = ["--bootstrap", tansu.bootstrap, "--group", group, "--node-id", "edge-cli", "--http", http]
    node = NodeProcess(REPO / "config" / "edge-node.toml", tmp_path / "node.log", "edge-cli", extra)
    try:
        expected = await produce_trades(tansu.bootstrap, "md", ["ES", "NQ"], 50)
        async with ForecastReader(tansu.bootstrap, "forecasts") as reader:
            seen = await reader.until(expected, timeout_s=40)
        assert expected <= seen.covered, node.log_text()[-2000:]
        assert seen.origins == {"edge-cli": seen.records}, "--node-id names the writer of every forecast"
        code, body = await http_get(http, "/stats")
        assert code == 200 and json.loads(body)["node_id"] == "edge-cli"
        assert (await http_get(http, "/healthz"))[0] == 200
    finally:
        node.terminate()
        rc = await node.wait()
    assert rc == 0, node.log_text()[-2000:]
    text = node.log_text()
    assert "stopped: signal SIGTERM" in text and "partitions_assigned" in text
