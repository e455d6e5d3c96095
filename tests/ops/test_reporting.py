"""adapters.reporting: the one HTML writer serves finllm run and finllm replay; commands only call it."""

from __future__ import annotations

from pathlib import Path

from adapters import reporting
from tools import report as replay_report
from tools.commands import run as runcmd

S = 1_000_000_000


def test_the_replay_report_is_written_by_the_one_writer(tmp_path: Path) -> None:
    metrics = {
        "events": 12345,
        "wall_s": 1.5,
        "events_per_s": 8230.0,
        "reason": "replay finished",
        "hashed_files": ["fills.jsonl", "forecasts.jsonl"],
        "digest_sha256": "ab" * 32,
        "strategies": {
            "ema": {"class": "strategies.ema_cross:EmaCross", "pnl": "1234.5", "sharpe": None,
                    "max_drawdown": 10.0, "turnover": 0.5, "fills": 2, "fees": "1.2", "failures": 0},
        },
        "stage_latency_us": {"edge": {"p50": 40.0, "p99": 90.0, "p999": 200.0, "count": 1000}},
        "stage_latency_quantiles_us": {"edge": [30.0, 40.0, 50.0, 90.0], "host": [5.0, 6.0]},
        "counters": {"md_events_in_total": 12345, "actor_failures_total{actor=x}": 1, "zero": 0},
    }  # fmt: skip
    results = {
        "prices": {"ES": [(i * 60 * S, 1600.0 + i) for i in range(10)]},
        "strategies": {
            "ema": {
                "equity_curve": [(0, 1_000_000.0), (60 * S, 1_000_010.0)],
                "equity": "1001234.5",
                "pnl_float": 1234.5,
                "fills_log": [(60 * S, "ES", 1, 1, 1601.0), (120 * S, "ES", -1, 1, 1602.0)],
            }
        },
    }
    assert replay_report.write_report is reporting.write_replay_report  # finllm replay's import
    page = reporting.write_replay_report(tmp_path, metrics, results).read_text()
    assert page.count("data:image/png;base64,") == 3  # PnL, price with fills, latency per stage
    assert "<td>1,234.50</td>" in page and "<td>n/a</td>" in page  # exact PnL text, no Sharpe
    assert "md_events_in_total" in page and "actor_failures" not in page and ">zero<" not in page
    assert "12,345" in page and "ab" * 32 in page and 'class="grid"' in page


def test_an_empty_replay_still_writes_a_page(tmp_path: Path) -> None:
    page = reporting.write_replay_report(tmp_path, {}, {}).read_text()
    assert page.count("data:image/png;base64,") == 1 and page.count("no data") == 2


def test_finllm_run_defaults_to_the_packaged_config() -> None:
    from config import DEFAULT_CONFIG

    assert runcmd._parser().parse_args([]).config is None
    assert runcmd.default_config() == DEFAULT_CONFIG and DEFAULT_CONFIG.is_file()
    # the blocks stay importable from the command under their old names
    assert runcmd.write_report is reporting.write_report and runcmd.mode_spans is reporting.mode_spans
