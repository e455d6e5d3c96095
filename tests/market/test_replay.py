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
    # PnL, price with fills, latency; and the skill panel's PIT histogram and rolling ratios (issue 14)
    assert html.count("data:image/png;base64,") == 5
    assert "Skill: edge vs baselines" in html
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
    assert "news" not in names and "edge" in names  # no --news; eq-1d serves the 524 tickers (issue 14)
    host = next(a for a in raw["actors"] if a["name"] == "host")
    assert host["config"]["strategies"] == [{"id": "my_strat", "class": "my.mod:MyStrat"}]


# --- replaying a live node's recording (finllm replay --recording) ----------------------------


class _Record:
    """What the recording writer reads of an aiokafka ConsumerRecord."""

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = 1_700_000_000_000 + offset
        self.timestamp_type = 0


def _write_recording(rec: Path) -> None:
    """A recording as finllm node --record writes it, made by hand: two symbols on one-minute bars
    over two partitions, a news item handed over alone, a reset (partitions given), an undecodable
    record, and a cloud refinement to re-publish after the first forecast."""
    from adapters.sources.recording import InputLog
    from engine.messages import NewsItem, Trade, json_encoder
    from tests.kafka.kafkatest import BarTape

    t0 = 1_700_000_040_000_000_000
    log = InputLog(rec, ["md", "news"], "edge-rec")
    offsets = {0: 0, 1: 0}
    recv = 1_800_000_000_000_000_000
    log.reset((0, 1), recv)
    tape = BarTape(["ES", "NQ"], bars=26, per_bar=3, t0_ns=t0)
    for i, tr in enumerate(tape.trades):
        part = 0 if tr.symbol == "ES" else 1
        log.record(_Record("md", part, offsets[part], tr.symbol.encode(), json_encoder.encode(tr)), recv + i)
        offsets[part] += 1
        if i % 20 == 19:
            log.next_step()
        if i == 100:
            item = NewsItem(id="n-1", ts_event=tr.ts_event, source="wire", headline="S&P 500 futures rise")
            log.next_step()
            log.record(_Record("news", 0, 0, b"n-1", json_encoder.encode(item)), recv + i)
            log.next_step()
        if i == 120:
            log.record(_Record("md", 0, offsets[0], b"ES", b"\x00 not a record"), recv + i)
            offsets[0] += 1
    log.close()
    assert isinstance(tape.trades[0], Trade)
    manifest = {
        "recording": 1,
        "config": str(Path(__file__).resolve().parents[2] / "config" / "default.toml"),
        "profiles": ["node", "edge-only"],
        "sets": [],
        "variables": {"node_id": "edge-rec"},
    }
    (rec / "recording.json").write_text(json.dumps(manifest))


def test_a_recording_replays_identically_on_both_loops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapters.sources.recording import OUTPUTS

    rec = tmp_path / "rec"
    _write_recording(rec)
    # first pass: what the "node" wrote is what a replay writes (no forecasts recorded yet: DIFFERENT)
    first = tmp_path / "first"
    assert main(["--recording", str(rec), "--out", str(first), "--loop", "uvloop"]) == 1
    assert "DIFFERENT" in capsys.readouterr().out
    fcs = [json_decoder.decode(line) for line in (first / "forecasts.jsonl").read_bytes().splitlines()]
    assert len(fcs) == 2 * (26 - 21) and all(type(f) is Forecast and f.tier == "edge" for f in fcs)
    # cloud refinements the node published (here: before any forecast, and after the last one)
    # are published again at the same place in the output
    v2 = json.loads(json_encoder_text(fcs[0]))
    v2.update(version=2, tier="cloud", model_id="smollm2", point=0.0001, trace_id=f"{fcs[0].forecast_id}:v2")
    late = dict(v2, forecast_id=fcs[-1].forecast_id, symbol=fcs[-1].symbol, basis_seq=fcs[-1].basis_seq)
    n_traces = len((first / "traces.jsonl").read_bytes().splitlines())
    outputs = [({"after": [0, 0], "topic": f"forecast.{v2['symbol']}", "msg": v2})]
    outputs.append({"after": [len(fcs), n_traces], "topic": f"forecast.{late['symbol']}", "msg": late})
    (rec / OUTPUTS).write_text("".join(json.dumps(o) + "\n" for o in outputs))
    lines = (first / "forecasts.jsonl").read_bytes().splitlines(keepends=True)
    as_sink = [
        json_encoder_text(json_decoder.decode(json.dumps(m).encode())).encode() + b"\n" for m in (v2, late)
    ]
    (rec / "forecasts.jsonl").write_bytes(b"".join([as_sink[0], *lines, as_sink[1]]))
    (rec / "traces.jsonl").write_bytes((first / "traces.jsonl").read_bytes())
    for loop in ("asyncio", "uvloop"):
        out = tmp_path / loop
        assert main(["--recording", str(rec), "--out", str(out), "--loop", loop]) == 0, capsys.readouterr()
        assert capsys.readouterr().out.count("identical to the recording's") == 2
        assert (out / "forecasts.jsonl").read_bytes() == (rec / "forecasts.jsonl").read_bytes()
    replayed = [json_decoder.decode(line) for line in (out / "forecasts.jsonl").read_bytes().splitlines()]
    assert [f.version for f in replayed] == [2] + [1] * len(fcs) + [2]


def json_encoder_text(msg: object) -> str:
    from engine.messages import json_encoder

    return json_encoder.encode(msg).decode()
