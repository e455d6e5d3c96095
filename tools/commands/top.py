"""``finllm top --url http://127.0.0.1:PORT``: a live terminal view of a running node.

Polls the node's ``/stats`` (served by the control plane, see
:mod:`actors.control_plane`) every ``--interval`` seconds and draws, with
plain ANSI escapes: the mode, whether the node is ready and live and every
reason it is not (parked or restarting actors, FAILED tiers, stalled partitions,
consumer lag), each mailbox (depth against capacity, peak, offered, delivered,
shed in total and per second since the last frame), each actor's handler latency
(p50/p99, microseconds), its state and recent failures, and the event-loop lag.
``--once`` prints a single frame and exits (scripts, tests); ``--no-color``
drops the colours.  Exit status: 0, or 1 when the node cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any, TextIO

__all__ = ["fetch_stats", "main", "render"]

_MODE_COLOR = {"NORMAL": "32", "CONSERVE": "36", "DEGRADED": "33", "SURVIVAL": "31"}
_CLEAR = "\x1b[H\x1b[2J"


def fetch_stats(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """GET ``url``/stats and decode it; raises OSError/ValueError on failure."""
    with urllib.request.urlopen(url.rstrip("/") + "/stats", timeout=timeout_s) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def _c(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _bar(depth: int, capacity: int, width: int = 12) -> str:
    filled = 0 if capacity <= 0 else min(width, round(width * depth / capacity))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _num(v: Any, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _health_lines(health: dict[str, Any] | None, color: bool) -> list[str]:
    if not health:
        return []
    ready, live = bool(health.get("ready", True)), bool(health.get("live", True))
    line = "health  " + (_c("ready", "32", color) if ready else _c("NOT READY", "31", color))
    line += "  " + (_c("live", "32", color) if live else _c("NOT LIVE", "31", color))
    lag = health.get("lag") or {}
    if lag:
        line += f"  consumer lag max {max(float(v) for v in lag.values()):,.0f}"
    lines = [line]
    lines += [f"  - {r}" for r in health.get("not_ready") or ()]
    return lines


def _state(child: dict[str, Any] | None) -> str:
    if not child:
        return "-"
    state = str(child.get("state", "?"))
    recent = int(child.get("failures_recent", 0))
    return f"{state}({recent})" if recent else state


def render(doc: dict[str, Any], prev: dict[str, Any] | None = None, *, color: bool = True) -> str:
    """One frame of text from a ``/stats`` document (``prev``: the previous one, for rates)."""
    mode = str(doc.get("mode", "?"))
    mailboxes: dict[str, Any] = doc.get("mailboxes", {})
    hist: dict[str, Any] = doc.get("metrics", {}).get("histograms", {})
    dt = None
    if prev is not None and doc.get("uptime_s") is not None and prev.get("uptime_s") is not None:
        dt = max(1e-9, float(doc["uptime_s"]) - float(prev["uptime_s"]))
    shed_total = sum(int(m.get("shed", 0)) for m in mailboxes.values())
    lag = hist.get("loop_lag_us", {})
    health: dict[str, Any] | None = doc.get("health")
    children: dict[str, Any] = (health or {}).get("children") or {}
    lines = [
        f"finllm top  node {doc.get('node_id', '?')}  mode "
        + _c(f"{mode:<8}", _MODE_COLOR.get(mode, "0"), color)
        + f"  up {float(doc.get('uptime_s') or 0):,.0f} s  shed {shed_total:,}"
        + f"  loop lag p99 {_num(lag.get('p99'))} us"
        + ("  RELEASED" if doc.get("released") else ""),
        *_health_lines(health, color),
        "",
        f"{'actor':<18} {'policy':<11} {'depth':>7} {'':14} {'peak':>6} {'offered':>11} "
        f"{'delivered':>11} {'shed':>9} {'shed/s':>8} {'p50 us':>8} {'p99 us':>8}  {'state':<14}",
    ]
    for name, m in sorted(mailboxes.items()):
        depth, cap = int(m.get("depth", 0)), int(m.get("capacity", 0))
        rate = "-"
        if dt is not None and prev is not None and name in prev.get("mailboxes", {}):
            rate = f"{(int(m.get('shed', 0)) - int(prev['mailboxes'][name].get('shed', 0))) / dt:,.0f}"
        lat = hist.get(f"handler_latency_us{{actor={name}}}", {})
        shed = int(m.get("shed", 0))
        shed_txt = f"{shed:>9,}"
        if shed:
            shed_txt = _c(shed_txt, "33", color)
        lines.append(
            f"{name[:18]:<18} {str(m.get('policy', ''))[:11]:<11} {depth:>7,} {_bar(depth, cap):14} "
            f"{int(m.get('peak_depth', 0)):>6,} {int(m.get('offered', 0)):>11,} "
            f"{int(m.get('delivered', 0)):>11,} {shed_txt} {rate:>8} "
            f"{_num(lat.get('p50')):>8} {_num(lat.get('p99')):>8}  {_state(children.get(name)):<14}"
        )
    peers = doc.get("peers") or {}
    if peers:
        lines.append("")
        lines.append("peers: " + "  ".join(f"{k}={v}" for k, v in peers.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str], out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="finllm top", description="Live view of a running finllm node.")
    p.add_argument("--url", default="http://127.0.0.1:9464", help="the node's ops endpoint")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: never)")
    p.add_argument("--no-color", action="store_true")
    args = p.parse_args(argv)
    stream = out or sys.stdout
    color = not args.no_color and stream.isatty()
    prev: dict[str, Any] | None = None
    n = 0
    try:
        while True:
            try:
                doc = fetch_stats(args.url)
            except (OSError, ValueError) as exc:
                print(f"finllm top: cannot read {args.url}/stats: {exc}", file=sys.stderr)
                return 1
            frame = render(doc, prev, color=color)
            stream.write(frame if args.once else _CLEAR + frame)
            stream.flush()
            n += 1
            if args.once or (args.frames and n >= args.frames):
                return 0
            prev = doc
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
