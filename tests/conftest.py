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
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest
import structlog
import uvloop


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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    fn = getattr(item, "obj", None)
    if not (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(fn)):
        yield
        return
    marker = item.get_closest_marker("timeout")
    given = (marker.args[0] if marker.args else marker.kwargs.get("timeout")) if marker else None
    limit = float(given if given is not None else item.config.getini("timeout") or 0)
    if limit <= 0:
        yield
        return
    deadline = max(limit - _ASYNC_MARGIN_S, limit / 2)

    @functools.wraps(fn)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(deadline):
            return await fn(*args, **kwargs)

    item.obj = bounded
    try:
        yield
    finally:
        item.obj = fn
