"""Signed heartbeats over a real Tansu broker (actors/heartbeat_bridge.py with ``trust``).

Two nodes sign their heartbeats with a shared key ring; an outside producer that can write the
topic tries to declare a node alive (forged, wrongly keyed, replayed, stale records of a node
that does not exist) and to keep a stopped node alive (forged heartbeats in its name).  Neither
works: every attempt is refused and counted, and the stopped node is marked dead on time.  The
keys rotate while the nodes run (file reread, old and new overlapping), without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from actors.control_plane import ControlPlane, PeerStatusChange
from adapters.tansu import TansuBroker
from adapters.trust_net import KeyRing, KeyRingConfig, NodeKey, Signer
from engine.kernel import Engine
from engine.messages import DeadLetter, EscalationRoute, Heartbeat, msgpack_encoder
from engine.testing import Probe
from tests.kafka.kafkatest import probed_node, send_settled, stop_bounded

pytestmark = pytest.mark.integration

INTERVAL_MS = 200
MISS_LIMIT = 4
K1 = NodeKey(id="k1", secret="a1" * 32)
K2 = NodeKey(id="k2", secret="b2" * 32)
ROGUE = NodeKey(id="k2", secret="c3" * 32)  # the right key id, the wrong secret


def _write_keys(path: Path, active: str, *keys: NodeKey) -> None:
    path.write_text(
        f'active = "{active}"\n' + "".join(f'[[keys]]\nid = "{k.id}"\nsecret = "{k.secret}"\n' for k in keys)
    )


def _toml(bootstrap: str, topic: str, node_id: str, keys: Path, *, released: bool = False) -> str:
    objective = (
        'latency_actor = "heartbeats"\nlatency_objective_us = 0.001\n'
        "breach_limit = 1\nrecover_limit = 100000\n"
        if released
        else ""
    )
    return f"""
[engine]
name = "shb-{node_id}"
node_id = "{node_id}"
shutdown_deadline_s = 2.0

[[actors]]
name = "control"
class = "actors.control_plane:ControlPlane"
subscribe = ["control.heartbeat", "control.peer_route"]
[actors.config]
heartbeat_interval_ms = {INTERVAL_MS}
miss_limit = {MISS_LIMIT}
{objective}
[[actors]]
name = "heartbeats"
class = "actors.heartbeat_bridge:HeartbeatBridge"
subscribe = ["control.heartbeat", "control.route"]
[actors.mailbox]
capacity = 64
policy = "drop_oldest"
[actors.config]
topic = "{topic}"
max_age_ms = 3000
carry_routes = true
[actors.config.trust]
max_skew_s = 5.0
[actors.config.trust.ring]
file = "{keys}"
reload_interval_s = 0.1
[actors.config.kafka]
bootstrap_servers = "{bootstrap}"
client_id = "{node_id}"
request_timeout_ms = 5000
"""


def _node(toml: str) -> contextlib.AbstractAsyncContextManager[tuple[Engine, Probe]]:
    return probed_node(toml, "control.peers", "control.peer_route", "deadletter", path="<signed-hb>")


def _control(engine: Engine) -> ControlPlane:
    actor = engine.cells["control"].actor
    assert isinstance(actor, ControlPlane)
    return actor


def _started(engine: Engine) -> ControlPlane | None:
    actor = engine.cells["control"].actor
    return actor if isinstance(actor, ControlPlane) and getattr(actor, "started", False) else None


def _refused(engine: Engine) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, labels, value in engine.metrics.counters():
        if name == "node_records_refused_total":
            out[labels["reason"]] = out.get(labels["reason"], 0.0) + value
    return out


def _count(engine: Engine, name: str) -> float:
    return sum(v for n, _, v in engine.metrics.counters() if n == name)


async def _until(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


class _Attacker:
    """An outside producer: can write the topic, does not hold the keys."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.sent = 0

    async def send(
        self, node: str, headers: list[tuple[str, bytes]] | None = None, value: bytes = b""
    ) -> None:
        hb = Heartbeat(node_id=node, ts_event=time.time_ns(), healthy=True)
        await send_settled(
            self.producer,
            self.topic,
            value or msgpack_encoder.encode(hb),
            key=node.encode(),
            headers=headers or [],
        )
        self.sent += 1

    def signed(
        self, key: NodeKey, node: str, *, skew_s: float = 0.0
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        value = msgpack_encoder.encode(Heartbeat(node_id=node, ts_event=time.time_ns()))
        ring = KeyRing(KeyRingConfig(keys=(key,)))
        signer = Signer(ring, wall_ns=lambda: time.time_ns() + int(skew_s * 1e9))
        return value, signer.headers(self.topic.encode() + b"\x00" + node.encode(), value)


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_forged_heartbeats_neither_revive_nor_invent_a_node(tansu: TansuBroker, tmp_path: Path) -> None:
    topic = f"shb-{uuid.uuid4().hex[:8]}"
    keys = tmp_path / "keys.toml"
    _write_keys(keys, "k1", K1)
    attacker = _Attacker(tansu.bootstrap, topic)
    await attacker.producer.start()
    try:
        async with _node(_toml(tansu.bootstrap, topic, "node-a", keys)) as (engine_a, probe_a):
            async with _node(_toml(tansu.bootstrap, topic, "node-b", keys, released=True)) as (engine_b, _):
                await _until(
                    lambda: (c := _started(engine_a)) is not None and "node-b" in c.peers,
                    15,
                    "node-b heard by node-a",
                )
                # B is released on purpose: its signed escalation route reaches A too.
                await _until(
                    lambda: "node-b" in _control(engine_a).peer_routes, 10, "node-b's route at node-a"
                )
                # Keys rotate while both run: k2 added and made active, then k1 dropped.
                _write_keys(keys, "k2", K1, K2)
                await _until(lambda: _count(engine_a, "node_keyring_reloads_total") >= 1, 5, "reload at a")
                await _until(lambda: _count(engine_b, "node_keyring_reloads_total") >= 1, 5, "reload at b")
                await asyncio.sleep(0.5)
                _write_keys(keys, "k2", K2)
                await _until(lambda: _count(engine_a, "node_keyring_reloads_total") >= 2, 5, "2nd reload")
                await _until(lambda: _count(engine_b, "node_keyring_reloads_total") >= 2, 5, "2nd reload b")
                verified = _count(engine_a, "node_records_verified_total")
                await asyncio.sleep(1.0)
                assert _count(engine_a, "node_records_verified_total") >= verified + 3  # k2 now
                assert _control(engine_a).peers["node-b"].status not in {"dead", "suspect"}
                # A genuine signed heartbeat of B, captured by the attacker, for a replay later.
                replay_value, replay_headers = attacker.signed(K2, "node-b")
                await attacker.send("node-b", replay_headers, replay_value)
                # Attempts to invent node-x: unsigned, old key (dropped), right id wrong secret,
                # unknown key id, clock-skewed (valid key), malformed headers.
                await attacker.send("node-x")
                await attacker.send("node-x", *reversed(attacker.signed(K1, "node-x")))
                await attacker.send("node-x", *reversed(attacker.signed(ROGUE, "node-x")))
                await attacker.send(
                    "node-x", *reversed(attacker.signed(NodeKey(id="k9", secret="d4" * 32), "node-x"))
                )
                await attacker.send("node-x", *reversed(attacker.signed(K2, "node-x", skew_s=-60.0)))
                await attacker.send(
                    "node-x", [("fl-kid", b"k2"), ("fl-ts", b"x"), ("fl-nonce", b"y"), ("fl-sig", b"z")]
                )
                # A signed heartbeat of node-b relabelled as node-x by its record key.
                value, headers = attacker.signed(K2, "node-b")
                await send_settled(attacker.producer, topic, value, key=b"node-x", headers=headers)
                await attacker.send("node-b", replay_headers, replay_value)  # the replay
            # B is gone: the attacker now keeps "beating" for it, unsigned and wrongly signed.
            stopped = time.monotonic()
            deadline = stopped + MISS_LIMIT * INTERVAL_MS / 1000 + 5
            while _control(engine_a).peers["node-b"].status != "dead":
                assert time.monotonic() < deadline, _control(engine_a).peers["node-b"]
                await attacker.send("node-b")
                await attacker.send("node-b", *reversed(attacker.signed(ROGUE, "node-b")))
                await asyncio.sleep(INTERVAL_MS / 2000)
            assert time.monotonic() - stopped >= MISS_LIMIT * INTERVAL_MS / 1000 - 2 * INTERVAL_MS / 1000
            msgs = probe_a.drain()
            refused = _refused(engine_a)
            control = _control(engine_a)
    finally:
        await stop_bounded(attacker.producer)
    assert "node-x" not in control.peers, control.peers
    assert not [m for m in msgs if isinstance(m, PeerStatusChange) and m.peer == "node-x"]
    # Each kind of attempt refused and counted under its reason.
    assert refused.get("unknown_key", 0) >= 2, refused  # k1 after the rotation, k9
    assert refused.get("stale", 0) == 1, refused
    assert refused.get("malformed", 0) == 1, refused
    assert refused.get("replayed", 0) == 1, refused
    assert refused.get("missing", 0) >= 2, refused  # unsigned node-x, unsigned node-b
    assert refused.get("bad_signature", 0) >= 3, refused  # rogue secret (x, b), b relabelled as x
    letters = [m for m in msgs if isinstance(m, DeadLetter)]
    assert letters and all(m.reason.startswith("signature_") for m in letters)
    assert _count(engine_a, "heartbeat_records_bad_total") == 0  # refused before decoding
    routes = [m for m in msgs if isinstance(m, EscalationRoute)]
    assert routes and all(r.node_id == "node-b" for r in routes)
    # The stopped node's last genuine heartbeat was consumed; no forged one after it was.
    assert control.peers["node-b"].last.node_id == "node-b"


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_the_shipped_signed_profile_signs_and_verifies_between_two_nodes(
    tansu: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finllm node --profile signed`` (config/default.toml): two nodes with the keys in
    FINLLM_NODE_KEYS hear each other's signed heartbeats; a third signing with another secret
    under the same key id is refused as a bad signature and never becomes a peer."""
    from tests.kafka.kafkatest import Topics, config_running, edge_node_config, standard_topics

    t = Topics.fresh()
    await standard_topics(tansu.bootstrap, t)
    monkeypatch.setenv("FINLLM_NODE_KEYS", f"{K1.id}:{K1.secret}")
    profiles = ("edge-only", "signed")
    cfg_a = edge_node_config(tansu.bootstrap, t, "node-a", profiles=profiles)
    cfg_b = edge_node_config(tansu.bootstrap, t, "node-b", profiles=profiles)
    async with config_running(cfg_a) as (a, _), config_running(cfg_b) as (b, _):
        await _until(lambda: (c := _started(a)) is not None and "node-b" in c.peers, 60, "b heard by a")
        await _until(lambda: (c := _started(b)) is not None and "node-a" in c.peers, 60, "a heard by b")
        # the same key id with another secret; its own variable (rings reread theirs while running)
        monkeypatch.setenv("FINLLM_ROGUE_KEYS", f"{K1.id}:{ROGUE.secret}")
        env = 'actors[heartbeats].config.trust.ring={ env = "FINLLM_ROGUE_KEYS" }'
        cfg_r = edge_node_config(tansu.bootstrap, t, "node-rogue", profiles=profiles, extra=[env])
        async with config_running(cfg_r) as (rogue, _):
            await _until(lambda: _refused(a).get("bad_signature", 0) >= 2, 30, "rogue refused at a")
            assert "node-rogue" not in _control(a).peers
            assert _count(a, "node_records_verified_total") > 0 and _count(
                rogue, "node_records_refused_total"
            )
