"""Start or stop the real local LLM server (llama.cpp + SmolLM2-135M-Instruct) on loopback.

    python -m tools.llm_server start [--port N] [--threads 2]   # prints url and pid, then exits
    python -m tools.llm_server stop --pid PID
    python -m tools.llm_server run                              # foreground until Ctrl-C

``start`` waits until ``/v1/models`` answers; the server keeps running in the
background and ``stop --pid`` ends exactly that process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

from adapters.llm.local_server import LocalLlamaServer, LocalServerError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llm_server", description="local llama.cpp server with SmolLM2-135M")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("start", "run"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, default=0)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--timeout-s", type=float, default=120.0)
    p = sub.add_parser("stop")
    p.add_argument("--pid", type=int, required=True)
    args = ap.parse_args(argv)

    if args.cmd == "stop":
        try:
            os.kill(args.pid, signal.SIGTERM)
        except ProcessLookupError:
            print(f"no process {args.pid}", file=sys.stderr)
            return 1
        for _ in range(100):
            try:
                os.kill(args.pid, 0)
            except ProcessLookupError:
                return 0
            time.sleep(0.1)
        os.kill(args.pid, signal.SIGKILL)
        return 0

    server = LocalLlamaServer(port=args.port, threads=args.threads, startup_timeout_s=args.timeout_s)
    try:
        asyncio.run(server.start())
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    assert server.proc is not None
    print(f"url={server.url} pid={server.proc.pid} model={server.model_id}", flush=True)
    if args.cmd == "start":
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        server.proc.wait()
    server.stop_sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
