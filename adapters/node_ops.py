"""What a live node runs beside its pipeline: the ops HTTP endpoints, health logging, and a
startup-heap freeze.  ``finllm node`` maps its flags to a config and calls :func:`serve`; any
other program that hosts an :class:`~engine.kernel.Engine` live can do the same.

The HTTP server is :class:`adapters.ops_http.OpsHttpServer`, fed from the engine's health
assessment (:meth:`engine.kernel.Engine.health`): ``/readyz``, ``/healthz``, ``/metrics`` and
``/stats`` (:func:`node_status`, what ``finllm top`` reads).  Every tier that turns FAILED and
every parked actor is logged once at WARNING (:class:`engine.health.HealthLogger`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from adapters.ops_http import OpsHttpServer, check, config_from_env, health_checks
from engine.config import parse_host_port
from engine.health import HealthLogger

if TYPE_CHECKING:
    from engine.kernel import Engine, RunSummary

__all__ = ["check_http", "freeze_startup_heap", "node_status", "serve"]

_T0 = time.monotonic()


def node_status(engine: Engine, node_id: str) -> dict[str, Any]:
    """The ``/stats`` document: mode, health, per-actor state and mailbox statistics, metrics."""
    health = engine.health()
    actors = {}
    for name, cell in engine.cells.items():
        child = health.children.get(name)
        actors[name] = {
            "incarnations": cell.incarnations,
            "depth": len(cell.mailbox),
            "busy": cell.busy,
            "state": child.state if child is not None else "stopped",
            "failures_recent": child.failures_recent if child is not None else 0,
            "last_error": child.last_error if child is not None else "",
        }
    return {
        "node_id": node_id,
        "mode": health.mode,
        "healthy": health.live,
        "ready": health.ready,
        "health": msgspec.to_builtins(health),
        "actors": actors,
        "mailboxes": {k: msgspec.to_builtins(v) for k, v in engine.mailbox_statistics().items()},
        "uptime_s": time.monotonic() - _T0,
        "metrics": engine.metrics.snapshot(),
    }


def check_http(http: str) -> None:
    """Refuse, before anything starts, ops HTTP settings that could not serve: a bad address, an
    unreadable token, a non-loopback bind without a token, TLS files that do not load (ValueError
    naming the problem)."""
    if http:
        host, port = parse_host_port(http)
        check(config_from_env(host, port))


async def serve(engine: Engine, node_id: str, http: str) -> RunSummary:
    """Run ``engine`` until it stops, with the ops endpoints on ``http`` (``HOST:PORT``; empty:
    none; port 0 picks a free port, logged and printed on stderr)."""
    log = structlog.get_logger("finllm")
    engine.add_health_listener(HealthLogger(log))
    server = None
    if http:
        host, port = parse_host_port(http)
        live, ready = health_checks(engine.health, prefix=node_id)
        server = OpsHttpServer(
            config_from_env(host, port),  # token and TLS from FINLLM_OPS_* (adapters.ops_http)
            metrics_text=engine.metrics.prometheus,
            stats=lambda: node_status(engine, node_id),
            healthy=live,
            ready=ready,
        )
        bound = await server.start()
        log.info("ops_http_listening", url=server.url, port=bound, picked_free_port=port == 0)
        if port == 0:
            print(f"finllm node: ops HTTP on {server.url} (port 0: picked a free port)", file=sys.stderr)
    freezer = asyncio.get_running_loop().create_task(freeze_startup_heap(engine))
    try:
        return await engine.run()
    finally:
        freezer.cancel()
        if server is not None:
            await server.stop()


async def freeze_startup_heap(engine: Engine) -> None:
    """Once every actor has started, move what startup allocated (models, tokenizers, modules,
    configs: long-lived) out of the collector's sight (``gc.freeze``) and collect the young
    generations less often.  A full collection otherwise walks that whole heap: pauses of
    50-200 ms on the loop, which are the node's worst latencies (the messages on the hot path
    hold no reference cycles: most are ``gc=False`` structs).  Logs ``node_started``."""
    await engine.runtime.wait_started()
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 100))
    structlog.get_logger("finllm").info(
        "node_started",  # every actor started
        frozen_objects=gc.get_freeze_count(),
        collect_ms=round((time.perf_counter() - t0) * 1000, 1),
    )
