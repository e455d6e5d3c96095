"""Incremental per-symbol features for the edge model: O(1) work per event.

One :class:`FeatureEngine` keeps a small state per symbol and updates it from
:class:`~engine.messages.Bar`, :class:`~engine.messages.Quote`,
:class:`~engine.messages.Trade` and :class:`~engine.messages.VerifiedNews`
messages.  After each bar it can produce a feature row (``float32``, in the
order of :data:`FEATURE_NAMES`).  The training script feeds the *same* class
with the historical bars, so the model sees at run time exactly what it saw in
training.

Scale: feature 0 is ``log_vol``, the natural log of the EWMA(``ewma_lambda``)
volatility of one-bar log returns (a plain number, not percent) - that is, the
RiskMetrics forecast of the next bar's return standard deviation.  The edge
model forecasts the next return *in units of that volatility*, so every other
price feature is made scale-free by dividing by it.

Neutral values: when a symbol has no quotes, ``spread`` is 0; when it has no
news, every ``news_*`` feature is 0; a bar without trade-side information
(daily data) leaves ``imbalance`` at 0.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import msgspec
import numpy as np

from engine.messages import Bar, Quote, Trade, VerifiedNews

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SCHEMA",
    "FeatureConfig",
    "FeatureEngine",
    "FeatureRow",
    "SymbolFeatures",
]

FEATURE_SCHEMA: Final = 1
"""Bumped whenever the meaning or order of :data:`FEATURE_NAMES` changes; models record it."""

_EMBED_DIMS: Final = 4

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "log_vol",  # ln EWMA volatility of one-bar log returns (the scale)
    "ret_1",  # last return / previous volatility
    "ret_5",  # sum of last 5 returns / (volatility * sqrt 5)
    "ret_20",  # sum of last 20 returns / (volatility * sqrt 20)
    "rv_5",  # ln(mean squared return over 5 bars / EWMA variance)
    "rv_20",  # ln(mean squared return over 20 bars / EWMA variance)
    "vol_ratio",  # ln(fast EWMA variance / slow EWMA variance)
    "range",  # ln(high / low) of the last bar / volatility
    "imbalance",  # EWMA of (buy - sell) / volume per bar, in [-1, 1]
    "volume_z",  # z-score of ln volume against its EWMA mean and variance
    "spread",  # EWMA relative quoted spread / volatility (0 without quotes)
    "tod_sin",  # time of day (UTC) on the unit circle
    "tod_cos",
    "gap",  # ln(time since previous bar / bar length), >= 0
    "news_sent",  # tanh of decayed credibility-weighted sentiment
    "news_intensity",  # ln(1 + decayed count of verified items)
    *(f"news_emb_{i}" for i in range(_EMBED_DIMS)),  # decayed mean of projected embeddings
)

_IDX: Final = {name: i for i, name in enumerate(FEATURE_NAMES)}
_N: Final = len(FEATURE_NAMES)
_DAY_NS: Final = 86_400_000_000_000
_TWO_PI: Final = 2.0 * math.pi
_VAR_FLOOR: Final = 1e-14  # a 1e-7 volatility: below any real instrument's one-bar move


class FeatureConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Feature engine parameters; models record the config they were trained with.

    ``ewma_lambda`` / ``slow_lambda``: decay of the fast and slow EWMA variances
    per bar.  ``imbalance_alpha`` and ``volume_alpha``: EWMA weights per bar.
    ``warmup_bars``: bars before a row counts as warm (until then the variance is
    the running mean of squared returns).  ``news_half_life_s``: seconds for a
    news item's weight to halve.  ``clip``: bound on standardized features.
    ``bar_ns``: nominal bar length in ns, used when a bar does not say (``spec``).
    """

    ewma_lambda: float = 0.94
    slow_lambda: float = 0.995
    imbalance_alpha: float = 0.2
    volume_alpha: float = 0.05
    warmup_bars: int = 20
    news_half_life_s: float = 1800.0
    clip: float = 8.0
    bar_ns: int = 60_000_000_000

    def __post_init__(self) -> None:
        for name in ("ewma_lambda", "slow_lambda"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"FeatureConfig.{name} must be in (0, 1), got {v}")
        for name in ("imbalance_alpha", "volume_alpha"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"FeatureConfig.{name} must be in (0, 1], got {v}")
        if self.warmup_bars < 1 or self.news_half_life_s <= 0 or self.clip <= 0 or self.bar_ns <= 0:
            raise ValueError("FeatureConfig: warmup_bars, news_half_life_s, clip, bar_ns must be > 0")


class FeatureRow(msgspec.Struct, frozen=True, gc=False):
    """One feature vector, taken after a bar.

    ``values`` float32 in :data:`FEATURE_NAMES` order; ``scale`` the EWMA
    volatility (exp of ``log_vol``); ``close`` the bar close; ``warm`` false
    during warm-up; ``news_ids`` the verified items whose weight is still
    above 5% (most recent last).
    """

    symbol: str
    ts_event: int
    seq: int
    close: float
    scale: float
    warm: bool
    values: np.ndarray
    news_ids: tuple[str, ...] = ()


class _Ring:
    """A fixed window with running sums of values and squares."""

    __slots__ = ("_buf", "n", "sum", "sumsq")

    def __init__(self, size: int) -> None:
        self._buf: deque[float] = deque(maxlen=size)
        self.sum = 0.0
        self.sumsq = 0.0
        self.n = size

    def push(self, x: float) -> None:
        buf = self._buf
        if len(buf) == buf.maxlen:
            old = buf[0]
            self.sum -= old
            self.sumsq -= old * old
        buf.append(x)
        self.sum += x
        self.sumsq += x * x

    def __len__(self) -> int:
        return len(self._buf)


def _projection(dim: int) -> np.ndarray:
    """A fixed seeded random projection from ``dim`` embedding values to the summary dims."""
    rng = np.random.default_rng(1_000_003 + dim)
    return rng.standard_normal((dim, _EMBED_DIMS)) / math.sqrt(dim)


class SymbolFeatures:
    """The incremental state of one symbol.  Not thread-safe."""

    __slots__ = (
        "_cfg",
        "_emb",
        "_last_close",
        "_last_ts",
        "_news_ids",
        "_news_int",
        "_news_sent",
        "_news_ts",
        "_r5",
        "_r20",
        "_spread",
        "_vfast",
        "_vslow",
        "bars",
        "imbalance",
        "last_seq",
        "symbol",
        "vol_mean",
        "vol_var",
    )

    def __init__(self, symbol: str, cfg: FeatureConfig) -> None:
        self.symbol = symbol
        self._cfg = cfg
        self._last_close = math.nan
        self._last_ts = 0
        self._vfast = 0.0
        self._vslow = 0.0
        self._r5 = _Ring(5)
        self._r20 = _Ring(20)
        self._spread = math.nan
        self.imbalance = 0.0
        self.vol_mean = math.nan
        self.vol_var = 1.0
        self.bars = 0
        self.last_seq = 0
        self._news_ts = 0
        self._news_sent = 0.0
        self._news_int = 0.0
        self._emb = np.zeros(_EMBED_DIMS)
        self._news_ids: deque[tuple[int, str]] = deque(maxlen=8)

    # --- updates -----------------------------------------------------------

    def on_quote(self, q: Quote) -> None:
        mid = 0.5 * (q.bid + q.ask)
        if mid <= 0.0 or q.ask < q.bid:
            return  # crossed or empty books are the feed's to dead-letter; keep the last good spread
        rel = (q.ask - q.bid) / mid
        self._spread = rel if math.isnan(self._spread) else 0.9 * self._spread + 0.1 * rel
        self.last_seq = max(self.last_seq, q.seq)

    def on_trade(self, t: Trade) -> None:
        self.last_seq = max(self.last_seq, t.seq)

    def on_news(self, n: VerifiedNews) -> None:
        self._decay_news(n.ts_event)
        w = max(0.0, min(1.0, n.credibility))
        self._news_sent += w * max(-1.0, min(1.0, n.sentiment))
        self._news_int += 1.0
        if n.embedding:
            e = np.asarray(n.embedding, dtype=np.float64)
            norm = float(np.linalg.norm(e))
            if norm > 0.0 and np.isfinite(norm):
                self._emb += _projection_cached(len(e)).T @ (e / norm)
        self._news_ids.append((n.ts_event, n.id))

    def retract_news(self, n: VerifiedNews) -> None:
        """Take a withdrawn item (``news.retracted``) back out: its decayed share of the
        sentiment, intensity and embedding sums, and its id.  Call only for an item folded in."""
        f = 0.5 ** (max(self._news_ts - n.ts_event, 0) / 1e9 / self._cfg.news_half_life_s)
        w = max(0.0, min(1.0, n.credibility))
        self._news_sent -= f * w * max(-1.0, min(1.0, n.sentiment))
        self._news_int = max(0.0, self._news_int - f)
        if n.embedding:
            e = np.asarray(n.embedding, dtype=np.float64)
            norm = float(np.linalg.norm(e))
            if norm > 0.0 and np.isfinite(norm):
                self._emb -= f * (_projection_cached(len(e)).T @ (e / norm))
        kept = [(t, i) for t, i in self._news_ids if i != n.id]
        self._news_ids.clear()
        self._news_ids.extend(kept)

    def _decay_news(self, ts: int) -> None:
        if self._news_ts and ts > self._news_ts:
            f = 0.5 ** ((ts - self._news_ts) / 1e9 / self._cfg.news_half_life_s)
            self._news_sent *= f
            self._news_int *= f
            self._emb *= f
        self._news_ts = max(self._news_ts, ts)

    def on_bar(self, bar: Bar) -> FeatureRow | None:
        """Fold in one bar; return the feature row after it (None for the first bar or a bad one)."""
        cfg = self._cfg
        close = bar.close
        if not (close > 0.0 and math.isfinite(close)):
            return None
        prev_close = self._last_close
        prev_ts = self._last_ts
        self._last_close = close
        self._last_ts = bar.ts_event
        self.last_seq = max(self.last_seq, bar.seq)
        if math.isnan(prev_close):
            self._update_flow(bar)
            return None
        r = math.log(close / prev_close)
        prev_var = self._vfast
        r2 = r * r
        self.bars += 1
        if self.bars <= cfg.warmup_bars:
            # Running mean until the EWMA has something to decay from.
            self._vfast += (r2 - self._vfast) / self.bars
            self._vslow = self._vfast
        else:
            lam = cfg.ewma_lambda
            self._vfast = lam * self._vfast + (1.0 - lam) * r2
            ls = cfg.slow_lambda
            self._vslow = ls * self._vslow + (1.0 - ls) * r2
        self._r5.push(r)
        self._r20.push(r)
        vz = 0.0
        if bar.volume > 0.0 and not math.isnan(self.vol_mean):
            vz = (math.log(bar.volume) - self.vol_mean) / math.sqrt(self.vol_var)
        self._update_flow(bar)

        var = max(self._vfast, _VAR_FLOOR)
        sd = math.sqrt(var)
        prev_sd = math.sqrt(max(prev_var, _VAR_FLOOR)) if self.bars > 1 else sd
        clip = cfg.clip
        v = np.zeros(_N, dtype=np.float32)
        v[0] = 0.5 * math.log(var)
        v[1] = _clip(r / prev_sd, clip)
        v[2] = _clip(self._r5.sum / (sd * math.sqrt(len(self._r5))), clip)
        v[3] = _clip(self._r20.sum / (sd * math.sqrt(len(self._r20))), clip)
        v[4] = _clip(math.log(max(self._r5.sumsq, 0.0) / len(self._r5) / var + 1e-6), clip)
        v[5] = _clip(math.log(max(self._r20.sumsq, 0.0) / len(self._r20) / var + 1e-6), clip)
        v[6] = _clip(math.log(var / max(self._vslow, _VAR_FLOOR)), clip)
        if bar.high > 0.0 and bar.low > 0.0 and bar.high >= bar.low:
            v[7] = _clip(math.log(bar.high / bar.low) / sd, clip)
        v[8] = self.imbalance
        v[9] = _clip(vz, clip)
        if not math.isnan(self._spread):
            v[10] = _clip(self._spread / sd, clip)
        phase = _TWO_PI * (bar.ts_event % _DAY_NS) / _DAY_NS
        v[11] = math.sin(phase)
        v[12] = math.cos(phase)
        bar_ns = bar.spec if bar.kind == "time" and bar.spec > 0 else cfg.bar_ns
        v[13] = _clip(math.log(max(1.0, (bar.ts_event - prev_ts) / bar_ns)), clip)
        news_ids = self._news_features(v, bar.ts_event)
        return FeatureRow(
            symbol=self.symbol,
            ts_event=bar.ts_event,
            seq=bar.seq,
            close=close,
            scale=sd,
            warm=self.bars > cfg.warmup_bars,
            values=v,
            news_ids=news_ids,
        )

    def _update_flow(self, bar: Bar) -> None:
        cfg = self._cfg
        if bar.n_trades > 0 and bar.volume > 0.0:
            imb = max(-1.0, min(1.0, 2.0 * bar.buy_volume / bar.volume - 1.0))
            a = cfg.imbalance_alpha
            self.imbalance = (1.0 - a) * self.imbalance + a * imb
        # on_bar takes the volume z-score against the state *before* this bar's volume.
        if bar.volume > 0.0:
            lv = math.log(bar.volume)
            if math.isnan(self.vol_mean):
                self.vol_mean = lv
            else:
                a = cfg.volume_alpha
                d = lv - self.vol_mean
                self.vol_mean += a * d
                self.vol_var = max((1.0 - a) * (self.vol_var + a * d * d), 1e-6)

    def _news_features(self, v: np.ndarray, ts: int) -> tuple[str, ...]:
        if not self._news_ids:
            return ()
        self._decay_news(ts)
        inten = self._news_int
        if inten > 0.0:
            v[14] = math.tanh(self._news_sent)
            v[15] = math.log1p(inten)
            emb = self._emb / max(inten, 1.0)
            v[16 : 16 + _EMBED_DIMS] = np.clip(emb, -1.0, 1.0)
        horizon_ns = self._cfg.news_half_life_s * 1e9 * math.log2(20.0)  # weight above 5%
        return tuple(i for t, i in self._news_ids if ts - t <= horizon_ns)


_PROJ_CACHE: dict[int, np.ndarray] = {}


def _projection_cached(dim: int) -> np.ndarray:
    p = _PROJ_CACHE.get(dim)
    if p is None:
        p = _PROJ_CACHE[dim] = _projection(dim)
    return p


def _clip(x: float, c: float) -> float:
    if x != x:  # NaN: a degenerate input gets the neutral value
        return 0.0
    return c if x > c else -c if x < -c else x


class FeatureEngine:
    """Per-symbol feature state for many symbols; see the module docstring."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._symbols: dict[str, SymbolFeatures] = {}

    def state(self, symbol: str) -> SymbolFeatures:
        s = self._symbols.get(symbol)
        if s is None:
            s = self._symbols[symbol] = SymbolFeatures(symbol, self.config)
        return s

    def on_bar(self, bar: Bar) -> FeatureRow | None:
        return self.state(bar.symbol).on_bar(bar)

    def on_quote(self, q: Quote) -> None:
        self.state(q.symbol).on_quote(q)

    def on_trade(self, t: Trade) -> None:
        self.state(t.symbol).on_trade(t)

    def on_news(self, n: VerifiedNews) -> tuple[str, ...]:
        """Fold a verified item into each symbol it names; returns those symbols."""
        for sym in n.symbols:
            self.state(sym).on_news(n)
        return n.symbols

    def retract_news(self, n: VerifiedNews) -> None:
        """Take a withdrawn item back out of each symbol it named (see SymbolFeatures)."""
        for sym in n.symbols:
            self.state(sym).retract_news(n)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)
