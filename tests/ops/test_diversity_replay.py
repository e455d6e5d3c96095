"""The diversity breaker does not trip on a normal replay of the bundled data.

The main job (``finllm run``: the shipped ``default.toml``, E-mini 1-minute bars of September
2013 with its news, profile ``edge-only``) runs with its breaker beside the strategy host,
which listens to ``control.breaker``; the breaker's report shows every bar evaluated, the edge
model and the classical baselines taking part, the two strategies positioned, and no trip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.diversity import DiversityConfig
from tools.commands import run as runcmd


@pytest.mark.slow
def test_no_trip_on_the_main_jobs_replay(tmp_path: Path) -> None:
    # config/default.toml carries the breaker (actors[diversity]) and the host listens to
    # control.breaker: the shipped main job, edge-only.
    rc = runcmd.main(["--profile", "edge-only", "--runs", str(tmp_path / "runs")])
    assert rc == 0
    (out,) = (tmp_path / "runs").iterdir()
    report = json.loads((out / "diversity.json").read_text())
    es = report["symbols"]["ES"]
    forecasts = (out / "forecasts.jsonl").read_bytes().count(b"\n")
    assert es["evaluations"] > 2000 and forecasts > 2000
    assert es["forecasters"] >= 3  # the edge model and the two classical baselines
    assert es["crowding"] > 0  # the strategies did take positions
    assert report["trips"] == 0 and report["open"] == [] and report["states"] == []
    assert es["consensus"] < DiversityConfig().consensus_trip
