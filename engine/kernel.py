"""The engine: builds a supervised actor pipeline from config and runs it.

:class:`Engine` is the only place that knows how the pieces fit: it resolves
actor classes by dotted path, converts their config tables, creates their
mailboxes, wires subscriptions on the :class:`~engine.bus.Bus`, and places
them under supervisors.  It imports nothing from ``actors``, ``adapters`` or
``strategies``: those arrive by name from the config file.

Running: uvloop by default (``[engine] loop = "asyncio"`` selects the stdlib
loop).  SIGINT/SIGTERM, or an actor calling ``ctx.request_shutdown``, start a
graceful shutdown: the engine waits up to ``shutdown_deadline_s`` for every
mailbox to drain, has each actor that defines ``on_drain`` hand on what it holds (in
start order, settling after each, while every actor still runs), then stops the actors in
reverse start order.  A lag monitor
records how late the loop runs its timers (``loop_lag_us``).

Health: :meth:`Engine.health` says whether the node is ready and live and why not
(see :mod:`engine.health`).  A health monitor re-assesses every
``[engine.health] interval_s`` and at once after any supervisor event (a failure,
a parked or abandoned child), exports ``node_ready``/``node_live`` and per-child
``actor_failures_recent``/``actor_parked`` gauges, hands each assessment to the
listeners added with :meth:`Engine.add_health_listener`, and publishes it on
``[engine.health] topic`` while someone subscribes.  A parked or abandoned child
turns the mode DEGRADED (a :class:`~engine.messages.ModeChange` on ``control.mode``).
"""

from __future__ import annotations

import asyncio
import operator
import signal
import time
import typing
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog
import uvloop

from engine import messages
from engine.actor import Actor, ActorCell, ActorContext, ActorRef
from engine.bus import Bus
from engine.clock import Clock, LiveClock, SimClock
from engine.config import EngineConfig, MailboxConfig, Override, convert, load_config, resolve
from engine.errors import ConfigError, Escalation
from engine.health import NodeHealth, TierState, TierStatus, assess
from engine.mailbox import Mailbox, MailboxStatistics
from engine.messages import ModeChange
from engine.metrics import Metrics
from engine.runtime import Runtime
from engine.supervisor import ChildSpec, Supervisor, SupervisorConfig

__all__ = ["Engine", "RunSummary", "run_engine", "run_on_loop"]

_log = structlog.get_logger("finllm")
T = TypeVar("T")


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """How a run ended.  ``exit_code`` 0 is a clean shutdown."""

    reason: str
    exit_code: int
    wall_s: float
    drained: bool
    discarded_on_stop: int
    abandoned: list[str]
    mailboxes: dict[str, MailboxStatistics]
    metrics: dict[str, Any]
    tiers: dict[str, TierStatus] = {}
    """Per pipeline tier: did it work (see :mod:`engine.health`)."""
    parked: dict[str, str] = {}
    """Children parked for crash-looping, by name -> their last error."""

    def failed_tiers(self) -> list[TierStatus]:
        """Tiers that did not start or whose every attempt failed."""
        return [t for t in self.tiers.values() if t.state is TierState.FAILED]


def _mailbox_for(name: str, cfg: MailboxConfig) -> Mailbox[Any]:
    key: Callable[[Any], Hashable] | None = operator.attrgetter(cfg.key) if cfg.key else None
    lane: Callable[[Any], int] | None = None
    if cfg.lanes > 1:
        last = cfg.lanes - 1
        by_type: dict[type, int] = {}
        for cls in typing.get_args(messages.Message):
            tag = cls.__struct_config__.tag
            if tag in cfg.lane_of:
                by_type[cls] = cfg.lane_of[tag]
        get = by_type.get

        def lane(msg: Any) -> int:
            return get(type(msg), last)

    return Mailbox(cfg.capacity, cfg.policy, name=name, lanes=cfg.lanes, lane=lane, key=key)


class Engine:
    """One node: a bus, a clock, metrics, and a supervision tree of actors."""

    def __init__(self, config: EngineConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bus = Bus(self.metrics)
        if clock is None:
            clock = SimClock() if config.engine.clock == "sim" else LiveClock()
        self.clock = clock
        self.runtime = Runtime(bus=self.bus, clock=clock, metrics=self.metrics, node_id=config.engine.node_id)
        self.cells: dict[str, ActorCell] = {}
        self.root = Supervisor(
            "root",
            SupervisorConfig(
                strategy=config.engine.root_strategy,
                max_restarts=config.engine.root_max_restarts,
                period_s=config.engine.root_period_s,
                seed=config.engine.seed,
                park_after=config.engine.park_after,
                park_window_s=config.engine.park_window_s,
            ),
            on_abandon=self._on_abandon,
            on_park=self._on_park,
            on_failure=self._on_failure,
        )
        self._shutdown: asyncio.Event | None = None
        self._reason = ""
        self._built = False
        self._health_kick: asyncio.Event | None = None
        self._health_listeners: list[Callable[[NodeHealth], None]] = []
        self.runtime.set_shutdown_hook(self.request_shutdown)
        self.runtime.hold_start()

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        overrides: dict[str, Any] | None = None,
        profiles: Sequence[str] = (),
        sets: Sequence[str | Override] = (),
        variables: Mapping[str, str] | None = None,
    ) -> Engine:
        """An engine from a pipeline file through the one loader (:func:`engine.config.load_config`)."""
        return cls(load_config(path, overrides=overrides, profiles=profiles, sets=sets, variables=variables))

    # --- assembly --------------------------------------------------------

    def build(self) -> None:
        """Resolve, convert and wire everything; raise :class:`ConfigError` on any problem."""
        if self._built:
            return
        cfg = self.config
        path = cfg.source or "<config>"
        sups: dict[str, Supervisor] = {"root": self.root}
        for sspec in cfg.supervisors:
            sup = Supervisor(
                sspec.name,
                SupervisorConfig(
                    strategy=sspec.strategy,
                    max_restarts=sspec.max_restarts,
                    period_s=sspec.period_s,
                    backoff_initial_s=sspec.backoff_initial_s,
                    backoff_max_s=sspec.backoff_max_s,
                    seed=cfg.engine.seed,
                    park_after=cfg.engine.park_after if sspec.park_after is None else sspec.park_after,
                    park_window_s=(
                        cfg.engine.park_window_s if sspec.park_window_s is None else sspec.park_window_s
                    ),
                ),
                on_abandon=self._on_abandon,
                on_park=self._on_park,
                on_failure=self._on_failure,
            )
            sups[sspec.name] = sup
            sups[sspec.parent].add(sup, ChildSpec(critical=sspec.critical))
        for spec in cfg.actors:
            if not spec.enabled:
                continue
            key = f"actors[{spec.name}]"
            cls = resolve(spec.cls, path=path, key=f"{key}.class")
            if not (isinstance(cls, type) and issubclass(cls, Actor)):
                raise ConfigError(path, f"{key}.class", f"{spec.cls!r} is not an engine.actor.Actor subclass")
            actor_cfg = convert(spec.config, cls.config_type, path=path, key=f"{key}.config")
            try:
                cls.check_config(actor_cfg)
            except ValueError as exc:
                raise ConfigError(path, f"{key}.config", str(exc)) from None
            self.add_actor(
                spec.name,
                cls,
                actor_cfg,
                mailbox=_mailbox_for(spec.name, spec.mailbox),
                subscribe=spec.subscribe,
                serve=spec.serve,
                supervisor=sups[spec.supervisor],
                child=ChildSpec(
                    restart=spec.restart, shutdown_timeout_s=spec.shutdown_timeout_s, critical=spec.critical
                ),
            )
        self._built = True

    def add_actor(
        self,
        name: str,
        cls: type[Actor[Any]],
        config: msgspec.Struct | None = None,
        *,
        mailbox: Mailbox[Any] | None = None,
        subscribe: list[str] | tuple[str, ...] = (),
        serve: list[str] | tuple[str, ...] = (),
        supervisor: Supervisor | None = None,
        child: ChildSpec | None = None,
    ) -> ActorRef:
        """Add an actor programmatically (tests, tools); the config file path does the same."""
        if name in self.cells:
            raise ValueError(f"duplicate actor name {name!r}")
        cfg = config if config is not None else cls.config_type()
        # `is None`, not `or`: an empty Mailbox is falsy (it has __len__).
        mb = mailbox if mailbox is not None else Mailbox(4096, "drop_newest", name=name)

        def factory(ctx: ActorContext) -> Actor[Any]:
            return cls(cfg, ctx)

        cell = ActorCell(name, factory, mb, runtime=self.runtime)
        self.cells[name] = cell
        for pattern in subscribe:
            self.bus.subscribe(pattern, mb)
        for topic in serve:
            self.bus.register(topic, cell.ref)
        self.runtime.add_idle_probe(cell.is_idle)
        self.runtime.track(name, mb)
        (supervisor or self.root).add(cell, child or ChildSpec())
        return cell.ref

    def ref(self, name: str) -> ActorRef:
        return self.cells[name].ref

    def mailbox_statistics(self) -> dict[str, MailboxStatistics]:
        return self.runtime.mailbox_statistics()

    def _on_abandon(self, name: str, exc: BaseException) -> None:
        self.metrics.counter("actors_abandoned_total").inc()
        self._degrade(f"actor {name!r} abandoned after repeated failures: {exc!r}")

    def _on_park(self, name: str, exc: BaseException) -> None:
        self.metrics.counter("actors_parked_total").inc()
        self.metrics.gauge("actor_parked", actor=name).set(1.0)
        self._degrade(f"actor {name!r} parked: it crash-loops ({exc!r})")

    def _on_failure(self, name: str, exc: BaseException) -> None:
        self._kick_health()

    def _degrade(self, reason: str) -> None:
        previous = self.runtime.mode
        mode = "DEGRADED" if previous in {"NORMAL", "CONSERVE"} else previous
        self.runtime.mode = mode
        _log.error("mode_change", mode=mode, previous=previous, reason=reason)
        self.bus.publish(
            "control.mode",
            ModeChange(mode=mode, previous=previous, reason=reason, ts_event=self.clock.now_ns()),
        )
        self._kick_health()

    # --- health ----------------------------------------------------------

    def health(self) -> NodeHealth:
        """Assess the node now (see :mod:`engine.health`) and export the verdict as gauges."""
        cfg = self.config.engine.health
        children = [c for sup in self._supervisors() for c in sup.children_health(cfg.restart_window_s)]
        verdict = assess(
            cfg,
            children=children,
            tiers=self.metrics.tiers.snapshot(),
            gauges=self.metrics.gauges(),
            mode=self.runtime.mode,
            ts_ns=time.time_ns(),
        )
        m = self.metrics
        m.gauge("node_ready").set(float(verdict.ready))
        m.gauge("node_live").set(float(verdict.live))
        for c in children:
            if c.failures_total:  # actors that never failed stay out of the exposition
                m.gauge("actor_failures_recent", actor=c.name).set(float(c.failures_recent))
        return verdict

    def add_health_listener(self, listener: Callable[[NodeHealth], None]) -> None:
        """Call ``listener`` with every assessment the health monitor makes (``finllm node`` logs them)."""
        self._health_listeners.append(listener)

    def _kick_health(self) -> None:
        if self._health_kick is not None:
            self._health_kick.set()

    async def _health_monitor(self) -> None:
        cfg = self.config.engine.health
        kick = self._health_kick = asyncio.Event()
        kick.set()  # the first assessment at once
        loop = asyncio.get_running_loop()
        while True:
            # asyncio.wait, not wait_for: on 3.11 wait_for can swallow this task's cancellation
            # when the kick lands at the same moment, and the engine would never finish stopping.
            waiter = loop.create_task(kick.wait())
            try:
                await asyncio.wait({waiter}, timeout=cfg.interval_s)
            finally:
                waiter.cancel()
            kick.clear()
            verdict = self.health()
            for listener in self._health_listeners:
                try:
                    listener(verdict)
                except Exception as exc:  # a broken listener must not end health reporting
                    _log.error("health_listener_failed", listener=repr(listener), error=repr(exc))
            # Only while subscribed: an unsubscribed topic would count as unrouted every second.
            if self.bus.subscribers(cfg.topic):
                self.bus.publish(cfg.topic, verdict)

    # --- running ---------------------------------------------------------

    def request_shutdown(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown (idempotent; the first reason wins)."""
        if not self._reason:
            self._reason = reason
        if self._shutdown is not None:
            self._shutdown.set()

    async def run(self, *, install_signals: bool = True) -> RunSummary:
        """Run until a shutdown is requested or the root supervisor escalates."""
        self.build()
        for warning in self.config.warnings:
            _log.warning("config_warning", warning=warning)
        loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        if self._reason:
            self._shutdown.set()
        t0 = time.perf_counter()
        signals: list[signal.Signals] = []
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.request_shutdown, f"signal {sig.name}")
                    signals.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread
                    pass
        lag = loop.create_task(self._lag_monitor(), name="lag-monitor")
        health = loop.create_task(self._health_monitor(), name="health-monitor")
        root = loop.create_task(self.root.run(started=self.runtime.mark_started), name="root-supervisor")
        stop = loop.create_task(self._shutdown.wait(), name="shutdown-wait")
        exit_code = 0
        drained = True
        discarded = 0
        try:
            await asyncio.wait({root, stop}, return_when=asyncio.FIRST_COMPLETED)
            if root.done():
                exc = root.exception()
                if isinstance(exc, Escalation):
                    self._reason = self._reason or f"escalation: {exc}"
                    exit_code = 1
                elif exc is not None:
                    self._reason = self._reason or f"root failed: {exc!r}"
                    exit_code = 1
                elif any(s.parked for s in self._supervisors()):
                    parked = sorted(n for s in self._supervisors() for n in s.parked)
                    self._reason = self._reason or f"every actor finished or was parked (parked: {parked})"
                    exit_code = 1
                else:
                    self._reason = self._reason or "all actors finished"
            else:
                drained = await self._drain(self.config.engine.shutdown_deadline_s)
                drained = await self._run_drain_hooks(self.config.engine.shutdown_deadline_s) and drained
                cells = list(self.cells.values())
                await self.root.stop(self.config.engine.shutdown_deadline_s)
                await asyncio.gather(root, return_exceptions=True)
                discarded = sum(c.close() for c in cells)
        finally:
            stop.cancel()
            lag.cancel()
            health.cancel()
            await asyncio.gather(stop, lag, health, return_exceptions=True)
            self._health_kick = None
            if not root.done():
                root.cancel()
                await asyncio.gather(root, return_exceptions=True)
            for sig in signals:
                loop.remove_signal_handler(sig)
        _log.info("engine_stopped", reason=self._reason, exit_code=exit_code, drained=drained)
        for sup in self._supervisors():
            for name, err in sup.parked.items():
                self.metrics.tiers.actor_lost(name, f"parked: {err}")
            for name in sup.abandoned:
                self.metrics.tiers.actor_lost(name, "abandoned by its supervisor")
        return RunSummary(
            reason=self._reason,
            exit_code=exit_code,
            wall_s=time.perf_counter() - t0,
            drained=drained,
            discarded_on_stop=discarded,
            abandoned=[n for s in self._supervisors() for n in s.abandoned],
            mailboxes=self.mailbox_statistics(),
            metrics=self.metrics.snapshot(),
            tiers=self.metrics.tiers.snapshot(),
            parked={n: err for s in self._supervisors() for n, err in s.parked.items()},
        )

    def _supervisors(self) -> list[Supervisor]:
        out = [self.root]
        i = 0
        while i < len(out):
            out.extend(c for c in out[i].children if isinstance(c, Supervisor))
            i += 1
        return out

    async def _run_drain_hooks(self, deadline_s: float) -> bool:
        """Each actor with an ``on_drain`` runs it, in start order, the pipeline settling after
        each: what one hands on at the end (held items, partial batches) reaches actors that
        are all still running.  False when a hook failed or a settle passed the deadline."""
        ok = True
        for cell in self.root.cells():
            if cell.overrides_on_drain():
                ok = await cell.drain(deadline_s) and ok
                ok = await self._drain(deadline_s) and ok
        return ok

    async def _drain(self, deadline_s: float) -> bool:
        try:
            await asyncio.wait_for(self.runtime.wait_idle(), deadline_s)
            return True
        except TimeoutError:
            _log.warning("drain_deadline_passed", deadline_s=deadline_s)
            return False

    async def _lag_monitor(self) -> None:
        interval = self.config.engine.lag_interval_ms / 1000.0
        hist = self.metrics.histogram("loop_lag_us")
        gauge = self.metrics.gauge("loop_lag_us_last")
        while True:
            t = time.perf_counter()
            await asyncio.sleep(interval)
            lag_us = max(0.0, (time.perf_counter() - t - interval) * 1e6)
            hist.observe(lag_us)
            gauge.set(lag_us)


def run_on_loop(main: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """Run ``main`` to completion on a fresh uvloop or asyncio loop."""
    if loop == "uvloop":
        return uvloop.run(main)
    if loop == "asyncio":
        return asyncio.run(main)
    raise ValueError(f"unknown loop {loop!r}; expected 'uvloop' or 'asyncio'")


def run_engine(config: EngineConfig | Engine, loop: str | None = None) -> RunSummary:
    """Build and run an engine on the configured (or given) loop; blocking."""
    engine = config if isinstance(config, Engine) else Engine(config)
    return run_on_loop(engine.run(), loop or engine.config.engine.loop)
