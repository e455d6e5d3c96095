"""The control plane: node heartbeats, watching peers, giving up work when unfit, ops endpoints.

Every ``heartbeat_interval_ms`` the node publishes a
:class:`~engine.messages.Heartbeat` on ``control.heartbeat`` (and on every
topic in ``also_publish``; a Kafka sink subscribed there carries it to the
other nodes of the consumer group).  It listens on the same topic for its
peers' heartbeats.

Decisions (pure functions, unit-tested on their own):

* :func:`peer_status` - a peer is ``dead`` after ``miss_limit`` missed
  heartbeats, ``suspect`` after one and a half intervals of silence,
  ``unhealthy`` when it says so (or gave up its partitions), ``breaching``
  when its reported latency exceeds the objective, else ``alive``.
* :func:`assess_self` - this node *breaches* an interval when its stage
  latency or loop lag exceeds its objective, or when its own heartbeat timer
  fired ``miss_limit`` intervals late (the loop stalled: its peers saw it as
  dead).  After ``breach_limit`` breaching intervals in a row it *releases*
  its partitions (leave the consumer group) and reports itself unhealthy;
  after ``recover_limit`` good intervals in a row it *rejoins*.
* :func:`choose_route` - while released, cloud escalations go to the alive,
  healthy peer with the lowest reported latency (ties by node id); with no
  such peer they stay local.

Bus events: :class:`PartitionAction` on ``control.partitions`` (the Kafka
source should leave or rejoin its group) and :class:`PeerStatusChange` on
``control.peers``, frozen Structs defined here; and the kernel's
:class:`~engine.messages.EscalationRoute` on ``control.route`` (re-exported
here), which the cloud proxy of this node consumes: it sends its escalations to
the endpoint configured for ``route_to`` (see
:class:`~actors.cloud_reasoner.CloudReasonerConfig` ``peer_endpoints``).

With ``http`` set, the actor also serves ``/healthz``, ``/readyz``,
``/metrics`` and ``/stats`` (see :mod:`adapters.ops_http`); ``finllm top``
reads ``/stats``.  Two operator actions, ``POST /drain`` (release the
partitions now and hold them released, as if breaching) and ``POST /undrain`` (let the
self-assessment rejoin again), need the ops bearer token (``http.token_env`` /
``http.token_file``; without one they answer 403).  Subscribe the actor to
``control.peer_route`` to list the escalation routes peers announced (signed, through
:class:`~actors.heartbeat_bridge.HeartbeatBridge` ``carry_routes``) under ``peer_routes``
in ``/stats``.  The probes answer from the engine's latest
:class:`~engine.health.NodeHealth` (published on ``health_topic``; the actor
subscribes itself when it serves HTTP): not ready while the engine says so (a
parked or crash-looping actor, a FAILED tier, a stalled partition, ...) or while
this node has released its partitions; not live while the engine says so.

Latency figures are the mean handler latency per message over the last
heartbeat interval (microseconds), taken from the engine's
``handler_latency_us{actor=...}`` and ``loop_lag_us`` histograms; the
Heartbeat's ``latency_p99_us``/``lag_p99_us`` fields carry these windowed
means, because the engine's histograms offer no windowed percentiles yet.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from actors._stats import StatsReader
from adapters.ops_http import OpsHttpConfig, OpsHttpServer
from engine.actor import Actor
from engine.health import NodeHealth
from engine.messages import EscalationRoute, Heartbeat, ModeChange

__all__ = [
    "ControlPlane",
    "ControlPlaneConfig",
    "EscalationRoute",
    "PartitionAction",
    "PeerState",
    "PeerStatus",
    "PeerStatusChange",
    "SelfState",
    "assess_self",
    "choose_route",
    "peer_status",
]

_NS_PER_MS = 1_000_000

PeerStatus = Literal["alive", "suspect", "dead", "unhealthy", "breaching"]


class ControlPlaneConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One node's control plane.  Objectives of 0 are off."""

    node_id: str = ""
    """Empty: the engine's node id when the actor context offers one (``ctx.node_id``), else ``node-1``."""
    heartbeat_interval_ms: float = 1000.0
    miss_limit: int = 3
    latency_actor: str = "edge"
    latency_histogram: str = "handler_latency_us"
    latency_objective_us: float = 0.0
    lag_objective_us: float = 0.0
    breach_limit: int = 3
    recover_limit: int = 5
    partitions: tuple[int, ...] = ()
    heartbeat_topic: str = "control.heartbeat"
    also_publish: tuple[str, ...] = ()
    http: OpsHttpConfig | None = None
    health_topic: str = "control.health"
    """Where the engine publishes its health assessments (``[engine.health] topic``)."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ms <= 0:
            raise ValueError(f"heartbeat_interval_ms must be > 0, got {self.heartbeat_interval_ms}")
        if self.miss_limit < 1 or self.breach_limit < 1 or self.recover_limit < 1:
            raise ValueError("miss_limit, breach_limit and recover_limit must be >= 1")


# --- bus events ---------------------------------------------------------------------


class PartitionAction(msgspec.Struct, frozen=True, kw_only=True):
    """``release``: stop consuming ``partitions`` (leave the group); ``rejoin``: take work again."""

    node_id: str
    action: Literal["release", "rejoin"]
    partitions: tuple[int, ...]
    reason: str
    ts_event: int


class PeerStatusChange(msgspec.Struct, frozen=True, kw_only=True):
    node_id: str
    peer: str
    status: str
    previous: str
    reason: str
    ts_event: int


# --- pure decisions -------------------------------------------------------------------


class PeerState(msgspec.Struct, frozen=True, kw_only=True):
    """The last heartbeat heard from a peer and when (engine clock, ns)."""

    last: Heartbeat
    last_seen_ns: int
    status: str = "alive"


class SelfState(msgspec.Struct, frozen=True, kw_only=True):
    """Consecutive breaching / good intervals, and whether partitions are released."""

    breaches: int = 0
    goods: int = 0
    released: bool = False


def peer_status(peer: PeerState, now_ns: int, cfg: ControlPlaneConfig) -> tuple[PeerStatus, str]:
    """(status, reason) of a peer at ``now_ns``."""
    interval = cfg.heartbeat_interval_ms * _NS_PER_MS
    silent = now_ns - peer.last_seen_ns
    hb = peer.last
    if silent > cfg.miss_limit * interval:
        return "dead", f"no heartbeat for {silent / 1e9:.1f} s ({cfg.miss_limit} missed)"
    if not hb.healthy:
        return "unhealthy", f"reports unhealthy in mode {hb.mode}"
    if cfg.latency_objective_us > 0 and hb.latency_p99_us > cfg.latency_objective_us:
        return (
            "breaching",
            f"latency {hb.latency_p99_us:.0f} us > objective {cfg.latency_objective_us:.0f} us",
        )
    if silent > 1.5 * interval:
        return "suspect", f"no heartbeat for {silent / 1e9:.1f} s"
    return "alive", "heartbeats on time"


def assess_self(
    state: SelfState,
    cfg: ControlPlaneConfig,
    *,
    latency_us: float,
    lag_us: float,
    late_intervals: float,
) -> tuple[SelfState, Literal["release", "rejoin"] | None, str]:
    """One interval of self-assessment: (new state, action or None, reason)."""
    why: list[str] = []
    if cfg.latency_objective_us > 0 and latency_us > cfg.latency_objective_us:
        why.append(
            f"{cfg.latency_actor} latency {latency_us:.0f} us > objective {cfg.latency_objective_us:.0f} us"
        )
    if cfg.lag_objective_us > 0 and lag_us > cfg.lag_objective_us:
        why.append(f"loop lag {lag_us:.0f} us > objective {cfg.lag_objective_us:.0f} us")
    if late_intervals >= cfg.miss_limit:
        why.append(f"heartbeat {late_intervals:.1f} intervals late: peers saw this node as dead")
    if why:
        new = SelfState(breaches=state.breaches + 1, goods=0, released=state.released)
    else:
        new = SelfState(breaches=0, goods=state.goods + 1, released=state.released)
    reason = "; ".join(why) if why else "within objectives"
    if not new.released and new.breaches >= cfg.breach_limit:
        return (
            msgspec.structs.replace(new, released=True),
            "release",
            f"{new.breaches} breaching intervals: {reason}",
        )
    if new.released and new.goods >= cfg.recover_limit:
        return (
            msgspec.structs.replace(new, released=False),
            "rejoin",
            f"{new.goods} good intervals in a row",
        )
    return new, None, reason


def choose_route(node_id: str, released: bool, peers: Mapping[str, PeerState]) -> str:
    """The node that should serve this node's cloud escalations."""
    if not released:
        return node_id
    fit = [p for p in peers.values() if p.status == "alive"]
    if not fit:
        return node_id
    best = min(fit, key=lambda p: (p.last.latency_p99_us, p.last.node_id))
    return best.last.node_id


# --- the actor ---------------------------------------------------------------------------


class ControlPlane(StatsReader, Actor[ControlPlaneConfig]):
    """Heartbeats, peer watch, release/rejoin decisions and the ops HTTP endpoints.

    Subscribe it to ``control.heartbeat`` (and ``control.mode`` if you want mode
    changes mirrored into the next heartbeat at once).
    """

    config_type = ControlPlaneConfig

    async def on_start(self) -> None:
        cfg = self.config
        self.node_id: str = (
            cfg.node_id
            or getattr(self.ctx, "node_id", "")
            or getattr(self.ctx.bus, "node_id", "")
            or "node-1"
        )
        self.peers: dict[str, PeerState] = {}
        self.self_state = SelfState()
        self.route_to = self.node_id
        self.events: deque[Any] = deque(maxlen=1000)
        self.peer_routes: dict[str, EscalationRoute] = {}
        """The last escalation route each peer announced (``control.peer_route``)."""
        self.drained = False
        """An operator drained this node (``POST /drain``): it stays released until undrained."""
        self._t0 = time.perf_counter()
        self._interval_s = cfg.heartbeat_interval_ms / 1000.0
        self._last_beat = time.perf_counter()
        self._prev_hist: dict[str, tuple[int, float]] = {}
        self._last_figures = (0.0, 0.0)
        self._stats = self._find_stats_source()
        self._sent = self.ctx.metrics.counter("heartbeats_sent_total")
        self._heard = self.ctx.metrics.counter("heartbeats_received_total")
        self.server: OpsHttpServer | None = None
        self.health: NodeHealth | None = None
        """The engine's latest assessment (None until one arrives)."""
        self.started = True
        if cfg.http is not None:
            # The probes must tell what the engine knows; the subscription outlives this
            # incarnation (the mailbox does), so a restart does not subscribe twice.
            mine = self.ctx.self_ref.mailbox
            if not any(mb is mine for mb in self.ctx.bus.subscribers(cfg.health_topic)):
                self.ctx.bus.subscribe(cfg.health_topic, mine)
            self.server = OpsHttpServer(
                cfg.http,
                metrics_text=self.ctx.metrics.prometheus,
                stats=self.stats,
                healthy=self._healthy,
                ready=self._ready,
                actions={"/drain": self._drain_action, "/undrain": self._undrain_action},
            )
            port = await self.server.start()
            self.ctx.log.info("ops_http_listening", url=self.server.url, port=port)
        self.ctx.call_every(int(cfg.heartbeat_interval_ms * _NS_PER_MS), self._tick)

    async def on_stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    # --- ops endpoints -------------------------------------------------------------

    def _healthy(self) -> tuple[bool, str]:
        # Liveness: answering proves the loop runs (SURVIVAL is still alive); what the engine
        # knows beyond that - a parked or crash-looping critical actor - is not live.
        h = self.health
        if h is not None and not h.live:
            return False, f"{self.node_id} {h.describe('live')}"
        return True, f"ok {self.node_id} mode={self.ctx.mode}"

    def _ready(self) -> tuple[bool, str]:
        reasons: list[str] = []
        if self.self_state.released:
            reasons.append(f"{self.node_id} released its partitions")
        if self.health is not None:
            reasons.extend(self.health.not_ready)
        if reasons:
            return False, "\n".join([f"not ready: {reasons[0]}", *(f"- {r}" for r in reasons)])
        return True, f"ready {self.node_id} mode={self.ctx.mode}"

    def drain(self, reason: str = "operator drain") -> bool:
        """Release this node's partitions now and keep them released until :meth:`undrain`.
        False when it was drained already."""
        if self.drained:
            return False
        self.drained = True
        if not self.self_state.released:
            self.self_state = msgspec.structs.replace(self.self_state, released=True, goods=0)
            self._partition_action("release", reason, self.ctx.clock.now_ns())
        self.ctx.log.warning("node_drained", reason=reason)
        return True

    def undrain(self) -> bool:
        """Let the self-assessment rejoin (after ``recover_limit`` good intervals); False when
        the node was not drained."""
        if not self.drained:
            return False
        self.drained = False
        self.ctx.log.warning("node_undrained")
        return True

    def _drain_action(self) -> tuple[int, str]:
        done = self.drain()
        return 200, f"{self.node_id} {'drained' if done else 'already drained'}"

    def _undrain_action(self) -> tuple[int, str]:
        done = self.undrain()
        return 200, f"{self.node_id} {'undrained: rejoins when within objectives' if done else 'not drained'}"

    def stats(self) -> dict[str, Any]:
        """The ``/stats`` document: mode, mailboxes, peers, metrics summary."""
        mailboxes = self._stats() if self._stats is not None else {}
        return {
            "node_id": self.node_id,
            "ts_ns": self.ctx.clock.now_ns(),
            "uptime_s": time.perf_counter() - self._t0,
            "mode": self.ctx.mode,
            "released": self.self_state.released,
            "route_to": self.route_to,
            "peers": {k: p.status for k, p in sorted(self.peers.items())},
            "peer_routes": {k: r.route_to for k, r in sorted(self.peer_routes.items())},
            "drained": self.drained,
            "ready": self._ready()[0],
            "healthy": self._healthy()[0],
            "health": msgspec.to_builtins(self.health) if self.health is not None else None,
            "mailboxes": {k: msgspec.to_builtins(v) for k, v in sorted(mailboxes.items())},
            "metrics": _finite(self.ctx.metrics.snapshot()),
        }

    # --- heartbeats --------------------------------------------------------------

    def on_message(self, msg: Any) -> None:
        if isinstance(msg, NodeHealth):
            self.health = msg
            return
        if isinstance(msg, EscalationRoute):
            if msg.node_id != self.node_id:
                self.peer_routes[msg.node_id] = msg
            return
        if isinstance(msg, ModeChange):
            # Peers learn of a mode change at once, not at the next interval.
            self._beat(self.ctx.clock.now_ns())
            return
        if isinstance(msg, Heartbeat) and msg.node_id != self.node_id:
            self._heard.inc()
            now = self.ctx.clock.now_ns()
            prev = self.peers.get(msg.node_id)
            status = prev.status if prev is not None else "new"
            peer = PeerState(last=msg, last_seen_ns=now, status=status)
            self.peers[msg.node_id] = self._restatus(peer, now)

    def _restatus(self, peer: PeerState, now: int) -> PeerState:
        status, why = peer_status(peer, now, self.config)
        if status != peer.status:
            ev = PeerStatusChange(
                node_id=self.node_id,
                peer=peer.last.node_id,
                status=status,
                previous=peer.status,
                reason=why,
                ts_event=now,
            )
            self._emit("control.peers", ev)
            return msgspec.structs.replace(peer, status=status)
        return peer

    def _window_mean(self, name: str, actor: str | None) -> float:
        for hname, labels, h in self.ctx.metrics.histograms():
            if hname != name or (actor is not None and labels.get("actor") != actor):
                continue
            if actor is None and labels:
                continue
            key = f"{name}|{actor}"
            pc, ps = self._prev_hist.get(key, (0, 0.0))
            self._prev_hist[key] = (h.count, h.sum)
            return (h.sum - ps) / (h.count - pc) if h.count > pc else 0.0
        return 0.0

    def _tick(self) -> None:
        cfg = self.config
        now = self.ctx.clock.now_ns()
        t = time.perf_counter()
        late = max(0.0, (t - self._last_beat - self._interval_s) / self._interval_s)
        self._last_beat = t
        latency = self._window_mean(cfg.latency_histogram, cfg.latency_actor)
        lag = self._window_mean("loop_lag_us", None)
        self.heartbeat_once(now, latency_us=latency, lag_us=lag, late_intervals=late)

    def heartbeat_once(
        self, now: int, *, latency_us: float, lag_us: float, late_intervals: float
    ) -> Heartbeat:
        """Assess this node, update peers and routes, publish one heartbeat (public for tests)."""
        cfg = self.config
        state, action, reason = assess_self(
            self.self_state, cfg, latency_us=latency_us, lag_us=lag_us, late_intervals=late_intervals
        )
        if action == "rejoin" and self.drained:
            # Drained by an operator: good intervals do not bring the partitions back.
            state, action = msgspec.structs.replace(state, released=True), None
        self.self_state = state
        if action is not None:
            self._partition_action(action, reason, now)
        for k in list(self.peers):
            self.peers[k] = self._restatus(self.peers[k], now)
        route = choose_route(self.node_id, state.released, self.peers)
        if route != self.route_to:
            why = (
                f"{self.node_id} released its partitions; {route} is the fittest alive peer"
                if route != self.node_id
                else ("back within objectives" if not state.released else "no alive peer to take escalations")
            )
            self.route_to = route
            self.ctx.log.warning("escalation_route", route_to=route, reason=why)
            self._emit(
                "control.route",
                EscalationRoute(node_id=self.node_id, route_to=route, reason=why, ts_event=now),
            )
        self._last_figures = (latency_us, lag_us)
        return self._beat(now)

    def _partition_action(self, action: Literal["release", "rejoin"], reason: str, now: int) -> None:
        cfg = self.config
        self.ctx.log.warning("partition_action", action=action, reason=reason, partitions=cfg.partitions)
        self.ctx.metrics.counter("partition_actions_total", action=action).inc()
        self._emit(
            "control.partitions",
            PartitionAction(
                node_id=self.node_id,
                action=action,
                partitions=cfg.partitions,
                reason=reason,
                ts_event=now,
            ),
        )

    def _beat(self, now: int) -> Heartbeat:
        cfg = self.config
        state = self.self_state
        latency_us, lag_us = self._last_figures
        hb = Heartbeat(
            node_id=self.node_id,
            ts_event=now,
            mode=self.ctx.mode,
            healthy=not state.released and state.breaches == 0,
            lag_p99_us=lag_us,
            latency_p99_us=latency_us,
            partitions=() if state.released else cfg.partitions,
        )
        self._sent.inc()
        self.ctx.publish(cfg.heartbeat_topic, hb)
        for topic in cfg.also_publish:
            self.ctx.publish(topic, hb)
        return hb

    def _emit(self, topic: str, ev: Any) -> None:
        self.events.append(ev)
        self.ctx.publish(topic, ev)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None so the document is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
