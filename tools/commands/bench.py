"""``finllm bench {engine,edge,replay,kafka,cloud,news} [--json]``: dispatch to ``tools.bench_<name>``."""

from __future__ import annotations

import importlib
import sys

__all__ = ["BENCHES", "main"]

BENCHES = ("engine", "edge", "replay", "kafka", "cloud", "news")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in BENCHES:
        print(f"usage: finllm bench {{{','.join(BENCHES)}}} [--json] [options]", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(f"tools.bench_{argv[0]}")
    return int(module.main(argv[1:]) or 0)
