"""Shadow and blue-green deployment: a candidate runs beside the serving model, never serves until
promoted, is scored on realised outcomes, promoted and rolled back through the edge's hot swap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
from actors.shadow import ShadowConfig, ShadowEvaluator, decide
from adapters.trust.signing import SIGNATURE_NAME, sign_manifest
from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine
from engine.mailbox import Mailbox
from engine.messages import Bar, Forecast, ModelDecision
from engine.testing import FakeClock, Probe, settle

# The swap logic is loop-independent; one loop keeps these replays cheap on a shared machine.
ONE_LOOP = pytest.mark.asyncio(loop_factories=["asyncio"])


@asynccontextmanager
async def _pipeline(shadow: ShadowConfig) -> AsyncIterator[tuple[Engine, Probe]]:
    engine = Engine(EngineConfig(engine=EngineSection(clock="sim")), clock=FakeClock(0))
    engine.add_actor(
        "edge",
        EdgeReasoner,
        EdgeReasonerConfig(model="es-1m", specialists=False),
        subscribe=["bar.>", "md.>", "news.verified", "control.model"],
        mailbox=Mailbox(100_000, "block", name="edge"),
    )
    engine.add_actor(
        "shadow",
        ShadowEvaluator,
        shadow,
        subscribe=["bar.>", "md.>", "news.verified", "forecast.>"],
        mailbox=Mailbox(100_000, "block", name="shadow"),
    )
    probe = Probe(engine.bus, "forecast.>", "control.model", "shadow.>")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        await settle(engine.runtime)
        yield engine, probe
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(task, 30)


async def _feed(engine: Engine, bars: list[Bar]) -> None:
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    for bar in bars:  # one bar at a time, the pipeline idle in between: a live stream's order
        clock.advance_to(bar.ts_event)
        engine.bus.publish(f"bar.{bar.symbol}", bar)
        await settle(engine.runtime)


def _forced(candidate: Path, record: Path, **kw: Any) -> ShadowConfig:
    """A policy that promotes at the first decision and rolls back at the next (margins of -100%)."""
    args: dict[str, Any] = dict(
        candidate_dir=str(candidate),
        candidate_role="teacher",
        min_samples=30,
        decide_every=10,
        window=1000,
        margin=-1.0,
        rollback_margin=-1.0,
        alpha=1.0,
        record_file=str(record),
    )
    args.update(kw)
    return ShadowConfig(**args)


@ONE_LOOP
async def test_promote_then_rollback_drops_and_reorders_no_event(
    es_bars: list[Bar], model_copy: Path, tmp_path: Path
) -> None:
    record = tmp_path / "shadow.jsonl"
    async with _pipeline(_forced(model_copy, record)) as (engine, probe):
        await _feed(engine, es_bars)
        out = probe.drain()
    forecasts = [m for m in out if isinstance(m, Forecast) and m.forecast_id.endswith("-shadow") is False]
    served = [f for f in forecasts if f.tier == "edge" and not f.forecast_id.endswith("-shadow")]
    shadow = [m for m in out if isinstance(m, Forecast) and m.forecast_id.endswith("-shadow")]
    decisions = [m for m in out if isinstance(m, ModelDecision)]
    warmup = 20
    # Every bar after the first and the warm-up is answered exactly once, in bar order, across
    # both swaps.
    expected = [b.seq for b in es_bars[1:]][warmup - 1 :]
    got = [f.basis_seq for f in served]
    assert len(got) == len(set(got))
    assert got == sorted(got)
    assert len(got) >= len(expected) - 1 and set(got) <= {b.seq for b in es_bars}
    counters = engine.metrics.snapshot()["counters"]
    assert counters["edge_forecasts_total{actor=edge}"] == len(served)
    # Served by the student, then the promoted teacher, then the student again: three contiguous runs.
    runs = [served[0].model_id]
    for f in served[1:]:
        if f.model_id != runs[-1]:
            runs.append(f.model_id)
    assert runs == ["es-1m", "es-1m.teacher", "es-1m"]
    actions = [d.action for d in decisions]
    assert actions == ["shadow", "promote", "rollback"]
    promote, rollback = decisions[1], decisions[2]
    assert promote.n == 30 and rollback.n == 30 and promote.candidate_version.startswith("es-1m.teacher@")
    assert promote.trace_id == "shadow-2" and promote.dm_pvalue < 1.0
    # The shadow never serves: its forecasts are on shadow.* only, with their own ids.
    assert shadow and not any(f.forecast_id.endswith("-shadow") for f in served)
    assert {f.model_id for f in shadow} == {"es-1m.teacher", "es-1m"}
    # The record holds the shadow forecasts and every decision.
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["action"] for x in lines if x["type"] == "model_decision"] == actions
    assert sum(x["type"] == "forecast" for x in lines) == len(shadow)


@ONE_LOOP
async def test_an_unsigned_candidate_is_rejected_and_nothing_changes(
    es_bars: list[Bar], model_copy: Path, tmp_path: Path
) -> None:
    sign_manifest(model_copy, Ed25519PrivateKey.generate(), "mallory")
    async with _pipeline(_forced(model_copy, tmp_path / "s.jsonl")) as (engine, probe):
        await _feed(engine, es_bars[:120])
        out = probe.drain()
    decisions = [m for m in out if isinstance(m, ModelDecision)]
    assert [d.action for d in decisions] == ["reject"]
    assert "not among" in decisions[0].reason
    assert {f.model_id for f in out if isinstance(f, Forecast)} == {"es-1m"}
    assert engine.metrics.snapshot()["counters"]["model_load_refused_total{reason=unknown_key}"] == 1


@ONE_LOOP
async def test_the_edge_refuses_a_tampered_promotion_and_keeps_serving(
    es_bars: list[Bar], model_copy: Path, tmp_path: Path
) -> None:
    """A promote naming a directory whose manifest was edited after the shadow verified it."""
    async with _pipeline(_forced(model_copy, tmp_path / "s.jsonl", auto_promote=False)) as (engine, probe):
        await _feed(engine, es_bars[:60])
        (model_copy / SIGNATURE_NAME).unlink()
        engine.bus.publish(
            "control.model",
            ModelDecision(
                decision_id="by-hand",
                ts_event=0,
                model_id="es-1m",
                action="promote",
                candidate_dir=str(model_copy),
                candidate_role="teacher",
            ),
        )
        await _feed(engine, es_bars[60:120])
        out = probe.drain()
    served = [f for f in out if isinstance(f, Forecast) and not f.forecast_id.endswith("-shadow")]
    assert {f.model_id for f in served} == {"es-1m"}
    counters = engine.metrics.snapshot()["counters"]
    assert counters["edge_promotions_refused_total{actor=edge}"] == 1
    assert counters["model_load_refused_total{reason=unsigned}"] == 1
    # auto_promote off: the policy's promotion is only proposed.
    holds = [d for d in out if isinstance(d, ModelDecision) and d.decision_id.startswith("shadow")]
    assert any("promotion proposed" in d.reason for d in holds)


def _cfg(**kw: Any) -> ShadowConfig:
    return ShadowConfig(
        candidate_dir="x", min_samples=50, margin=0.02, rollback_margin=0.02, alpha=0.05, **kw
    )


def test_policy_promotes_only_when_better_by_the_margin_and_significant() -> None:
    rng = np.random.default_rng(3)
    base = rng.gamma(2.0, 1.0, 400)
    noise = rng.normal(0.0, 0.05, 400)
    better = base * 0.9 + noise
    assert decide("trial", base, better, _cfg()).action == "promote"
    slightly = base * 0.995 + noise  # better, but by less than the 2% margin
    assert decide("trial", base, slightly, _cfg()).action == "hold"
    worse = base * 1.1 + noise
    assert decide("trial", base, worse, _cfg()).action == "reject"
    d = decide("trial", base[:20], better[:20], _cfg())
    assert d.action == "hold" and "20 of 50" in d.reason
    # Indistinguishable: noise only, no decision either way.
    same = base + rng.normal(0.0, 0.5, 400)
    assert decide("trial", base, same, _cfg()).action == "hold"


def test_policy_rolls_back_a_regression_after_promotion() -> None:
    rng = np.random.default_rng(4)
    incumbent = rng.gamma(2.0, 1.0, 300)
    regressed = incumbent * 1.08 + rng.normal(0.0, 0.05, 300)
    d = decide("serving", regressed, incumbent, _cfg())
    assert d.action == "rollback" and d.loss_candidate > d.loss_serving
    fine = incumbent * 0.97 + rng.normal(0.0, 0.05, 300)
    assert decide("serving", fine, incumbent, _cfg()).action == "hold"


@ONE_LOOP
async def test_degraded_mode_skips_shadow_forecasts_but_keeps_the_features_warm(
    es_bars: list[Bar], model_copy: Path, tmp_path: Path
) -> None:
    from engine.messages import Mode

    cfg = _forced(model_copy, tmp_path / "s.jsonl", min_samples=1000, window=1000)
    async with _pipeline(cfg) as (engine, probe):
        await _feed(engine, es_bars[:100])
        before = [m for m in probe.drain() if isinstance(m, Forecast) and m.forecast_id.endswith("-shadow")]
        engine.runtime.mode = Mode.DEGRADED
        await _feed(engine, es_bars[100:150])
        during = [m for m in probe.drain() if isinstance(m, Forecast) and m.forecast_id.endswith("-shadow")]
        engine.runtime.mode = Mode.NORMAL
        await _feed(engine, es_bars[150:200])
        after = [m for m in probe.drain() if isinstance(m, Forecast) and m.forecast_id.endswith("-shadow")]
        skipped = engine.metrics.counter("shadow_skipped_total", actor="shadow").value
    assert before and not during and skipped == 50
    # Warm at once after the pressure ends: every one of the next 50 bars gets a shadow forecast.
    assert len(after) == 50


@ONE_LOOP
async def test_the_shadow_gates_like_the_edge_so_a_copy_of_the_serving_model_ties(
    es_bars: list[Bar], model_copy: Path, tmp_path: Path
) -> None:
    # The serving network on trial against itself: both forecasts pass through a serve-time gate
    # of the same config fed the same bars, so each pair is the same forecast and the policy holds.
    # (Against the raw network the gated incumbent won on its calibration alone.)
    cfg = ShadowConfig(
        candidate_dir=str(model_copy), candidate_role="student", min_samples=30, decide_every=10
    )
    async with _pipeline(cfg) as (engine, probe):
        await _feed(engine, es_bars)
        out = probe.drain()
    served = {f.ts_event: f for f in out if isinstance(f, Forecast) and not f.forecast_id.endswith("-shadow")}
    shadow = [f for f in out if isinstance(f, Forecast) and f.forecast_id.endswith("-shadow")]
    assert len(shadow) > 200
    pairs = [(served[f.ts_event], f) for f in shadow if f.ts_event in served]
    assert len(pairs) >= len(shadow) - 1
    for srv, sh in pairs:
        assert sh.volatility == pytest.approx(srv.volatility, rel=1e-5)
        assert sh.quantiles == pytest.approx(srv.quantiles, rel=1e-5, abs=1e-12)
    # ...and the edge's gate did change what was served (blends), so a raw shadow would not match
    counters = engine.metrics.snapshot()["counters"]
    gate = {k: v for k, v in counters.items() if k.startswith("edge_gate_served_total")}
    blended = {k: v for k, v in gate.items() if "model" not in k}
    assert sum(blended.values()) > 0, counters
    decisions = [m for m in out if isinstance(m, ModelDecision)]
    assert decisions[0].action == "shadow"
    assert all(d.action == "hold" for d in decisions[1:]) and len(decisions) > 3
    assert all(d.loss_candidate == pytest.approx(d.loss_serving, rel=1e-5) for d in decisions[1:])
