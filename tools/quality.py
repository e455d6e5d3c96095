"""Forecast-quality statistics: moved to :mod:`adapters.scoring` (the one scoring module).

Kept so ``from tools import quality`` in scripts and notebooks goes on working; new code
imports :mod:`adapters.scoring`.
"""

from __future__ import annotations

from adapters.scoring import (
    brier,
    crps_quantiles,
    diebold_mariano,
    ewma_variance,
    garch_variance,
    hit_rate,
    interval_coverage,
    pesaran_timmermann,
    pinball,
    pit,
    qlike,
    qlike_norm,
    rolling_empirical_quantiles,
)

__all__ = [
    "brier",
    "crps_quantiles",
    "diebold_mariano",
    "ewma_variance",
    "garch_variance",
    "hit_rate",
    "interval_coverage",
    "pesaran_timmermann",
    "pinball",
    "pit",
    "qlike",
    "qlike_norm",
    "rolling_empirical_quantiles",
]
