"""Fixtures of the operations tests (degradation, carbon, energy, ops HTTP, control plane, top)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine

CARBON_DIR = Path(__file__).resolve().parents[2] / "tools" / "data" / "carbon"


@pytest.fixture
def carbon_dir() -> Path:
    return CARBON_DIR


@pytest.fixture
def sim_engine() -> Engine:
    """An empty engine on a simulated clock (tests add actors and drive time)."""
    return Engine(EngineConfig(engine=EngineSection(clock="sim", shutdown_deadline_s=2.0)))


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Callable[[Engine], asyncio.Future[object]]]:
    """Start engines in the background; stop them (gracefully) at the end of the test."""
    started: list[tuple[Engine, asyncio.Future[object]]] = []

    def start(engine: Engine) -> asyncio.Future[object]:
        task = asyncio.ensure_future(engine.run(install_signals=False))
        started.append((engine, task))
        return task

    yield start
    for engine, task in started:
        engine.request_shutdown("test over")
        await asyncio.wait_for(task, 10)
