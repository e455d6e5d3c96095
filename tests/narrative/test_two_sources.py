"""The news replay and the market feed share one simulated clock without starving each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.text.news_io import read_news
from engine.config import loads_config
from engine.kernel import Engine
from engine.messages import NewsItem

NEWS = Path(__file__).resolve().parents[2] / "tools" / "data" / "news_emini_2013-09.jsonl"

PIPELINE = f"""
[engine]
clock = "sim"
shutdown_deadline_s = 60.0

[[actors]]
name = "feed"
class = "actors.market_data:MarketDataFeed"
[actors.mailbox]
capacity = 16
policy = "block"
[actors.config]
dataset = "emini"
limit = 60000
chunk_size = 1024

[[actors]]
name = "narrative"
class = "actors.narrative:NarrativeIngest"
subscribe = ["news.raw"]
[actors.mailbox]
capacity = 1024
policy = "block"
[actors.config]
replay_file = "{NEWS}"
pace = "clock"
"""


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_clock_paced_news_is_all_ingested_while_the_feed_drives_time() -> None:
    engine = Engine(loads_config(PIPELINE, path="two-sources.toml"))
    summary = await engine.run(install_signals=False)
    assert summary.exit_code == 0
    end = engine.clock.now_ns()
    due = [p for _, _, p in read_news(str(NEWS)) if isinstance(p, NewsItem) and p.ts_event <= end]
    assert len(due) >= 8  # the window covers the Sunday-evening items at least
    counters = summary.metrics["counters"]
    assert counters["news_ingested_total{actor=narrative}"] >= len(due)
    assert counters["actor_failures_total{actor=narrative}"] == 0
