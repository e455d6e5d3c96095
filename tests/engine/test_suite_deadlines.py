"""The suite's own safety net: a test that waits for ever fails on its own, the run goes on.

pytest-timeout's signal method cannot interrupt a test inside a running event loop (the loop
swallows the exception its handler raises); tests/conftest.py runs each async test under a
deadline inside the loop, and its watchdog (tests/_watchdog.py) cancels a setup or teardown that
overruns.  These run small suites in a subprocess to pin both.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_HANGS = """
import asyncio
import pytest
import pytest_asyncio

@pytest.mark.timeout(2)
@pytest.mark.asyncio
async def test_waits_for_ever() -> None:
    await asyncio.get_running_loop().create_future()

def test_runs_after() -> None:
    assert True
"""

_TEARDOWN_HANGS = """
import asyncio
import pytest
import pytest_asyncio

@pytest_asyncio.fixture
async def stuck() -> object:
    yield 1
    await asyncio.get_running_loop().create_future()

@pytest.mark.asyncio
async def test_teardown_waits_for_ever(stuck: int) -> None:
    assert stuck == 1

def test_runs_after() -> None:
    assert True
"""

_CONFTEST = """
from tests.conftest import (  # noqa: F401
    pytest_addoption, pytest_asyncio_loop_factories, pytest_configure, pytest_runtest_call,
    pytest_runtest_setup, pytest_runtest_teardown, pytest_unconfigure,
)
"""


def _run_suite(tmp_path: Path, source: str, *ini: str) -> str:
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_hangs.py").write_text(source)
    opts = [
        x
        for kv in ("asyncio_mode=strict", "asyncio_default_fixture_loop_scope=function", *ini)
        for x in ("-o", kv)
    ]
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *opts,
         str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": ""},
    )  # fmt: skip
    assert time.monotonic() - t0 < 60, out.stdout[-2000:]
    return out.stdout + out.stderr


def test_an_async_test_that_hangs_fails_with_a_timeout_and_the_run_goes_on(tmp_path: Path) -> None:
    out = _run_suite(tmp_path, _HANGS)
    assert "TimeoutError" in out and "2 failed, 1 passed" in out, out[-3000:]


def test_a_teardown_that_hangs_is_dumped_and_cancelled_and_the_run_goes_on(tmp_path: Path) -> None:
    out = _run_suite(tmp_path, _TEARDOWN_HANGS, "watchdog_rescue_s=2", "watchdog_exit_s=30")
    assert "3 passed, 2 errors" in out, out[-3000:]
    for loop in ("asyncio", "uvloop"):
        assert f"test_teardown_waits_for_ever[{loop}] [teardown] stuck for" in out, out[-3000:]
        assert f"CancelledError: suite watchdog: test_hangs.py::test_teardown_waits_for_ever[{loop}]" in out


def test_a_phase_the_loop_cannot_leave_ends_the_run_loudly(tmp_path: Path) -> None:
    # a loop blocked in a call cannot run the cancellation: the watchdog ends the process
    blocked = _HANGS.replace(
        "await asyncio.get_running_loop().create_future()", "__import__('time').sleep(60)"
    )
    out = _run_suite(tmp_path, blocked.replace("mark.timeout(2)", "mark.timeout(600)"),
                     "watchdog_rescue_s=1", "watchdog_exit_s=2")  # fmt: skip
    assert "[call] still stuck after cancelling; exiting with 3" in out, out[-3000:]
    assert "passed" not in out.splitlines()[-1]
