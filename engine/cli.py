"""The ``finllm`` command line.

Subcommands are plugins: each is an entry point in the ``finllm.commands``
group naming ``module:function``, where ``function(argv: list[str]) -> int``.
The engine therefore imports none of the commands it runs; ``pyproject.toml``
is where they are registered.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points, version

from engine.errors import ConfigError
from engine.logging import configure_logging

__all__ = ["commands", "main"]

_GROUP = "finllm.commands"


def commands() -> dict[str, str]:
    """Registered subcommands: name -> ``module:function``."""
    return {ep.name: ep.value for ep in entry_points(group=_GROUP)}


def _usage(cmds: dict[str, str]) -> str:
    lines = ["usage: finllm COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name}" for name in sorted(cmds)]
    lines += ["", "finllm COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cmds = commands()
    if not args or args[0] in {"-h", "--help"}:
        print(_usage(cmds))
        return 0 if args else 2
    if args[0] == "--version":
        print(f"finllm {version('fin-llm-inference')}")
        return 0
    name, rest = args[0], args[1:]
    eps = {ep.name: ep for ep in entry_points(group=_GROUP)}
    if name not in eps:
        print(f"finllm: unknown command {name!r}\n\n{_usage(cmds)}", file=sys.stderr)
        return 2
    # Logs go to stderr so command output (bench JSON, verdicts) stays clean on stdout.
    configure_logging(
        "json" if os.environ.get("FINLLM_LOG_FORMAT") == "json" else "console",
        os.environ.get("FINLLM_LOG_LEVEL", "info"),
    )
    fn: Callable[[list[str]], int] = eps[name].load()
    try:
        return int(fn(rest) or 0)
    except ConfigError as exc:
        print(f"finllm {name}: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
