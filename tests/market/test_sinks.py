"""JsonlSink: every message one line, filtered by type tag, decodable back to the same messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.messages import Bar, Trade, json_decoder

from .conftest import actor, build, feed, run


@pytest.mark.asyncio
async def test_sinks_write_what_was_published_in_order(tmp_path: Path) -> None:
    all_path, bars_path = tmp_path / "all.jsonl", tmp_path / "sub" / "bars.jsonl"
    eng = build(
        feed(dataset="emini", limit=20_000),
        actor("all", "actors.sinks:JsonlSink", {"path": str(all_path)}, subscribe=["md.>", "bar.>"]),
        actor(
            "bars",
            "actors.sinks:JsonlSink",
            {"path": str(bars_path), "types": ["bar"]},
            subscribe=["md.>", "bar.>"],
        ),
    )
    summary, seen = await run(eng, "md.>", "bar.>")
    written = [json_decoder.decode(line) for line in all_path.read_bytes().splitlines()]
    assert written == seen and len(written) > 20_000
    bars = [json_decoder.decode(line) for line in bars_path.read_bytes().splitlines()]
    assert bars == [m for m in seen if type(m) is Bar] and bars
    c = summary.metrics["counters"]
    assert c["sink_lines_total{sink=bars}"] == len(bars)
    assert c["sink_skipped_total{sink=bars}"] == sum(type(m) is Trade for m in seen)
