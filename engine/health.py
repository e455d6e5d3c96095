"""Tier health: did each configured tier of the pipeline actually work?

A counter says how often something happened; it cannot say "the cloud tier was
configured, was asked 13 times and failed 13 times because its server died with
SIGSEGV".  A :class:`TierHealth` registry (one per engine, reachable from every
actor as ``ctx.tier(name)``) keeps, per tier, how many attempts, successes and
failures there were and the *first* and *latest* error text, so a run summary, a
report and ``/readyz`` can state plainly whether each tier worked::

    tier = ctx.tier("cloud")
    tier.configured()                 # in on_start: this tier is expected to work
    tier.attempt()
    try:
        ...
    except SomeError as exc:
        tier.failure(f"server exited with SIGSEGV: {exc}")
    else:
        tier.success()

A tier's :class:`TierState` follows from those counts (see :meth:`TierRecorder.status`).

Node health: is this node *ready* (``/readyz``: it does its job) and *live* (``/healthz``:
it is worth keeping rather than restarting)?  :func:`assess` answers both from what the
engine knows - each supervised child's recent failures and whether it was parked (see
:mod:`engine.supervisor`), the tiers above, the current mode and the metrics' gauges
(stalled partitions: any gauge named ``*_stalled`` above 0, e.g.
``kafka_partition_stalled{topic,partition}``; consumer lag: any gauge named
``*_consumer_lag``) - and lists every reason it is not.  The thresholds are one
:class:`HealthConfig` (``[engine.health]``).  The engine re-assesses every
``interval_s`` and on every supervisor event, and publishes the :class:`NodeHealth` on
``topic`` for actors that serve probes (the control plane).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import msgspec
import structlog

__all__ = [
    "ChildHealth",
    "ChildState",
    "HealthConfig",
    "HealthLogger",
    "NodeHealth",
    "TierHealth",
    "TierRecorder",
    "TierState",
    "TierStatus",
    "assess",
]

_MAX_ERROR_CHARS = 500


class TierState(enum.StrEnum):
    """How a tier did, worst last."""

    OK = "ok"
    """Every attempt so far succeeded (or failures were under the degraded threshold)."""
    IDLE = "idle"
    """Configured, started, never asked to do anything."""
    DEGRADED = "degraded"
    """Some attempts failed, some succeeded."""
    FAILED = "failed"
    """The tier did not start, or every attempt failed."""


class TierStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A frozen snapshot of one tier.  ``ts_*`` are the engine clock's nanoseconds (0: never)."""

    tier: str
    state: TierState
    attempts: int
    successes: int
    failures: int
    first_error: str = ""
    last_error: str = ""
    ts_first_error: int = 0
    start_error: str = ""

    def describe(self) -> str:
        """One human line, e.g. ``cloud: failed - 13 attempts, 13 failed: server exited with SIGSEGV``."""
        if self.start_error:
            return f"{self.tier}: {self.state} - did not start: {self.start_error}"
        line = f"{self.tier}: {self.state} - {self.attempts} attempts, {self.failures} failed"
        if self.first_error:
            line += f" (first error: {self.first_error})"
        return line


class TierRecorder:
    """The mutable record of one tier; get it from :meth:`TierHealth.tier` (or ``ctx.tier``)."""

    __slots__ = (
        "_attempts",
        "_failures",
        "_first_error",
        "_last_error",
        "_start_error",
        "_successes",
        "_ts_first_error",
        "name",
        "owners",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self._attempts = 0
        self._successes = 0
        self._failures = 0
        self._first_error = ""
        self._last_error = ""
        self._ts_first_error = 0
        self._start_error = ""
        self.owners: set[str] = set()
        """Names of the actors that report for this tier (filled by ``ctx.tier``)."""

    def configured(self) -> None:
        """Declare the tier expected to work (clears an earlier start failure: a restart worked)."""
        self._start_error = ""

    def start_failed(self, error: str, ts_ns: int = 0) -> None:
        """The tier could not start at all; it is FAILED until :meth:`configured` is called again."""
        self._start_error = error[:_MAX_ERROR_CHARS]
        self._note(error, ts_ns)

    def attempt(self, n: int = 1) -> None:
        """``n`` units of work were started (escalations, forecasts, items)."""
        self._attempts += n

    def success(self, n: int = 1) -> None:
        """``n`` attempts ended well."""
        self._successes += n

    def failure(self, error: str, ts_ns: int = 0, n: int = 1) -> None:
        """``n`` attempts failed with ``error`` (the first error text is kept, the latest too)."""
        self._failures += n
        self._note(error, ts_ns)

    def _note(self, error: str, ts_ns: int) -> None:
        text = error[:_MAX_ERROR_CHARS]
        if not self._first_error:
            self._first_error = text
            self._ts_first_error = ts_ns
        self._last_error = text

    def status(self) -> TierStatus:
        """FAILED if it did not start or every attempt failed; DEGRADED if some failed; IDLE if none
        were made; OK otherwise."""
        if self._start_error or (self._attempts > 0 and self._failures >= self._attempts):
            state = TierState.FAILED
        elif self._failures > 0:
            state = TierState.DEGRADED
        elif self._attempts == 0:
            state = TierState.IDLE
        else:
            state = TierState.OK
        return TierStatus(
            tier=self.name,
            state=state,
            attempts=self._attempts,
            successes=self._successes,
            failures=self._failures,
            first_error=self._first_error,
            last_error=self._last_error,
            ts_first_error=self._ts_first_error,
            start_error=self._start_error,
        )


class TierHealth:
    """The registry: one :class:`TierRecorder` per tier name, created on first use."""

    def __init__(self) -> None:
        self._tiers: dict[str, TierRecorder] = {}

    def tier(self, name: str) -> TierRecorder:
        rec = self._tiers.get(name)
        if rec is None:
            rec = self._tiers[name] = TierRecorder(name)
        return rec

    def actor_lost(self, actor: str, why: str) -> None:
        """``actor`` is gone for good (parked or abandoned): every tier it reports for has FAILED,
        whatever its counts said (a tier whose only actor died early would otherwise look IDLE)."""
        for rec in self._tiers.values():
            if actor in rec.owners:
                rec.start_failed(f"actor {actor} {why}")

    def snapshot(self) -> dict[str, TierStatus]:
        """Every tier's status, by name (sorted)."""
        return {name: self._tiers[name].status() for name in sorted(self._tiers)}

    def failed(self) -> list[TierStatus]:
        """The tiers whose state is FAILED."""
        return [s for s in self.snapshot().values() if s.state is TierState.FAILED]


# --- node health: ready and live --------------------------------------------------------


class HealthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """When the node counts as ready and as live (``[engine.health]``).  Counts of 0 turn a rule off."""

    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """How often the engine re-assesses (it also does on every supervisor event)."""
    restart_window_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """The window in which an actor's failures count as recent."""
    unready_restarts: Annotated[int, msgspec.Meta(ge=0)] = 3
    """An actor that failed this often within the window makes the node not ready."""
    unlive_restarts: Annotated[int, msgspec.Meta(ge=0)] = 6
    """A *critical* actor that failed this often within the window (a crash loop) makes it not live."""
    parked_is_fatal: bool = True
    """A parked actor makes the node not live (an orchestrator restarts it), not only not ready."""
    max_consumer_lag: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Records behind on any partition (gauges ``*_consumer_lag``) past which the node is not ready."""
    ready_modes: tuple[str, ...] = ("NORMAL", "CONSERVE")
    """Degradation modes in which the node is ready."""
    topic: str = "control.health"
    """The bus topic the engine publishes each :class:`NodeHealth` on (only while subscribed)."""


class ChildState(enum.StrEnum):
    """A supervised child as its supervisor sees it."""

    RUNNING = "running"
    STOPPED = "stopped"
    """Finished normally, or not running right now (being restarted, never started)."""
    ABANDONED = "abandoned"
    """Past its supervisor's restart intensity; the supervisor gave up on it (non-critical)."""
    PARKED = "parked"
    """Crash-looped: stopped for good by its supervisor, its mailbox closed."""


class ChildHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One supervised child (an actor or a supervisor).  ``ts_last_failure``: wall-clock ns (0: never)."""

    name: str
    supervisor: str
    critical: bool
    state: ChildState
    failures_total: int = 0
    failures_recent: int = 0
    """Failures within :attr:`HealthConfig.restart_window_s` (or the window asked for)."""
    last_error: str = ""
    ts_last_failure: int = 0


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One assessment of the node.  ``not_live`` reasons are also ``not_ready`` reasons."""

    ready: bool
    live: bool
    not_ready: tuple[str, ...] = ()
    not_live: tuple[str, ...] = ()
    mode: str = "NORMAL"
    children: dict[str, ChildHealth] = {}
    tiers: dict[str, TierStatus] = {}
    stalled: tuple[str, ...] = ()
    """Gauges ``*_stalled`` above 0, as ``name{label=value,...}``."""
    lag: dict[str, float] = {}
    """Gauges ``*_consumer_lag``, as ``name{label=value,...}`` -> records behind."""
    ts_assessed: int = 0
    """Wall-clock ns of the assessment."""

    def parked(self) -> list[ChildHealth]:
        return [c for c in self.children.values() if c.state is ChildState.PARKED]

    def failed_tiers(self) -> list[TierStatus]:
        return [t for t in self.tiers.values() if t.state is TierState.FAILED]

    def describe(self, probe: str = "ready") -> str:
        """The probe's answer as text: a first line, then one ``- reason`` line per problem."""
        if probe == "live":
            ok, reasons, good, bad = self.live, self.not_live, "live", "not live"
        else:
            ok, reasons, good, bad = self.ready, self.not_ready, "ready", "not ready"
        if ok:
            return f"{good} (mode {self.mode})"
        return "\n".join([f"{bad}: {len(reasons)} problem(s)", *(f"- {r}" for r in reasons)])


def _gauge_key(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


def assess(
    cfg: HealthConfig,
    *,
    children: Iterable[ChildHealth] = (),
    tiers: Mapping[str, TierStatus] | None = None,
    gauges: Iterable[tuple[str, Mapping[str, str], float]] = (),
    mode: str = "NORMAL",
    ts_ns: int = 0,
) -> NodeHealth:
    """Ready and live, with every reason why not (pure; the engine calls it with its own state)."""
    not_live: list[str] = []
    not_ready: list[str] = []
    kids = {c.name: c for c in children}
    window = f"{cfg.restart_window_s:g} s"
    for c in kids.values():
        err = f": {c.last_error}" if c.last_error else ""
        if c.state is ChildState.PARKED:
            line = f"actor {c.name} parked after {c.failures_total} failures (crash loop){err}"
            (not_live if cfg.parked_is_fatal else not_ready).append(line)
        elif c.state is ChildState.ABANDONED:
            not_ready.append(f"actor {c.name} abandoned by supervisor {c.supervisor}{err}")
        elif c.critical and cfg.unlive_restarts and c.failures_recent >= cfg.unlive_restarts:
            not_live.append(
                f"critical actor {c.name} crash-looping: {c.failures_recent} failures in {window}{err}"
            )
        elif cfg.unready_restarts and c.failures_recent >= cfg.unready_restarts:
            not_ready.append(f"actor {c.name} restarting: {c.failures_recent} failures in {window}{err}")
    tier_map = dict(tiers or {})
    for t in tier_map.values():
        if t.state is TierState.FAILED:
            not_ready.append(f"tier {t.describe()}")
    stalled: list[str] = []
    lag: dict[str, float] = {}
    for name, labels, value in gauges:
        if name.endswith("_stalled") and value > 0:
            # Flags (1) and counts (kafka_partitions_stalled{actor}) alike; a count says how many.
            key = _gauge_key(name, labels)
            stalled.append(key)
            not_ready.append(f"stalled: {key}" + ("" if value == 1 else f" = {value:g}"))
        elif name.endswith("_consumer_lag"):
            key = _gauge_key(name, labels)
            lag[key] = value
            if cfg.max_consumer_lag and value > cfg.max_consumer_lag:
                not_ready.append(f"lagging: {key} = {value:g} records > {cfg.max_consumer_lag:g}")
    if mode not in cfg.ready_modes:
        not_ready.append(f"mode {mode} (ready in {', '.join(cfg.ready_modes)})")
    return NodeHealth(
        ready=not (not_ready or not_live),
        live=not not_live,
        not_ready=(*not_live, *not_ready),
        not_live=tuple(not_live),
        mode=mode,
        children=kids,
        tiers=tier_map,
        stalled=tuple(stalled),
        lag=lag,
        ts_assessed=ts_ns,
    )


class HealthLogger:
    """A health listener (``Engine.add_health_listener``) that logs each change once.

    WARNING ``tier_failed`` per tier that turned FAILED and ``actor_parked`` per child
    parked, WARNING ``node_not_ready``/``node_not_live`` with the reasons when a probe
    turns, INFO ``tier_recovered``/``node_ready``/``node_live`` when it comes back.
    """

    def __init__(self, log: Any = None) -> None:
        self._log: Any = log if log is not None else structlog.get_logger("finllm")
        self._failed: set[str] = set()
        self._parked: set[str] = set()
        self._ready = True
        self._live = True

    def __call__(self, health: NodeHealth) -> None:
        log = self._log
        failed = {t.tier: t for t in health.failed_tiers()}
        for name in sorted(failed.keys() - self._failed):
            t = failed[name]
            log.warning("tier_failed", tier=name, status=t.describe(), last_error=t.last_error)
        for name in sorted(self._failed - failed.keys()):
            log.info("tier_recovered", tier=name)
        parked = {c.name: c for c in health.parked()}
        for name in sorted(parked.keys() - self._parked):
            c = parked[name]
            log.warning(
                "actor_parked",
                actor=name,
                supervisor=c.supervisor,
                failures=c.failures_total,
                last_error=c.last_error,
            )
        self._failed, self._parked = set(failed), set(parked)
        if health.ready != self._ready:
            if health.ready:
                log.info("node_ready", mode=health.mode)
            else:
                log.warning("node_not_ready", reasons=list(health.not_ready))
        if health.live != self._live:
            if health.live:
                log.info("node_live", mode=health.mode)
            else:
                log.warning("node_not_live", reasons=list(health.not_live))
        self._ready, self._live = health.ready, health.live
