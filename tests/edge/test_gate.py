"""The serve-time gate (adapters/inference/gate.py) on synthetic returns, and in the actor."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from actors.edge_reasoner import EdgeReasonerConfig
from adapters import scoring
from adapters.features import FEATURE_NAMES, FeatureRow
from adapters.inference.gate import GateConfig, GateDecision, VarianceGate, normal_quantiles
from engine.messages import Bar, Forecast, ReasoningTrace
from tests.edge.conftest import running_edge

LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _row(
    n: int, ret: float, anchor_var: float, ewma_var: float, range_var: float = 0.0, rv_var: float = 0.0
) -> FeatureRow:
    return FeatureRow(
        "X", n, n, 100.0, math.sqrt(anchor_var), True, np.zeros(len(FEATURE_NAMES), np.float32),
        ret=ret, ewma_var=ewma_var, range_var=range_var, rv_var=rv_var, bar_no=n,
    )  # fmt: skip


def _run(
    model_scale: float, anchor_scale: float, n: int = 1500, **cfg: object
) -> tuple[list[GateDecision], np.ndarray]:
    """Returns with a true variance path; the model's forecast is the truth times model_scale,
    the anchor's the truth times anchor_scale, EWMA a plain EWMA of the returns."""
    rng = np.random.default_rng(3)
    true_var = 1e-4 * np.exp(np.sin(np.arange(n + 1) / 40.0))
    r = rng.standard_normal(n + 1) * np.sqrt(true_var)
    base: dict[str, object] = {
        "half_life": 250.0,
        "eta": 0.5,
        "calibrate_half_life": 0.0,
        "prior_model": 0.9,
        "interval_rate": 0.0,
    }
    g = VarianceGate(GateConfig(baselines=("anchor", "ewma"), **{**base, **cfg}), LEVELS)  # type: ignore[arg-type]
    z = normal_quantiles(LEVELS)
    ewma = 1e-4
    out = []
    for t in range(1, n + 1):
        ewma = 0.94 * ewma + 0.06 * r[t - 1] ** 2
        # row t: bar t has closed with return r[t-1]; the forecasts are for r[t].
        row = _row(t, float(r[t - 1]), anchor_scale * true_var[t], ewma)
        mv = model_scale * true_var[t]
        out.append(g.decide(row, math.sqrt(mv) * z * 1.1, math.sqrt(mv)))
    return out, r[1:]


def _qlike(decisions: list[GateDecision], r: np.ndarray, lo: int) -> float:
    h = np.asarray([d.variance for d in decisions[lo:]])
    return float(np.mean(scoring.qlike_norm(r[lo:] ** 2, h)))


def test_a_bad_model_is_gated_to_the_baseline() -> None:
    out, r = _run(model_scale=0.05, anchor_scale=1.0)
    assert out[5].model_weight == pytest.approx(0.9)  # the prior before min_scored returns
    late = [d.model_weight for d in out[300:]]
    assert max(late) < 0.01
    assert out[-1].leader == "anchor"
    # Served close to the best candidate (the anchor is the truth here), far from the model.
    truth = 1e-4 * np.exp(np.sin(np.arange(1, len(r) + 1) / 40.0))
    best = float(np.mean(scoring.qlike_norm(r[300:] ** 2, truth[300:])))
    model = float(np.mean(scoring.qlike_norm(r[300:] ** 2, 0.05 * truth[300:])))
    served = _qlike(out, r, 300)
    assert served < best * 1.05 < model
    assert "served the baseline" in out[-1].explain()


def test_a_good_model_keeps_its_weight_and_its_quantiles() -> None:
    out, _ = _run(model_scale=1.0, anchor_scale=3.0)
    assert min(d.model_weight for d in out[300:]) > 0.9
    d = out[-1]
    z = normal_quantiles(LEVELS)
    if d.model_weight == 1.0:
        assert np.allclose(d.quantiles, math.sqrt(d.variance) * z * 1.1)


def test_quantiles_follow_the_served_variance() -> None:
    out, _ = _run(model_scale=0.3, anchor_scale=1.0, eta=0.05)
    z = normal_quantiles(LEVELS)
    blends = [d for d in out if 0.05 < d.model_weight < 0.95]
    assert blends
    for d in blends:
        shape = d.model_weight * (z * 1.1) + (1.0 - d.model_weight) * z
        assert np.allclose(d.quantiles, math.sqrt(d.variance) * shape, rtol=1e-9)
        assert np.all(np.diff(d.quantiles) > 0)
        assert "served a blend" in d.explain()
    full = [d for d in out if d.model_weight <= 1e-12]
    for d in full:
        assert np.allclose(d.quantiles, math.sqrt(d.variance) * z)


def test_calibration_rescales_a_biased_model() -> None:
    out, r = _run(model_scale=0.4, anchor_scale=3.0, n=3000, calibrate_half_life=500.0)
    truth = 1e-4 * np.exp(np.sin(np.arange(1, len(r) + 1) / 40.0))
    ratio = np.asarray([d.variance for d in out[1500:]]) / truth[1500:]
    # The served variance is the truth's scale again (the model's path, times about 1 / 0.4).
    assert 0.8 < float(np.median(ratio)) < 1.25
    uncal, _ = _run(model_scale=0.4, anchor_scale=3.0, n=3000)
    assert _qlike(out, r, 1500) < _qlike(uncal, r, 1500)


def test_only_the_next_bar_and_nonzero_returns_score_a_forecast() -> None:
    g = VarianceGate(GateConfig(baselines=("anchor",), min_scored=0, calibrate_half_life=0.0), LEVELS)
    z = normal_quantiles(LEVELS)
    g.decide(_row(1, 0.01, 1e-4, 1e-4), z * 0.01, 0.01)
    g.decide(_row(2, 0.0, 1e-4, 1e-4), z * 0.01, 0.01)  # zero return: not scored
    assert g.scored == 0
    g.decide(_row(4, 0.02, 1e-4, 1e-4), z * 0.01, 0.01)  # bar 3 never forecast: a gap
    assert g.scored == 0
    g.decide(_row(5, 0.02, 1e-4, 1e-4), z * 0.01, 0.01)
    assert g.scored == 1


def test_a_missing_baseline_serves_the_model() -> None:
    g = VarianceGate(GateConfig(baselines=("range",)), LEVELS)
    z = normal_quantiles(LEVELS)
    d = g.decide(_row(1, 0.01, 1e-4, 1e-4, range_var=0.0), z * 0.01, 0.01)
    assert d.names == ("model",) and d.variance == pytest.approx(1e-4)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="baselines"):
        GateConfig(baselines=("garch99",))
    with pytest.raises(ValueError):
        GateConfig(half_life=0.0)


def _split(out: list[object]) -> tuple[list[Forecast], list[ReasoningTrace]]:
    return [m for m in out if isinstance(m, Forecast)], [m for m in out if isinstance(m, ReasoningTrace)]


@pytest.mark.asyncio
async def test_actor_serves_the_gate_and_says_why(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m", gate=GateConfig(enabled=False))) as run:
        await run.feed(es_bars)
        raw, _ = _split(run.outputs())
    async with running_edge(EdgeReasonerConfig(model="es-1m", gate=GateConfig(min_scored=5))) as run:
        await run.feed(es_bars)
        gated, traces = _split(run.outputs())
    counters = run.summary.metrics["counters"] if run.summary else {}
    assert [f.forecast_id for f in raw] == [f.forecast_id for f in gated]
    changed = [g for f, g in zip(raw, gated, strict=True) if g.volatility != f.volatility]
    assert changed  # the gate moved some variances away from the model's
    for f, g in zip(raw, gated, strict=True):
        assert g.direction_prob == f.direction_prob
        assert g.point == g.quantiles[5] and all(np.diff(g.quantiles) > 0)
    served = sum(v for k, v in counters.items() if k.startswith("edge_gate_served_total"))
    assert served == len(gated)
    assert traces and all("gate served" in t.summary for t in traces)
    assert any("QLIKE over" in t.summary for t in traces)


@pytest.mark.asyncio
async def test_gated_replay_is_byte_identical(es_bars: list[Bar]) -> None:
    blobs = []
    for chunk in (7, 50):
        async with running_edge(EdgeReasonerConfig(model="es-1m", gate=GateConfig(min_scored=5))) as run:
            await run.feed(es_bars, chunk=chunk)
            f, t = _split(run.outputs())
            blobs.append((msgspec.msgpack.encode(f), msgspec.msgpack.encode(t)))
    assert blobs[0] == blobs[1]


def test_an_absent_baseline_gets_no_weight_and_no_credit() -> None:
    g = VarianceGate(GateConfig(baselines=("anchor", "rv"), min_scored=0, calibrate_half_life=0.0), LEVELS)
    z = normal_quantiles(LEVELS)
    rng = np.random.default_rng(5)
    for n in range(1, 400):
        # No trades: rv_var stays 0; the anchor is right, the model too low.
        d = g.decide(_row(n, float(rng.standard_normal() * 0.01), 1e-4, 1e-4), z * 0.002, 0.002)
        assert d.names == ("model", "anchor")
    assert d.leader == "anchor"
    # Trades appear: the rv baseline enters on par with what was served, not ahead of it.
    d = g.decide(_row(400, 0.01, 1e-4, 1e-4, rv_var=1e-6), z * 0.002, 0.002)
    assert d.names == ("model", "anchor", "rv")
    assert d.weights[1] > d.weights[2]


def test_features_keep_a_within_bar_realised_variance(es_bars: list[Bar]) -> None:
    from adapters.features import FeatureConfig, FeatureEngine
    from engine.messages import Trade

    eng, bare = FeatureEngine(FeatureConfig()), FeatureEngine(FeatureConfig())
    rows, bare_rows = [], []
    for b in es_bars[:60]:
        # Three prints after each bar (they count towards the next bar's realised variance).
        rows.append(eng.on_bar(b))
        bare_rows.append(bare.on_bar(b))
        for px in (b.open, b.high, b.close):
            eng.on_trade(Trade(symbol=b.symbol, ts_event=b.ts_event, price=px, size=1.0))
    assert all(r is None or r.rv_var == 0.0 for r in bare_rows)  # bars only: no rv baseline
    assert rows[-1] is not None and rows[-1].rv_var > 0.0
    # The model inputs do not depend on it.
    assert np.array_equal(rows[-1].values, bare_rows[-1].values)  # type: ignore[union-attr]


def test_interval_calibration_brings_coverage_to_nominal() -> None:
    rng = np.random.default_rng(11)
    z = normal_quantiles(LEVELS)
    cover = {}
    for rate in (0.0, 0.01):
        g = VarianceGate(GateConfig(baselines=(), calibrate_half_life=0.0, interval_rate=rate), LEVELS)
        inside80 = []
        prev = None
        for n in range(1, 4001):
            r = float(rng.standard_t(4) * 0.01)  # fat tails; the model's quantiles are 40% too narrow
            if prev is not None:
                inside80.append(prev[1] <= r <= prev[9])  # levels 0.1 and 0.9
            prev = g.decide(_row(n, r, 1e-4, 1e-4), z * 0.006, 0.01).quantiles
        cover[rate] = float(np.mean(inside80[1000:]))
    assert cover[0.0] < 0.72
    assert abs(cover[0.01] - 0.8) < 0.03


@pytest.mark.asyncio
async def test_no_look_ahead_a_forecast_is_the_same_whatever_follows(es_bars: list[Bar]) -> None:
    # The gate learns from returns as they arrive: cutting the feed after bar 150 must leave every
    # forecast made up to there byte-identical (served variance, quantiles, all of it).
    cfg = EdgeReasonerConfig(model="es-1m", gate=GateConfig(min_scored=5))
    runs = []
    for n in (150, 300):
        async with running_edge(cfg) as run:
            await run.feed(es_bars[:n], chunk=10)
            runs.append({f.forecast_id: f for f in _split(run.outputs())[0]})
    short, full = runs
    assert len(short) > 100
    assert all(full[k] == f for k, f in short.items())
    # ...and the gate did act on them (not the network's variance alone).
    async with running_edge(EdgeReasonerConfig(model="es-1m", gate=GateConfig(enabled=False))) as run:
        await run.feed(es_bars[:150], chunk=10)
        raw = {f.forecast_id: f for f in _split(run.outputs())[0]}
    assert sum(raw[k].volatility != f.volatility for k, f in short.items()) > 50


@pytest.mark.asyncio
async def test_a_new_network_starts_the_gate_afresh(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        await run.feed(es_bars[:150])
        served = run.actor._served["es-1m"]
        before = served.gates["ES"].scored
        run.actor.reset_gate("es-1m")  # what a promote / rollback does
        assert before > 50 and not served.gates
        await run.feed(es_bars[150:200])
        assert 0 < served.gates["ES"].scored < before
        n = len(_split(run.outputs())[0])
    assert n == 200 - 1 - 20
