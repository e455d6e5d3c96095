"""Signed model manifests: only a manifest signed by a trusted Ed25519 key loads; every refusal counted."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.inference.errors import ManifestError
from adapters.inference.manifest import DEFAULT_MODEL_DIR, MANIFEST_NAME, load_manifest, refusal_counts
from adapters.trust.errors import KeyFileError, SignatureError
from adapters.trust.signing import (
    SIGNATURE_NAME,
    TrustStore,
    canonical_manifest_bytes,
    generate_key,
    load_private_key,
    load_trust_store,
    public_key_entry,
    sign_manifest,
    verify_manifest,
)
from engine.metrics import Metrics


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def store(key: Ed25519PrivateKey) -> TrustStore:
    return TrustStore(keys=(public_key_entry(key, "test"),), sources=("test",))


def _refused(metrics: Metrics, reason: str) -> int:
    return metrics.counter("model_load_refused_total", reason=reason).value


def test_the_shipped_manifest_is_signed_by_the_release_key() -> None:
    """Whatever manifest is committed now verifies with the packaged trusted keys."""
    m = load_manifest(DEFAULT_MODEL_DIR)
    assert m.signature is not None and m.signature.signer == "finllm-release"
    keys = load_trust_store(include_env=False)
    assert [k.name for k in keys.keys] == ["finllm-release"]
    # The committed key file holds a public key only (32 raw bytes), never a private one.
    assert len(base64.b64decode(keys.keys[0].public_key)) == 32
    text = (DEFAULT_MODEL_DIR.parents[1] / "config" / "data" / "trusted_keys.toml").read_text()
    assert "PRIVATE" not in text


def test_a_signed_copy_loads_and_counts(model_copy: Path, key: Ed25519PrivateKey, store: TrustStore) -> None:
    info = sign_manifest(model_copy, key, "test")
    metrics = Metrics()
    m = load_manifest(model_copy, trust=store, metrics=metrics)
    assert m.signature == info.__class__(
        key_id=info.key_id, signer="test", manifest_sha256=info.manifest_sha256
    )
    assert metrics.counter("model_signature_verified_total", key_id=info.key_id).value == 1


def test_unsigned_is_refused(model_copy: Path, store: TrustStore) -> None:
    (model_copy / SIGNATURE_NAME).unlink()
    metrics = Metrics()
    before = refusal_counts().get("unsigned", 0)
    with pytest.raises(SignatureError, match="unsigned") as err:
        load_manifest(model_copy, trust=store, metrics=metrics)
    assert isinstance(err.value, ManifestError) and err.value.reason == "unsigned"
    assert _refused(metrics, "unsigned") == 1
    assert refusal_counts()["unsigned"] == before + 1


def test_signed_by_an_untrusted_key_is_refused(model_copy: Path, store: TrustStore) -> None:
    sign_manifest(model_copy, Ed25519PrivateKey.generate(), "mallory")
    metrics = Metrics()
    with pytest.raises(SignatureError, match="not among the 1 trusted keys"):
        load_manifest(model_copy, trust=store, metrics=metrics)
    assert _refused(metrics, "unknown_key") == 1


def test_weights_and_manifest_edited_together_are_refused(
    model_copy: Path, key: Ed25519PrivateKey, store: TrustStore
) -> None:
    """The attack per-file hashes alone let through: new weights plus a matching manifest."""
    sign_manifest(model_copy, key, "test")
    load_manifest(model_copy, trust=store)
    target = model_copy / "es-1m.student.onnx"
    data = bytearray(target.read_bytes())
    data[700] ^= 0x04
    target.write_bytes(bytes(data))
    raw = json.loads((model_copy / MANIFEST_NAME).read_text())
    import hashlib

    raw["files"]["es-1m.student.onnx"] = hashlib.sha256(bytes(data)).hexdigest()
    (model_copy / MANIFEST_NAME).write_text(json.dumps(raw, indent=2))
    metrics = Metrics()
    with pytest.raises(SignatureError, match="changed after signing"):
        load_manifest(model_copy, trust=store, metrics=metrics)
    assert _refused(metrics, "bad_signature") == 1
    # Without a signature check the edit would have passed: the hashes agree.
    load_manifest(model_copy, require_signature=False)


def test_a_weight_file_edited_alone_is_refused_as_tampered(
    model_copy: Path, key: Ed25519PrivateKey, store: TrustStore
) -> None:
    sign_manifest(model_copy, key, "test")
    target = model_copy / "eq-1d.student.pt"
    data = bytearray(target.read_bytes())
    data[900] ^= 0x01
    target.write_bytes(bytes(data))
    metrics = Metrics()
    with pytest.raises(ManifestError, match="modified or corrupted"):
        load_manifest(model_copy, trust=store, metrics=metrics)
    assert _refused(metrics, "tampered") == 1


def test_reformatting_the_manifest_keeps_the_signature(
    model_copy: Path, key: Ed25519PrivateKey, store: TrustStore
) -> None:
    sign_manifest(model_copy, key, "test")
    raw = json.loads((model_copy / MANIFEST_NAME).read_text())
    (model_copy / MANIFEST_NAME).write_text(json.dumps(raw))  # no indent, other key order kept
    assert load_manifest(model_copy, trust=store).signature is not None
    assert canonical_manifest_bytes(raw) == canonical_manifest_bytes(json.loads(json.dumps(raw, indent=4)))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"schema": 1}',
        b'{"schema": 1, "algorithm": "rsa", "key_id": "x", "signer": "s", "manifest_sha256": "", '
        b'"signature": ""}',
        b'{"schema": 1, "algorithm": "ed25519", "key_id": "x", "signer": "s", "manifest_sha256": "", '
        b'"signature": "!!!notbase64"}',
        b'{"schema": 1, "algorithm": "ed25519", "key_id": "x", "signer": "s", "manifest_sha256": "", '
        b'"signature": "AAAA"}',
    ],
)
def test_malformed_signature_files_are_refused_not_crashed(
    model_copy: Path, store: TrustStore, content: bytes
) -> None:
    (model_copy / SIGNATURE_NAME).write_bytes(content)
    metrics = Metrics()
    with pytest.raises(SignatureError, match="malformed"):
        load_manifest(model_copy, trust=store, metrics=metrics)
    assert _refused(metrics, "malformed") == 1


def test_keys_files(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "k" / "release.pem"
    made = generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key(path)
    assert public_key_entry(load_private_key(path), "r") == public_key_entry(made, "r")
    entry = public_key_entry(key, "dev")
    good = tmp_path / "trusted.toml"
    good.write_text(f'[[keys]]\nkey_id = "{entry.key_id}"\nname = "dev"\npublic_key = "{entry.public_key}"\n')
    assert load_trust_store([good], include_env=False).get(entry.key_id) == entry
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[[keys]]\nkey_id = "0000000000000000"\nname = "dev"\npublic_key = "{entry.public_key}"\n'
    )
    with pytest.raises(KeyFileError, match="is not its key's id"):
        load_trust_store([bad], include_env=False)
    (tmp_path / "junk.pem").write_text("nope")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_private_key(tmp_path / "junk.pem")


def test_extra_trusted_keys_from_the_environment(
    model_copy: Path, key: Ed25519PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's own key (for models they trained) is trusted through $FINLLM_TRUSTED_KEYS."""
    sign_manifest(model_copy, key, "dev")
    with pytest.raises(SignatureError, match="not among"):
        load_manifest(model_copy)
    entry = public_key_entry(key, "dev")
    extra = tmp_path / "mine.toml"
    extra.write_text(
        f'[[keys]]\nkey_id = "{entry.key_id}"\nname = "dev"\npublic_key = "{entry.public_key}"\n'
    )
    monkeypatch.setenv("FINLLM_TRUSTED_KEYS", str(extra))
    assert load_manifest(model_copy).signature is not None
    assert verify_manifest(
        model_copy, json.loads((model_copy / MANIFEST_NAME).read_text()), load_trust_store()
    )


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_the_edge_reasoner_refuses_an_untrusted_model_and_counts_it(model_copy: Path) -> None:
    """The product's loader (EdgeReasoner on start, as in finllm run / replay / node): a model
    directory signed by an unknown key never serves; every start attempt is refused and counted."""
    import asyncio

    from actors.edge_reasoner import EdgeReasonerConfig
    from engine.testing import capture_logs
    from tests.edge.conftest import running_edge

    sign_manifest(model_copy, Ed25519PrivateKey.generate(), "mallory")
    with capture_logs() as logs:
        async with running_edge(EdgeReasonerConfig(model="es-1m", model_dir=str(model_copy))) as run:
            for _ in range(300):
                await asyncio.sleep(0.01)
                if run.engine.cells["edge"].incarnations >= 2:
                    break
            refused = run.engine.metrics.counter("model_load_refused_total", reason="unknown_key").value
    assert run.engine.cells["edge"].incarnations >= 2 and refused >= 2
    assert not run.outputs()
    errors = [str(e.get("error", "")) for e in logs if e.get("event") == "child_failed"]
    assert errors and all("SignatureError" in e and "not among" in e for e in errors)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=6), _JSON, min_size=1, max_size=5),
    indent=st.sampled_from([None, 1, 4]),
)
def test_canonical_bytes_survive_reformatting_and_any_edit_breaks_the_signature(
    doc: dict, indent: int | None
) -> None:
    """Property: re-serialising a manifest (any indent, any key order) keeps its signed bytes; changing
    a value changes them, so the signature no longer verifies."""
    key = Ed25519PrivateKey.generate()
    data = canonical_manifest_bytes(doc)
    sig = key.sign(data)
    again = json.loads(json.dumps(dict(reversed(list(doc.items()))), indent=indent))
    assert canonical_manifest_bytes(again) == data
    edited = dict(doc)
    first = next(iter(edited))
    edited[first] = [edited[first], "x"]
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        key.public_key().verify(sig, canonical_manifest_bytes(edited))
