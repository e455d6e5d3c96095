"""A light forecaster: one random-walk + EWMA-volatility forecast per market event.

For every trade, quote (mid) or bar (close) of a symbol it emits a ``tier="baseline"``
:class:`~engine.messages.Forecast` of the next-event log return: point 0 (random walk),
volatility from a RiskMetrics EWMA of squared log returns, Gaussian quantiles.  It is
the reference the edge model must beat, and the forecaster the Kafka delivery proofs use
because it answers every valid record, cheaply and deterministically.

``forecast_id`` is ``"<symbol>:<horizon>:<seq>"``: the same input record always yields
the same id, so a record delivered twice yields a duplicate a consumer can drop.  On the
Kafka path ``seq`` is the record's position (topic, partition, offset; see
``actors/kafka_io.py``), unique per input; in a replay it is the feed's numbering.
Forecasts are published on ``<topic_prefix>.<symbol token>`` (dots in symbols escaped,
:func:`adapters.kafka.symbol_token`).

Every number it emits is finite.  Prices enter as log differences (``ln p - ln p0``, not
``ln(p/p0)``, whose ratio over- or underflows for prices such as 1e300 then 1e-300), so a
return is at most ~1,500 in size and the variance stays finite.  A message whose price is
not finite and positive (or whose ``ts_event`` is not a non-negative 64-bit int) is refused: dead-lettered on
the bus (``baseline_rejected_total``) without a forecast and without touching the
symbol's state, so one bad tick can never poison later forecasts.  The Kafka source
already refuses such records before they get here; this is the second line.

State is one (last price, variance) pair per symbol, for at most ``max_symbols`` symbols;
past that, the symbol seen least recently starts afresh from ``init_vol`` when it returns.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import msgspec

from adapters.kafka import symbol_token
from engine.actor import Actor
from engine.messages import Bar, Forecast, Quote, Trade

__all__ = ["BaselineForecaster", "BaselineForecasterConfig"]

_INT64_MAX = (1 << 63) - 1


class BaselineForecasterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``lam`` is the EWMA decay per event; ``init_vol`` the per-event log-return s.d. before data."""

    horizon: str = "1e"
    lam: float = 0.94
    init_vol: float = 1e-4
    quantile_levels: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    model_id: str = "baseline-ewma-rw"
    model_version: str = "1"
    topic_prefix: str = "forecast"
    max_symbols: int = 100_000
    """Symbols whose state is kept; the least recently seen one is forgotten past that."""

    def __post_init__(self) -> None:
        if not 0.0 < self.lam < 1.0:
            raise ValueError(f"lam must be in (0, 1), got {self.lam}")
        if not 0.0 < self.init_vol < 1.0:
            raise ValueError(f"init_vol must be in (0, 1), got {self.init_vol}")
        if any(not 0.0 < q < 1.0 for q in self.quantile_levels):
            raise ValueError("quantile_levels must lie in (0, 1)")
        if list(self.quantile_levels) != sorted(self.quantile_levels):
            raise ValueError("quantile_levels must be increasing")
        if self.max_symbols < 1:
            raise ValueError(f"max_symbols must be >= 1, got {self.max_symbols}")


def _price(m: Any) -> float | None:
    """The price a market message forecasts from, or None for other messages."""
    t = type(m)
    if t is Trade:
        return float(m.price)
    if t is Quote:
        return 0.5 * float(m.bid) + 0.5 * float(m.ask)  # halves first: bid + ask can overflow to inf
    if t is Bar:
        return float(m.close)
    return None


class BaselineForecaster(Actor[BaselineForecasterConfig]):
    """Random walk with EWMA volatility, per symbol; see the module docstring."""

    config_type = BaselineForecasterConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self._z = tuple(NormalDist().inv_cdf(q) for q in cfg.quantile_levels)
        # symbol -> [ln(last price), variance]; insertion order = least recently seen first.
        self._state: dict[str, list[float]] = {}
        self._ignored = self.ctx.metrics.counter("baseline_ignored_total", actor=self.ctx.name)
        self._rejected = self.ctx.metrics.counter("baseline_rejected_total", actor=self.ctx.name)

    def on_batch(self, msgs: list[Any]) -> None:
        cfg = self.config
        prefix = cfg.topic_prefix + "."
        out: dict[str, list[Forecast]] = {}
        for m in msgs:
            price = _price(m)
            if price is None:
                self._ignored.inc()
                continue
            if not 0.0 < price < math.inf or not 0 <= m.ts_event <= _INT64_MAX:
                self._reject(m, price)
                continue
            vol = self._update(m.symbol, math.log(price))
            fc = self._forecast(m, vol)
            lst = out.get(m.symbol)
            if lst is None:
                out[m.symbol] = [fc]
            else:
                lst.append(fc)
        publish_many = self.ctx.bus.publish_many
        for sym, fcs in out.items():
            publish_many(prefix + symbol_token(sym), fcs)

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    def _update(self, sym: str, log_px: float) -> float:
        """Fold one log price into the symbol's EWMA variance; returns the volatility (finite, > 0)."""
        state = self._state
        st = state.pop(sym, None)  # re-inserted below: most recently seen last
        init_var = self.config.init_vol**2
        if st is None:
            if len(state) >= self.config.max_symbols:
                del state[next(iter(state))]
            st = [log_px, init_var]
        else:
            r = log_px - st[0]  # |r| <= ~1,490 for any two finite positive doubles
            lam = self.config.lam
            var = lam * st[1] + (1.0 - lam) * r * r
            st[0] = log_px
            # Cannot be non-finite or zero given the bound above; a guard costs one comparison.
            st[1] = var if 0.0 < var < math.inf else init_var
        state[sym] = st
        return math.sqrt(st[1])

    def _forecast(self, m: Any, vol: float) -> Forecast:
        cfg = self.config
        return Forecast(
            forecast_id=f"{m.symbol}:{cfg.horizon}:{m.seq}",
            symbol=m.symbol,
            horizon=cfg.horizon,
            basis_seq=m.seq,
            ts_event=m.ts_event,
            tier="baseline",
            model_id=cfg.model_id,
            model_version=cfg.model_version,
            point=0.0,
            quantile_levels=cfg.quantile_levels,
            quantiles=tuple(vol * zi for zi in self._z),
            direction_prob=0.5,
            volatility=vol,
            confidence=0.0,
        )

    def _reject(self, m: Any, price: float) -> None:
        self._rejected.inc()
        try:
            raw = msgspec.msgpack.encode(m)
        except (OverflowError, msgspec.EncodeError, UnicodeEncodeError):  # e.g. ts_event >= 2**64
            raw = b""
        self.ctx.dead_letter(
            f"invalid_value: price {price!r} / ts_event {m.ts_event} is not usable",
            raw=raw[:4096],
            symbol=str(m.symbol)[:64],
            seq=m.seq,
        )
