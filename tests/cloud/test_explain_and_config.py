"""``finllm explain``: a forecast's versions and traces from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from engine.messages import Fill, Forecast, ReasoningTrace
from tools.commands.explain import main


def _write_run(d: Path) -> None:
    v1 = Forecast(
        forecast_id="ES:1m:42",
        symbol="ES",
        horizon="1m",
        basis_seq=42,
        ts_event=1,
        point=0.0001,
        quantile_levels=(0.1, 0.9),
        quantiles=(-0.001, 0.0012),
        volatility=0.0008,
        confidence=0.2,
        model_id="edge-gru",
        model_version="3",
    )
    v2 = msgspec.structs.replace(
        v1, version=2, tier="cloud", point=0.0003, model_id="SmolLM2", model_version="local"
    )
    other = msgspec.structs.replace(v1, forecast_id="ES:1m:43", basis_seq=43)
    t1 = ReasoningTrace(
        trace_id="t1",
        forecast_id="ES:1m:42",
        version=1,
        symbol="ES",
        ts_event=1,
        tier="edge",
        model_id="edge-gru",
        model_version="3",
        features=(("ret_5", 0.0021, 0.4),),
    )
    t2 = ReasoningTrace(
        trace_id="ES:1m:42:v2",
        forecast_id="ES:1m:42",
        version=2,
        symbol="ES",
        ts_event=2,
        tier="cloud",
        model_id="SmolLM2",
        model_version="local",
        news_ids=("n-7",),
        rationale="The merger news is positive.",
        summary="escalated for news; adopted",
    )
    fill = Fill(order_id="o", strategy_id="s", symbol="ES", side=1, qty=1, price=1.0, ts_event=3)
    enc = msgspec.json.Encoder()
    (d / "forecasts.jsonl").write_bytes(
        enc.encode_lines([v2, other, v1, fill]) + b'{"type": "forecast", "forecast_id": "ES:1m:42"}\n'
    )
    (d / "traces.jsonl").write_bytes(enc.encode_lines([t2, t1]))


def test_explain_prints_versions_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_run(tmp_path)
    assert main(["ES:1m:42", "--run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("v1 edge") < out.index("v2 cloud")
    assert "ret_5" in out and "n-7" in out and "The merger news is positive." in out
    assert "ES:1m:43" not in out
    assert "1 matching line(s) could not be decoded" in out


def test_explain_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_run(tmp_path)
    assert main(["ES:1m:42", "--run", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in info["versions"]] == [1, 2]
    assert [t["tier"] for t in info["traces"]] == ["edge", "cloud"]
    assert main(["nope", "--run", str(tmp_path)]) == 1
    assert main(["ES:1m:42", "--run", str(tmp_path / "missing")]) == 2


def test_example_cloud_config_converts() -> None:
    from actors.cloud_reasoner import CloudReasonerConfig, CloudReasonerProxy
    from engine.config import convert, loads_config, resolve
    from engine.errors import ConfigError

    path = Path(__file__).resolve().parents[2] / "config" / "cloud.toml"
    # the example is an actor table to paste into a pipeline: give it an [engine] header
    text = '[engine]\nname = "cloud-example"\n' + path.read_text()
    actor = loads_config(text).actors[0]
    assert resolve(actor.cls) is CloudReasonerProxy
    cfg = convert(actor.config, CloudReasonerConfig)
    assert cfg.llm is not None and [e.dialect for e in cfg.llm.endpoints] == ["llamacpp", "vllm"]
    assert cfg.store.staleness_events == 0 and cfg.max_escalation_fraction == 0.05
    with pytest.raises((ConfigError, msgspec.ValidationError), match="typo_key"):
        convert({**actor.config, "typo_key": 1}, CloudReasonerConfig)
