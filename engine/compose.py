"""Composing a pipeline: profiles, typed overrides and variables applied to a parsed TOML table.

The loader (:func:`engine.config.load_config`) calls :func:`compose` between parsing and
typing, so a command never edits a config itself: it maps its flags to overrides and
variables, and every mistake is a :class:`~engine.errors.ConfigError` naming the file and
the key path.

**Key paths** address a value in the file: dotted keys, and ``[sel]`` after an array of
tables, where ``sel`` is the ``name`` (or ``id``) of one element or its index::

    actors[feed].config.dataset
    actors[host].config.strategies[ema_cross].params.qty
    engine.health.interval_s

**Overrides** (``--set PATH=VALUE``): the value is a TOML value (``3``, ``true``,
``"text"``, ``[1, 2]``, ``{ kind = "tick", size = 1 }``); a bare word that is not TOML
(``emini``, ``127.0.0.1:9092``, ``/data/x.csv``) is taken as a string.  A missing
table on the way is created (a typo then fails as an unknown key when the tables are
typed); a selector that matches nothing, an index out of range or a key below a
value that is not a table is an error at once.

**Profiles**: ``[profiles.<name>]`` tables of ``"PATH" = value`` overrides, applied in
the order selected (``--profile a --profile b``), before ``--set``.  A table inside a
profile is flattened into one override per leaf, because TOML writes ``a.b = 1`` and
``[a] b = 1`` alike; to replace a whole list, give the list.

**Variables**: ``${name}`` inside any string is replaced by the variable's value (from the
command, else the file's ``[variables]`` table of defaults).  An unknown variable is an
error naming where it appears; ``$${`` writes a literal ``${``.  Substitution runs after
the overrides, so an override may use variables too.

**Built-in variables**: ``${config_dir}`` is the absolute directory of the TOML file being
loaded (when ``source`` names a file that exists), so a config names its data files relative
to itself (``replay_file = "${config_dir}/data/news.jsonl"``) and works from any working
directory and wherever the package is installed.  The file's ``[variables]`` and the command
may redefine it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ConfigError

__all__ = ["Override", "compose", "get_path", "parse_path", "parse_value", "substitute"]

# One path segment: a key, then any number of [selector]s.
_SEGMENT = re.compile(r"([A-Za-z_][\w-]*)((?:\[[^\[\]]+\])*)")
_SELECTOR = re.compile(r"\[([^\[\]]+)\]")
_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][\w-]*)?\}?")
_BARE = re.compile(r"[^\s\"'\[\]{}=#,]+")


class Override(msgspec.Struct, frozen=True, kw_only=True):
    """Set the value at key ``path``; ``origin`` says who asked (``--set``, ``profiles.quick``)."""

    path: str
    value: Any
    origin: str = "--set"

    @classmethod
    def parse(cls, text: str, *, origin: str = "--set", source: str = "<command line>") -> Override:
        """``"PATH=VALUE"`` -> an override; ConfigError naming ``source`` when malformed."""
        path, sep, value = text.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ConfigError(source, path, f"{origin} expects PATH=VALUE, got {text!r}")
        parse_path(path, source=source)
        return cls(path=path, value=parse_value(value.strip(), source=source, key=path), origin=origin)


def parse_value(text: str, *, source: str = "<command line>", key: str = "") -> Any:
    """A TOML value; a bare word that is not one (``emini``, ``host:9092``) is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE.fullmatch(text):
            return text
        raise ConfigError(
            source, key, f"{text!r} is not a TOML value (quote strings that contain spaces or quotes)"
        ) from None


def parse_path(path: str, *, source: str = "<config>") -> list[str | tuple[str]]:
    """Split ``a.b[x].c`` into keys (``str``) and selectors (``(sel,)``)."""
    tokens: list[str | tuple[str]] = []
    for part in _split_dots(path):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise ConfigError(
                source, path, "bad key path (expected key.key[name].key, e.g. actors[feed].config.dataset)"
            )
        tokens.append(m.group(1))
        tokens.extend((sel.strip(),) for sel in _SELECTOR.findall(m.group(2)))
    return tokens


def _split_dots(path: str) -> Iterator[str]:
    """Split on dots outside brackets (a selector may be a name with dots, e.g. ``[ES.U3]``)."""
    depth = 0
    start = 0
    for i, c in enumerate(path):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "." and depth == 0:
            yield path[start:i]
            start = i + 1
    yield path[start:]


def _select(items: list[Any], sel: str, where: str, source: str, path: str) -> int:
    if sel.isdigit():
        i = int(sel)
        if i >= len(items):
            raise ConfigError(source, path, f"{where} has {len(items)} element(s); no index {i}")
        return i
    for i, item in enumerate(items):
        if isinstance(item, dict) and sel in (item.get("name"), item.get("id")):
            return i
    names = [str(x.get("name", x.get("id"))) for x in items if isinstance(x, dict)]
    raise ConfigError(source, path, f"no element named {sel!r} in {where}; known: {names}")


def _walk(root: dict[str, Any], path: str, source: str, *, create: bool) -> tuple[Any, str | int]:
    """The container holding the last token of ``path`` and that token (a key or an index)."""
    tokens = parse_path(path, source=source)
    node: Any = root
    where = ""
    for n, tok in enumerate(tokens):
        last = n == len(tokens) - 1
        if isinstance(tok, tuple):
            if not isinstance(node, list):
                raise ConfigError(source, path, f"{where or 'the file'} is not an array of tables")
            i = _select(node, tok[0], where, source, path)
            if last:
                return node, i
            node, where = node[i], f"{where}[{tok[0]}]"
            continue
        if not isinstance(node, dict):
            raise ConfigError(source, path, f"{where} is a {type(node).__name__}, not a table")
        if last:
            return node, tok
        nxt = tokens[n + 1]
        if tok not in node:
            if isinstance(nxt, tuple) or not create:
                raise ConfigError(source, path, f"{where + '.' if where else ''}{tok} is not in the file")
            node[tok] = {}
        node, where = node[tok], f"{where}.{tok}" if where else tok
    raise AssertionError("unreachable")  # pragma: no cover - parse_path never returns []


def get_path(root: dict[str, Any], path: str, *, source: str = "<config>") -> Any:
    """The value at key ``path``; ConfigError when the file does not set it."""
    node, key = _walk(root, path, source, create=False)
    if isinstance(key, str) and key not in node:
        raise ConfigError(source, path, "not set in the file")
    return node[key]


def _set_path(root: dict[str, Any], ov: Override, source: str) -> None:
    node, key = _walk(root, ov.path, source, create=True)
    node[key] = ov.value


def _profile_overrides(name: str, table: Any, source: str) -> list[Override]:
    if not isinstance(table, dict):
        raise ConfigError(source, f"profiles.{name}", 'a profile is a table of "PATH" = value')
    out: list[Override] = []

    def flatten(prefix: str, node: dict[str, Any]) -> None:
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                flatten(path, v)
            else:
                parse_path(path, source=source)
                out.append(Override(path=path, value=v, origin=f"profiles.{name}"))

    flatten("", table)
    return out


def substitute(
    node: Any,
    values: Mapping[str, str],
    *,
    source: str = "<config>",
    key: str = "",
    used: set[str] | None = None,
) -> Any:
    """``node`` with ``${name}`` replaced in every string; ConfigError on an unknown name.

    ``used`` collects the names that appeared.
    """
    if isinstance(node, str):
        if "$" not in node:
            return node

        def repl(m: re.Match[str]) -> str:
            text = m.group(0)
            if text == "$${":
                return "${"
            name = m.group(1)
            if name is None or not text.endswith("}"):
                raise ConfigError(source, key, f"bad variable reference in {node!r} (write ${{name}})")
            if name not in values:
                known = ", ".join(sorted(values)) or "none"
                raise ConfigError(source, key, f"unknown variable ${{{name}}} (defined: {known})")
            if used is not None:
                used.add(name)
            return values[name]

        return _VARIABLE.sub(repl, node)
    if isinstance(node, dict):
        return {
            k: substitute(v, values, source=source, key=f"{key}.{k}" if key else k, used=used)
            for k, v in node.items()
        }
    if isinstance(node, list):
        out = []
        for i, v in enumerate(node):
            label = v.get("name", v.get("id", i)) if isinstance(v, dict) else i
            out.append(substitute(v, values, source=source, key=f"{key}[{label}]", used=used))
        return out
    return node


def _builtin_variables(source: str) -> dict[str, str]:
    """The variables every config may use: ``config_dir`` when ``source`` is an existing file."""
    p = Path(source)
    try:
        is_file = p.is_file()
    except OSError:  # a pseudo-source like "<string>" on an odd file system, or too long a name
        is_file = False
    return {"config_dir": str(p.resolve().parent)} if is_file else {}


def compose(
    raw: dict[str, Any],
    *,
    source: str = "<config>",
    profiles: Sequence[str] = (),
    sets: Sequence[str | Override] = (),
    variables: Mapping[str, str] | None = None,
    require_variables: Collection[str] = (),
) -> tuple[dict[str, Any], list[Override]]:
    """Apply ``profiles`` then ``sets`` then variables to a parsed file; return it and the overrides.

    ``raw`` is not modified.  The file's ``[profiles]`` and ``[variables]`` tables are consumed
    (absent from the result).  ``require_variables``: names the command set from a flag the
    user gave; a config that never uses one is an error (the flag would do nothing).
    """
    doc = _copy(raw)
    defined = doc.pop("profiles", {})
    defaults = doc.pop("variables", {})
    if not isinstance(defined, dict):
        raise ConfigError(source, "profiles", "expected a table of profiles")
    if not isinstance(defaults, dict) or any(isinstance(v, dict | list) for v in defaults.values()):
        raise ConfigError(source, "variables", "expected a table of name = value (strings or numbers)")
    applied: list[Override] = []
    for name in profiles:
        if name not in defined:
            known = sorted(defined) or "none"
            raise ConfigError(source, f"profiles.{name}", f"unknown profile; defined: {known}")
        applied.extend(_profile_overrides(name, defined[name], source))
    for s in sets:
        applied.append(s if isinstance(s, Override) else Override.parse(s, source=source))
    for ov in applied:
        _set_path(doc, ov, source)
    values = _builtin_variables(source)
    values.update({k: _text(v) for k, v in defaults.items()})
    values.update(variables or {})
    used: set[str] = set()
    doc = substitute(doc, values, source=source, used=used)
    for name in require_variables:
        if name not in used:
            raise ConfigError(
                source, "variables", f"${{{name}}} is given on the command line but the config never uses it"
            )
    return doc, applied


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _copy(node: Any) -> Any:
    """A deep copy of parsed TOML (dicts and lists; leaves are immutable)."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
