"""Pipeline configuration: TOML in, frozen msgspec Structs out.

The TOML file is the composition root.  It lists supervisors and actors; each
actor names its class by dotted path, its mailbox, its subscriptions and its
own config table, which is converted into the class's ``config_type``::

    [engine]
    loop = "uvloop"
    clock = "sim"

    [[actors]]
    name = "feed"
    class = "actors.market_data:MarketDataFeed"
    subscribe = []
    [actors.mailbox]
    capacity = 4096
    policy = "block"
    [actors.config]
    dataset = "emini"

Unknown keys are errors.  Every error is a :class:`ConfigError` naming the file,
the key path (``actors[feed].mailbox.capacity``) and what was expected.
"""

from __future__ import annotations

import enum
import importlib
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from engine.errors import ConfigError
from engine.supervisor import Restart, Strategy

__all__ = [
    "ActorSpec",
    "EngineConfig",
    "EngineSection",
    "MailboxConfig",
    "SupervisorSpec",
    "convert",
    "load_config",
    "loads_config",
    "merge",
    "resolve",
]

T = TypeVar("T")


class MailboxConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One actor's mailbox.  ``key`` names the message attribute to conflate on;
    ``lane_of`` maps message type tags to lanes (0 most urgent); others go to the last lane."""

    capacity: int = 4096
    policy: Literal["block", "drop_newest", "drop_oldest", "conflate"] = "drop_newest"
    key: str | None = None
    lanes: int = 1
    lane_of: dict[str, int] = {}


class ActorSpec(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, rename={"cls": "class"}
):
    """One actor in the pipeline."""

    name: str
    cls: str
    subscribe: list[str] = []
    serve: list[str] = []
    supervisor: str = "root"
    critical: bool = True
    restart: Restart = Restart.TRANSIENT
    shutdown_timeout_s: float = 5.0
    enabled: bool = True
    mailbox: MailboxConfig = MailboxConfig()
    config: dict[str, Any] = {}


class SupervisorSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A supervisor below ``parent`` (the implicit ``root`` has none)."""

    name: str
    parent: str = "root"
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    period_s: float = 5.0
    backoff_initial_s: float = 0.01
    backoff_max_s: float = 1.0
    critical: bool = True


class EngineSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Engine-wide settings.  Times in seconds unless the name says otherwise."""

    name: str = "finllm"
    node_id: str = "node-1"
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    clock: Literal["live", "sim"] = "live"
    shutdown_deadline_s: float = 10.0
    lag_interval_ms: float = 100.0
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    seed: int = 0
    root_strategy: Strategy = Strategy.ONE_FOR_ONE
    root_max_restarts: int = 5
    root_period_s: float = 10.0


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A whole pipeline.  ``app`` is free-form settings for the command that runs it."""

    engine: EngineSection = EngineSection()
    supervisors: list[SupervisorSpec] = []
    actors: list[ActorSpec] = []
    app: dict[str, Any] = {}
    source: str = ""
    """The file this config came from (set by the loader)."""


_PATH_RE = re.compile(r"\$((?:\.[A-Za-z_][\w-]*|\[\d+\])*)")


def _key_path(raw: dict[str, Any], msgspec_path: str, prefix: str = "") -> str:
    """Turn ``$.actors[0].mailbox`` into ``actors[feed].mailbox`` using names where known."""
    m = _PATH_RE.search(msgspec_path)
    if not m:
        return prefix
    parts: list[str] = [prefix] if prefix else []
    node: Any = raw
    for tok in re.findall(r"\.[A-Za-z_][\w-]*|\[\d+\]", m.group(1)):
        if tok.startswith("."):
            key = tok[1:]
            parts.append(key)
            node = node.get(key) if isinstance(node, dict) else None
        else:
            idx = int(tok[1:-1])
            label = str(idx)
            if isinstance(node, list) and idx < len(node):
                node = node[idx]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label = node["name"]
            else:
                node = None
            if parts:
                parts[-1] += f"[{label}]"
            else:
                parts.append(f"[{label}]")
    return ".".join(parts)


def convert(data: Any, type_: type[T], *, path: str = "<config>", key: str = "", raw: Any = None) -> T:
    """``msgspec.convert`` with errors turned into :class:`ConfigError` (file, key path, problem)."""
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        problem, _, where = msg.partition(" - at `")
        where = where.rstrip("`")
        keypath = _key_path(raw if raw is not None else data, where, key) if where else key
        # Unknown fields: msgspec names the field in the problem text; keep it as part of the key.
        if problem.startswith("Invalid enum value") and where:
            allowed = _allowed_values(type_, where)
            if allowed:
                problem = f"{problem}; expected one of {allowed}"
        unknown = re.match(r"Object contains unknown field `([^`]+)`", problem)
        if unknown:
            keypath = f"{keypath}.{unknown.group(1)}" if keypath else unknown.group(1)
            problem = "unknown key (check the spelling; unknown keys are not allowed)"
        raise ConfigError(path, keypath, problem) from None


def _allowed_values(type_: Any, msgspec_path: str) -> list[Any] | None:
    """The permitted values of the Literal/Enum field at ``msgspec_path`` inside ``type_``."""
    node: Any = type_
    for tok in re.findall(r"\.[A-Za-z_][\w-]*|\[\d+\]", msgspec_path):
        node = _unwrap(node)
        if tok.startswith("["):
            args = typing.get_args(node)
            node = args[0] if args else None
            continue
        if not (isinstance(node, type) and issubclass(node, msgspec.Struct)):
            return None
        name = tok[1:]
        field = next((f for f in msgspec.structs.fields(node) if f.encode_name == name), None)
        if field is None:
            return None
        node = field.type
    node = _unwrap(node)
    if typing.get_origin(node) is Literal:
        return list(typing.get_args(node))
    if isinstance(node, type) and issubclass(node, enum.Enum):
        return [m.value for m in node]
    return None


def _unwrap(t: Any) -> Any:
    """Strip ``X | None`` down to ``X``."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return t


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (tables merge, everything else replaces)."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def loads_config(
    text: str, *, path: str = "<string>", overrides: dict[str, Any] | None = None
) -> EngineConfig:
    """Parse TOML text into an :class:`EngineConfig`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    if overrides:
        raw = merge(raw, overrides)
    raw.pop("source", None)
    cfg = convert(raw, EngineConfig, path=path, raw=raw)
    _check(cfg, path)
    return msgspec.structs.replace(cfg, source=path)


def load_config(path: str | Path, *, overrides: dict[str, Any] | None = None) -> EngineConfig:
    """Read and validate a pipeline file; raise :class:`ConfigError` on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror or exc}") from None
    return loads_config(text, path=str(p), overrides=overrides)


def _check(cfg: EngineConfig, path: str) -> None:
    names: set[str] = set()
    sups = {"root"} | {s.name for s in cfg.supervisors}
    for s in cfg.supervisors:
        if s.parent not in sups:
            raise ConfigError(path, f"supervisors[{s.name}].parent", f"unknown supervisor {s.parent!r}")
    for a in cfg.actors:
        if a.name in names:
            raise ConfigError(path, f"actors[{a.name}].name", "duplicate actor name")
        names.add(a.name)
        if a.supervisor not in sups:
            raise ConfigError(
                path,
                f"actors[{a.name}].supervisor",
                f"unknown supervisor {a.supervisor!r}; known: {sorted(sups)}",
            )
        mb = a.mailbox
        if mb.capacity < 1:
            raise ConfigError(path, f"actors[{a.name}].mailbox.capacity", "expected an integer >= 1")
        if mb.policy == "conflate" and not mb.key:
            raise ConfigError(
                path, f"actors[{a.name}].mailbox.key", "policy 'conflate' needs a key attribute"
            )
        if mb.lanes > 1 and any(not 0 <= v < mb.lanes for v in mb.lane_of.values()):
            raise ConfigError(path, f"actors[{a.name}].mailbox.lane_of", f"lanes must be in [0, {mb.lanes})")


def resolve(dotted: str, *, path: str = "<config>", key: str = "") -> Any:
    """Import ``package.module:Name`` (or ``package.module.Name``); ConfigError if it fails."""
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(path, key, f"expected 'package.module:Name', got {dotted!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(path, key, f"cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(path, key, f"module {module_name!r} has no attribute {attr!r}") from None
