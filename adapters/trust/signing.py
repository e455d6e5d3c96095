"""Ed25519 signatures over model manifests, and the keys that are trusted to make them.

What is signed: the bytes ``b"finllm-model-manifest-v1\\n"`` followed by the canonical JSON of
``manifest.json`` (keys sorted, no whitespace, ASCII, no NaN), so the signature covers every file's
sha256, the data hashes, the training config and the metrics, and re-indenting the file does not
break it.  The signature sits next to the manifest in ``manifest.sig.json``::

    {"schema": 1, "algorithm": "ed25519", "key_id": "<16 hex>", "signer": "<name>",
     "manifest_sha256": "<sha256 of the signed bytes>", "signature": "<base64, 64 bytes>"}

Trusted keys: ``config/data/trusted_keys.toml`` (package data; public keys only) plus the files
named in the environment variable ``FINLLM_TRUSTED_KEYS`` (``os.pathsep``-separated), each::

    [[keys]]
    key_id = "<16 hex: first 8 bytes of sha256 of the raw public key>"
    name = "finllm-release"
    public_key = "<base64 of the 32 raw public-key bytes>"

The release private key never enters the repository (PEM, PKCS#8, mode 600, kept by whoever
releases models); :func:`generate_key` writes one, :func:`load_private_key` reads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapters.trust.errors import KeyFileError, SignatureError

__all__ = [
    "DEFAULT_TRUSTED_KEYS",
    "SIGNATURE_NAME",
    "SignatureInfo",
    "TrustStore",
    "TrustedKey",
    "canonical_manifest_bytes",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_trust_store",
    "public_key_entry",
    "sign_manifest",
    "verify_manifest",
]

SIGNATURE_NAME: Final = "manifest.sig.json"
_DOMAIN: Final = b"finllm-model-manifest-v1\n"
_ENV: Final = "FINLLM_TRUSTED_KEYS"


def _default_keys_path() -> Path:
    from config import path as config_path

    return config_path("data", "trusted_keys.toml")


DEFAULT_TRUSTED_KEYS: Final = _default_keys_path()


class TrustedKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    public_key: str
    """Base64 of the 32 raw Ed25519 public-key bytes."""

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))


class TrustStore(msgspec.Struct, frozen=True, kw_only=True):
    """The public keys a model manifest may be signed with; ``sources`` names the files read."""

    keys: tuple[TrustedKey, ...] = ()
    sources: tuple[str, ...] = ()

    def get(self, kid: str) -> TrustedKey | None:
        for k in self.keys:
            if k.key_id == kid:
                return k
        return None


class SignatureInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A verified (or freshly made) signature: who signed which manifest bytes."""

    key_id: str
    signer: str
    manifest_sha256: str
    algorithm: str = "ed25519"


class _SigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    schema: int
    algorithm: str
    key_id: str
    signer: str
    manifest_sha256: str
    signature: str


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def canonical_manifest_bytes(manifest: Any) -> bytes:
    """The exact bytes a signature covers (module docstring)."""
    try:
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SignatureError("malformed", f"manifest cannot be encoded canonically: {exc}") from exc
    return _DOMAIN + body.encode("ascii")


# --- keys ------------------------------------------------------------------------------------


def generate_key(path: str | Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 private key to ``path`` (PEM, PKCS#8, unencrypted, mode 600).

    Refuses to overwrite an existing file (a release key lost by accident cannot be replaced).
    """
    p = Path(path)
    if p.exists():
        raise KeyFileError(f"{p}: exists; refusing to overwrite a private key")
    p.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read the private key: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{p}: not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{p}: not an Ed25519 key ({type(key).__name__})")
    return key


def public_key_entry(key: Ed25519PrivateKey | Ed25519PublicKey, name: str) -> TrustedKey:
    """The trusted-keys entry (public part only) of ``key``."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustedKey(key_id=key_id(pub), name=name, public_key=base64.b64encode(raw).decode())


def _read_keys_file(path: Path) -> list[TrustedKey]:
    try:
        data = tomllib.loads(path.read_text())
        keys = msgspec.convert(data.get("keys", []), list[TrustedKey])
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the trusted keys: {exc}") from exc
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise KeyFileError(f"{path}: malformed trusted keys file: {exc}") from exc
    for k in keys:
        try:
            pub = k.verifier()
        except (ValueError, binascii.Error) as exc:
            raise KeyFileError(f"{path}: key {k.key_id!r}: not a raw Ed25519 public key: {exc}") from exc
        if key_id(pub) != k.key_id:
            raise KeyFileError(f"{path}: key {k.name!r}: key_id {k.key_id} is not its key's id {key_id(pub)}")
    return keys


def load_trust_store(paths: Sequence[str | Path] | None = None, *, include_env: bool = True) -> TrustStore:
    """The trusted keys of ``paths`` (default: the packaged file) plus ``$FINLLM_TRUSTED_KEYS``."""
    files = [Path(p) for p in paths] if paths is not None else [DEFAULT_TRUSTED_KEYS]
    if include_env:
        files += [Path(p) for p in os.environ.get(_ENV, "").split(os.pathsep) if p]
    keys: list[TrustedKey] = []
    for f in files:
        keys += _read_keys_file(f)
    return TrustStore(keys=tuple(keys), sources=tuple(str(f) for f in files))


# --- sign and verify ---------------------------------------------------------------------------


def sign_manifest(directory: str | Path, key: Ed25519PrivateKey, signer: str) -> SignatureInfo:
    """Sign ``directory/manifest.json`` with ``key``; write ``directory/manifest.sig.json``.

    Signs the manifest as it is (whatever model files it lists): re-run it after every
    retraining.  The caller verifies the file hashes separately (``load_manifest``).
    """
    d = Path(directory)
    try:
        raw = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise SignatureError("malformed", f"{d / 'manifest.json'}: unreadable manifest: {exc}") from exc
    data = canonical_manifest_bytes(raw)
    info = SignatureInfo(
        key_id=key_id(key.public_key()), signer=signer, manifest_sha256=hashlib.sha256(data).hexdigest()
    )
    sig = _SigFile(
        schema=1,
        algorithm="ed25519",
        key_id=info.key_id,
        signer=signer,
        manifest_sha256=info.manifest_sha256,
        signature=base64.b64encode(key.sign(data)).decode(),
    )
    (d / SIGNATURE_NAME).write_text(json.dumps(msgspec.to_builtins(sig), indent=2, sort_keys=True) + "\n")
    return info


def verify_manifest(directory: str | Path, manifest: Any, store: TrustStore) -> SignatureInfo:
    """Check ``directory/manifest.sig.json`` against the parsed ``manifest`` and ``store``.

    Raises :class:`SignatureError` (reason ``unsigned``, ``malformed``, ``unknown_key`` or
    ``bad_signature``); returns who signed it otherwise.
    """
    d = Path(directory)
    path = d / SIGNATURE_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise SignatureError(
            "unsigned",
            f"{d}: the model manifest is unsigned (no {SIGNATURE_NAME}); refusing to load it. "
            "Sign it with `finllm models sign` and a trusted key",
        ) from exc
    except OSError as exc:
        raise SignatureError("malformed", f"{path}: unreadable signature: {exc}") from exc
    try:
        sig = msgspec.json.decode(text, type=_SigFile)
        if sig.schema != 1 or sig.algorithm != "ed25519":
            raise ValueError(f"unsupported schema {sig.schema} / algorithm {sig.algorithm!r}")
        signature = base64.b64decode(sig.signature, validate=True)
        if len(signature) != 64:
            raise ValueError(f"an Ed25519 signature has 64 bytes, this one {len(signature)}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, binascii.Error) as exc:
        raise SignatureError("malformed", f"{path}: malformed signature file: {exc}") from exc
    trusted = store.get(sig.key_id)
    if trusted is None:
        raise SignatureError(
            "unknown_key",
            f"{path}: signed by key {sig.key_id} ({sig.signer!r}), which is not among the "
            f"{len(store.keys)} trusted keys of {', '.join(store.sources) or 'no file'}; refusing to load it",
        )
    data = canonical_manifest_bytes(manifest)
    try:
        trusted.verifier().verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureError(
            "bad_signature",
            f"{path}: the signature of key {sig.key_id} ({trusted.name}) does not match "
            f"{d / 'manifest.json'}: the manifest was changed after signing; refusing to load it",
        ) from exc
    return SignatureInfo(
        key_id=sig.key_id, signer=trusted.name, manifest_sha256=hashlib.sha256(data).hexdigest()
    )
