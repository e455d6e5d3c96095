"""The ops actors assembled from TOML by the real engine, running on the live clock."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from actors.control_plane import ControlPlane
from actors.degradation import DegradationController
from engine.config import loads_config
from engine.errors import ConfigError
from engine.kernel import Engine

PIPELINE = """
[engine]
clock = "live"
shutdown_deadline_s = 2.0

[[actors]]
name = "degradation"
class = "actors.degradation:DegradationController"
subscribe = ["forecast.>"]
critical = false
[actors.mailbox]
capacity = 64
policy = "conflate"
key = "symbol"
[actors.config]
interval_ms = 50
min_dwell_s = 0.2
latency_objectives_us = {{ edge = 1000.0 }}
capacity_per_s = {{ edge = 5000.0 }}
mailbox_fill = {{ conserve = 0.4, degraded = 0.7, survival = 0.9 }}
shed_reasons = ["full", "evicted"]
[actors.config.carbon_feed]
path = "{carbon}"
align = "time_of_day"

[[actors]]
name = "control"
class = "actors.control_plane:ControlPlane"
subscribe = ["control.heartbeat", "control.mode"]
[actors.config]
node_id = "n1"
heartbeat_interval_ms = 50
partitions = [0, 1]
also_publish = ["kafka.out.heartbeat"]
[actors.config.http]
port = 0
"""


@pytest.mark.asyncio
async def test_ops_actors_from_toml_serve_stats(carbon_dir: Path) -> None:
    text = PIPELINE.format(carbon=carbon_dir / "carbon-aware-emissions-sample.json")
    engine = Engine(loads_config(text, path="ops.toml"))
    task = asyncio.ensure_future(engine.run(install_signals=False))
    try:
        control = None
        for _ in range(300):
            await asyncio.sleep(0.01)
            control = engine.cells["control"].actor
            if isinstance(control, ControlPlane) and getattr(control, "server", None) is not None:
                break
        assert isinstance(control, ControlPlane) and control.server is not None
        await asyncio.sleep(0.3)
        raw = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"{control.server.url}/stats", timeout=5).read()
        )
        doc = json.loads(raw)
        assert doc["node_id"] == "n1" and doc["mode"] in {"NORMAL", "CONSERVE"}
        # the engine's own mailbox statistics, found without any test wiring
        assert doc["mailboxes"]["degradation"]["policy"] == "conflate"
        assert doc["mailboxes"]["degradation"]["capacity"] == 64
        counters = doc["metrics"]["counters"]
        assert counters["heartbeats_sent_total"] >= 3
        assert counters["heartbeats_received_total"] == 0  # its own heartbeats are not peers
        ctl = engine.cells["degradation"].actor
        assert isinstance(ctl, DegradationController) and ctl.last_decision is not None
        assert ctl.config.mailbox_fill.degraded == 0.7 and ctl.config.shed_reasons == ("full", "evicted")
        assert 165.0 <= doc["metrics"]["gauges"]["carbon_intensity_g_per_kwh"] <= 500.0
    finally:
        engine.request_shutdown("test over")
        summary = await asyncio.wait_for(task, 10)
    assert summary.exit_code == 0


def test_a_wrong_key_names_the_actor_and_key() -> None:
    bad = PIPELINE.format(carbon="x.json").replace("interval_ms = 50", "interval = 50")
    with pytest.raises(ConfigError, match=r"actors\[degradation\]\.config.*interval"):
        Engine(loads_config(bad, path="ops.toml")).build()
