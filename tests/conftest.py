"""Suite-wide test setup: every async test runs on both event loops.

pytest-asyncio calls ``pytest_asyncio_loop_factories`` and parametrizes each
async test once per factory, so the whole suite proves itself on the stdlib
asyncio loop and on uvloop.  A test that only makes sense on one loop (a slow
integration test, say) selects it with
``@pytest.mark.asyncio(loop_factories=["uvloop"])``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

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
