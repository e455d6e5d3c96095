"""Fixtures and helpers of the market-data / replay / strategy tests."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.datasets import Tape, load_emini
from engine.config import loads_config
from engine.kernel import Engine, RunSummary
from engine.testing import Probe


@pytest.fixture(scope="session")
def emini() -> Tape:
    """The real 500k E-mini tape (loaded once per session)."""
    return load_emini()


def actor(
    name: str,
    cls: str,
    config: dict[str, Any] | None = None,
    subscribe: list[str] | None = None,
    capacity: int = 65536,
) -> dict[str, Any]:
    """One ``[[actors]]`` table, with a deep blocking mailbox (replay never sheds)."""
    return {
        "name": name,
        "class": cls,
        "subscribe": subscribe or [],
        "mailbox": {"capacity": capacity, "policy": "block"},
        "config": config or {},
    }


def feed(**config: Any) -> dict[str, Any]:
    return actor("feed", "actors.market_data:MarketDataFeed", config, capacity=16)


def build(*actors: dict[str, Any], clock: str = "sim") -> Engine:
    """An engine built through the config path, like ``finllm replay`` builds it."""
    return Engine(loads_config("", overrides={"engine": {"clock": clock}, "actors": list(actors)}))


async def run(engine: Engine, *patterns: str) -> tuple[RunSummary, list[Any]]:
    """Run to the end of the replay; return the summary and what was published on ``patterns``."""
    probe = Probe(engine.bus, *patterns) if patterns else None
    summary = await engine.run(install_signals=False)
    return summary, probe.drain() if probe is not None else []
