"""ForecastThreshold: trades on forecasts.  Long when the forecast says up with enough
probability (and, optionally, its lower quantile is above zero), short when it says down,
flat when it is unsure.  The counterpart of :mod:`strategies.ema_cross` in every report."""

from __future__ import annotations

import msgspec

from engine.messages import Forecast
from strategies.api import Strategy

__all__ = ["ForecastThreshold", "ForecastThresholdParams"]


class ForecastThresholdParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``long_prob``: go long when ``direction_prob >= long_prob``; ``short_prob``: short when
    ``direction_prob <= short_prob``; in between go flat if ``flat_when_unsure``.
    ``quantile_level``: when > 0 also require the forecast quantile at that level to be above
    zero for a long (and the one at ``1 - level`` below zero for a short).
    ``min_confidence`` ignores forecasts below it; ``tiers`` accepted forecast tiers;
    ``qty`` the position size."""

    long_prob: float = 0.55
    short_prob: float = 0.45
    flat_when_unsure: bool = True
    quantile_level: float = 0.0
    min_confidence: float = 0.0
    tiers: tuple[str, ...] = ("edge", "cloud", "baseline")
    qty: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.short_prob <= self.long_prob <= 1.0:
            raise ValueError("need 0 <= short_prob <= long_prob <= 1")
        if not self.qty > 0:
            raise ValueError(f"qty must be > 0, got {self.qty}")


def _quantile(fc: Forecast, level: float) -> float | None:
    for lv, q in zip(fc.quantile_levels, fc.quantiles, strict=False):
        if abs(lv - level) < 1e-9:
            return q
    return None


class ForecastThreshold(Strategy[ForecastThresholdParams]):
    """Target position from each forecast's direction probability (and quantiles)."""

    params_type = ForecastThresholdParams

    def on_forecast(self, forecast: Forecast) -> None:
        p = self.params
        if forecast.tier not in p.tiers or forecast.confidence < p.min_confidence:
            return
        prob = forecast.direction_prob
        target: float | None
        if prob >= p.long_prob and self._quantile_ok(forecast, 1):
            target = p.qty
        elif prob <= p.short_prob and self._quantile_ok(forecast, -1):
            target = -p.qty
        else:
            target = 0.0 if p.flat_when_unsure else None
        if target is None:
            return
        ctx = self.ctx
        delta = target - ctx.position(forecast.symbol) - ctx.pending(forecast.symbol)
        if delta:
            ctx.submit_order(forecast.symbol, 1 if delta > 0 else -1, abs(delta))

    def _quantile_ok(self, fc: Forecast, side: int) -> bool:
        level = self.params.quantile_level
        if level <= 0.0:
            return True
        q = _quantile(fc, level if side > 0 else 1.0 - level)
        return q is not None and (q > 0.0 if side > 0 else q < 0.0)
