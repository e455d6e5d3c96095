"""finllm train on a user's file: bad input is refused with the column or row named; a good file
trains, is signed, served by a real replay and scored on its held-out period; --model serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.datasets import package_file
from adapters.inference.manifest import load_manifest
from adapters.trust.signing import TrustStore, generate_key, public_key_entry
from tools.commands import replay, train

COLS = "ts=Date,ts_format=%m/%d/%Y,open=Open,high=High,low=Low,close=Close,volume=Volume,default_symbol=SPX"


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return pd.read_csv(package_file("arch", "data/sp500/sp500.csv.gz"))


def _run(tmp: Path, df: pd.DataFrame, columns: str = COLS, *extra: str) -> int:
    f = tmp / "bars.csv"
    df.to_csv(f, index=False)
    return train.main(["--file", str(f), "--columns", columns, "--out", str(tmp / "m"), *extra])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.drop(columns=["High"]), "missing columns ['High']"),
        (
            lambda d: d.assign(Low=d["Low"].astype(str).where(d.index != 7, "abc")),
            "non-numeric low column 'Low'",
        ),
        (
            lambda d: d.assign(Low=d["Low"].astype(str).where(d.index != 7, "n/a")),
            "column 'Low' (low): 1 empty, non-numeric or non-positive value(s), first at data row 8",
        ),
        (lambda d: d.assign(Close=d["Close"].where(d.index != 41)), "column 'Close' (close): 1 empty"),
        (lambda d: d.iloc[[*range(0, 100), 101, 100, *range(102, 600)]], "not increasing at data row 102"),
        (lambda d: d.iloc[:120], "120 bars; training needs at least 300"),
        (lambda d: d.assign(High=d["High"].where(d.index != 9, 1.0)), "row 10: high 1.0 below low"),
    ],
)
def test_bad_files_are_refused_naming_the_column_or_row(
    tmp_path: Path, spx: pd.DataFrame, damage: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(damage)
    assert _run(tmp_path, damage(spx.iloc[:600].copy())) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "m" / "manifest.json").exists()


@pytest.mark.slow
def test_a_file_trains_signs_scores_and_serves(tmp_path: Path, spx: pd.DataFrame) -> None:
    key_path = tmp_path / "k.pem"
    key = generate_key(key_path)
    assert _run(tmp_path, spx, COLS, "--key", str(key_path), "--max-epochs", "2", "--id", "my-spx") == 0
    model = tmp_path / "m"
    manifest = load_manifest(model, trust=TrustStore(keys=(public_key_entry(key, "finllm-train"),)))
    spec = manifest.model("my-spx")
    assert spec.horizon == "1d" and spec.feature_config.anchor == "gjr"
    held = spec.metrics["held_out"]
    assert held["n"] > 900 and 0.5 < held["qlike_norm_ratio_vs_garch"] < 2.0
    assert 0.0 <= held["coverage_90"] <= 1.0
    # The model serves the file through finllm replay --model DIR (its key trusted).
    out = tmp_path / "run"
    keys = tmp_path / "m.trusted_keys.toml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINLLM_TRUSTED_KEYS", str(keys))
        argv = ["--file", str(tmp_path / "bars.csv"), "--columns", COLS, "--model", str(model)]
        argv += ["--out", str(out), "--no-report", "--progress", "off"]
        rc = replay.main(argv)  # the directory holds one model: served without naming its id
    assert rc == 0
    lines = (out / "forecasts.jsonl").read_text().splitlines()
    assert len(lines) > 4900 and json.loads(lines[-1])["model_id"] == "my-spx"
    # An untrusted key is refused.
    other = Ed25519PrivateKey.generate()
    with pytest.raises(Exception, match=r"unknown|not among|trusted"):
        load_manifest(model, trust=TrustStore(keys=(public_key_entry(other, "x"),)))


@pytest.mark.slow
def test_a_bundled_dataset_trains_and_is_scored_on_its_test_period(tmp_path: Path) -> None:
    key_path = tmp_path / "k.pem"
    key = generate_key(key_path)
    rc = train.main(
        ["--dataset", "nasdaq", "--out", str(tmp_path / "m"), "--key", str(key_path), "--max-epochs", "1"]
    )
    assert rc == 0
    trust = TrustStore(keys=(public_key_entry(key, "finllm-train"),))
    spec = load_manifest(tmp_path / "m", trust=trust).model("ndx-1d")
    held = spec.metrics["held_out"]
    # the 2014-18 test period, from finllm replay --dataset nasdaq (its 2 zero-volume days included)
    assert held["n"] == 1257
    assert 0.5 < held["crps_ratio_vs_garch"] < 1.5 and "dm_pvalue_vs_gjr" in held
