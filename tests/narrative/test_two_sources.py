"""Market data and news on one simulated clock: the replay driver merges them by time.

The regression of commit eb06006 (clock-paced news starved by the feed: 5 of 34
items ingested) cannot come back: no source moves the clock, the one driver
hands each news item over when the clock reaches its time, between the market
events before it and the ones after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.text.checker import AnalysedNews
from adapters.text.news_io import read_news
from engine.config import loads_config
from engine.kernel import Engine, run_on_loop
from engine.messages import Bar, NewsItem, Trade
from engine.testing import Probe

NEWS = Path(__file__).resolve().parents[2] / "config" / "data" / "news_emini_2013-09.jsonl"

ENGINE = """
[engine]
clock = "sim"
shutdown_deadline_s = 60.0
"""

FEED = """
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
"""

NARRATIVE = """
[[actors]]
name = "narrative"
class = "actors.narrative:NarrativeIngest"
subscribe = ["news.raw"]
[actors.mailbox]
capacity = 1024
policy = "block"
[actors.config]
replay_file = "{news}"
pace = "clock"
shutdown_at_end = {shutdown}
[actors.config.analyzer]
embed = false
sentiment = "lexicon"
"""

PIPELINE = ENGINE + FEED + NARRATIVE.format(news=NEWS, shutdown="false")


async def replay() -> tuple[Engine, Any, list[Any]]:
    engine = Engine(loads_config(PIPELINE, path="two-sources.toml"))
    probe = Probe(engine.bus, "md.ES", "bar.ES", "news.analysed")
    summary = await engine.run(install_signals=False)
    return engine, summary, probe.drain()


@pytest.mark.asyncio
async def test_every_news_item_is_handed_over_at_its_own_simulated_time() -> None:
    engine, summary, seen = await replay()
    assert summary.exit_code == 0 and summary.reason == "replay finished"
    items = [p for _, _, p in read_news(str(NEWS)) if isinstance(p, NewsItem)]
    trades = [m for m in seen if type(m) is Trade]
    assert len(trades) == 60_000
    end = engine.clock.now_ns()
    due = [it for it in items if it.ts_event <= end]
    assert len(due) >= 8  # the window covers the Sunday-evening items at least
    # All news is ingested: the items after the market data too (the driver runs every source out).
    analysed = [m for m in seen if isinstance(m, AnalysedNews)]
    assert [a.item.id for a in analysed] == [it.id for it in items]
    counters = summary.metrics["counters"]
    assert counters["news_ingested_total{actor=narrative}"] == len(items)
    assert counters["actor_failures_total{actor=narrative}"] == 0
    # ... each at its own time on the one clock, ...
    assert all(a.item.ts_recv == a.item.ts_event for a in analysed)
    # ... between the market events before it and the ones after it (a tie goes to "feed").
    last_md = -1
    for i, m in enumerate(seen):
        if type(m) in (Trade, Bar):
            last_md = m.ts_event
        elif isinstance(m, AnalysedNews):
            t = m.item.ts_event
            assert last_md <= t, (m.item.id, last_md, t)
            after = next((x.ts_event for x in seen[i + 1 :] if type(x) is Trade), None)
            assert after is None or after > t, (m.item.id, t, after)
    assert engine.clock.controller is None  # the driver let go of the clock at the end


def test_the_merged_replay_is_the_same_on_asyncio_and_uvloop() -> None:
    def key(msgs: list[Any]) -> list[tuple[str, Any, int]]:
        return [
            (type(m).__name__, m.item.id if isinstance(m, AnalysedNews) else m.ts_event, getattr(m, "seq", 0))
            for m in msgs
        ]

    runs = [key(run_on_loop(replay(), loop)[2]) for loop in ("asyncio", "uvloop")]
    assert runs[0] == runs[1] and len(runs[0]) > 60_000


@pytest.mark.asyncio
async def test_news_alone_is_handed_over_at_its_own_times(tmp_path: Path) -> None:
    """What the old clock-paced mode waited for another source to do, the driver does itself."""
    import json

    t0 = 1_378_072_800_000_000_000
    f = tmp_path / "news.jsonl"
    f.write_text(
        "\n".join(
            json.dumps({"id": i, "ts": t0 + s * 1_000_000_000, "source": "reuters", "headline": h})
            for i, s, h in (
                ("early", 0, "Microsoft to buy Nokia's devices unit for 5.44 billion euros"),
                ("later", 600, "Nokia sells handset unit to Microsoft for 5.44 billion euros"),
            )
        )
        + "\n"
    )
    pipeline = ENGINE + NARRATIVE.format(news=f, shutdown="true")
    engine = Engine(loads_config(pipeline, path="news-only.toml"))
    probe = Probe(engine.bus, "news.analysed")
    summary = await engine.run(install_signals=False)
    assert summary.reason == "news replay finished"
    got = [(m.item.id, m.item.ts_recv - t0) for m in probe.drain()]
    assert got == [("early", 0), ("later", 600_000_000_000)]
    assert engine.clock.now_ns() == t0 + 600_000_000_000
