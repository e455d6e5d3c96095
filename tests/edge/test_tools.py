"""The training script and the benchmark run end to end (tiny settings) and say what they should."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.edge_reasoner import EdgeReasonerConfig
from adapters.datasets import load_sp500
from adapters.inference.manifest import load_manifest
from adapters.inference.model import load_edge_model
from adapters.trust.signing import TrustStore, public_key_entry, sign_manifest
from engine.config import convert, load_config
from tools import bench_edge
from tools.train_edge import TrainConfig, prepare, train_dataset, write_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_splits_are_chronological_and_aligned() -> None:
    prep = prepare("sp500")
    assert prep.train.stop == prep.val.start and prep.val.stop == prep.test.start == len(prep.y) - 1257
    assert np.all(np.diff(prep.ts) > 0)
    assert prep.period(prep.test)["first_basis"].startswith("2014-01-02")
    assert prep.period(prep.train)["last_basis"] < "2011"
    # y[i] is the return of the bar after row i's bar; the scale is the GJR anchor's volatility.
    closes = load_sp500().price
    ts = load_sp500().ts_ns
    i = int(np.searchsorted(ts, prep.ts[100]))
    assert prep.y[100] == pytest.approx(math.log(closes[i + 1] / closes[i]))
    assert np.allclose(np.exp(prep.x[:, 0]), prep.scale, rtol=1e-6)
    assert prep.feature_config.anchor == "gjr" and prep.feature_config.gjr_gamma > 0.0


def test_pooled_daily_set_withholds_tickers_from_training() -> None:
    prep = prepare("eq-daily")
    held = set(prep.withheld)
    assert len(held) == 52
    assert not held & set(prep.sym[prep.train]) and held == set(prep.sym[prep.test]) - {"SPX", "NDX"}
    assert set(prep.sym[prep.val]) == {"SPX", "NDX"}  # validation (the gate): the indexes, 2011-13


@pytest.mark.slow
def test_train_tiny_model_writes_a_verifiable_manifest(tmp_path: Path) -> None:
    cfg = TrainConfig(
        max_epochs=2,
        patience=1,
        teacher_hidden=(16,),
        teacher_members=2,
        student_hidden=(8,),
    )
    lines: list[str] = []
    entry = train_dataset("nasdaq", tmp_path, cfg, log=lines.append)
    write_manifest(tmp_path, {"ndx-1d": entry}, cfg)
    key = Ed25519PrivateKey.generate()  # models load only signed by a trusted key
    sign_manifest(tmp_path, key, "test")
    manifest = load_manifest(tmp_path, trust=TrustStore(keys=(public_key_entry(key, "test"),)))
    spec = manifest.model("ndx-1d")
    assert spec.student.hidden == (8,) and spec.teacher.hidden == (16,)
    assert spec.teacher.members == 2 and spec.student.members == 1
    # The torch backend rebuilds the ensemble teacher from its state_dict and agrees with ONNX.
    x = np.tile(np.asarray(spec.feature_mean, np.float32), (4, 1))
    a = load_edge_model(manifest, "ndx-1d", role="teacher").predict_raw(x)
    b = load_edge_model(manifest, "ndx-1d", role="teacher", backend="torch").predict_raw(x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    for role in ("student", "teacher"):
        val = spec.metrics["validation"][role]
        assert val["gated"]["n"] == 754 and 0.0 < val["anchor_only"]["crps_ratio_vs_anchor"] < 2.0
        # The gate never picks a weight that does worse on validation than the anchor alone.
        gated, anchor = val["gated"], val["anchor_only"]
        score = gated["crps_ratio_vs_anchor"] + gated["qlike_norm_ratio_vs_anchor"]
        assert score <= anchor["crps_ratio_vs_anchor"] + anchor["qlike_norm_ratio_vs_anchor"] + 1e-9
    model = load_edge_model(manifest, "ndx-1d")
    p = model.predict(np.tile(np.asarray(spec.feature_mean, np.float32), (3, 1)))
    assert np.all(np.diff(p.quantiles, axis=1) >= 0) and np.all(p.volatility > 0)
    assert any("teacher" in line for line in lines)


@pytest.mark.slow
def test_bench_emits_the_design_figures(capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench_edge.main(
        [
            "--json",
            "--iters",
            "50",
            "--batches",
            "1,8",
            "--e2e-bars",
            "120",
            "--tick-trades",
            "4000",
            "--datasets",
            "nasdaq",
        ]
    )
    assert rc == 0
    figs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    names = {f["figure"] for f in figs}
    assert {"latency_p50_us", "latency_p99_us", "throughput_rows_per_s"} <= names
    assert {"e2e_latency_p50_us", "e2e_latency_p99_us"} <= names
    assert {"tick_to_forecast_p50_us", "tick_to_forecast_p99_us"} <= names
    tick = next(f for f in figs if f["figure"] == "tick_to_forecast_p99_us")
    assert tick["n"] >= 10 and tick["value"] > 0
    quality = {
        "crps",
        "qlike_norm",
        "crps_ratio_vs_rw",
        "crps_ratio_vs_ewma",
        "crps_ratio_vs_garch",
        "crps_ratio_vs_gjr",
        "qlike_norm_ratio_vs_garch",
        "qlike_norm_ratio_vs_gjr",
        "qlike_norm_ratio_vs_ewma",
        "dm_pvalue_vs_garch",
        "coverage_80",
        "coverage_90",
        "hit_rate",
        "pt_pvalue",
    }
    assert quality <= names
    lat = [f for f in figs if f["figure"] == "throughput_rows_per_s"]
    assert {(f["backend"], f["batch"]) for f in lat} >= {("onnxruntime", 1), ("onnxruntime", 8), ("torch", 1)}
    for f in figs:
        assert f["bench"] == "edge"
        assert f["value"] is None or math.isfinite(f["value"])
        if f["value"] is None:
            assert f["note"].startswith("undefined")
    # Quality comes from the forecasts a real replay wrote over the held-out period.
    crps = next(f for f in figs if f["figure"] == "crps")
    assert crps["baseline"] == "garch" and crps["test_from"].startswith("2014-01-02")
    assert crps["source"].startswith("forecasts.jsonl of finllm replay") and crps["n"] > 1000
    ratio = next(f for f in figs if f["figure"] == "qlike_norm_ratio_vs_garch")
    assert 0.5 < ratio["value"] < 2.0 and ratio["vs"] == "garch"
    # What the serve-time gate served in that replay, from its metrics: shares that sum to 1.
    shares = {f["figure"]: f["value"] for f in figs if f["figure"].startswith("gate_served_share_")}
    assert set(shares) == {f"gate_served_share_{k}" for k in ("model", "blend", "baseline")}
    assert math.isclose(sum(shares.values()), 1.0)


def test_example_config_converts() -> None:
    cfg = load_config(ROOT / "config" / "edge.toml")
    (spec,) = cfg.actors
    assert spec.cls == "actors.edge_reasoner:EdgeReasoner"
    conv = convert(spec.config, EdgeReasonerConfig)
    assert conv.model == "es-1m" and conv.flush == "chunk"
    with pytest.raises(ValueError, match="max_batch"):
        EdgeReasonerConfig(max_batch=0)
