"""``finllm node --config config/edge-node.toml``: the live edge-node daemon (Kafka in, forecasts out).

Command-line overrides apply to every actor whose config has the matching table, so
one file serves many nodes::

    finllm node --config config/edge-node.toml --bootstrap 10.0.0.5:9092 --group edge-eu --node-id edge-7

SIGTERM or SIGINT drain and stop the node gracefully (exit 0); the input offsets of
work not yet safely written stay uncommitted and are re-read by whoever takes over.

Operations over HTTP (``--http HOST:PORT`` or ``[app] http = "HOST:PORT"``), served by
:class:`adapters.ops_http.OpsHttpServer`: ``/healthz`` and ``/readyz`` answer 200 while the
node runs in mode NORMAL or CONSERVE, 503 otherwise; ``/metrics`` is the Prometheus text
format; ``/stats`` is a JSON status (mode, actors, mailbox statistics) that ``finllm top`` reads.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from engine.kernel import Engine, RunSummary

__all__ = ["apply_overrides", "main"]

_HEALTHY_MODES = ("NORMAL", "CONSERVE")
_T0 = time.monotonic()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finllm node", description="Run the live edge node.")
    p.add_argument("--config", default="config/edge-node.toml", help="pipeline TOML (default: %(default)s)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers for every Kafka actor (host:port[,...])")
    p.add_argument("--group", help="consumer group id of every Kafka source")
    p.add_argument("--node-id", help="engine node id (also the Kafka client id)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], help="event loop (default: from the config)")
    p.add_argument("--log-format", choices=["console", "json"])
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--http",
        help="serve /healthz, /readyz, /metrics, /stats on HOST:PORT (default: [app] http, else off)",
    )
    return p


def _status(engine: Engine, node_id: str) -> dict[str, Any]:
    mode = engine.bus.mode
    actors = {
        name: {"incarnations": cell.incarnations, "depth": len(cell.mailbox), "busy": cell.busy}
        for name, cell in engine.cells.items()
    }
    return {
        "node_id": node_id,
        "mode": mode,
        "healthy": mode in _HEALTHY_MODES,
        "actors": actors,
        "mailboxes": {k: msgspec.to_builtins(v) for k, v in engine.mailbox_statistics().items()},
        "uptime_s": time.monotonic() - _T0,
        "metrics": engine.metrics.snapshot(),
    }


async def _run(engine: Engine, node_id: str, http: str | None) -> RunSummary:
    from adapters.ops_http import OpsHttpConfig, OpsHttpServer

    server = None
    if http:
        host, _, port = http.rpartition(":")

        def healthy() -> tuple[bool, str]:
            mode = engine.bus.mode
            return mode in _HEALTHY_MODES, f"mode {mode}"

        server = OpsHttpServer(
            OpsHttpConfig(host=host or "127.0.0.1", port=int(port)),
            metrics_text=engine.metrics.prometheus,
            stats=lambda: _status(engine, node_id),
            healthy=healthy,
            ready=healthy,
        )
        await server.start()
    try:
        return await engine.run()
    finally:
        if server is not None:
            await server.stop()


def apply_overrides(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Return ``raw`` (parsed TOML) with the command-line overrides applied to each actor."""
    engine = dict(raw.get("engine", {}))
    if args.node_id:
        engine["node_id"] = args.node_id
    if args.loop:
        engine["loop"] = args.loop
    if args.log_format:
        engine["log_format"] = args.log_format
    if args.log_level:
        engine["log_level"] = args.log_level
    actors = []
    for spec in raw.get("actors", []):
        spec = dict(spec)
        cfg = dict(spec.get("config", {}))
        if "kafka" in cfg and isinstance(cfg["kafka"], dict):
            kafka = dict(cfg["kafka"])
            if args.bootstrap:
                kafka["bootstrap_servers"] = args.bootstrap
            if args.node_id:
                kafka["client_id"] = args.node_id
            cfg["kafka"] = kafka
        if args.node_id and "origin" in cfg:
            cfg["origin"] = args.node_id
        if args.group and "consumer" in cfg and isinstance(cfg["consumer"], dict):
            cfg["consumer"] = {**cfg["consumer"], "group_id": args.group}
        spec["config"] = cfg
        actors.append(spec)
    return {**raw, "engine": engine, "actors": actors}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from engine.config import loads_config
    from engine.errors import ConfigError
    from engine.kernel import Engine, run_on_loop
    from engine.logging import configure_logging

    path = Path(args.config)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid TOML: {exc}") from None
    patched = apply_overrides(raw, args)
    # Lists replace wholesale in an override, so the patched actor list replaces the file's.
    config = loads_config(
        path.read_text(encoding="utf-8"),
        path=str(path),
        overrides={"engine": patched["engine"], "actors": patched["actors"]},
    )
    configure_logging(config.engine.log_format, config.engine.log_level)
    http = args.http or config.app.get("http")
    summary = run_on_loop(_run(Engine(config), config.engine.node_id, http), config.engine.loop)
    print(
        f"node {config.engine.node_id} stopped: {summary.reason} (exit {summary.exit_code}, "
        f"{summary.wall_s:.1f}s, drained={summary.drained})",
        file=sys.stderr,
    )
    return summary.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
