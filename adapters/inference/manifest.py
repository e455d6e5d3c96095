"""The model manifest: what ships in ``models/edge/`` and the checks before anything loads.

``manifest.json`` (written by ``tools/train_edge.py``) lists the sha256 of every
weight file, the feature schema and names, the quantile levels, and per model
id its dataset, data hash, splits, training config, file names and test
metrics.  :func:`load_manifest` verifies all of it against the files and this
code, and raises :class:`~adapters.inference.errors.ManifestError` (tampered or
missing files) or :class:`~adapters.inference.errors.ModelMismatch` (weights
built for other features or outputs) - never loads on a mismatch.

Signature: before anything else, the manifest's Ed25519 signature
(``manifest.sig.json``, :mod:`adapters.trust.signing`) must verify with a trusted
key; an unsigned, wrongly signed or edited manifest raises
:class:`~adapters.trust.errors.SignatureError` (a ``ManifestError``).  Every
refusal is counted: ``model_load_refused_total{reason}`` in the ``metrics``
passed (reasons ``unsigned``, ``malformed``, ``unknown_key``, ``bad_signature``,
``tampered``, ``missing_file``, ``mismatch``) and in :func:`refusal_counts` for the
whole process; ``model_signature_verified_total`` counts the loads that passed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from adapters.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureConfig
from adapters.inference.errors import ManifestError, ModelMismatch
from models import EDGE_DIR

if TYPE_CHECKING:
    from adapters.trust.signing import SignatureInfo, TrustStore
    from engine.metrics import Metrics

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MANIFEST_NAME",
    "QUANTILE_LEVELS",
    "Manifest",
    "ModelFiles",
    "ModelSpec",
    "load_manifest",
    "refusal_counts",
    "sha256_file",
]

MANIFEST_NAME: Final = "manifest.json"
QUANTILE_LEVELS: Final[tuple[float, ...]] = (
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
)  # fmt: skip
DEFAULT_MODEL_DIR: Final = EDGE_DIR  # the shipped weights: package data of ``models`` (importlib.resources)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelFiles(msgspec.Struct, frozen=True, kw_only=True):
    """Verified absolute paths of one network's weights, and its architecture."""

    onnx: Path
    state_dict: Path
    hidden: tuple[int, ...]
    sha256_onnx: str
    members: int = 1
    """More than 1: an ensemble (:class:`~adapters.inference.net.EdgeEnsemble`) of that many nets."""


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One verified model id: student (the edge model), teacher, and regime specialists."""

    model_id: str
    version: str
    """The first 12 hex digits of the student ONNX file's sha256: names the exact weights."""
    symbol: str
    horizon: str
    dataset: str
    data_sha256: str
    feature_config: FeatureConfig
    quantile_levels: tuple[float, ...]
    student: ModelFiles
    teacher: ModelFiles
    specialists: dict[str, ModelFiles]
    metrics: dict[str, Any]
    splits: dict[str, Any]
    feature_mean: tuple[float, ...]
    """Training means of the features: the neutral values used for occlusion."""

    @property
    def n_features(self) -> int:
        return len(FEATURE_NAMES)


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    directory: Path
    models: dict[str, ModelSpec]
    train_config: dict[str, Any]
    signature: SignatureInfo | None = None
    """Who signed the manifest (None only when loaded with ``require_signature=False``)."""

    def model(self, model_id: str) -> ModelSpec:
        spec = self.models.get(model_id)
        if spec is None:
            raise ModelMismatch(
                f"{self.directory / MANIFEST_NAME}: no model {model_id!r}; have {sorted(self.models)}"
            )
        return spec


_REFUSED: Counter[str] = Counter()


def refusal_counts() -> dict[str, int]:
    """Model loads refused in this process so far, by reason (module docstring)."""
    return dict(_REFUSED)


def load_manifest(
    directory: str | Path = DEFAULT_MODEL_DIR,
    *,
    trust: TrustStore | None = None,
    require_signature: bool = True,
    metrics: Metrics | None = None,
) -> Manifest:
    """Read and verify ``directory/manifest.json``; see the module docstring.

    ``trust``: the trusted keys (default :func:`adapters.trust.signing.load_trust_store`).
    ``require_signature=False`` skips the signature (tools inspecting a model before it is
    signed, e.g. ``finllm models sign``); the product never passes it.
    """
    try:
        m = _load(Path(directory), trust, require_signature)
    except ManifestError as exc:
        _refused(_reason(exc), metrics)
        raise
    except ModelMismatch:
        _refused("mismatch", metrics)
        raise
    if metrics is not None and m.signature is not None:
        metrics.counter("model_signature_verified_total", key_id=m.signature.key_id).inc()
    return m


def _reason(exc: ManifestError) -> str:
    text = str(exc)
    if "modified or corrupted" in text:
        return "tampered"
    if "is missing" in text:
        return "missing_file"
    return str(getattr(exc, "reason", "malformed"))


def _refused(reason: str, metrics: Metrics | None) -> None:
    _REFUSED[reason] += 1
    if metrics is not None:
        metrics.counter("model_load_refused_total", reason=reason).inc()


def _load(d: Path, trust: TrustStore | None, require_signature: bool) -> Manifest:
    path = d / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no manifest; the model directory is incomplete") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable manifest: {exc}") from exc
    signature = None
    if require_signature:
        # Imported here: adapters.trust imports this package's errors, so a module-level import
        # would be circular when adapters.trust is imported first.
        from adapters.trust.signing import load_trust_store, verify_manifest

        signature = verify_manifest(d, raw, trust if trust is not None else load_trust_store())
    if not isinstance(raw, dict) or raw.get("schema") != 1:
        raise ManifestError(
            f"{path}: unknown manifest schema {raw.get('schema') if isinstance(raw, dict) else raw!r}"
        )
    files = raw.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{path}: 'files' must map file names to sha256 digests")
    for name, digest in files.items():
        fp = d / name
        if Path(name).name != name:
            raise ManifestError(f"{path}: file entry {name!r} must be a plain file name")
        if not fp.is_file():
            raise ManifestError(f"{path}: listed file {name} is missing")
        got = sha256_file(fp)
        if got != digest:
            raise ManifestError(
                f"{fp}: sha256 {got[:16]}... does not match the manifest's {str(digest)[:16]}...: "
                "the weights were modified or corrupted; refusing to load them"
            )
    if raw.get("feature_schema") != FEATURE_SCHEMA or tuple(raw.get("feature_names", ())) != FEATURE_NAMES:
        raise ModelMismatch(
            f"{path}: models were trained for feature schema {raw.get('feature_schema')} "
            f"({len(raw.get('feature_names', ()))} features), this code computes schema {FEATURE_SCHEMA} "
            f"({len(FEATURE_NAMES)} features); retrain with python -m tools.train_edge"
        )
    levels = tuple(float(x) for x in raw.get("quantile_levels", ()))
    if levels != QUANTILE_LEVELS:
        raise ModelMismatch(f"{path}: quantile levels {levels} differ from this code's {QUANTILE_LEVELS}")

    def net(entry: dict[str, Any], what: str) -> ModelFiles:
        for key in ("onnx", "state_dict"):
            if entry.get(key) not in files:
                raise ManifestError(f"{path}: {what} file {entry.get(key)!r} is not covered by a sha256")
        return ModelFiles(
            onnx=d / entry["onnx"],
            state_dict=d / entry["state_dict"],
            hidden=tuple(int(h) for h in entry["hidden"]),
            sha256_onnx=files[entry["onnx"]],
            members=int(entry.get("members", 1)),
        )

    models: dict[str, ModelSpec] = {}
    try:
        for mid, m in raw["models"].items():
            student = net(m["student"], f"{mid} student")
            models[mid] = ModelSpec(
                model_id=mid,
                version=student.sha256_onnx[:12],
                symbol=m["symbol"],
                horizon=m["horizon"],
                dataset=m["dataset"],
                data_sha256=m["data_sha256"],
                feature_config=msgspec.convert(m["feature_config"], FeatureConfig),
                quantile_levels=levels,
                student=student,
                teacher=net(m["teacher"], f"{mid} teacher"),
                specialists={r: net(e, f"{mid} specialist {r}") for r, e in m.get("specialists", {}).items()},
                metrics=m.get("metrics", {}),
                splits=m.get("splits", {}),
                feature_mean=tuple(float(v) for v in m["feature_mean"]),
            )
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise ManifestError(f"{path}: malformed model entry: {exc!r}") from exc
    return Manifest(directory=d, models=models, train_config=raw.get("train_config", {}), signature=signature)
