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

Composition (:mod:`engine.compose`): the one loader, :func:`load_config`, applies
``[profiles.<name>]`` selected by the command (``profiles=``), typed overrides
(``sets=["actors[feed].config.dataset=emini"]``) and variables (``${out}``; defaults
in ``[variables]``) before typing, so commands only map their flags to those.

Unknown keys are errors, in every table (``[app]`` included: a typo there used to
switch a feature off silently).  Ranges are checked where a value outside them
means nothing (capacities >= 1, timeouts > 0, ports 1..65535 - 0 only where it
means "pick a free port").  Every error is a :class:`ConfigError` naming the file,
the key path (``actors[feed].mailbox.capacity``) and what was expected.

Mailboxes: ``policy = "block"`` back-pressures publishers that await
(``ctx.publish_wait``, ``ref.send``, ``ask``); a *sync* publish that finds it full is shed
as ``overflow`` (counted, logged once; see :mod:`engine.mailbox`).  A block mailbox that
sync publishers fill must be sized for what bounds them: ``bound_by`` names that bound
(the key path of an in-flight window in this file, e.g.
``actors[kafka-source].config.max_in_flight``) and the loader refuses a capacity below it.
With the simulated clock the replay paces every source (``wait_idle``), which bounds
them; in a live pipeline a block mailbox without ``bound_by`` gets a load warning
(:attr:`EngineConfig.warnings`, logged when the engine starts).

Actor config structs can use the same range types: :data:`PositiveInt`,
:data:`NonNegativeInt`, :data:`PositiveFloat`, :data:`NonNegativeFloat`,
:data:`Port` and :data:`BindPort`.
"""

from __future__ import annotations

import enum
import importlib
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from engine.compose import Override, compose, get_path, parse_path
from engine.errors import ConfigError
from engine.health import HealthConfig
from engine.supervisor import PARK_AFTER, PARK_WINDOW_S, Restart, Strategy

__all__ = [
    "ActorSpec",
    "AppSection",
    "BindPort",
    "EngineConfig",
    "EngineSection",
    "MailboxConfig",
    "NonNegativeFloat",
    "NonNegativeInt",
    "Override",
    "Port",
    "PositiveFloat",
    "PositiveInt",
    "SupervisorSpec",
    "convert",
    "load_config",
    "loads_config",
    "merge",
    "parse_host_port",
    "resolve",
]

T = TypeVar("T")

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
"""A TCP port to connect to."""
BindPort = Annotated[int, msgspec.Meta(ge=0, le=65535)]
"""A TCP port to listen on; 0 picks a free one (the owner must then say which)."""


def parse_host_port(text: str, *, allow_zero: bool = True) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ValueError saying what is wrong.

    IPv6 hosts go in brackets (``[::1]:9308``); an empty host (``:9308``) is loopback.
    ``allow_zero``: port 0 means "pick a free port" (listening addresses only).
    """
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9308), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:
            raise ValueError(f"empty IPv6 address in {text!r}")
    elif ":" in host:
        raise ValueError(f"an IPv6 host goes in brackets ([::1]:9308), got {text!r}")
    if any(c.isspace() for c in host):
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if not port_text.isdigit():
        raise ValueError(f"port must be a number, got {port_text!r} in {text!r}")
    port = int(port_text)
    if not (0 if allow_zero else 1) <= port <= 65535:
        allowed = "0..65535 (0: pick a free port)" if allow_zero else "1..65535"
        raise ValueError(f"port must be in {allowed}, got {port} in {text!r}")
    return host or "127.0.0.1", port


class MailboxConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One actor's mailbox.  ``key`` names the message attribute to conflate on;
    ``lane_of`` maps message type tags to lanes (0 most urgent); others go to the last lane."""

    capacity: PositiveInt = 4096
    policy: Literal["block", "drop_newest", "drop_oldest", "conflate"] = "drop_newest"
    key: str | None = None
    lanes: PositiveInt = 1
    lane_of: dict[str, NonNegativeInt] = {}
    bound_by: str = ""
    """``block`` only: the key path of the window that bounds the sync publishers feeding this
    mailbox (e.g. ``actors[kafka-source].config.max_in_flight``); capacity must be >= it."""


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
    shutdown_timeout_s: PositiveFloat = 5.0
    enabled: bool = True
    mailbox: MailboxConfig = MailboxConfig()
    config: dict[str, Any] = {}


class SupervisorSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A supervisor below ``parent`` (the implicit ``root`` has none).

    ``park_after``/``park_window_s``: when a child counts as crash-looping and is parked
    (see :mod:`engine.supervisor`); unset, the ``[engine]`` values apply.
    """

    name: str
    parent: str = "root"
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: NonNegativeInt = 3
    period_s: PositiveFloat = 5.0
    backoff_initial_s: NonNegativeFloat = 0.01
    backoff_max_s: NonNegativeFloat = 1.0
    critical: bool = True
    park_after: NonNegativeInt | None = None
    park_window_s: PositiveFloat | None = None


class EngineSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Engine-wide settings.  Times in seconds unless the name says otherwise."""

    name: str = "finllm"
    node_id: str = "node-1"
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    clock: Literal["live", "sim"] = "live"
    shutdown_deadline_s: PositiveFloat = 10.0
    lag_interval_ms: PositiveFloat = 100.0
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    seed: int = 0
    root_strategy: Strategy = Strategy.ONE_FOR_ONE
    root_max_restarts: NonNegativeInt = 5
    root_period_s: PositiveFloat = 10.0
    park_after: NonNegativeInt = PARK_AFTER
    """A child failing this often within ``park_window_s`` is parked, not restarted (0: never)."""
    park_window_s: PositiveFloat = PARK_WINDOW_S
    health: HealthConfig = HealthConfig()
    """When the node is ready and live (``[engine.health]``; see :mod:`engine.health`)."""


class AppSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the command that runs the pipeline (``[app]``), not of the engine."""

    http: str = ""
    """``finllm node``: serve /healthz, /readyz, /metrics, /stats on ``HOST:PORT`` ("": off;
    port 0: a free port, logged at start)."""


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A whole pipeline: the engine, its supervisors and actors, and the running command's ``[app]``."""

    engine: EngineSection = EngineSection()
    supervisors: list[SupervisorSpec] = []
    actors: list[ActorSpec] = []
    app: AppSection = AppSection()
    source: str = ""
    """The file this config came from (set by the loader)."""
    warnings: list[str] = []
    """What the loader found doubtful but not wrong (set by the loader; logged at engine start)."""


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
    text: str,
    *,
    path: str = "<string>",
    overrides: dict[str, Any] | None = None,
    profiles: Sequence[str] = (),
    sets: Sequence[str | Override] = (),
    variables: Mapping[str, str] | None = None,
    require_variables: Collection[str] = (),
) -> EngineConfig:
    """Parse TOML text into an :class:`EngineConfig`.

    In order: ``overrides`` (a table deep-merged into the file: programmatic callers),
    ``profiles``, ``sets`` and ``variables`` (see :mod:`engine.compose`), then typing and
    checks.  An actor config an override touched is typed here too (its class is
    imported), so a misspelt ``--set`` key fails at load naming the override.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    if overrides:
        raw = merge(raw, overrides)
    raw, applied = compose(
        raw,
        source=path,
        profiles=profiles,
        sets=sets,
        variables=variables,
        require_variables=require_variables,
    )
    raw.pop("source", None)
    raw.pop("warnings", None)
    cfg = convert(raw, EngineConfig, path=path, raw=raw)
    warnings = _check(cfg, path, raw)
    _check_overridden_actors(cfg, applied, path)
    return msgspec.structs.replace(cfg, source=path, warnings=warnings)


def load_config(
    path: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    profiles: Sequence[str] = (),
    sets: Sequence[str | Override] = (),
    variables: Mapping[str, str] | None = None,
    require_variables: Collection[str] = (),
) -> EngineConfig:
    """Read, compose and validate a pipeline file; raise :class:`ConfigError` on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror or exc}") from None
    return loads_config(
        text,
        path=str(p),
        overrides=overrides,
        profiles=profiles,
        sets=sets,
        variables=variables,
        require_variables=require_variables,
    )


def _check_overridden_actors(cfg: EngineConfig, applied: Sequence[Override], path: str) -> None:
    """Type the config of every enabled actor an override reached into (``actors[x].config...``)."""
    by_actor: dict[str, list[Override]] = {}
    for ov in applied:
        tokens = parse_path(ov.path, source=path)
        if (
            len(tokens) >= 3
            and tokens[0] == "actors"
            and isinstance(tokens[1], tuple)
            and tokens[2] == "config"
        ):
            by_actor.setdefault(tokens[1][0], []).append(ov)
    for i, spec in enumerate(cfg.actors):
        ovs = by_actor.get(spec.name) or by_actor.get(str(i))
        if not ovs or not spec.enabled:
            continue
        key = f"actors[{spec.name}]"
        cls = resolve(spec.cls, path=path, key=f"{key}.class")
        config_type = getattr(cls, "config_type", None)
        if not (isinstance(config_type, type) and issubclass(config_type, msgspec.Struct)):
            continue  # not an actor: Engine.build says so
        try:
            convert(spec.config, config_type, path=path, key=f"{key}.config")
        except ConfigError as exc:
            # Name the override(s) that reached the failing key, if any did.
            near = [o for o in ovs if _nested(o.path, exc.key) or _nested(exc.key, o.path)]
            if not near:
                raise
            origins = ", ".join(f"{o.origin} {o.path}" for o in near)
            raise ConfigError(path, exc.key, f"{exc.problem} (set by {origins})") from None


def _nested(outer: str, inner: str) -> bool:
    """``inner`` is ``outer`` or a key below it (``a.b`` / ``a.b.c`` / ``a.b[x]``)."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _check(cfg: EngineConfig, path: str, raw: dict[str, Any]) -> list[str]:
    """Cross-field checks; returns warnings (raises on errors)."""
    warnings: list[str] = []
    if cfg.app.http:
        try:
            parse_host_port(cfg.app.http)
        except ValueError as exc:
            raise ConfigError(path, "app.http", str(exc)) from None
    names: set[str] = set()
    sups = {"root"} | {s.name for s in cfg.supervisors}
    for s in cfg.supervisors:
        if s.parent not in sups:
            raise ConfigError(path, f"supervisors[{s.name}].parent", f"unknown supervisor {s.parent!r}")
        if s.backoff_max_s < s.backoff_initial_s:
            raise ConfigError(
                path, f"supervisors[{s.name}].backoff_max_s", "expected a value >= backoff_initial_s"
            )
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
        if mb.policy == "conflate" and not mb.key:
            raise ConfigError(
                path, f"actors[{a.name}].mailbox.key", "policy 'conflate' needs a key attribute"
            )
        if mb.lanes > 1 and any(not 0 <= v < mb.lanes for v in mb.lane_of.values()):
            raise ConfigError(path, f"actors[{a.name}].mailbox.lane_of", f"lanes must be in [0, {mb.lanes})")
        warning = _check_block(a, cfg.engine.clock, path, raw)
        if warning:
            warnings.append(warning)
    return warnings


def _check_block(a: ActorSpec, clock: str, path: str, raw: dict[str, Any]) -> str:
    """Can this ``block`` mailbox hold what sync publishers send it?  Error, warning or ""."""
    mb = a.mailbox
    key = f"actors[{a.name}].mailbox"
    if mb.policy != "block":
        if mb.bound_by:
            raise ConfigError(
                path, f"{key}.bound_by", f"only meaningful with policy 'block', not {mb.policy!r}"
            )
        return ""
    if mb.bound_by:
        try:
            bound = get_path(raw, mb.bound_by, source=path)
        except ConfigError as exc:
            raise ConfigError(path, f"{key}.bound_by", f"{mb.bound_by}: {exc.problem}") from None
        if isinstance(bound, str) and bound.isdigit():
            bound = int(bound)
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
            raise ConfigError(path, f"{key}.bound_by", f"{mb.bound_by} is {bound!r}, not a positive integer")
        if bound > mb.capacity:
            raise ConfigError(
                path,
                f"{key}.capacity",
                f"policy 'block' bounded by {mb.bound_by} = {bound} needs capacity >= {bound}, "
                f"got {mb.capacity} (sync publishes beyond it would be shed as 'overflow')",
            )
        return ""
    if not a.enabled or clock != "live":
        return ""  # the simulated clock: the replay paces every source with wait_idle
    return (
        f"{path}: {key}: policy 'block' in a live pipeline without bound_by: publishers that await "
        "(ctx.publish_wait, ref.send, ask) wait for room, but a sync publish that finds it full is "
        "shed as 'overflow'; name the window that bounds its publishers in bound_by, or use a drop policy"
    )


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
