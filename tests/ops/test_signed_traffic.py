"""Signed node traffic (adapters/trust_net.py): signatures, refusals, replay cache, key rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.trust_net import (
    HEADER_KID,
    HEADER_NONCE,
    HEADER_SIG,
    HEADER_TS,
    KeyRing,
    KeyRingConfig,
    NodeKey,
    SignatureRejected,
    Signer,
    TrustConfig,
    Verifier,
    parse_keys,
)

K1 = NodeKey(id="k1", secret="11" * 32)
K2 = NodeKey(id="k2", secret="22" * 32)
NOW = 1_800_000_000_000_000_000
CTX = b"heartbeats\x00node-a"


class _Wall:
    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _pair(
    keys: tuple[NodeKey, ...] = (K1,), *, skew_s: float = 30.0, cache: int = 1000
) -> tuple[Signer, Verifier, _Wall]:
    wall = _Wall()
    ring = KeyRing(KeyRingConfig(keys=keys))
    cfg = TrustConfig(ring=KeyRingConfig(keys=keys), max_skew_s=skew_s, replay_cache_size=cache)
    return Signer(ring, wall_ns=wall), Verifier(cfg, ring, wall_ns=wall), wall


def _code(v: Verifier, payload: bytes, headers: dict[str, bytes], ctx: bytes = CTX, node: str = "") -> str:
    with pytest.raises(SignatureRejected) as info:
        v.verify(ctx, payload, headers, node_id=node)
    return info.value.code


def test_a_signed_payload_verifies_once_and_every_alteration_is_refused() -> None:
    signer, verifier, _ = _pair()
    h = dict(signer.headers(CTX, b"payload"))
    assert set(h) == {HEADER_KID, HEADER_TS, HEADER_NONCE, HEADER_SIG}
    assert verifier.verify(CTX, b"payload", h) == "k1"
    assert _code(verifier, b"payload", h) == "replayed"  # the same record again
    h2 = dict(signer.headers(CTX, b"payload"))
    assert _code(verifier, b"payloaD", h2) == "bad_signature"  # altered value
    assert _code(verifier, b"payload", h2, ctx=b"heartbeats\x00node-b") == "bad_signature"  # other node
    assert _code(verifier, b"payload", {**h2, HEADER_TS: str(NOW + 1).encode()}) == "bad_signature"
    assert verifier.verify(CTX, b"payload", h2) == "k1"  # the untouched one still passes


def test_forged_malformed_unknown_and_missing_signatures_are_refused_with_their_code() -> None:
    signer, verifier, _ = _pair()
    h = dict(signer.headers(CTX, b"x"))
    assert _code(verifier, b"x", {}) == "missing"
    assert _code(verifier, b"x", {HEADER_KID: b"k1"}) == "malformed"
    assert _code(verifier, b"x", {**h, HEADER_SIG: b"zz" * 32}) == "bad_signature"  # not a match
    assert _code(verifier, b"x", {**h, HEADER_SIG: b"\xff\xfe"}) == "malformed"
    assert _code(verifier, b"x", {**h, HEADER_TS: b"soon"}) == "malformed"
    assert _code(verifier, b"x", {**h, HEADER_NONCE: b"abc"}) == "malformed"
    assert _code(verifier, b"x", {**h, HEADER_SIG: b"0" * 63}) == "malformed"
    assert _code(verifier, b"x", {**h, HEADER_KID: b"k9"}) == "unknown_key"
    # A forger with its own key: a valid HMAC under a key the ring does not hold.
    forger, _, _ = _pair((NodeKey(id="k1", secret="33" * 32),))
    assert _code(verifier, b"x", dict(forger.headers(CTX, b"x"))) == "bad_signature"


def test_unsigned_records_pass_only_when_signing_is_not_required() -> None:
    ring = KeyRing(KeyRingConfig(keys=(K1,)))
    lax = Verifier(TrustConfig(ring=KeyRingConfig(keys=(K1,)), require=False), ring)
    assert lax.verify(CTX, b"x", {}) == ""
    # ... but a record that carries a signature must still be right.
    bad = {HEADER_KID: b"k1", HEADER_TS: b"1", HEADER_NONCE: b"00" * 16, HEADER_SIG: b"00" * 32}
    assert _code(lax, b"x", bad) == "bad_signature"


def test_clock_skew_beyond_the_window_is_stale_on_either_side() -> None:
    signer, verifier, wall = _pair(skew_s=5.0)
    wall.t = NOW - 6_000_000_000
    old = dict(signer.headers(CTX, b"x"))
    wall.t = NOW + 6_000_000_000
    future = dict(signer.headers(CTX, b"x"))
    wall.t = NOW + 4_000_000_000
    near = dict(signer.headers(CTX, b"x"))
    wall.t = NOW
    assert _code(verifier, b"x", old) == "stale"
    assert _code(verifier, b"x", future) == "stale"
    assert verifier.verify(CTX, b"x", near) == "k1"


def test_the_replay_cache_is_bounded_and_never_lets_an_evicted_nonce_back_in() -> None:
    signer, verifier, wall = _pair(cache=4)
    sent = []
    for i in range(10):
        wall.t = NOW + i
        h = dict(signer.headers(CTX, b"x"))
        sent.append(h)
        verifier.verify(CTX, b"x", h)
    assert verifier.cache_len == 4
    wall.t = NOW + 20
    for h in sent:  # every one of them, cached or evicted, is refused
        assert _code(verifier, b"x", h) == "replayed"
    # Entries older than the skew window leave the cache by themselves.
    wall.t = NOW + 31_000_000_000
    verifier.verify(CTX, b"x", dict(signer.headers(CTX, b"x")))
    assert verifier.cache_len == 1


def test_a_key_bound_to_nodes_cannot_sign_for_another_node() -> None:
    bound = NodeKey(id="ka", secret="44" * 32, nodes=("node-a",))
    signer, verifier, _ = _pair((bound,))
    h = dict(signer.headers(CTX, b"x"))
    assert verifier.verify(CTX, b"x", h, node_id="node-a") == "ka"
    h = dict(signer.headers(b"heartbeats\x00node-b", b"x"))
    assert _code(verifier, b"x", h, ctx=b"heartbeats\x00node-b", node="node-b") == "unknown_key"


def _write_keys(path: Path, active: str, *keys: NodeKey) -> None:
    body = f'active = "{active}"\n' + "".join(
        f'[[keys]]\nid = "{k.id}"\nsecret = "{k.secret}"\n' for k in keys
    )
    path.write_text(body)
    st = path.stat()  # a distinct mtime even on coarse-clock filesystems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000 * (1 + int(active[-1]))))


def test_keys_rotate_from_the_file_without_restart_old_and_new_overlapping(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    _write_keys(path, "k1", K1)
    cfg = TrustConfig(ring=KeyRingConfig(file=str(path), reload_interval_s=0))
    ring = KeyRing(cfg.ring)
    wall = _Wall()
    signer, verifier = Signer(ring, wall_ns=wall), Verifier(cfg, ring, wall_ns=wall)
    old = dict(signer.headers(CTX, b"x"))
    assert ring.maybe_reload() is False  # unchanged
    # Step 1: k2 added and made active; k1 still verifies (overlap).
    _write_keys(path, "k2", K1, K2)
    assert ring.maybe_reload() is True and ring.active == "k2"
    new = dict(signer.headers(CTX, b"y"))
    assert new[HEADER_KID] == b"k2"
    assert verifier.verify(CTX, b"x", old) == "k1"
    assert verifier.verify(CTX, b"y", new) == "k2"
    # A half-written file keeps the keys we had.
    path.write_text("active = ")
    with pytest.raises(ValueError, match="key file"):
        ring.maybe_reload()
    assert ring.key_ids == ("k1", "k2")
    # Step 2: k1 dropped: what it signs is now an unknown key.
    _write_keys(path, "k2", K2)
    assert ring.maybe_reload() is True
    late_old = dict(Signer(KeyRing(KeyRingConfig(keys=(K1,))), wall_ns=wall).headers(CTX, b"z"))
    assert _code(verifier, b"z", late_old) == "unknown_key"


def test_keys_from_the_environment_reload_when_the_variable_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FL_TEST_KEYS", f"k1:{K1.secret}")
    ring = KeyRing(KeyRingConfig(env="FL_TEST_KEYS", reload_interval_s=0))
    assert ring.key_ids == ("k1",) and ring.active == "k1"
    monkeypatch.setenv("FL_TEST_KEYS", f"k2:{K2.secret},k1:{K1.secret}")
    assert ring.maybe_reload() is True
    assert ring.active == "k2" and set(ring.key_ids) == {"k1", "k2"}


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ("k1:abc", "not hex"),
        ("k1:00", "at least 16 bytes"),
        ("k1", "kid:hexsecret"),
        (f"k1:{'11' * 16},k1:{'22' * 16}", "listed twice"),
    ],
)
def test_bad_key_sources_are_config_errors(keys: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KeyRing(KeyRingConfig(keys=tuple(parse_keys(keys))))


def test_a_key_ring_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        KeyRingConfig()
    with pytest.raises(ValueError, match="exactly one"):
        KeyRingConfig(env="X", keys=(K1,))
