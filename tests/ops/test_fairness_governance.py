"""The run report's governance panel reads what the run (and the last audit) left behind."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from adapters.fairness import DIMENSIONS, AuditConfig, Variant
from adapters.fairness import _summarise as summarise
from adapters.report_governance import governance_tables
from adapters.reporting import write_report
from engine.messages import Forecast, ModelDecision, json_encoder


def _write_jsonl(path: Path, msgs: list[object]) -> None:
    path.write_bytes(b"".join(json_encoder.encode(m) + b"\n" for m in msgs))


def _forecast(i: int, model_id: str, version: str) -> Forecast:
    return Forecast(
        forecast_id=f"ES-{i}", symbol="ES", horizon="1m", basis_seq=i, ts_event=i, model_id=model_id,
        model_version=version,
    )  # fmt: skip


def test_panel_from_a_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINLLM_FINGERPRINT_KEY", raising=False)
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    _write_jsonl(run / "forecasts.jsonl", [_forecast(1, "es-1m", "aaa"), _forecast(2, "es-1m", "aaa"),
                                           _forecast(3, "es-1m.teacher", "aaa")])  # fmt: skip
    decisions = [
        ModelDecision(decision_id="s-1", ts_event=0, model_id="es-1m", action="shadow", reason="on trial"),
        ModelDecision(decision_id="s-2", ts_event=1, model_id="es-1m", action="hold", n=50, reason="50/200"),
        ModelDecision(
            decision_id="s-3", ts_event=2, model_id="es-1m", action="promote", n=200, loss_serving=2e-4,
            loss_candidate=1.8e-4, dm_pvalue=0.01, candidate_version="es-1m.teacher@aaa", reason="better",
        ),
    ]  # fmt: skip
    (run / "shadow.jsonl").write_bytes(b"".join(json_encoder.encode(d) + b"\n" for d in decisions) + b"{torn")
    names = DIMENSIONS["exec_gender"]
    variants = [
        Variant(
            dimension="exec_gender",
            template="ceo_appointed",
            value=n,
            group=g,
            reasons=(),
            sentiment=0.0,
            sentiment_label="neutral",
            verdict="quarantined" if g == "female" else "accepted",
        )
        for n, g in names
    ]
    report = summarise(AuditConfig(dimensions=("exec_gender",)), variants)
    (run.parent / "audit_fairness.json").write_text(json.dumps(msgspec.to_builtins(report)))
    metrics = {
        "counters": {
            "model_signature_verified_total{key_id=40c200c6d23c99ac}": 1,
            "model_load_refused_total{reason=bad_signature}": 2,
            "diversity_breaker_trips_total{actor=diversity}": 1,
        },
        "gauges": {"diversity_breaker_open{symbol=ES}": 1.0},
    }
    tables = governance_tables(run, metrics)
    by = {t[0]: t for t in tables}
    assert list(by) == [
        "Governance: models served",
        "Governance: shadow deployment",
        "Governance: diversity breaker",
        "Governance: fairness audit",
    ]
    models = by["Governance: models served"]
    assert [r[:2] for r in models[2]] == [["es-1m.teacher@aaa", "1"], ["es-1m@aaa", "2"]]
    assert "finllm-release" in models[2][0][2]  # the shipped manifest's signer
    assert "not checked" in models[2][0][3]
    assert "1 verified (key 40c200c6d23c99ac: 1), 2 refused (bad_signature: 2)" in models[3]
    shadow = by["Governance: shadow deployment"]
    assert [r[0] for r in shadow[2]] == ["shadow", "promote"] and "3 decisions (1 holds" in shadow[3]
    assert by["Governance: diversity breaker"][2] == [["1", "0", "ES"]]
    audit = by["Governance: fairness audit"]
    assert audit[2][0][:3] == ["exec_gender", "verdict", "6/6"] and "gate FAILED" in audit[3]
    page = write_report(tmp_path / "r.html", title="t", summary={}, tables=tables).read_text()
    assert page.count("Governance:") == 4


def test_panel_of_a_bare_run(tmp_path: Path) -> None:
    """No forecasts, no shadow, no breaker, no audit: only the models table, saying so."""
    tables = governance_tables(tmp_path, {})
    assert len(tables) == 1 and tables[0][2][0][0] == "(no edge forecasts)"
