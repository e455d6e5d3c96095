"""Signed node traffic: HMAC-SHA256 over every control record, with key id, timestamp and nonce.

Nodes share secrets from a key ring; a sender signs with the ring's *active* key, a receiver
accepts any key still listed.  Rotation without restart: add the new key to the file (or the
environment variable) next to the old one, make it active on every node, then drop the old
one; :meth:`KeyRing.maybe_reload` rereads the source when it changed (callers poll it, at most
every ``reload_interval_s``), so during the overlap both keys verify.

What is signed (:func:`signing_input`): a domain tag, the *context* (the Kafka topic and record
key, so that a signature cannot be moved to another topic or node), the key id, the timestamp,
the nonce and the payload bytes.  The four fields travel as Kafka headers
(:data:`HEADER_KID` ...), so the value stays a plain message in the topic's format.

:class:`Verifier` refuses, with a stable code (``SignatureRejected.code``), what is:

``missing``       without signature headers (an unsigned record where signing is required);
``malformed``     with a header of the wrong shape (not hex, wrong length, not an integer);
``unknown_key``   signed with a key id not in the ring (or a key not allowed for that node);
``bad_signature`` signed, but the HMAC does not match (forged or altered);
``stale``         timestamped outside ``max_skew_s`` of this host's wall clock (either side);
``replayed``      carrying a (key id, nonce) seen within the window, or older than what the
                  bounded replay cache can still vouch for.

The replay cache is bounded (``replay_cache_size``): entries leave it once they are older than
the skew window (they would be refused as stale anyway); when it is full of entries still in
the window, the oldest is dropped and its timestamp becomes the *horizon*: anything signed at
or before the horizon is refused as ``replayed``, so a bounded cache never lets a replay in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import msgspec

from adapters.errors import AdapterError

__all__ = [
    "HEADER_KID",
    "HEADER_NONCE",
    "HEADER_SIG",
    "HEADER_TS",
    "KeyRing",
    "KeyRingConfig",
    "NodeKey",
    "SignatureRejected",
    "Signer",
    "TrustConfig",
    "Verifier",
    "parse_keys",
    "signing_input",
]

HEADER_KID = "fl-kid"
HEADER_TS = "fl-ts"
HEADER_NONCE = "fl-nonce"
HEADER_SIG = "fl-sig"

_DOMAIN = b"finllm-node-v1\x00"
_NONCE_BYTES = 16
_SIG_HEX = 64
_MIN_SECRET_BYTES = 16
_MAX_KID_CHARS = 64


class SignatureRejected(AdapterError):
    """Raised by :meth:`Verifier.verify` for a record that must not be believed.

    ``code`` is one of ``missing``, ``malformed``, ``unknown_key``, ``bad_signature``,
    ``stale``, ``replayed`` (module doc); ``detail`` says more, for humans.  The caller
    should count it under the code, drop (or dead-letter) the record and go on: a bad
    record costs only itself.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


class NodeKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One shared secret.  ``secret`` is hex (at least 16 bytes); ``nodes`` (optional) lists the
    node ids allowed to sign with it (empty: any node)."""

    id: str
    secret: str
    nodes: tuple[str, ...] = ()


class KeyRingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the keys come from.  Exactly one of ``file`` / ``env`` / ``keys``.

    ``file``: a TOML file ``active = "k2"`` + ``[[keys]] id = "k1" secret = "<hex>" nodes = [..]``.
    ``env``: the name of an environment variable holding ``kid:hexsecret,kid2:hexsecret``
    (the first listed is active unless ``active`` names another).
    ``keys``: inline keys (tests; a config file in version control should not hold secrets).
    """

    file: str = ""
    env: str = ""
    keys: tuple[NodeKey, ...] = ()
    active: str = ""
    """The key id new signatures use; empty: the file's ``active``, else the first key."""
    reload_interval_s: float = 2.0
    """How often :meth:`KeyRing.maybe_reload` looks at the source at most."""

    def __post_init__(self) -> None:
        given = sum(bool(x) for x in (self.file, self.env, self.keys))
        if given != 1:
            raise ValueError("key ring: give exactly one of file, env or keys")
        if self.reload_interval_s < 0:
            raise ValueError("reload_interval_s must be >= 0")


class TrustConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Signing of node traffic.  Times in seconds."""

    ring: KeyRingConfig
    require: bool = True
    """Refuse unsigned records (``missing``); False only while a fleet migrates to signing."""
    max_skew_s: float = 30.0
    """Records timestamped further than this from this host's wall clock are ``stale``."""
    replay_cache_size: int = 65_536

    def __post_init__(self) -> None:
        if self.max_skew_s <= 0:
            raise ValueError("max_skew_s must be > 0")
        if self.replay_cache_size < 1:
            raise ValueError("replay_cache_size must be >= 1")


def parse_keys(text: str) -> list[NodeKey]:
    """``kid:hexsecret[,kid:hexsecret...]`` -> keys (the environment variable form)."""
    out: list[NodeKey] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, secret = part.partition(":")
        if not sep:
            raise ValueError("each key must be kid:hexsecret")
        out.append(NodeKey(id=kid.strip(), secret=secret.strip()))
    return out


def _decode_secret(key: NodeKey) -> bytes:
    if not key.id or len(key.id) > _MAX_KID_CHARS or not key.id.isprintable() or "," in key.id:
        raise ValueError(f"key id must be 1..{_MAX_KID_CHARS} printable characters, got {key.id!r}")
    try:
        raw = bytes.fromhex(key.secret)
    except ValueError:
        raise ValueError(f"key {key.id!r}: secret is not hex") from None
    if len(raw) < _MIN_SECRET_BYTES:
        raise ValueError(f"key {key.id!r}: secret must be at least {_MIN_SECRET_BYTES} bytes")
    return raw


class _FileDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[NodeKey, ...]
    active: str = ""


class KeyRing:
    """The keys a node signs and verifies with; reloadable (module doc)."""

    def __init__(self, config: KeyRingConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._secrets: dict[str, bytes] = {}
        self._nodes: dict[str, frozenset[str]] = {}
        self.active = ""
        self.generation = 0
        """Incremented at every load that changed the keys."""
        self._stamp: object = None
        self._next_check = 0.0
        self._load(force=True)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def secret(self, kid: str) -> bytes | None:
        return self._secrets.get(kid)

    def allows(self, kid: str, node_id: str) -> bool:
        """Whether ``kid`` may sign for ``node_id`` (keys without a node list sign for any)."""
        nodes = self._nodes.get(kid)
        return nodes is not None and (not nodes or node_id in nodes)

    def maybe_reload(self) -> bool:
        """Reread the source if it changed since the last load (at most every
        ``reload_interval_s``).  True when the keys changed.  A source that became invalid
        keeps the old keys and raises ValueError (the caller logs it and keeps going)."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.config.reload_interval_s
        return self._load(force=False)

    def _stamp_now(self) -> object:
        cfg = self.config
        if cfg.file:
            st = Path(cfg.file).stat()
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        if cfg.env:
            return os.environ.get(cfg.env, "")
        return cfg.keys

    def _read(self) -> tuple[Sequence[NodeKey], str]:
        cfg = self.config
        if cfg.file:
            try:
                doc = msgspec.convert(tomllib.loads(Path(cfg.file).read_text("utf-8")), _FileDoc)
            except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
                raise ValueError(f"key file {cfg.file}: {exc}") from None
            return doc.keys, cfg.active or doc.active
        if cfg.env:
            text = os.environ.get(cfg.env, "")
            if not text:
                raise ValueError(f"environment variable {cfg.env} holding the node keys is empty")
            return parse_keys(text), cfg.active
        return cfg.keys, cfg.active

    def _load(self, *, force: bool) -> bool:
        try:
            stamp = self._stamp_now()
        except OSError as exc:
            raise ValueError(f"key file {self.config.file}: {exc}") from None
        if not force and stamp == self._stamp:
            return False
        keys, active = self._read()
        secrets_: dict[str, bytes] = {}
        nodes: dict[str, frozenset[str]] = {}
        for k in keys:
            if k.id in secrets_:
                raise ValueError(f"key id {k.id!r} listed twice")
            secrets_[k.id] = _decode_secret(k)
            nodes[k.id] = frozenset(k.nodes)
        if not secrets_:
            raise ValueError("the key ring holds no key")
        active = active or next(iter(secrets_))
        if active not in secrets_:
            raise ValueError(f"active key {active!r} is not in the ring {sorted(secrets_)}")
        self._stamp = stamp
        changed = secrets_ != self._secrets or nodes != self._nodes or active != self.active
        self._secrets, self._nodes, self.active = secrets_, nodes, active
        if changed:
            self.generation += 1
        return changed


def signing_input(context: bytes, kid: str, ts_ns: int, nonce: bytes, payload: bytes) -> bytes:
    """The exact bytes the HMAC covers (fields separated so none can bleed into another)."""
    head = b"%s%d\x00%s\x00%d\x00%s\x00%d\x00" % (
        _DOMAIN,
        len(context),
        context,
        ts_ns,
        kid.encode(),
        len(nonce),
    )
    return head + nonce + payload


class Signer:
    """Signs with the ring's active key; :meth:`headers` gives the four Kafka headers."""

    def __init__(self, ring: KeyRing, *, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.ring = ring
        self._wall_ns = wall_ns

    def headers(self, context: bytes, payload: bytes) -> list[tuple[str, bytes]]:
        kid = self.ring.active
        secret = self.ring.secret(kid)
        assert secret is not None  # the ring guarantees its active key
        ts = self._wall_ns()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        mac = hmac.new(secret, signing_input(context, kid, ts, nonce, payload), hashlib.sha256)
        return [
            (HEADER_KID, kid.encode()),
            (HEADER_TS, str(ts).encode()),
            (HEADER_NONCE, nonce.hex().encode()),
            (HEADER_SIG, mac.hexdigest().encode()),
        ]


class Verifier:
    """Checks signatures, timestamps and nonces (module doc); keeps the bounded replay cache."""

    def __init__(
        self, config: TrustConfig, ring: KeyRing, *, wall_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.config = config
        self.ring = ring
        self._wall_ns = wall_ns
        self._seen: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self._horizon_ns = -1
        self._skew_ns = int(config.max_skew_s * 1e9)

    def verify(
        self, context: bytes, payload: bytes, headers: Mapping[str, bytes], *, node_id: str = ""
    ) -> str:
        """The key id that signed ``payload``; raises :class:`SignatureRejected` otherwise.

        ``node_id`` (when given) must be allowed to sign with that key.  Without signature
        headers and ``require = false``, returns ``""`` (accepted unsigned).
        """
        raw_kid = headers.get(HEADER_KID)
        raw_sig = headers.get(HEADER_SIG)
        raw_ts = headers.get(HEADER_TS)
        raw_nonce = headers.get(HEADER_NONCE)
        if raw_kid is None and raw_sig is None and raw_ts is None and raw_nonce is None:
            if self.config.require:
                raise SignatureRejected("missing", "record carries no signature")
            return ""
        if raw_kid is None or raw_sig is None or raw_ts is None or raw_nonce is None:
            raise SignatureRejected("malformed", "some signature headers are missing")
        try:
            kid = raw_kid.decode("ascii")
            ts = int(raw_ts.decode("ascii"))
            nonce = bytes.fromhex(raw_nonce.decode("ascii"))
            sig = raw_sig.decode("ascii")
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise SignatureRejected("malformed", "signature headers are not ascii hex/decimal") from None
        if len(sig) != _SIG_HEX or len(nonce) != _NONCE_BYTES or len(kid) > _MAX_KID_CHARS:
            raise SignatureRejected("malformed", "signature, nonce or key id of the wrong length")
        secret = self.ring.secret(kid)
        if secret is None:
            raise SignatureRejected("unknown_key", f"key id {kid[:_MAX_KID_CHARS]!r} is not in the ring")
        if node_id and not self.ring.allows(kid, node_id):
            raise SignatureRejected("unknown_key", f"key {kid!r} may not sign for node {node_id[:64]!r}")
        want = hmac.new(secret, signing_input(context, kid, ts, nonce, payload), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise SignatureRejected("bad_signature", f"HMAC mismatch under key {kid!r}")
        now = self._wall_ns()
        if abs(now - ts) > self._skew_ns:
            raise SignatureRejected("stale", f"timestamp {(ts - now) / 1e9:+.1f} s from this host's clock")
        self._remember(kid, nonce, ts, now)
        return kid

    def _remember(self, kid: str, nonce: bytes, ts: int, now: int) -> None:
        seen = self._seen
        # Entries older than the window would be refused as stale anyway: forget them.
        cutoff = now - self._skew_ns
        while seen:
            first = next(iter(seen.values()))
            if first >= cutoff:
                break
            seen.popitem(last=False)
        if ts <= self._horizon_ns:
            raise SignatureRejected("replayed", "signed before the replay cache's horizon")
        key = (kid, nonce)
        if key in seen:
            raise SignatureRejected("replayed", f"nonce already seen under key {kid!r}")
        if len(seen) >= self.config.replay_cache_size:
            _, oldest_ts = seen.popitem(last=False)
            self._horizon_ns = max(self._horizon_ns, oldest_ts)
        seen[key] = ts

    @property
    def cache_len(self) -> int:
        return len(self._seen)
