"""Shared output format of every ``finllm bench`` figure (see DESIGN.md).

One JSON object per line, so the output pipes into jq and dashboards::

    {"bench": "engine", "figure": "hop1_msgs_per_s", "value": 812345.0, "unit": "msg/s",
     "baseline": "asyncio.Queue", "baseline_value": 702000.0, "ratio": 1.157, ...context}
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any, TextIO

__all__ = ["Figure", "context", "emit"]


class Figure(dict[str, Any]):
    """One benchmark figure; a dict so it serialises as-is."""


def context() -> dict[str, Any]:
    """What every figure carries: interpreter and machine."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": _cpus(),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def emit(
    bench: str,
    figure: str,
    value: float | None,
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    as_json: bool = True,
    out: TextIO | None = None,
    **ctx: Any,
) -> Figure:
    """Print one figure (JSON line, or a readable line when ``as_json`` is false) and return it.

    ``value`` None means the figure is undefined for this run (it prints as JSON null).
    """
    fig = Figure(bench=bench, figure=figure, value=value, unit=unit)
    if baseline is not None:
        fig["baseline"] = baseline
        fig["baseline_value"] = baseline_value
        if baseline_value and value is not None:
            fig["ratio"] = value / baseline_value
    fig.update(ctx)
    fig.update(context())
    stream = out or sys.stdout
    if as_json:
        stream.write(json.dumps(fig, sort_keys=False) + "\n")
    else:
        extra = ""
        if value is None:
            stream.write(f"{bench:>7} {figure:<28} {'undefined':>16} {unit}\n")
            stream.flush()
            return fig
        if baseline is not None and baseline_value:
            extra = f"  (baseline {baseline}: {baseline_value:,.1f}, ratio {value / baseline_value:.3f})"
        stream.write(f"{bench:>7} {figure:<28} {value:>16,.3f} {unit}{extra}\n")
    stream.flush()
    return fig
