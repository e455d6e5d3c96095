"""``finllm models`` and the keyed fingerprint, on private copies of the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adapters.inference.manifest import load_manifest
from adapters.inference.model import load_edge_model
from adapters.trust.fingerprint import DEFAULT_STEP, detect, embed, onnx_weights
from adapters.trust.signing import SIGNATURE_NAME, generate_key, public_key_entry
from tools.commands.models import fingerprint_secret
from tools.commands.models import main as models


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A throwaway signing key, trusted through $FINLLM_TRUSTED_KEYS, and a second, untrusted one."""
    pem = tmp_path / "keys" / "dev.pem"
    e = public_key_entry(generate_key(pem), "dev")
    trusted = tmp_path / "keys" / "trusted.toml"
    trusted.write_text(f'[[keys]]\nkey_id = "{e.key_id}"\nname = "dev"\npublic_key = "{e.public_key}"\n')
    monkeypatch.setenv("FINLLM_TRUSTED_KEYS", str(trusted))
    other = tmp_path / "keys" / "other.pem"
    generate_key(other)
    return pem, other


def test_sign_verify_list(
    model_copy: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pem, other = keys
    assert models(["verify", "--dir", str(model_copy)]) == 0  # the release signature travels with the copy
    assert models(["sign", "--dir", str(model_copy), "--key", str(other)]) == 0
    assert models(["verify", "--dir", str(model_copy)]) == 1
    assert "REFUSED (unknown_key)" in capsys.readouterr().err
    assert models(["sign", "--dir", str(model_copy), "--key", str(pem), "--signer", "dev"]) == 0
    assert models(["verify", "--dir", str(model_copy)]) == 0
    assert models(["list", "--dir", str(model_copy), "--json"]) == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("{") :])
    assert listed["signature"].startswith("signed by dev") and {"es-1m"} <= {
        m["model_id"] for m in listed["models"]
    }
    # What each model serves: its symbols and the bar length it was trained on (refuses others).
    serves = {m["model_id"]: m["serves"] for m in listed["models"]}
    assert serves["es-1m"] == {"symbols": "ES", "bars": "time 1m"}
    assert serves["eq-1d"] == {"symbols": "any", "bars": "time 1d"}
    # Never sign files that fail their hashes.
    target = model_copy / "es-1m.student.onnx"
    data = bytearray(target.read_bytes())
    data[333] ^= 1
    target.write_bytes(bytes(data))
    before = (model_copy / SIGNATURE_NAME).read_text()
    assert models(["sign", "--dir", str(model_copy), "--key", str(pem)]) == 1
    assert (model_copy / SIGNATURE_NAME).read_text() == before
    assert models(["keygen", "--out", str(pem)]) == 2  # refuses to overwrite a key


def test_promote_and_rollback_directories(
    model_copy: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem, other = keys
    serving = tmp_path / "serving" / "edge"
    serving.parent.mkdir()
    import shutil

    shutil.copytree(model_copy, serving)
    # An untrusted candidate is refused and nothing moves.
    assert models(["sign", "--dir", str(model_copy), "--key", str(other)]) == 0
    assert models(["promote", "--candidate", str(model_copy), "--dir", str(serving)]) == 1
    assert not serving.with_name("edge.previous").exists()
    assert models(["sign", "--dir", str(model_copy), "--key", str(pem)]) == 0
    capsys.readouterr()
    assert models(["promote", "--candidate", str(model_copy), "--dir", str(serving)]) == 0
    decision = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert decision["type"] == "model_decision" and decision["action"] == "promote"
    assert load_manifest(serving).signature.signer == "dev"  # type: ignore[union-attr]
    assert load_manifest(serving.with_name("edge.previous")).signature.signer == "finllm-release"  # type: ignore[union-attr]
    assert models(["rollback", "--dir", str(serving)]) == 0
    assert load_manifest(serving).signature.signer == "finllm-release"  # type: ignore[union-attr]


def test_fingerprint_embed_survives_export_and_is_detected_only_with_its_key(
    model_copy: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pem, other = keys
    original = load_manifest(model_copy)
    before = onnx_weights(original.model("es-1m").student.onnx)
    assert (
        models(["fingerprint", "embed", "--key", str(pem), "--dir", str(model_copy), "--model", "es-1m"]) == 0
    )
    # Weights changed: the manifest's hashes were rewritten, and its signature no longer holds.
    with pytest.raises(Exception, match="changed after signing"):
        load_manifest(model_copy)
    assert models(["sign", "--dir", str(model_copy), "--key", str(pem)]) == 0
    marked = load_manifest(model_copy)
    after = onnx_weights(marked.model("es-1m").student.onnx)
    secret = fingerprint_secret(pem)
    hit = detect(after, secret)
    assert hit.detected and hit.match_rate >= 0.99 and hit.checked > 500
    assert not detect(before, secret).detected  # the unkeyed model
    assert not detect(after, fingerprint_secret(other)).detected  # another key
    # Pinned news inputs stay exactly 0; every weight moved by at most half a step.
    w0, w1 = before["body.0.weight"], after["body.0.weight"]
    assert np.array_equal(w0 == 0.0, w1 == 0.0)
    for name in ("body.0.weight", "body.2.weight", "head.weight"):
        assert float(np.max(np.abs(before[name] - after[name]))) <= DEFAULT_STEP / 2 + 1e-9
    # The outputs barely move: quantiles within 1% of a volatility on rows around the training means.
    rng = np.random.default_rng(0)
    spec = original.model("es-1m")
    x = (np.asarray(spec.feature_mean) + rng.normal(0.0, 0.5, (256, len(spec.feature_mean)))).astype(
        np.float32
    )
    news = [i for i, v in enumerate(w0.T) if not v.any()]
    x[:, news] = 0.0
    a = load_edge_model(original, "es-1m").predict_raw(x)
    b = load_edge_model(marked, "es-1m").predict_raw(x)
    k = len(spec.quantile_levels)
    assert float(np.max(np.abs(a[:, : k + 1] - b[:, : k + 1]) / a[:, k : k + 1])) < 0.01
    assert (
        models(["fingerprint", "detect", "--key", str(pem), "--dir", str(model_copy), "--model", "es-1m"])
        == 0
    )
    assert "DETECTED" in capsys.readouterr().out
    assert (
        models(["fingerprint", "detect", "--key", str(other), "--dir", str(model_copy), "--model", "es-1m"])
        == 1
    )


def test_fingerprint_positions_depend_on_the_key_and_names_only() -> None:
    rng = np.random.default_rng(1)
    state = {
        "l.weight": rng.normal(0.0, 0.3, (40, 30)).astype(np.float32),
        "l.bias": np.zeros(40, np.float32),
    }
    key = b"k" * 32
    marked = embed(state, key)
    assert np.array_equal(marked["l.bias"], state["l.bias"])
    assert detect(marked, key).detected
    # Noise well under a quarter step keeps every mark; noise of a step erases them.
    noisy = {"l.weight": marked["l.weight"] + rng.normal(0.0, DEFAULT_STEP / 40, (40, 30)).astype(np.float32)}
    assert detect(noisy, key).match_rate >= 0.99  # a weight 1.5-2 steps from 0 counts unmarked
    erased = {"l.weight": marked["l.weight"] + rng.normal(0.0, DEFAULT_STEP, (40, 30)).astype(np.float32)}
    assert not detect(erased, key).detected
    assert not detect(embed(state, b"x" * 32), key).detected
