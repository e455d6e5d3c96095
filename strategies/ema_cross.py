"""EmaCross: the forecast-free baseline.  Long when the fast EMA of bar closes is above the
slow one, short when below; ignores forecasts entirely, so reports can show what forecasts add."""

from __future__ import annotations

import msgspec

from engine.messages import Bar
from strategies.api import Strategy

__all__ = ["EmaCross", "EmaCrossParams"]


class EmaCrossParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``fast``/``slow`` EMA spans in bars (alpha = 2 / (span + 1)); ``qty`` the position held
    (contracts/shares); ``warmup`` bars before the first trade; ``allow_short`` else flat when
    the fast EMA is below."""

    fast: int = 10
    slow: int = 30
    qty: float = 1.0
    warmup: int = 30
    allow_short: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={self.fast} slow={self.slow}")
        if not self.qty > 0:
            raise ValueError(f"qty must be > 0, got {self.qty}")


class EmaCross(Strategy[EmaCrossParams]):
    """Trend-following on bar closes, one target position per symbol."""

    params_type = EmaCrossParams

    def on_start(self) -> None:
        p = self.params
        self._af = 2.0 / (p.fast + 1)
        self._as = 2.0 / (p.slow + 1)
        self._state: dict[str, list[float]] = {}  # symbol -> [fast, slow, bars seen]

    def on_bar(self, bar: Bar) -> None:
        st = self._state.get(bar.symbol)
        if st is None:
            self._state[bar.symbol] = [bar.close, bar.close, 1.0]
            return
        st[0] += self._af * (bar.close - st[0])
        st[1] += self._as * (bar.close - st[1])
        st[2] += 1
        p = self.params
        if st[2] < p.warmup:
            return
        if st[0] > st[1]:
            target = p.qty
        elif st[0] < st[1]:
            target = -p.qty if p.allow_short else 0.0
        else:
            return
        ctx = self.ctx
        delta = target - ctx.position(bar.symbol) - ctx.pending(bar.symbol)
        if delta:
            ctx.submit_order(bar.symbol, 1 if delta > 0 else -1, abs(delta))
