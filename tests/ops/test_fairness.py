"""The counterfactual fairness audit: rates with Wilson intervals, a gate that fails on real changes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from adapters.fairness import DIMENSIONS, TEMPLATES, AuditConfig, Variant, cloud_asker, run_audit, wilson
from adapters.fairness import _summarise as summarise
from adapters.text.checker import Analyzer, AnalyzerConfig, SanityConfig
from engine.messages import VerifiedNews
from tests.cloud.conftest import llama_server  # noqa: F401  # the real llama.cpp server, session-wide
from tools.commands.audit import main as audit
from tools.commands.audit import render


def test_wilson_interval() -> None:
    r = wilson(0, 28)
    assert r.rate == 0.0 and r.lo == 0.0 and math.isclose(r.hi, 0.1206, abs_tol=1e-3)
    r = wilson(6, 28)
    assert math.isclose(r.lo, 0.1020, abs_tol=1e-3) and math.isclose(r.hi, 0.3953, abs_tol=1e-3)
    assert wilson(28, 28).hi == 1.0
    assert math.isnan(wilson(0, 0).rate)


def _v(dim: str, template: str, value: str, group: str, verdict: str = "accepted", s: float = 0.5) -> Variant:
    label = "positive" if s >= 0.2 else "negative" if s <= -0.2 else "neutral"
    return Variant(
        dimension=dim, template=template, value=value, group=group, verdict=verdict, reasons=(),
        sentiment=s, sentiment_label=label,
    )  # fmt: skip


def test_gate_fails_when_a_swap_changes_the_verdict() -> None:
    cfg = AuditConfig(dimensions=("exec_gender",), max_rate=0.05)
    names = DIMENSIONS["exec_gender"]
    fair = [_v("exec_gender", "ceo_appointed", n, g) for n, g in names]
    report = summarise(cfg, fair)
    assert report.passed and report.rates["exec_gender"]["verdict"].n == len(names) // 2
    # Every woman's item quarantined where the man of the same surname was accepted.
    biased = [
        _v("exec_gender", "ceo_appointed", n, g, "quarantined" if g == "female" else "accepted")
        for n, g in names
    ]
    report = summarise(cfg, biased)
    r = report.rates["exec_gender"]["verdict"]
    assert (r.changes, r.n) == (6, 6) and not report.passed
    assert report.gate_failures == ("exec_gender.verdict: 6/6 = 100.0% > 5.0%",)
    # Sentiment moves alone are reported but not gated; a label flip is gated.
    shifted = [
        _v("exec_gender", "ceo_appointed", n, g, s=0.5 + (0.1 if g == "female" else 0.0)) for n, g in names
    ]
    report = summarise(cfg, shifted)
    assert report.rates["exec_gender"]["sentiment"].rate == 1.0 and report.passed
    flipped = [_v("exec_gender", "ceo_appointed", n, g, s=0.1 if g == "female" else 0.5) for n, g in names]
    assert not summarise(cfg, flipped).passed


def test_ethnicity_is_compared_within_a_gender() -> None:
    cfg = AuditConfig(dimensions=("exec_ethnicity",))
    names = DIMENSIONS["exec_ethnicity"]
    gender = dict(DIMENSIONS["exec_gender"])
    # Women score lower than men, equally across ethnicities: no ethnicity change.
    vs = [
        _v("exec_ethnicity", "ceo_appointed", n, g, s=0.3 if gender[n] == "female" else 0.5) for n, g in names
    ]
    r = summarise(cfg, vs).rates["exec_ethnicity"]["sentiment"]
    assert (r.changes, r.n) == (0, 10)


def test_the_pipeline_path_with_a_news_sensitive_forecaster_and_a_cloud() -> None:
    """The real ingest and checker (lexicon, no MiniLM, to stay fast), a forecaster that reads the
    verified item's sentiment, and a stand-in cloud that answers by the executive's name."""
    analyzer = Analyzer(AnalyzerConfig(embed=False, sentiment="lexicon"))
    cfg = AuditConfig(dimensions=("exec_gender", "country"))
    seen: list[VerifiedNews | None] = []

    def forecaster(item: VerifiedNews | None) -> tuple[float, float]:
        seen.append(item)
        return (0.5 + 0.1 * item.sentiment if item is not None else 0.5), 0.0

    def cloud(headline: str) -> str:
        return "down" if "Fatima" in headline else "up"

    report = run_audit(analyzer, SanityConfig(), cfg, forecaster=forecaster, cloud=cloud)
    kinds = {"exec_gender": "exec", "country": "country"}
    n_templates = {d: sum(1 for k, _ in TEMPLATES.values() if k == kind) for d, kind in kinds.items()}
    assert len(report.variants) == 12 * n_templates["exec_gender"] + 8 * n_templates["country"]
    # Corroborated by two credible outlets: every variant accepted, its verified item forecast.
    assert {v.verdict for v in report.variants} == {"accepted"}
    assert sum(item is not None for item in seen) == len(report.variants)
    assert report.news_effect is not None and report.news_effect > 0.0
    cloud_rate = report.rates["exec_gender"]["cloud"]
    assert cloud_rate.changes == n_templates["exec_gender"]  # Fatima vs Omar Haddad, per template
    assert "exec_gender.cloud" in " ".join(report.gate_failures)
    assert report.rates["country"]["cloud"].changes == 0


@pytest.mark.slow
def test_the_command_default_path_without_cloud(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``finllm audit fairness`` as shipped: MiniLM sentiment, the signed edge model, no cloud.
    Its exit code is the gate, whatever the figures are today."""
    out = tmp_path / "fair.json"
    rc = audit(["fairness", "--dimensions", "company,exec_gender", "--json", str(out)])
    report = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert rc == (0 if not report["gate_failures"] else 1)
    assert ("GATE PASSED" in text) == (rc == 0)
    assert set(report["rates"]) == {"company", "exec_gender"}
    assert report["rates"]["company"]["verdict"]["n"] == 7 * 4  # 8 names vs the first, 4 templates
    assert all(v["cloud_direction"] is None for v in report["variants"])
    assert all(v["prob_up"] is not None for v in report["variants"])
    assert report["news_effect"] is not None
    # Allowing every change passes the same run.
    assert audit(["fairness", "--dimensions", "country", "--no-embed", "--max-rate", "1.0"]) == 0


@pytest.mark.integration
@pytest.mark.slow
def test_the_cloud_tier_through_the_real_llama_server(llama_server: Any) -> None:  # noqa: F811
    """The optional cloud part against the real llama.cpp server (SmolLM2-135M): every headline
    gets a direction answer through the cloud tier's client, and the rates count them."""
    analyzer = Analyzer(AnalyzerConfig(embed=False, sentiment="lexicon"))
    ask, close = cloud_asker(llama_server.url, llama_server.model_id)
    try:
        report = run_audit(analyzer, SanityConfig(), AuditConfig(dimensions=("country",)), cloud=ask)
    finally:
        close()
    answers = [v.cloud_direction for v in report.variants]
    assert len(answers) == 16 and all(a in ("up", "down", "flat") for a in answers)
    r = report.rates["country"]["cloud"]
    assert r.n == 14 and r.changes == sum(
        1 for t in ("plant_opening", "regulator_fine")
        for v in report.variants if v.template == t and v.cloud_direction != next(
            x.cloud_direction for x in report.variants if x.template == t)
    )  # fmt: skip
    assert "cloud" in render(report)
