"""The suite's own safety net: an async test that waits for ever fails on its own, the run goes on.

pytest-timeout's signal method cannot interrupt a test inside a running event loop (the loop
swallows the exception its handler raises); tests/conftest.py runs each async test under a
deadline inside the loop instead.  This runs a small suite in a subprocess to pin that.
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

@pytest.mark.timeout(2)
@pytest.mark.asyncio
async def test_waits_for_ever() -> None:
    await asyncio.get_running_loop().create_future()

def test_runs_after() -> None:
    assert True
"""


def test_an_async_test_that_hangs_fails_with_a_timeout_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_asyncio_loop_factories, pytest_runtest_call  # noqa: F401\n"
    )
    (tmp_path / "test_hangs.py").write_text(_HANGS)
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": ""},
    )  # fmt: skip
    assert time.monotonic() - t0 < 60, out.stdout[-2000:]
    assert "TimeoutError" in out.stdout and "2 failed, 1 passed" in out.stdout, out.stdout[-3000:]
