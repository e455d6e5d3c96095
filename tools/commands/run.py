"""``finllm run [--config FILE]``: the main job - flags mapped to the loader, then the package.

Without ``--config`` the run loads ``default.toml`` as installed with the package
(:data:`config.DEFAULT_CONFIG`), so ``finllm run`` works from any directory.  The command
runs that pipeline through the one loader (:func:`engine.config.load_config`): the variable
``${out}`` is the run directory ``runs/<id>/`` (under ``--runs``), ``--profile NAME`` applies
``[profiles.NAME]`` of the config and ``--set PATH=VALUE`` any typed override
(``--set 'actors[feed].config.limit=100000'``).  It measures the run's energy
(:mod:`adapters.energy`) and then writes, from what the pipeline's sinks left in the run
directory (:func:`adapters.reporting.write_run_outputs`):

* ``metrics.json`` - the engine's run summary, the energy report (joules and gCO2e per 1,000
  forecasts), the mode timeline and the forecast calibration;
* ``report.html`` - one self-contained page with plots: price with the forecast quantile
  bands, calibration of the quantiles, latency per actor, the degradation-mode timeline and
  each strategy's PnL;

and prints a short summary.  The blocks live in the package - :mod:`adapters.reporting`
(reading sinks, plots, the HTML writer) and :mod:`adapters.scoring` (realised returns,
coverage) - and are re-exported here under their old names.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.reporting import (
    ModeSpan,
    mode_spans,
    plot_calibration,
    plot_latency,
    plot_latency_summary,
    plot_modes,
    plot_pnl,
    plot_price_bands,
    print_summary,
    read_messages,
    tier_lines,
    time_in_mode,
    warn_failed_tiers,
    write_report,
    write_run_outputs,
)
from adapters.scoring import quantile_coverage, realised_returns

__all__ = [
    "ModeSpan",
    "default_config",
    "main",
    "mode_spans",
    "new_run_dir",
    "plot_calibration",
    "plot_latency",
    "plot_latency_summary",
    "plot_modes",
    "plot_pnl",
    "plot_price_bands",
    "quantile_coverage",
    "read_messages",
    "realised_returns",
    "substitute",
    "tier_lines",
    "time_in_mode",
    "warn_failed_tiers",
    "write_report",
]


def default_config() -> Path:
    """The main job's config as installed with the package (``config/default.toml``)."""
    from config import DEFAULT_CONFIG

    return DEFAULT_CONFIG


def new_run_dir(root: str | Path = "runs", *, now: datetime | None = None) -> Path:
    """Create and return ``root/<UTC yyyymmdd-HHMMSS>[-n]`` (a fresh directory, never reused)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        d = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory under {base} for {stamp}")


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """``obj`` (parsed TOML) with every ``${name}`` in its strings replaced from ``values``.

    The loader's own substitution (:func:`engine.compose.substitute`): an unknown name is a
    ConfigError.  ``main`` does not call it: the loader does, given ``variables``.
    """
    from engine.compose import substitute as _substitute

    return _substitute(obj, values)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="finllm run", description="Run the main job and write runs/<id>/.")
    ap.add_argument(
        "--config",
        default=None,
        help="pipeline TOML (default: config/default.toml as installed with the package)",
    )
    ap.add_argument("--runs", default="runs", help="where run directories go")
    ap.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="apply [profiles.NAME] of the config (repeatable, in order), e.g. edge-only",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override one key, value in TOML (repeatable), e.g. 'actors[feed].config.limit=100000'",
    )
    ap.add_argument(
        "--watts-per-core", type=float, default=12.0, help="CPU power model for the energy report"
    )
    ap.add_argument("--g-per-kwh", type=float, default=400.0, help="grid intensity for gCO2e")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when any configured tier (edge, news, cloud) did not start or failed every attempt",
    )
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg_path = Path(args.config) if args.config else default_config()
    if not cfg_path.exists():
        print(f"finllm run: no config at {cfg_path}", file=sys.stderr)
        return 2
    from adapters.energy import EnergyConfig, EnergyMeter
    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.kernel import Engine, run_engine
    from engine.logging import configure_logging

    out = new_run_dir(args.runs)
    try:
        cfg = load_config(cfg_path, profiles=args.profile, sets=args.set, variables={"out": str(out)})
        configure_logging(cfg.engine.log_format, cfg.engine.log_level)
        engine = Engine(cfg)
        engine.build()
    except ConfigError as exc:
        out.rmdir()  # still empty: a refused config leaves no run behind
        print(f"finllm run: {exc}", file=sys.stderr)
        return 2
    meter = EnergyMeter(EnergyConfig(cpu_watts_per_core=args.watts_per_core, g_per_kwh=args.g_per_kwh))
    meter.begin()
    t0 = time.time_ns()
    summary = run_engine(engine)
    t1 = time.time_ns()
    head = write_run_outputs(out, summary, meter=meter, config=str(cfg_path), ts_start=t0, ts_end=t1)
    print_summary(head, out / "report.html")
    failed = warn_failed_tiers(summary.tiers)
    for name, err in summary.parked.items():
        print(f"WARNING finllm run: actor {name} was parked (crash loop): {err}", file=sys.stderr)
    if summary.exit_code == 0 and failed and args.strict:
        print(f"finllm run --strict: {len(failed)} tier(s) failed; exit 3", file=sys.stderr)
        return 3
    return summary.exit_code
