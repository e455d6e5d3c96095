"""Fixtures of the edge tests: the shipped manifest, real E-mini bars, a running EdgeReasoner."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from actors.edge_reasoner import EdgeReasoner, EdgeReasonerConfig
from adapters.datasets import load_emini
from adapters.inference.manifest import DEFAULT_MODEL_DIR, Manifest, load_manifest
from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine, RunSummary
from engine.mailbox import Mailbox
from engine.messages import Bar
from engine.testing import FakeClock, Probe, settle
from tools.train_edge import bars_from_trades


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return load_manifest(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="session")
def es_bars() -> list[Bar]:
    """The first 300 real one-minute E-mini bars (Sunday 1 Sept 2013 evening session)."""
    bars = []
    for bar in bars_from_trades(load_emini()):
        bars.append(bar)
        if len(bars) == 300:
            break
    return bars


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped model directory, safe to tamper with."""
    dst = tmp_path / "edge"
    shutil.copytree(DEFAULT_MODEL_DIR, dst)
    return dst


class EdgeRun:
    """A running engine with one EdgeReasoner ("edge") and a probe on its outputs."""

    def __init__(self, engine: Engine, probe: Probe) -> None:
        self.engine = engine
        self.probe = probe
        self.summary: RunSummary | None = None

    @property
    def actor(self) -> EdgeReasoner:
        actor = self.engine.cells["edge"].actor
        assert isinstance(actor, EdgeReasoner)
        return actor

    async def feed(self, msgs: Iterable[Any], chunk: int = 50) -> None:
        """Publish like a replay source: advance the sim clock, publish a chunk, wait idle."""
        clock = self.engine.clock
        assert isinstance(clock, FakeClock)
        batch: list[Any] = []
        for m in msgs:
            batch.append(m)
            if len(batch) == chunk:
                await self._publish(batch, clock)
                batch = []
        if batch:
            await self._publish(batch, clock)
        await settle(self.engine.runtime)

    async def _publish(self, batch: list[Any], clock: FakeClock) -> None:
        for m in batch:
            clock.advance_to(m.ts_event)
            topic = {"bar": "bar", "verified_news": "news.verified"}.get(type(m).__struct_config__.tag, "md")
            self.engine.bus.publish(topic if topic == "news.verified" else f"{topic}.{m.symbol}", m)
        await settle(self.engine.runtime)

    def outputs(self) -> list[Any]:
        return self.probe.drain()


@asynccontextmanager
async def running_edge(config: EdgeReasonerConfig, start_ns: int = 0) -> AsyncIterator[EdgeRun]:
    engine = Engine(EngineConfig(engine=EngineSection(clock="sim")), clock=FakeClock(start_ns))
    engine.add_actor(
        "edge",
        EdgeReasoner,
        config,
        subscribe=["bar.>", "md.>", "news.verified"],
        mailbox=Mailbox(100_000, "block", name="edge"),
    )
    probe = Probe(engine.bus, "forecast.>", "trace.>", "deadletter")
    run = EdgeRun(engine, probe)
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        yield run
    finally:
        engine.request_shutdown("test done")
        run.summary = await asyncio.wait_for(task, 30)
