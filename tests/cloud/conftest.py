"""Fixtures of the cloud-tier tests: fault-injecting servers, a proxy rig, the real llama.cpp server."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from actors.cloud_reasoner import CloudReasonerConfig, CloudReasonerProxy
from adapters.llm.local_server import LocalLlamaServer, LocalServerError
from engine.actor import ActorCell
from engine.mailbox import Mailbox
from engine.messages import DeadLetter, Forecast, ReasoningTrace
from engine.runtime import Runtime
from engine.testing import Probe
from tools.fault_llm_server import FaultConfig, FaultServer

FaultFactory = Callable[..., Awaitable[FaultServer]]


@pytest_asyncio.fixture
async def fault_server() -> AsyncIterator[FaultFactory]:
    """``srv = await fault_server(FaultConfig(...), answer_fn=...)``; all stopped at teardown."""
    started: list[FaultServer] = []

    async def make(config: FaultConfig | None = None, **kw: Any) -> FaultServer:
        srv = await FaultServer(config or FaultConfig(), **kw).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        await srv.stop()


class Rig:
    def __init__(self, cfg: CloudReasonerConfig) -> None:
        self.runtime = Runtime()
        self.metrics = self.runtime.metrics
        self.bus = self.runtime.bus
        self.mailbox: Mailbox[Any] = Mailbox(4096, "block", name="cloud")
        self.cell = ActorCell(
            "cloud",
            lambda ctx: CloudReasonerProxy(cfg, ctx),
            self.mailbox,
            runtime=self.runtime,
        )
        for p in ("forecast.*", "news.verified", "trace.*", "bar.*"):
            self.bus.subscribe(p, self.mailbox)
        self.probe = Probe(self.bus, "forecast.*", "trace.*", "deadletter")
        self.seen: list[Any] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def actor(self) -> CloudReasonerProxy:
        assert isinstance(self.cell.actor, CloudReasonerProxy)
        return self.cell.actor

    def publish(self, topic: str, msg: Any) -> None:
        self.bus.publish(topic, msg)

    def collect(self) -> list[Any]:
        self.seen.extend(self.probe.drain())
        return self.seen

    def refinements(self) -> list[Forecast]:
        return [m for m in self.collect() if isinstance(m, Forecast) and m.version >= 2]

    def traces(self) -> list[ReasoningTrace]:
        return [m for m in self.collect() if isinstance(m, ReasoningTrace)]

    def dead(self) -> list[DeadLetter]:
        return [m for m in self.collect() if isinstance(m, DeadLetter)]

    async def until(self, cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.005)

    def counter(self, name: str, **labels: Any) -> int:
        return self.metrics.counter(name, actor="cloud", **labels).value


@pytest_asyncio.fixture
async def rig_factory() -> AsyncIterator[Callable[[CloudReasonerConfig], Awaitable[Rig]]]:
    """``rig = await rig_factory(cfg)``: a started proxy on its own bus; stopped at teardown."""
    rigs: list[Rig] = []

    async def make(cfg: CloudReasonerConfig) -> Rig:
        rig = Rig(cfg)
        rig.task = asyncio.get_running_loop().create_task(rig.cell.run())
        # an autostarted llama.cpp server takes seconds to come up
        await rig.until(lambda: rig.cell.actor is not None and hasattr(rig.cell.actor, "client"), 180.0)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.mailbox.close()
        assert rig.task is not None
        await asyncio.wait_for(rig.task, 30)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalLlamaServer]:
    """The real llama.cpp server with SmolLM2-135M-Instruct on loopback, once per session.

    It fails loudly (an error, not a skip) when the server cannot start: the
    integration tests must run wherever ``make test`` runs.
    """
    # One thread by default: llama.cpp's worker threads spin-wait, and on a 2-core machine shared
    # with other work two of them collapsed to ~1.7 tokens/s where one thread gave ~12.
    threads = int(os.environ.get("FINLLM_LLM_THREADS", "1"))
    server = LocalLlamaServer(threads=threads, startup_timeout_s=180.0)
    try:
        server.start_sync()
    except LocalServerError as exc:
        pytest.fail(f"the real llama.cpp server did not start: {exc}", pytrace=False)
    yield server
    server.stop_sync()
