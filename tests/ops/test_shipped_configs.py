"""Every shipped config (config/*.toml) loads and runs, shortened through the loader's overrides.

``default.toml`` is the main job (``finllm run``) and, under its ``[profiles.node]``, the live
node (``finllm node``: run against a real Tansu broker by tests/kafka/test_kafka_edge_pipeline.py
and the other edge-node tests there); ``replay.toml`` is ``finllm replay``'s pipeline,
``edge.toml`` and ``cloud.toml`` the example actor tables to copy into pipelines.
A new shipped config without a run below fails :func:`test_every_shipped_config_is_run_here`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actors.market_data import MarketDataFeed, MarketDataFeedConfig
from adapters.bars import BarSpec
from engine.config import load_config
from engine.kernel import Engine
from engine.messages import Forecast, json_decoder
from engine.testing import Probe
from tools.commands import replay as replaycmd
from tools.commands import run as runcmd

CONFIG = Path(__file__).resolve().parents[2] / "config"
RUN_HERE = {"cloud.toml", "default.toml", "edge.toml", "replay.toml"}
NEWS = CONFIG / "data" / "news_emini_2013-09.jsonl"


def test_every_shipped_config_is_run_here() -> None:
    assert {p.name for p in CONFIG.glob("*.toml")} == RUN_HERE


def _lines(path: Path) -> list[object]:
    return [json_decoder.decode(line) for line in path.read_bytes().splitlines()]


# --- default.toml: the main job ---------------------------------------------------------------


def test_the_main_job_runs_shortened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The first 30k E-mini trades with the news on; the cloud tier (a local LLM in lockstep,
    # minutes) off through the config's own profile.  About 10-15 s on two cores.
    rc = runcmd.main(
        [
            "--config",
            str(CONFIG / "default.toml"),
            "--runs",
            str(tmp_path / "runs"),
            "--profile",
            "edge-only",
            "--set",
            "actors[feed].config.limit=30000",
            "--set",
            "actors[feed].config.progress=false",
            "--strict",
        ]
    )
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    (out,) = (tmp_path / "runs").iterdir()
    doc = json.loads((out / "metrics.json").read_text())
    summary = doc["summary"]
    assert summary["reason"] == "replay finished" and summary["drained"]
    assert set(doc["tiers"]) == {"edge", "news"}, "edge-only: no cloud tier"
    assert all(t["state"] == "ok" for t in doc["tiers"].values()), doc["tiers"]
    forecasts = [f for f in _lines(out / "forecasts.jsonl") if isinstance(f, Forecast)]
    assert len(forecasts) > 100 and {f.tier for f in forecasts} == {"edge"}
    assert (out / "report.html").exists() and (out / "results.json").exists()
    # issue 14: the run's report scores its own forecasts against the baselines
    html = (out / "report.html").read_text()
    assert "Skill: edge vs baselines" in html and "not computed" not in html
    assert "<td>garch</td>" in html
    # ...and says that these bars are ones es-1m was fitted on (its manifest's splits)
    assert "IN-SAMPLE WARNING" in html and "too few come after it" in html
    # every block mailbox held: nothing was shed while the replay ran (a verdict the sanity
    # checker releases on stop after its sink has stopped is shed "closed": counted, and known)
    running_sheds = {
        k: r for k, v in summary["mailboxes"].items() for r in v["shed_by_reason"] if r != "closed"
    }
    assert running_sheds == {}
    assert "cloud" not in summary["mailboxes"]
    assert "tier[edge]" in printed.out


# --- replay.toml: finllm replay ---------------------------------------------------------------


def test_the_replay_pipeline_runs_with_news_through_its_profile(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["--dataset", "emini", "--limit", "20000", "--news", str(NEWS), "--out", str(out)]
    assert replaycmd.main([*args, "--no-report", "--progress", "off"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["reason"] == "replay finished" and m["events"] == 20_000
    assert {"feed", "narrative", "sanity", "edge", "host"} <= set(m["mailboxes"])
    assert "baseline" not in m["mailboxes"]
    counters = m["counters"]
    assert counters["news_ingested_total{actor=narrative}"] > 0
    assert sum(v for k, v in counters.items() if k.startswith("news_verdicts_total")) > 0
    assert all(mb["shed"] == 0 for mb in m["mailboxes"].values())
    assert len(_lines(out / "forecasts.jsonl")) > 50


def test_a_replay_of_a_users_file_with_the_baseline_forecaster(tmp_path: Path) -> None:
    src = tmp_path / "ticks.csv"
    rows = ["when,px,qty"]
    for i in range(2400):
        rows.append(
            f"2024-05-01T14:{i // 60 % 60:02d}:{i % 60:02d},{50.0 + 0.01 * ((i * 7919) % 23):.2f},{1 + i % 3}"
        )
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "f"
    rc = replaycmd.main(
        [
            "--file",
            str(src),
            "--columns",
            "ts=when,price=px,size=qty,default_symbol=XYZ",
            "--forecaster",
            "baseline",
            "--set",
            "actors[feed].config.bars=[{ kind = 'time', size = 60e9 }]",
            "--out",
            str(out),
            "--no-report",
            "--progress",
            "off",
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["events"] == 2400 and "baseline" in m["mailboxes"] and "edge" not in m["mailboxes"]
    forecasts = _lines(out / "forecasts.jsonl")
    assert forecasts and all(isinstance(f, Forecast) and f.symbol == "XYZ" for f in forecasts)


def test_replay_refuses_what_its_pipeline_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    assert replaycmd.main(["--dataset", "emini", "--out", out, "--set", "actors[fed].config.limit=5"]) == 2
    assert "replay.toml: actors[fed].config.limit: no element named 'fed'" in capsys.readouterr().err
    assert replaycmd.main(["--dataset", "emini", "--out", out, "--columns", "ts=a", "--profile", "x"]) == 2
    assert "profiles.x: unknown profile" in capsys.readouterr().err
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    assert replaycmd.main(["--file", str(bad), "--columns", "tss=a", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "actors[feed].config.mapping.tss: unknown key" in err and "set by --columns" in err
    assert not Path(out).exists()


# --- edge.toml and cloud.toml: the example actor tables -----------------------------------------


@pytest.mark.asyncio
async def test_the_edge_example_forecasts_a_feed(tmp_path: Path) -> None:
    engine = Engine(load_config(CONFIG / "edge.toml"))
    feed = MarketDataFeedConfig(
        dataset="emini", limit=20_000, bars=(BarSpec(kind="time", size=60e9, multiplier=50.0),)
    )
    engine.add_actor("feed", MarketDataFeed, feed)
    probe = Probe(engine.bus, "forecast.>")
    summary = await asyncio.wait_for(engine.run(install_signals=False), 60)
    assert summary.reason == "replay finished" and summary.exit_code == 0
    forecasts = [m for m in probe.drain() if isinstance(m, Forecast)]
    assert len(forecasts) > 50 and {f.symbol for f in forecasts} == {"ES"}
    assert summary.mailboxes["edge"].shed == 0


@pytest.mark.asyncio
async def test_the_cloud_example_starts_and_stops_cleanly() -> None:
    # No inputs: nothing to escalate, so no endpoint is called; the tier starts, idles, drains.
    engine = Engine(load_config(CONFIG / "cloud.toml", sets=["engine.shutdown_deadline_s=2.0"]))
    task = asyncio.ensure_future(engine.run(install_signals=False))
    await asyncio.sleep(0.5)
    assert not task.done()
    engine.request_shutdown("test over")
    summary = await asyncio.wait_for(task, 20)
    assert summary.exit_code == 0 and summary.reason == "test over" and summary.abandoned == []
