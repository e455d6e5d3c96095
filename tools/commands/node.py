"""``finllm node``: the live edge-node daemon (Kafka in, forecasts out) - the main job's pipeline, live.

The node runs the same pipeline description as ``finllm run`` (``config/default.toml``: feed,
narrative, sanity, edge, cloud, degradation) under its ``node`` profile, which only swaps the
sources (Kafka topics instead of the tape and the news file), the sinks (the forecasts topic
instead of files and the simulated exchange) and the clock (live), and adds what a live
process needs (control plane, heartbeats, ops HTTP).  ``finllm node`` applies ``[profiles.node]``
first whenever the config defines one.  The config goes through the one loader
(:func:`engine.config.load_config`); the flags only map to its variables and overrides, so one
file serves many nodes::

    finllm node --bootstrap 10.0.0.5:9092 --group edge-eu --node-id edge-7

``--config`` defaults to ``default.toml`` as installed with the package (any directory works).
``--bootstrap``, ``--group`` and ``--node-id`` set the variables ``${bootstrap}``,
``${group}`` and ``${node_id}`` (the config says where they go; one it never uses is an
error, so a flag never silently does nothing); ``--http``, ``--loop``, ``--log-format`` and
``--log-level`` set ``app.http``, ``engine.loop``, ``engine.log_format`` and
``engine.log_level``; ``--profile NAME`` applies ``[profiles.NAME]`` (after ``node``) and
``--set PATH=VALUE`` any key (``--set 'actors[kafka-source].config.max_in_flight=5000'``).

``--record DIR`` records the node (profile ``record``, ``${out}`` = DIR; see
:mod:`adapters.sources.recording`): the records it consumed in handover order, the outputs a
replay cannot re-derive, and ``forecasts.jsonl`` / ``traces.jsonl`` in replay's format, plus
``DIR/recording.json`` naming the config, profiles, overrides and variables it ran with, so that
``finllm replay --recording DIR --out OUT`` runs the same pipeline from the recording and writes
the same two files byte for byte.

SIGTERM or SIGINT drain and stop the node gracefully (exit 0); the input offsets of
work not yet safely written stay uncommitted and are re-read by whoever takes over.

Operations over HTTP (``--http HOST:PORT`` or ``[app] http = "HOST:PORT"``; port 0 picks a
free port and the node logs which), served by :func:`adapters.node_ops.serve` from the
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
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import EngineConfig, Override

__all__ = ["MANIFEST", "apply_overrides", "flag_overrides", "flag_variables", "main", "node_profiles"]

MANIFEST = "recording.json"
"""``finllm node --record DIR`` writes how it ran to ``DIR/recording.json``."""


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
    p.add_argument(
        "--config",
        default=None,
        help="pipeline TOML (default: config/default.toml as installed with the package; its "
        "[profiles.node] is applied first)",
    )
    p.add_argument(
        "--record",
        metavar="DIR",
        help="record inputs, cloud outputs, forecasts and traces to DIR (for finllm replay --recording)",
    )
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


def _config_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None):
        return Path(args.config)
    from config import DEFAULT_CONFIG

    return DEFAULT_CONFIG


def node_profiles(raw: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The profiles the node applies: ``node`` first when the config defines it, then the user's,
    then ``record`` with ``--record``."""
    defined = raw.get("profiles", {}) if isinstance(raw.get("profiles"), dict) else {}
    user = list(getattr(args, "profile", None) or [])
    profiles = ["node"] if "node" in defined and "node" not in user else []
    profiles += user
    if getattr(args, "record", None):
        profiles.append("record")
    return profiles


def _variables(args: argparse.Namespace) -> dict[str, str]:
    """The flags' variables and ``${out}`` (the recording directory; unused without --record)."""
    out = getattr(args, "record", None)
    return {**flag_variables(args), "out": str(Path(out).resolve()) if out else "node-out"}


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
        source=str(_config_path(args)),
        profiles=node_profiles(raw, args),
        sets=flag_overrides(args),
        variables=_variables(args),
        require_variables=flag_variables(args),
    )
    return doc


def _raw(path: Path) -> dict[str, Any]:
    from engine.errors import ConfigError

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid TOML: {exc}") from None


def _load(path: Path, args: argparse.Namespace) -> tuple[EngineConfig, list[str]]:
    """The config file with the command-line flags, and the profiles applied; ConfigError names
    the file and key."""
    from engine.config import load_config

    profiles = node_profiles(_raw(path), args)
    cfg = load_config(
        path,
        profiles=profiles,
        sets=flag_overrides(args),
        variables=_variables(args),
        require_variables=flag_variables(args),
    )
    return cfg, profiles


def _write_manifest(directory: Path, path: Path, profiles: list[str], args: argparse.Namespace) -> None:
    """``DIR/recording.json``: what ``finllm replay --recording DIR`` needs to run the same pipeline."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "recording": 1,
        "config": str(path.resolve()),
        "profiles": [p for p in profiles if p != "record"],
        "sets": [{"path": o.path, "value": o.value} for o in flag_overrides(args)],
        "variables": flag_variables(args),
        "started_ns": time.time_ns(),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from adapters.node_ops import check_http, serve
    from engine.errors import ConfigError
    from engine.kernel import Engine, run_on_loop
    from engine.logging import configure_logging

    path = _config_path(args)
    try:
        config, profiles = _load(path, args)
        engine = Engine(config)
        engine.build()
    except ConfigError as exc:
        print(f"finllm node: config error: {exc}", file=sys.stderr)
        return 2
    try:
        check_http(config.app.http)  # --http is the override app.http
    except ValueError as exc:
        print(f"finllm node: {exc}", file=sys.stderr)
        return 2
    if args.record:
        _write_manifest(Path(args.record), path, profiles, args)
    configure_logging(config.engine.log_format, config.engine.log_level)
    http = config.app.http  # --http is the override app.http
    summary = run_on_loop(serve(engine, config.engine.node_id, http), config.engine.loop)
    print(
        f"node {config.engine.node_id} stopped: {summary.reason} (exit {summary.exit_code}, "
        f"{summary.wall_s:.1f}s, drained={summary.drained})",
        file=sys.stderr,
    )
    return summary.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
