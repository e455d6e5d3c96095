"""The shipped pipeline configs, as package data (the composition root: DESIGN.md "Composition").

* ``default.toml`` - the main job (``finllm run``): bundled E-mini trades and news through
  the whole pipeline on a simulated clock; under its ``[profiles.node]`` the live node
  (``finllm node``: Kafka sources and sinks, live clock);
* ``replay.toml`` - ``finllm replay``'s pipeline; ``edge.toml``, ``cloud.toml`` - example actor
  tables to copy into pipelines;
* ``data/`` - the data files the shipped configs name, e.g. the main job's news tape
  ``data/news_emini_2013-09.jsonl``.

A config names its data files relative to itself with the loader's built-in ``${config_dir}``
(engine/compose.py), so a config works wherever the package is installed and from any working
directory.  :func:`path` finds a shipped file (``importlib.resources``), e.g.
``path("default.toml")``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["DEFAULT_CONFIG", "path"]


def path(*parts: str) -> Path:
    """A file or directory inside the installed ``config`` package (on the file system)."""
    return Path(str(files(__name__).joinpath(*parts)))


DEFAULT_CONFIG = path("default.toml")
