"""The cloud tier inside the real engine, assembled from TOML (config/cloud.toml's actor table)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.config import EngineConfig, convert
from engine.kernel import Engine
from tests.cloud.conftest import FaultFactory
from tests.cloud.test_cloud_reasoner import answer_citing
from tools.commands.explain import explain

ROOT = Path(__file__).resolve().parents[2]


def _pipeline(url: str, out: Path) -> EngineConfig:
    table = tomllib.loads((ROOT / "config" / "cloud.toml").read_text())["actors"][0]
    llm = table["config"]["llm"]
    # the example's endpoints point at hosts that do not exist here: the fault server stands in
    llm["endpoints"] = [{"name": "fault", "url": url, "model": "m", "dialect": "llamacpp"}]
    llm["hedge"] = False
    table["config"]["tokens_burst"] = 1e9
    table["config"]["max_escalation_fraction"] = 1.0
    table["config"]["escalation_burst"] = 5.0
    sink = {"class": "actors.sinks:JsonlSink", "mailbox": {"capacity": 4096, "policy": "block"}}
    raw: dict[str, Any] = {
        "engine": {"name": "cloud-test", "clock": "live", "shutdown_deadline_s": 10.0},
        "actors": [
            table,
            {"name": "driver", "class": "tests.cloud.driver:Driver", "subscribe": ["forecast.*"],
             "config": {"n": 2}},
            {**sink, "name": "forecasts", "subscribe": ["forecast.>"],
             "config": {"path": str(out / "forecasts.jsonl")}},
            {**sink, "name": "traces", "subscribe": ["trace.>"],
             "config": {"path": str(out / "traces.jsonl")}},
        ],
    }  # fmt: skip
    return convert(raw, EngineConfig)


@pytest.mark.asyncio
async def test_engine_runs_the_cloud_tier_and_explain_reads_the_run(
    fault_server: FaultFactory, tmp_path: Path
) -> None:
    srv = await fault_server(answer_fn=answer_citing())
    engine = Engine(_pipeline(srv.url, tmp_path))
    summary = await engine.run(install_signals=False)
    assert summary.reason == "all refined", summary.reason
    assert summary.exit_code == 0
    counters = summary.metrics["counters"]
    assert counters["cloud_refinements_total{actor=cloud,outcome=adopted}"] == 2
    info = explain("ES-1", tmp_path)
    assert [(v["version"], v["tier"]) for v in info["versions"]] == [(1, "edge"), (2, "cloud")]
    trace = info["traces"][0]
    assert list(trace["news_ids"]) == ["n-1"] and "adopted" in trace["summary"]
    lines = (tmp_path / "traces.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 and all(msgspec.json.decode(line)["type"] == "trace" for line in lines)
