"""``finllm bench {engine,edge,replay,kafka,cloud,news,overload,node} [--json]``: run one bench.

Each bench ``NAME`` lives in ``tools.bench_NAME``, except ``overload``, the overload
experiment on the real pipeline (:mod:`tools.overload`, also ``python -m tools.overload``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

__all__ = ["BENCHES", "main"]

BENCHES = ("engine", "edge", "replay", "kafka", "cloud", "news", "overload", "node")

_MODULES: Final = {"overload": "tools.overload"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in BENCHES:
        print(f"usage: finllm bench {{{','.join(BENCHES)}}} [--json] [options]", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(_MODULES.get(argv[0], f"tools.bench_{argv[0]}"))
    return int(module.main(argv[1:]) or 0)
