"""`finllm replay` end to end: outputs, metrics, report, and byte-identical reruns on both loops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.messages import DeadLetter, Fill, Forecast, json_decoder
from tools.commands.replay import HASHED_FILES, _parser, build_config, main


def replay(out: Path, *args: str) -> dict:
    assert main([*args, "--out", str(out), "--progress", "off"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_emini_replay_is_byte_identical_on_asyncio_and_uvloop(tmp_path: Path) -> None:
    digests = []
    for i, loop in enumerate(["asyncio", "uvloop", "asyncio", "uvloop"]):
        m = replay(
            tmp_path / f"r{i}",
            "--dataset",
            "emini",
            "--limit",
            "100000",
            "--loop",
            loop,
            *(["--no-report"] if i else []),
        )
        digests.append(m["digest_sha256"])
    assert len(set(digests)) == 1
    out = tmp_path / "r0"
    fills = [json_decoder.decode(line) for line in (out / "fills.jsonl").read_bytes().splitlines()]
    forecasts = [json_decoder.decode(line) for line in (out / "forecasts.jsonl").read_bytes().splitlines()]
    assert len(fills) > 10 and all(type(f) is Fill for f in fills)
    assert len(forecasts) > 100 and all(type(f) is Forecast for f in forecasts)
    assert {f.strategy_id for f in fills} == {"ema_cross", "forecast_threshold"}
    # simulated time only: everything lies inside the replayed 2013 window
    assert all(1_378_000_000e9 < f.ts_event < 1_378_300_000e9 for f in fills)


def test_replay_writes_metrics_and_a_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    m = replay(out, "--dataset", "emini", "--limit", "60000")
    for name in (*HASHED_FILES, "metrics.json", "report.html", "results.json"):
        assert (out / name).exists(), name
    assert m["events"] == 60_000 and m["reason"] == "replay finished"
    for sid in ("ema_cross", "forecast_threshold"):
        s = m["strategies"][sid]
        assert {"pnl", "sharpe", "max_drawdown", "turnover", "fills", "fees"} <= set(s)
        if s["fills"]:
            assert s["turnover"] > 0
    assert {"feed", "edge", "host"} <= set(m["stage_latency_us"])
    assert m["stage_latency_us"]["host"]["p99"] >= m["stage_latency_us"]["host"]["p50"] > 0
    assert all(mb["shed"] == 0 for mb in m["mailboxes"].values())
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "ema_cross" in html and m["digest_sha256"] in html


def test_a_file_with_bad_rows_replays_deterministically_with_dead_letters(tmp_path: Path) -> None:
    src = tmp_path / "ticks.csv"
    rows = ["time,px,qty"]
    for i in range(3000):
        px = 50.0 + 0.01 * ((i * 7919) % 23)
        if i % 500 == 250:
            px = -px  # a bad print every 500 rows
        rows.append(f"2024-05-01T14:{i // 60 % 60:02d}:{i % 60:02d}.{i // 3600:03d},{px:.2f},{1 + i % 4}")
    src.write_text("\n".join(rows) + "\n")
    args = [
        "--file",
        str(src),
        "--columns",
        "ts=time,price=px,size=qty,default_symbol=XYZ,tz=America/New_York",
        "--strategy",
        "strategies.ema_cross:EmaCross",
        "--no-report",
    ]
    a = replay(tmp_path / "a", *args, "--loop", "asyncio")
    b = replay(tmp_path / "b", *args, "--loop", "uvloop")
    assert a["digest_sha256"] == b["digest_sha256"]
    dead = [json_decoder.decode(x) for x in (tmp_path / "a" / "deadletters.jsonl").read_bytes().splitlines()]
    assert len(dead) == 6 and all(type(d) is DeadLetter and d.reason == "non_positive_price" for d in dead)
    assert list(a["strategies"]) == ["ema_cross"]


def test_bad_arguments_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--dataset",
                "emini",
                "--out",
                str(tmp_path),
                "--forecaster",
                "edge",
                "--config",
                str(tmp_path / "missing.toml"),
            ]
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])  # neither --dataset nor --file
    assert main(["--file", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,price\n1,2\n")
    assert main(["--file", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing columns ['size']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.slow
def test_full_emini_replay_is_identical_on_both_loops(tmp_path: Path) -> None:
    a = replay(tmp_path / "a", "--dataset", "emini", "--loop", "asyncio", "--no-report")
    b = replay(tmp_path / "b", "--dataset", "emini", "--loop", "uvloop", "--no-report")
    assert a["events"] == b["events"] == 500_000
    assert a["digest_sha256"] == b["digest_sha256"]


def test_news_actors_in_the_template_switch_on_with_news(tmp_path: Path) -> None:
    template = Path(__file__).resolve().parents[2] / "config" / "replay.toml"
    text = template.read_text() + (
        '\n[[actors]]\nname = "news"\nclass = "actors.sinks:JsonlSink"\nenabled = false\n'
        '[actors.config]\npath = "${news}.seen"\n'
    )
    custom = tmp_path / "t.toml"
    custom.write_text(text)
    parser = _parser()
    raw, out = build_config(
        parser.parse_args(
            ["--dataset", "sp500", "--out", str(tmp_path / "o"), "--config", str(custom), "--news", "n.jsonl"]
        )
    )
    news = next(a for a in raw["actors"] if a["name"] == "news")
    assert news["enabled"] is True and news["config"]["path"] == str(Path("n.jsonl").resolve()) + ".seen"
    host = next(a for a in raw["actors"] if a["name"] == "host")
    assert host["config"]["results_path"] == str(out / "results.json")
    edge = next(a for a in raw["actors"] if a["name"] == "edge")
    assert edge["config"]["model"] == "spx-1d"
    feed = next(a for a in raw["actors"] if a["name"] == "feed")
    assert feed["config"]["dataset"] == "sp500" and feed["config"]["bars"] == [{"kind": "tick", "size": 1}]
    raw, _ = build_config(
        parser.parse_args(
            [
                "--dataset",
                "sp500-tickers",
                "--out",
                str(tmp_path / "o"),
                "--config",
                str(custom),
                "--strategy",
                "my.mod:MyStrat",
            ]
        )
    )
    names = [a["name"] for a in raw["actors"]]
    assert "news" not in names and "edge" not in names  # no --news; no edge model for 524 tickers
    host = next(a for a in raw["actors"] if a["name"] == "host")
    assert host["config"]["strategies"] == [{"id": "my_strat", "class": "my.mod:MyStrat"}]
