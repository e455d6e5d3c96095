"""Suite-wide test setup: every async test runs on both event loops.

pytest-asyncio calls ``pytest_asyncio_loop_factories`` and parametrizes each
async test once per factory, so the whole suite proves itself on the stdlib
asyncio loop and on uvloop.  A test that only makes sense on one loop (a slow
integration test, say) selects it with
``@pytest.mark.asyncio(loop_factories=["uvloop"])``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest
import structlog
import uvloop

from tests._watchdog import Watchdog


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults: a test that runs a command in-process
    configures logging to *its* captured stderr, which is closed when the test ends; a later test
    that logs would then fail with "I/O operation on closed file"."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


# pytest-timeout's signal method cannot stop an async test: the exception it raises from its
# SIGALRM handler is swallowed by the running event loop (asyncio and uvloop alike), so a test
# awaiting for ever hung the whole run.  Each async test therefore runs under its own deadline,
# inside the loop, short of the suite's timeout: it fails with a TimeoutError and a traceback of
# where it was waiting, and the run goes on.
_ASYNC_MARGIN_S = 60.0


def _bounded(item: pytest.Item) -> Callable[[], None]:
    """Put an async test's function under its deadline; returns what puts the original back."""
    fn = getattr(item, "obj", None)
    if not (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(fn)):
        return lambda: None
    marker = item.get_closest_marker("timeout")
    given = (marker.args[0] if marker.args else marker.kwargs.get("timeout")) if marker else None
    limit = float(given if given is not None else item.config.getini("timeout") or 0)
    if limit <= 0:
        return lambda: None
    deadline = max(limit - _ASYNC_MARGIN_S, limit / 2)

    @functools.wraps(fn)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(deadline):
            return await fn(*args, **kwargs)

    item.obj = bounded

    def restore() -> None:
        item.obj = fn

    return restore


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    restore = _bounded(item)
    try:
        yield from _watched(item, "call")
    finally:
        restore()


# Setup and teardown run in the loop as well (async fixtures, the loop's own close): the watchdog
# bounds every phase, and names the test and phase in the last lines a hung run prints.
_WATCHDOG_KEY = pytest.StashKey[Watchdog]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "watchdog_rescue_s", "seconds a test phase may run before it is dumped and cancelled", default="300"
    )
    parser.addini("watchdog_exit_s", "seconds after a rescue before a still-stuck run exits", default="360")


def pytest_configure(config: pytest.Config) -> None:
    fd = os.dup(2)  # the terminal, whatever capture does to fd 2 later
    rescue_s, exit_s = (float(config.getini(k)) for k in ("watchdog_rescue_s", "watchdog_exit_s"))
    dog = Watchdog(fd, rescue_after_s=rescue_s, exit_after_s=exit_s)
    config.stash[_WATCHDOG_KEY] = dog
    dog.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    # the last phase: a thread or an atexit hook that never ends would hold the process at exit
    dog = config.stash.get(_WATCHDOG_KEY, None)
    if dog is not None:
        dog.enter("the session", "exit")


def _watched(item: pytest.Item, phase: str) -> Generator[None, None, None]:
    dog = item.config.stash.get(_WATCHDOG_KEY, None)
    if dog is None:
        yield
        return
    dog.enter(item.nodeid, phase)
    try:
        yield
    finally:
        dog.leave()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _watched(item, "setup")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _watched(item, "teardown")
