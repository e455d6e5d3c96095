"""Train/serve skew: the features the edge model is served in a real replay are the ones it was
trained on (same distribution per feature), for the daily indexes and the E-mini minute bars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adapters.features import FEATURE_NAMES
from adapters.inference.manifest import Manifest
from tools.commands import replay
from tools.train_edge import prepare


def served_features(dataset: str, out: Path) -> np.ndarray:
    """Run ``finllm replay --dataset`` with the edge reasoner's feature log on; its rows."""
    log = out / "features.jsonl"
    rc = replay.main(
        [
            "--dataset", dataset, "--out", str(out), "--forecaster", "edge", "--no-report",
            "--progress", "off", "--set", f'actors[edge].config.feature_log="{log}"',
        ]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(line)["features"] for line in log.read_text().splitlines()]
    return np.asarray([[r[n] for n in FEATURE_NAMES] for r in rows])


def skew_report(train: np.ndarray, served: np.ndarray) -> list[str]:
    """Features whose served distribution differs from training: a constant where training
    varies (or the reverse), a mean shifted by more than 0.25 training sd, or an sd off by
    more than 25%."""
    bad = []
    for j, name in enumerate(FEATURE_NAMES):
        t, s = train[:, j], served[:, j]
        tsd, ssd = float(np.std(t)), float(np.std(s))
        if (tsd < 1e-9) != (ssd < 1e-9):
            bad.append(f"{name}: sd train {tsd:.3g} served {ssd:.3g}")
        elif tsd >= 1e-9 and (
            abs(float(np.mean(s)) - float(np.mean(t))) > 0.25 * tsd or not 0.75 < ssd / tsd < 1.0 / 0.75
        ):
            bad.append(f"{name}: mean/sd train {np.mean(t):.3g}/{tsd:.3g} served {np.mean(s):.3g}/{ssd:.3g}")
        elif tsd < 1e-9 and abs(float(np.mean(s)) - float(np.mean(t))) > 1e-6:
            bad.append(f"{name}: constant {np.mean(t):.3g} in training, {np.mean(s):.3g} served")
    return bad


def test_skew_report_catches_a_flat_range() -> None:
    """The check itself: the issue's skew (range 0 when served, ~1.3 in training) is caught."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(500, len(FEATURE_NAMES)))
    served = train.copy()
    served[:, FEATURE_NAMES.index("range")] = 0.0
    served[:, FEATURE_NAMES.index("imbalance")] += 0.5
    bad = skew_report(train, served)
    assert [b.split(":")[0] for b in bad] == ["range", "imbalance"]
    assert skew_report(train, train) == []


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["sp500", "emini"])
def test_served_features_match_training(manifest: Manifest, dataset: str, tmp_path: Path) -> None:
    served = served_features(dataset, tmp_path)
    model_id = {"sp500": "spx-1d", "emini": "es-1m"}[dataset]
    prep = prepare(dataset, manifest.model(model_id).feature_config)  # the features it was trained on
    assert len(served) >= 0.95 * len(prep.x)  # every warm bar is forecast (none dead-lettered)
    assert skew_report(prep.x, served) == []


@pytest.mark.slow
def test_served_ticker_features_match_training(manifest: Manifest, tmp_path: Path) -> None:
    """The cross-sectional model's 524 tickers: the feed's bars give the features eq-1d trained on
    (the feed dead-letters 78 bars whose open lies outside high/low; training kept them)."""
    served = served_features("sp500-tickers", tmp_path)
    prep = prepare("eq-daily", manifest.model("eq-1d").feature_config)
    tickers = ~np.isin(prep.sym, np.asarray(["SPX", "NDX"], dtype=object))
    assert abs(len(served) - int(tickers.sum())) < 0.01 * len(served)
    assert skew_report(prep.x[tickers], served) == []
