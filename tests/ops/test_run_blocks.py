"""The building blocks of ``finllm run`` and one end-to-end run of a small live pipeline."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.messages import Forecast, ModeChange, json_encoder
from tools.commands import run as runcmd

S = 1_000_000_000


def fc(ts: int, q: tuple[float, ...], sym: str = "ES", horizon: str = "1m") -> Forecast:
    return Forecast(
        forecast_id=f"{sym}-{ts}",
        symbol=sym,
        horizon=horizon,
        basis_seq=1,
        ts_event=ts,
        quantile_levels=(0.1, 0.5, 0.9),
        quantiles=q,
    )


def test_run_dirs_are_fresh(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    a = runcmd.new_run_dir(tmp_path, now=now)
    b = runcmd.new_run_dir(tmp_path, now=now)
    assert a.name == "20260102-030405" and b.name == "20260102-030405-1" and a.is_dir() and b.is_dir()


def test_substitute() -> None:
    raw = {"actors": [{"config": {"path": "${out}/f.jsonl", "n": 3, "xs": ["${out}"]}}]}
    assert runcmd.substitute(raw, {"out": "/r"}) == {
        "actors": [{"config": {"path": "/r/f.jsonl", "n": 3, "xs": ["/r"]}}]
    }


def test_read_messages_counts_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    mc = ModeChange(mode="DEGRADED", previous="NORMAL", reason="x", ts_event=5)
    p.write_bytes(
        json_encoder.encode(mc) + b"\n{broken\n\n" + json_encoder.encode(fc(1, (0.0, 0.0, 0.0))) + b"\n"
    )
    modes, bad = runcmd.read_messages(p, ModeChange)
    assert modes == [mc] and bad == 1
    assert runcmd.read_messages(tmp_path / "none.jsonl", ModeChange) == ([], 0)


def test_mode_spans_and_time_in_mode() -> None:
    changes = [
        ModeChange(mode="SURVIVAL", previous="NORMAL", reason="load", ts_event=10 * S),
        ModeChange(mode="DEGRADED", previous="SURVIVAL", reason="calm", ts_event=13 * S),
        ModeChange(mode="NORMAL", previous="DEGRADED", reason="calm", ts_event=14 * S),
    ]
    spans = runcmd.mode_spans(reversed(changes), 0, 20 * S)
    assert [(s.mode, s.ts_start // S, s.ts_end // S) for s in spans] == [
        ("NORMAL", 0, 10),
        ("SURVIVAL", 10, 13),
        ("DEGRADED", 13, 14),
        ("NORMAL", 14, 20),
    ]
    assert spans[1].reason == "load"
    assert runcmd.time_in_mode(spans) == {"NORMAL": 16.0, "CONSERVE": 0.0, "DEGRADED": 1.0, "SURVIVAL": 3.0}
    assert [s.mode for s in runcmd.mode_spans([], 0, 5 * S)] == ["NORMAL"]


def test_realised_returns_and_coverage() -> None:
    prices = {"ES": [(0, 100.0), (60 * S, 101.0), (120 * S, 99.0)]}
    fcs = [
        fc(0, (-0.02, 0.0, 0.02)),  # realised log(101/100) = 0.00995: above q0.5, below q0.9
        fc(60 * S, (-0.01, 0.0, 0.01)),  # realised log(99/101) = -0.02: below everything
        fc(120 * S, (0.0, 0.0, 0.0)),  # horizon ends after the series: left out
        fc(0, (0.0, 0.0, 0.0), horizon="50t"),  # event horizon: left out
        fc(0, (0.0, 0.0, 0.0), sym="NQ"),  # no prices: left out
    ]
    pairs = runcmd.realised_returns(fcs, prices)
    assert [round(r, 5) for _, r in pairs] == [round(math.log(1.01), 5), round(math.log(99 / 101), 5)]
    cov = runcmd.quantile_coverage(pairs)
    assert cov == {0.1: (0.5, 2), 0.5: (0.5, 2), 0.9: (1.0, 2)}


def test_plots_and_report(tmp_path: Path) -> None:
    prices = [(i * 60 * S, 100.0 + i) for i in range(10)]
    fcs = [fc(i * 60 * S, (-0.01, 0.0, 0.01)) for i in range(9)]
    spans = runcmd.mode_spans(
        [ModeChange(mode="CONSERVE", previous="NORMAL", reason="r", ts_event=S)], 0, 3 * S
    )
    pngs = [
        runcmd.plot_price_bands("ES", prices, fcs),
        runcmd.plot_calibration({0.1: (0.2, 9), 0.5: (0.5, 9), 0.9: (0.8, 9)}),
        runcmd.plot_latency({"edge": [50.0, 80.0, 120.0], "cloud": [1e5, 2e5]}),
        runcmd.plot_latency_summary({"edge": {"p50": 40.0, "p99": 90.0, "p999": 200.0}}),
        runcmd.plot_modes(spans),
        runcmd.plot_pnl({"a": [(0, 1000.0), (S, 1010.0)], "b": [(0, 1000.0), (S, 990.0)]}),
    ]
    assert all(p.startswith(b"\x89PNG") for p in pngs)
    out = runcmd.write_report(
        tmp_path / "r.html",
        title="t <1>",
        summary={"x": 1.5, "y": math.nan},
        figures=[("Price", pngs[0], "note"), ("Empty", None, "")],
    )
    text = out.read_text()
    assert "t &lt;1&gt;" in text and text.count("data:image/png;base64,") == 1 and "no data" in text
    assert "<td>n/a</td>" in text


PIPELINE = """
[engine]
clock = "live"
shutdown_deadline_s = 5.0
log_level = "error"

[[actors]]
name = "source"
class = "tools.overload:SyntheticSource"
[actors.config]
phases = [[0.4, 300.0], [0.6, 3000.0], [0.8, 100.0]]
symbols = 4

[[actors]]
name = "forecaster"
class = "tools.overload:StandInForecaster"
subscribe = ["md.>"]
[actors.mailbox]
capacity = 256
policy = "drop_oldest"
[actors.config]
full_cost_us = 600.0
small_cost_us = 100.0

[[actors]]
name = "degradation"
class = "actors.degradation:DegradationController"
subscribe = ["forecast.>"]
[actors.config]
interval_ms = 50
min_dwell_s = 0.1
cool_down_s = 0.05
capacity_per_s = {{ forecaster = 1200.0 }}
loop_lag_us = {{ conserve = 1e6, degraded = 2e6, survival = 5e6 }}

[[actors]]
name = "forecasts"
class = "actors.sinks:JsonlSink"
subscribe = ["forecast.>"]
[actors.config]
path = "${{out}}/forecasts.jsonl"

[[actors]]
name = "modes"
class = "actors.sinks:JsonlSink"
subscribe = ["control.mode"]
[actors.config]
path = "${{out}}/modes.jsonl"
"""


def test_main_runs_a_pipeline_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(PIPELINE.format())
    rc = runcmd.main(["--config", str(cfg), "--runs", str(tmp_path / "runs")])
    assert rc == 0
    (out,) = (tmp_path / "runs").iterdir()
    doc = json.loads((out / "metrics.json").read_text())
    n = (out / "forecasts.jsonl").read_bytes().count(b"\n")
    assert n > 300 and doc["energy"]["forecasts"] == n
    assert doc["energy"]["method"].startswith("cpu_model") and doc["energy"]["joules"] > 0
    assert doc["energy"]["g_co2e_per_1k_forecasts"] == pytest.approx(
        doc["energy"]["joules"] / 3.6e6 * 400.0 / (n / 1000)
    )
    assert doc["undecodable_lines"] == {"forecasts.jsonl": 0, "modes.jsonl": 0}
    modes = [m["mode"] for m in doc["modes"]]
    assert "SURVIVAL" in modes or "DEGRADED" in modes  # 3000/s against a capacity of 1200/s
    html_text = (out / "report.html").read_text()
    # latency and mode plots; no results.json here, so no price, calibration or PnL plots
    assert "Degradation mode" in html_text and html_text.count("data:image/png") == 2
    printed = capsys.readouterr().out
    assert "gco2e_per_1k_forecasts" in printed and str(out / "report.html") in printed
    assert runcmd.main(["--config", str(tmp_path / "missing.toml")]) == 2
