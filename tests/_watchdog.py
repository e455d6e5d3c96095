"""The suite's watchdog: a test phase that overruns is dumped, then cancelled, never waited on for ever.

pytest-timeout's signal cannot stop code inside a running event loop (the loop swallows the
exception its handler raises), and ``tests/conftest.py`` bounds only the *call* of an async test.
Setup and teardown run in the loop too: an async fixture's teardown, and the loop's own close,
which cancels leftover tasks and waits for the default executor's threads, with no limit on
Python 3.11.  A thread here watches every phase (setup, call, teardown) of every test:

1. after ``rescue_after_s`` it writes, to the terminal and past pytest's capture, every thread's
   stack, the stack of each task of each running loop, and a last line naming the test and phase
   (the line a truncated CI log still shows); then it cancels every task of every running loop,
   so the phase fails with a ``CancelledError`` and the run goes on;
2. when the phase has still not ended ``exit_after_s`` later (a loop blocked in a call, a task
   that swallows its cancellation), it writes the stacks again and ends the process with status 3.

The defaults (300 s, then 360 s) end a run only after pytest-timeout's 600 s per test has had its
chance: a slow phase outside any loop (a sync fixture) is pytest-timeout's to stop.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import io
import os
import sys
import threading
import time
from types import FrameType

__all__ = ["Watchdog"]

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Watchdog:
    """Watches one phase at a time (:meth:`enter` / :meth:`leave`); see the module docstring.

    ``fd`` is a file descriptor of the real terminal (a ``dup`` of stderr made before capture).
    """

    def __init__(self, fd: int, *, rescue_after_s: float = 300.0, exit_after_s: float = 360.0) -> None:
        self._fd = fd
        self._rescue_after_s = rescue_after_s
        self._exit_after_s = exit_after_s
        self._lock = threading.Lock()
        self._phase: tuple[str, str, float] | None = None
        self._rescued_at: float | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="suite-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def enter(self, nodeid: str, phase: str) -> None:
        with self._lock:
            self._phase = (nodeid, phase, time.monotonic())
            self._rescued_at = None

    def leave(self) -> None:
        with self._lock:
            self._phase = None
            self._rescued_at = None

    def _watch(self) -> None:
        while not self._stopped.wait(1.0):
            with self._lock:
                phase, rescued_at = self._phase, self._rescued_at
                now = time.monotonic()
                if phase is None:
                    continue
                nodeid, name, t0 = phase
                if rescued_at is None and now - t0 > self._rescue_after_s:
                    self._rescued_at = now
                    action = "rescue"
                elif rescued_at is not None and now - rescued_at > self._exit_after_s:
                    action = "exit"
                else:
                    continue
            self._act(action, nodeid, name, now - t0)

    def _write(self, text: str) -> None:
        os.write(self._fd, text.encode("utf-8", "replace"))

    def _act(self, action: str, nodeid: str, phase: str, ran_s: float) -> None:
        self._write(f"\n=== suite watchdog: {nodeid} [{phase}] has run {ran_s:.0f}s; every thread's stack:\n")
        faulthandler.dump_traceback(file=self._fd, all_threads=True)
        loops = _running_loops()
        if action == "rescue":
            for loop in loops:
                loop.call_soon_threadsafe(self._cancel_all, loop, f"{nodeid} [{phase}]")
        self._write(_main_thread_summary())
        if action == "rescue":
            self._write(
                f"=== suite watchdog: {nodeid} [{phase}] stuck for {ran_s:.0f}s; cancelling every task "
                f"of {len(loops)} running loop(s)\n"
            )
            return
        self._write(f"=== suite watchdog: {nodeid} [{phase}] still stuck after cancelling; exiting with 3\n")
        os._exit(3)

    def _cancel_all(self, loop: asyncio.AbstractEventLoop, what: str) -> None:
        """Runs in ``loop``: each task's stack, then its cancellation."""
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        buf = io.StringIO()
        buf.write(f"=== suite watchdog: {len(tasks)} task(s) of the running loop:\n")
        for task in tasks:
            task.print_stack(limit=12, file=buf)
        self._write(buf.getvalue())
        for task in tasks:
            task.cancel(f"suite watchdog: {what} overran")


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    # (no public way to reach another thread's running loop: a rescue is rare, a heap walk is fine)
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _main_thread_summary() -> str:
    """The main thread's innermost frames from this repository, the last lines a log tail shows."""
    innermost = sys._current_frames().get(threading.main_thread().ident or -1)
    frame: FrameType | None = innermost
    ours: list[str] = []
    while frame is not None and len(ours) < 8:
        path = frame.f_code.co_filename
        if path.startswith(_REPO) and "site-packages" not in path:
            ours.append(f"    {os.path.relpath(path, _REPO)}:{frame.f_lineno} in {frame.f_code.co_name}\n")
        frame = frame.f_back
    where = (
        f"    innermost: {innermost.f_code.co_filename}:{innermost.f_lineno} in {innermost.f_code.co_name}\n"
        if innermost is not None
        else ""
    )
    return (
        "=== suite watchdog: main thread, this repository's frames (innermost first):\n"
        + "".join(ours)
        + where
    )
