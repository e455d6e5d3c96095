"""Online volatility regimes and change points, per symbol, O(1) per bar.

Two signals from each :class:`~adapters.features.FeatureRow`:

* the regime: ``vol_ratio`` (ln of fast over slow EWMA variance) against
  thresholds with hysteresis and a minimum dwell, so the label does not flicker:
  ``calm`` below ``calm_below``, ``turbulent`` above ``turbulent_above``,
  ``normal`` otherwise;
* change points: a two-sided CUSUM on ``min(ret_1**2, z2_cap) - 1`` (the
  squared standardized return minus its expectation under the current
  volatility; capped so one outlier cannot fire it alone).  The upper side
  (volatility rising) uses slack ``k_up`` and threshold ``h_up``, the lower
  side ``k_down`` / ``h_down``; when either passes its threshold a change
  point is flagged and both sums reset.  Defaults give about one false alarm
  per 2,500 bars of i.i.d. normal returns and find a tripling of volatility
  within a few bars (``tests/edge/test_batcher_regimes.py``).

The regime picks the specialist model in :class:`adapters.inference.registry.RegimeRegistry`.
"""

from __future__ import annotations

from typing import Final

import msgspec

from adapters.features import FEATURE_NAMES, FeatureRow

__all__ = ["REGIMES", "RegimeConfig", "RegimeDetector", "RegimeState"]

REGIMES: Final = ("calm", "normal", "turbulent")
_RET1: Final = FEATURE_NAMES.index("ret_1")
_VOLR: Final = FEATURE_NAMES.index("vol_ratio")


class RegimeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds on ``vol_ratio`` (natural log units), hysteresis band, dwell in bars, CUSUM."""

    calm_below: float = -0.5
    turbulent_above: float = 0.5
    hysteresis: float = 0.15
    min_dwell: int = 5
    k_up: float = 1.0
    h_up: float = 12.0
    k_down: float = 0.3
    h_down: float = 15.0
    z2_cap: float = 9.0

    def __post_init__(self) -> None:
        if not self.calm_below < self.turbulent_above:
            raise ValueError("RegimeConfig: calm_below must be < turbulent_above")
        if min(self.hysteresis, self.min_dwell, self.k_up, self.k_down) < 0:
            raise ValueError("RegimeConfig: hysteresis, min_dwell, k_up, k_down must be >= 0")
        if min(self.h_up, self.h_down, self.z2_cap) <= 0:
            raise ValueError("RegimeConfig: h_up, h_down and z2_cap must be > 0")


class RegimeState(msgspec.Struct, frozen=True, gc=False):
    """The regime after a bar: ``name`` in :data:`REGIMES`, ``index`` its position,
    ``changepoint`` true on the bar where the CUSUM fired, ``bars_in_regime`` the dwell so far."""

    name: str
    index: int
    changepoint: bool
    bars_in_regime: int


class _Sym:
    __slots__ = ("dwell", "index", "neg", "pos")

    def __init__(self) -> None:
        self.index = 1
        self.dwell = 0
        self.pos = 0.0
        self.neg = 0.0


class RegimeDetector:
    """See the module docstring.  One instance serves many symbols."""

    def __init__(self, config: RegimeConfig | None = None) -> None:
        self.config = config or RegimeConfig()
        self._syms: dict[str, _Sym] = {}
        self.changepoints = 0

    def update(self, row: FeatureRow) -> RegimeState:
        cfg = self.config
        s = self._syms.get(row.symbol)
        if s is None:
            s = self._syms[row.symbol] = _Sym()
        z2 = min(float(row.values[_RET1]) ** 2, cfg.z2_cap) - 1.0
        s.pos = max(0.0, s.pos + z2 - cfg.k_up)
        s.neg = max(0.0, s.neg - z2 - cfg.k_down)
        cp = s.pos > cfg.h_up or s.neg > cfg.h_down
        if cp:
            s.pos = s.neg = 0.0
            self.changepoints += 1
        target = self._target(float(row.values[_VOLR]), s.index)
        s.dwell += 1
        if target != s.index and s.dwell >= cfg.min_dwell:
            s.index = target
            s.dwell = 0
        return RegimeState(REGIMES[s.index], s.index, cp, s.dwell)

    def _target(self, vr: float, current: int) -> int:
        cfg = self.config
        h = cfg.hysteresis
        # Leaving the current regime takes crossing its threshold by the hysteresis band.
        if current == 0:
            if vr <= cfg.calm_below + h:
                return 0
        elif current == 2 and vr >= cfg.turbulent_above - h:
            return 2
        if vr < cfg.calm_below:
            return 0
        if vr > cfg.turbulent_above:
            return 2
        return 1

    def current(self, symbol: str) -> str:
        s = self._syms.get(symbol)
        return REGIMES[s.index if s else 1]
