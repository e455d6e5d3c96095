"""``finllm bench cloud`` runs and names its figures as DESIGN.md says (no timing asserted)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from tools.bench_cloud import main


@pytest.fixture
def keep_logging_config() -> Iterator[None]:
    """The bench configures structlog process-wide; other tests must not inherit that."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("keep_logging_config")
def test_bench_cloud_fault_server_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--json", "--skip-replay", "--n-overhead", "20", "--n-tail", "40", "--log-level", "error"]) == 0
    )
    figs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [f["figure"] for f in figs] == ["proxy_overhead_ms", "p99_ms_no_hedge", "p99_ms_hedge"]
    assert all(f["bench"] == "cloud" and f["unit"] == "ms" for f in figs)
    assert figs[0]["baseline"] == "raw HTTP call" and figs[0]["baseline_value"] > 0
    assert figs[2]["baseline"] == "no hedge" and figs[2]["extra_requests_pct"] <= 10.0 + 100 * 2 / 40
