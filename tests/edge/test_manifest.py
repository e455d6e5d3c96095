"""The loader verifies the manifest and refuses tampered or mismatched weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapters.features import FEATURE_NAMES
from adapters.inference.errors import ManifestError, ModelMismatch
from adapters.inference.manifest import MANIFEST_NAME, QUANTILE_LEVELS, load_manifest, sha256_file
from adapters.inference.model import load_edge_model


def test_shipped_manifest_verifies(manifest) -> None:
    assert {"es-1m", "eq-1d", "spx-1d", "ndx-1d"} <= set(manifest.models)
    for spec in manifest.models.values():
        assert spec.quantile_levels == QUANTILE_LEVELS
        assert spec.student.onnx.is_file() and spec.teacher.state_dict.is_file()
        assert len(spec.data_sha256) == 64
        assert spec.version == sha256_file(spec.student.onnx)[:12]
        assert {"student", "teacher"} <= set(spec.metrics["validation"])
        assert {"train", "val", "test"} == set(spec.splits)
        assert len(spec.feature_mean) == len(FEATURE_NAMES)
        assert spec.feature_config.anchor == "gjr"
    # The index models are the cross-sectional daily model under the names the replays use.
    eq = manifest.model("eq-1d")
    for alias in ("spx-1d", "ndx-1d"):
        assert manifest.model(alias).student.onnx == eq.student.onnx
        assert manifest.model(alias).splits["test"]["first_basis"].startswith("2014-01-02")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["es-1m.student.onnx", "es-1m.student.pt", "eq-1d.teacher.onnx"])
def test_a_flipped_byte_is_refused(model_copy: Path, name: str) -> None:
    load_manifest(model_copy)  # the untouched copy is fine
    _flip(model_copy / name, 1000)
    with pytest.raises(ManifestError, match=f"{re.escape(name)}.*modified or corrupted"):
        load_manifest(model_copy)


def test_a_missing_file_is_refused(model_copy: Path) -> None:
    (model_copy / "eq-1d.student.onnx").unlink()
    with pytest.raises(ManifestError, match=r"eq-1d\.student\.onnx is missing"):
        load_manifest(model_copy)


def test_weights_for_other_features_are_refused(model_copy: Path) -> None:
    path = model_copy / MANIFEST_NAME
    raw = json.loads(path.read_text())
    raw["feature_names"] = raw["feature_names"][::-1]
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelMismatch, match="feature schema"):
        load_manifest(model_copy, require_signature=False)  # signed: refused earlier (test_signing.py)


def test_an_unlisted_weight_file_is_refused(model_copy: Path) -> None:
    path = model_copy / MANIFEST_NAME
    raw = json.loads(path.read_text())
    del raw["files"]["es-1m.teacher.pt"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="not covered by a sha256"):
        load_manifest(model_copy, require_signature=False)  # signed: refused earlier (test_signing.py)


def test_unknown_model_and_role(manifest) -> None:
    with pytest.raises(ModelMismatch, match="no model 'nope'"):
        manifest.model("nope")
    with pytest.raises(ModelMismatch, match="no network for role"):
        load_edge_model(manifest, "es-1m", role="nope")


def test_garbage_manifest(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path / "absent")
