"""A light forecaster: one random-walk + EWMA-volatility forecast per market event.

For every trade, quote (mid) or bar (close) of a symbol it emits a ``tier="baseline"``
:class:`~engine.messages.Forecast` of the next-event log return: point 0 (random walk),
volatility from a RiskMetrics EWMA of squared log returns, Gaussian quantiles.  It is
the reference the edge model must beat, and the forecaster the Kafka delivery proofs use
because it answers every record, cheaply and deterministically.

``forecast_id`` is ``"<symbol>:<horizon>:<seq>"``: the same input record always yields
the same id, so a record delivered twice yields a duplicate a consumer can drop.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import msgspec

from engine.actor import Actor
from engine.messages import Bar, Forecast, Quote, Trade

__all__ = ["BaselineForecaster", "BaselineForecasterConfig"]


class BaselineForecasterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``lam`` is the EWMA decay per event; ``init_vol`` the per-event log-return s.d. before data."""

    horizon: str = "1e"
    lam: float = 0.94
    init_vol: float = 1e-4
    quantile_levels: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    model_id: str = "baseline-ewma-rw"
    model_version: str = "1"
    topic_prefix: str = "forecast"

    def __post_init__(self) -> None:
        if not 0.0 < self.lam < 1.0:
            raise ValueError(f"lam must be in (0, 1), got {self.lam}")
        if any(not 0.0 < q < 1.0 for q in self.quantile_levels):
            raise ValueError("quantile_levels must lie in (0, 1)")
        if list(self.quantile_levels) != sorted(self.quantile_levels):
            raise ValueError("quantile_levels must be increasing")


class BaselineForecaster(Actor[BaselineForecasterConfig]):
    """Random walk with EWMA volatility, per symbol; see the module docstring."""

    config_type = BaselineForecasterConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self._z = tuple(NormalDist().inv_cdf(q) for q in cfg.quantile_levels)
        self._state: dict[str, list[float]] = {}  # symbol -> [last price, variance]
        self._ignored = self.ctx.metrics.counter("baseline_ignored_total", actor=self.ctx.name)

    def on_batch(self, msgs: list[Any]) -> None:
        cfg = self.config
        lam = cfg.lam
        one_minus = 1.0 - lam
        init_var = cfg.init_vol * cfg.init_vol
        z = self._z
        levels = cfg.quantile_levels
        state = self._state
        horizon = cfg.horizon
        prefix = cfg.topic_prefix + "."
        out: dict[str, list[Forecast]] = {}
        for m in msgs:
            t = type(m)
            if t is Trade:
                price = m.price
            elif t is Quote:
                price = 0.5 * (m.bid + m.ask)
            elif t is Bar:
                price = m.close
            else:
                self._ignored.inc()
                continue
            sym = m.symbol
            st = state.get(sym)
            if st is None:
                st = state[sym] = [price, init_var]
            elif price > 0.0 and st[0] > 0.0:
                r = math.log(price / st[0])
                st[1] = lam * st[1] + one_minus * r * r
                st[0] = price
            vol = math.sqrt(st[1])
            fc = Forecast(
                forecast_id=f"{sym}:{horizon}:{m.seq}",
                symbol=sym,
                horizon=horizon,
                basis_seq=m.seq,
                ts_event=m.ts_event,
                tier="baseline",
                model_id=cfg.model_id,
                model_version=cfg.model_version,
                point=0.0,
                quantile_levels=levels,
                quantiles=tuple(vol * zi for zi in z),
                direction_prob=0.5,
                volatility=vol,
                confidence=0.0,
            )
            lst = out.get(sym)
            if lst is None:
                out[sym] = [fc]
            else:
                lst.append(fc)
        publish_many = self.ctx.bus.publish_many
        for sym, fcs in out.items():
            publish_many(prefix + sym, fcs)

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])
