"""The replay benchmark runs and its two pipelines do the same work (no timing asserted here)."""

from __future__ import annotations

import json

import pytest

from tools.bench_replay import main


def test_bench_emits_the_figure_and_both_pipelines_agree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--limit", "30000", "--repeat", "1", "--no-memory"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (fig,) = [x for x in lines if x.get("bench") == "replay"]
    assert fig["figure"] == "replay_ticks_per_s" and fig["unit"] == "ticks/s"
    assert fig["baseline"] == "asyncio.Queue" and fig["baseline_value"] > 0 and fig["ratio"] > 0
    assert fig["n"] == 30_000 and fig["shed"] == 0
    # Same ticks, same EMA, same strategy, same exchange: the same number of fills.
    assert fig["fills"] == fig["baseline_fills"] > 0
