"""``finllm node --config config/edge-node.toml``: the live edge-node daemon (Kafka in, forecasts out).

The config goes through the one loader (:func:`engine.config.load_config`); the flags
only map to its variables and overrides, so one file serves many nodes::

    finllm node --config config/edge-node.toml --bootstrap 10.0.0.5:9092 --group edge-eu --node-id edge-7

``--bootstrap``, ``--group`` and ``--node-id`` set the variables ``${bootstrap}``,
``${group}`` and ``${node_id}`` (the config says where they go; one it never uses is an
error, so a flag never silently does nothing); ``--http``, ``--loop``, ``--log-format`` and
``--log-level`` set ``app.http``, ``engine.loop``, ``engine.log_format`` and
``engine.log_level``; ``--profile NAME`` applies ``[profiles.NAME]`` and ``--set PATH=VALUE``
any key (``--set 'actors[kafka-source].config.max_in_flight=5000'``).

SIGTERM or SIGINT drain and stop the node gracefully (exit 0); the input offsets of
work not yet safely written stay uncommitted and are re-read by whoever takes over.

Operations over HTTP (``--http HOST:PORT`` or ``[app] http = "HOST:PORT"``; port 0 picks a
free port and the node logs which), served by :class:`adapters.ops_http.OpsHttpServer` from the
engine's health assessment (:meth:`engine.kernel.Engine.health`): ``/readyz`` answers 503,
listing the reasons, while any tier is FAILED, an actor is parked, abandoned or restarting
often, a partition is stalled, consumer lag is past ``[engine.health] max_consumer_lag`` or the
mode is not one of ``[engine.health] ready_modes``; ``/healthz`` answers 503 past a threshold -
a parked actor or a crash-looping critical one.  ``/metrics`` is the Prometheus text format;
``/stats`` is a JSON status (mode, health, actors, mailbox statistics) that ``finllm top``
reads.  Every tier that turns FAILED and every parked actor is logged once at WARNING.

A bad address (``--http nonsense``) or config error exits 2 with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from engine.config import EngineConfig, Override
    from engine.kernel import Engine, RunSummary

__all__ = ["apply_overrides", "flag_overrides", "flag_variables", "main"]

_T0 = time.monotonic()


def _address(text: str) -> str:
    """argparse type of ``--http``: a valid HOST:PORT, else a usage error (exit 2)."""
    from engine.config import parse_host_port

    try:
        parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finllm node", description="Run the live edge node.")
    p.add_argument("--config", default="config/edge-node.toml", help="pipeline TOML (default: %(default)s)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers: the variable ${bootstrap} (host:port[,...])")
    p.add_argument("--group", help="consumer group id: the variable ${group}")
    p.add_argument("--node-id", help="node id: the variable ${node_id} (engine node id, Kafka client id)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], help="event loop (default: from the config)")
    p.add_argument("--log-format", choices=["console", "json"])
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--http",
        type=_address,
        metavar="HOST:PORT",
        help="serve /healthz, /readyz, /metrics, /stats on HOST:PORT, port 0: any free one "
        "(default: [app] http, else off)",
    )
    p.add_argument(
        "--profile", action="append", default=[], metavar="NAME", help="apply [profiles.NAME] (repeatable)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override one key, value in TOML (repeatable), e.g. 'engine.health.interval_s=0.5'",
    )
    return p


def _status(engine: Engine, node_id: str) -> dict[str, Any]:
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


async def _run(engine: Engine, node_id: str, http: str) -> RunSummary:
    import structlog

    from adapters.ops_http import OpsHttpConfig, OpsHttpServer, health_checks
    from engine.config import parse_host_port
    from engine.health import HealthLogger

    log = structlog.get_logger("finllm")
    engine.add_health_listener(HealthLogger(log))
    server = None
    if http:
        host, port = parse_host_port(http)
        live, ready = health_checks(engine.health, prefix=node_id)
        server = OpsHttpServer(
            OpsHttpConfig(host=host, port=port),
            metrics_text=engine.metrics.prometheus,
            stats=lambda: _status(engine, node_id),
            healthy=live,
            ready=ready,
        )
        bound = await server.start()
        log.info("ops_http_listening", url=server.url, port=bound, picked_free_port=port == 0)
        if port == 0:
            print(f"finllm node: ops HTTP on {server.url} (port 0: picked a free port)", file=sys.stderr)
    try:
        return await engine.run()
    finally:
        if server is not None:
            await server.stop()


def flag_variables(args: argparse.Namespace) -> dict[str, str]:
    """The variables the flags the user gave set (each must be used by the config)."""
    given = {"bootstrap": args.bootstrap, "group": args.group, "node_id": args.node_id}
    return {k: v for k, v in given.items() if v}


def flag_overrides(args: argparse.Namespace) -> list[Override]:
    """The overrides the other flags map to, after the user's ``--set`` (flags win)."""
    from engine.config import Override

    out = [Override.parse(s) for s in getattr(args, "set", None) or []]
    for flag, path in (
        ("http", "app.http"),
        ("loop", "engine.loop"),
        ("log_format", "engine.log_format"),
        ("log_level", "engine.log_level"),
    ):
        value = getattr(args, flag, None)
        if value:
            out.append(Override(path=path, value=value, origin=f"--{flag.replace('_', '-')}"))
    return out


def apply_overrides(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``raw`` (parsed TOML) composed with the command-line flags: profiles, overrides, variables.

    What :func:`main` loads, as a table (for inspection; ConfigError on any problem).
    """
    from engine.compose import compose

    doc, _ = compose(
        raw,
        source=str(getattr(args, "config", "<config>")),
        profiles=getattr(args, "profile", None) or [],
        sets=flag_overrides(args),
        variables=flag_variables(args),
        require_variables=flag_variables(args),
    )
    return doc


def _load(path: Path, args: argparse.Namespace) -> EngineConfig:
    """The config file with the command-line flags; ConfigError names the file and key."""
    from engine.config import load_config

    variables = flag_variables(args)
    return load_config(
        path,
        profiles=args.profile,
        sets=flag_overrides(args),
        variables=variables,
        require_variables=variables,
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from engine.errors import ConfigError
    from engine.kernel import Engine, run_on_loop
    from engine.logging import configure_logging

    try:
        config = _load(Path(args.config), args)
        engine = Engine(config)
        engine.build()
    except ConfigError as exc:
        print(f"finllm node: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.engine.log_format, config.engine.log_level)
    http = config.app.http  # --http is the override app.http
    summary = run_on_loop(_run(engine, config.engine.node_id, http), config.engine.loop)
    print(
        f"node {config.engine.node_id} stopped: {summary.reason} (exit {summary.exit_code}, "
        f"{summary.wall_s:.1f}s, drained={summary.drained})",
        file=sys.stderr,
    )
    return summary.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
