"""Incremental per-symbol features for the edge model: O(1) work per event.

One :class:`FeatureEngine` keeps a small state per symbol and updates it from
:class:`~engine.messages.Bar`, :class:`~engine.messages.Quote`,
:class:`~engine.messages.Trade` and :class:`~engine.messages.VerifiedNews`
messages.  After each bar it can produce a feature row (``float32``, in the
order of :data:`FEATURE_NAMES`).  The training script feeds the *same* class
with the historical bars, so the model sees at run time exactly what it saw in
training.

Scale: feature 0 is ``log_vol``, the natural log of the *anchor* volatility of
one-bar log returns (a plain number, not percent): the one-step forecast of the
next bar's return standard deviation by a classical model, ``FeatureConfig.anchor``:

* ``"ewma"``: RiskMetrics EWMA(``ewma_lambda``);
* ``"gjr"``: GJR-GARCH(1,1) with fixed ``gjr_alpha``/``gjr_gamma``/``gjr_beta`` (fitted
  by the training script on training returns only) and variance targeting: the
  constant is ``(1 - alpha - gamma/2 - beta)`` times the symbol's running mean
  squared return, so one set of parameters serves any instrument's scale.

The edge model forecasts the next return *in units of that volatility* and its
variance as a correction of the anchor's (``vol = anchor * exp(a / 2)``), so a model
whose correction is switched off is the anchor itself.  Every other price feature
is made scale-free by dividing by the anchor.

Range features use the bar's open/high/low/close: ``range`` is ``ln(high/low)``,
``gk_1`` the Garman-Klass variance of the last bar, ``pk_5``/``pk_22`` the mean
Parkinson variance ``ln(high/low)^2 / (4 ln 2)`` over 5 and 22 bars (the HAR
horizons), all relative to the anchor variance; a bar without a range (open = high
= low = close) gives the floor ``ln(1e-3)``.  Asymmetry: ``down_5`` (mean squared
*negative* return over 5 bars) and ``gap_ret`` (the move from the previous close to
this bar's open: the overnight gap of daily bars).

Scheduled events (``FeatureConfig.events``, daily bars): ``event_next`` is 1 when the
weekday after the bar's New York date is an FOMC decision or payroll release day in
``config/data/events.json`` (sources and coverage, 2009-2018, in that file; exchange
holidays are not skipped, so a Friday's "next weekday" is Monday even when Monday is
closed).

Neutral values: when a symbol has no quotes, ``spread`` is 0; when it has no
news, every ``news_*`` feature is 0; a bar without trade-side information
(daily data) leaves ``imbalance`` at 0.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, Literal

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
    "event_days",
]

FEATURE_SCHEMA: Final = 3
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
    "gk_1",  # ln(Garman-Klass variance of the last bar / variance + 1e-3)
    "pk_5",  # ln(mean Parkinson variance over 5 bars / variance + 1e-3)
    "pk_22",  # ln(mean Parkinson variance over 22 bars / variance + 1e-3)
    "ewma_rel",  # ln(EWMA variance / anchor variance): 0 when the anchor is the EWMA
    "down_5",  # ln(mean squared negative return over 5 bars / variance + 1e-3)
    "gap_ret",  # ln(open / previous close) / volatility: the overnight gap of daily bars
    "imbalance",  # EWMA of (buy - sell) / volume per bar, in [-1, 1]
    "volume_z",  # z-score of ln volume against its EWMA mean and variance
    "spread",  # EWMA relative quoted spread / volatility (0 without quotes)
    "tod_sin",  # time of day (UTC) on the unit circle
    "tod_cos",
    "gap",  # ln(time since previous bar / bar length), >= 0
    "event_next",  # 1 when the next weekday is a scheduled FOMC / payroll day (config.events), else 0
    "news_sent",  # tanh of decayed credibility-weighted sentiment
    "news_intensity",  # ln(1 + decayed count of verified items)
    *(f"news_emb_{i}" for i in range(_EMBED_DIMS)),  # decayed mean of projected embeddings
)

_IDX: Final = {name: i for i, name in enumerate(FEATURE_NAMES)}
_N: Final = len(FEATURE_NAMES)
_NEWS0: Final = _IDX["news_sent"]
_DAY_NS: Final = 86_400_000_000_000
_TWO_PI: Final = 2.0 * math.pi
_VAR_FLOOR: Final = 1e-14  # a 1e-7 volatility: below any real instrument's one-bar move
_LN2x4: Final = 4.0 * math.log(2.0)
_GK_C: Final = 2.0 * math.log(2.0) - 1.0
_REL_FLOOR: Final = 1e-3  # relative-variance features: ln(x + 1e-3), finite for a flat bar


class FeatureConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Feature engine parameters; models record the config they were trained with.

    ``ewma_lambda`` / ``slow_lambda``: decay of the fast and slow EWMA variances
    per bar.  ``imbalance_alpha`` and ``volume_alpha``: EWMA weights per bar.
    ``warmup_bars``: bars before a row counts as warm (until then the variance is
    the running mean of squared returns).  ``news_half_life_s``: seconds for a
    news item's weight to halve.  ``clip``: bound on standardized features.
    ``bar_ns``: nominal bar length in ns, used when a bar does not say (``spec``).
    ``events``: set ``event_next`` from the scheduled-event calendar (daily bars; module docstring).
    ``anchor``: the classical volatility the features and the model are scaled by
    (module docstring); ``gjr_alpha``/``gjr_gamma``/``gjr_beta`` its GJR-GARCH(1,1)
    parameters (``alpha + gamma/2 + beta < 1``).  ``range_lambda`` / ``range_cal_lambda``:
    decays per bar of the range baseline (:attr:`FeatureRow.range_var`) and of its calibration
    sums; they feed no model input (the serve-time gate's baselines, not features).
    """

    ewma_lambda: float = 0.94
    slow_lambda: float = 0.995
    imbalance_alpha: float = 0.2
    volume_alpha: float = 0.05
    warmup_bars: int = 20
    news_half_life_s: float = 1800.0
    clip: float = 8.0
    bar_ns: int = 60_000_000_000
    events: bool = False
    anchor: Literal["ewma", "gjr"] = "ewma"
    gjr_alpha: float = 0.02
    gjr_gamma: float = 0.12
    gjr_beta: float = 0.9
    range_lambda: float = 0.9
    range_cal_lambda: float = 0.998

    def __post_init__(self) -> None:
        if min(self.gjr_alpha, self.gjr_gamma, self.gjr_beta) < 0.0 or not (
            self.gjr_alpha + self.gjr_gamma / 2.0 + self.gjr_beta < 1.0
        ):
            raise ValueError("FeatureConfig: gjr_* must be >= 0 with alpha + gamma/2 + beta < 1")
        for name in ("ewma_lambda", "slow_lambda", "range_lambda", "range_cal_lambda"):
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

    Classical one-step forecasts of the *next* bar's squared log return, made from this bar
    and the ones before it (the serve-time gate's baselines, :mod:`adapters.inference.gate`):
    ``ewma_var`` the EWMA(``ewma_lambda``) variance; ``range_var`` an EWMA(``range_lambda``)
    of the Parkinson range variance times the ratio of squared returns to range variances
    over the past (discounted by ``range_cal_lambda``: ranges miss overnight gaps and ticks),
    0 when no bar so far had a range; ``rv_var`` the same with the within-bar realised variance
    (sum of squared trade-to-trade log moves, from the ``Trade`` messages) in place of the range,
    0 without trades (bar-only data).  ``ret`` is this bar's log return and ``bar_no`` the
    symbol's count of returns so far (consecutive rows differ by 1).  The anchor's variance is
    ``scale ** 2``.
    """

    symbol: str
    ts_event: int
    seq: int
    close: float
    scale: float
    warm: bool
    values: np.ndarray
    news_ids: tuple[str, ...] = ()
    ret: float = 0.0
    ewma_var: float = 0.0
    range_var: float = 0.0
    rv_var: float = 0.0
    bar_no: int = 0


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
        "_cal_pk",
        "_cal_r2",
        "_cal_rv",
        "_cfg",
        "_dn5",
        "_emb",
        "_h",
        "_last_close",
        "_last_ts",
        "_lr_n",
        "_lr_sum",
        "_news_ids",
        "_news_int",
        "_news_sent",
        "_news_ts",
        "_pk5",
        "_pk22",
        "_pkv",
        "_r5",
        "_r20",
        "_rv_acc",
        "_rv_last",
        "_rvv",
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
        self._pk5 = _Ring(5)
        self._pk22 = _Ring(22)
        self._dn5 = _Ring(5)
        self._h = 0.0  # anchor variance forecast of the next return
        self._lr_sum = 0.0  # running sum and count of squared returns (GJR variance target)
        self._lr_n = 0
        self._pkv = 0.0  # EWMA of the Parkinson variance (range baseline)
        self._cal_r2 = 0.0  # discounted sums of squared returns and range variances (its scale)
        self._cal_pk = 0.0
        self._rv_acc = 0.0  # sum of squared trade-to-trade log moves since the last bar
        self._rv_last = math.nan  # the last trade price
        self._rvv = 0.0  # EWMA of the within-bar realised variance (rv baseline)
        self._cal_rv = 0.0
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
        p = t.price
        if p > 0.0 and math.isfinite(p):
            # Within-bar realised variance: a bar is published just before the trade that closes
            # it, so the moves summed here up to a bar are that bar's (from the previous bar's
            # last print on).
            last = self._rv_last
            if last == last:  # not NaN
                d = math.log(p / last)
                self._rv_acc += d * d
            self._rv_last = p

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
        prev_var = self._h
        r2 = r * r
        self.bars += 1
        self._lr_sum += r2
        self._lr_n += 1
        if self.bars <= cfg.warmup_bars:
            # Running mean until the EWMA has something to decay from.
            self._vfast += (r2 - self._vfast) / self.bars
            self._vslow = self._vfast
            self._h = self._vfast
        else:
            lam = cfg.ewma_lambda
            self._vfast = lam * self._vfast + (1.0 - lam) * r2
            ls = cfg.slow_lambda
            self._vslow = ls * self._vslow + (1.0 - ls) * r2
            if cfg.anchor == "gjr":
                a, g, b = cfg.gjr_alpha, cfg.gjr_gamma, cfg.gjr_beta
                omega = (1.0 - a - 0.5 * g - b) * self._lr_sum / self._lr_n
                self._h = omega + (a + (g if r < 0.0 else 0.0)) * r2 + b * self._h
            else:
                self._h = self._vfast
        self._r5.push(r)
        self._r20.push(r)
        self._dn5.push(r2 if r < 0.0 else 0.0)
        hi, lo, op = bar.high, bar.low, bar.open
        has_range = hi > 0.0 and lo > 0.0 and hi >= lo
        hl = math.log(hi / lo) if has_range else 0.0
        pk = hl * hl / _LN2x4
        if self.bars <= cfg.warmup_bars:
            self._pkv += (pk - self._pkv) / self.bars
        else:
            self._pkv = cfg.range_lambda * self._pkv + (1.0 - cfg.range_lambda) * pk
        lc = cfg.range_cal_lambda
        self._cal_r2 = lc * self._cal_r2 + r2
        self._cal_pk = lc * self._cal_pk + pk
        rv = self._rv_acc
        self._rv_acc = 0.0
        if self._cal_rv > 0.0 or rv > 0.0:  # from the first bar with trades on
            self._rvv = (
                rv if self._cal_rv == 0.0 else cfg.range_lambda * self._rvv + (1.0 - cfg.range_lambda) * rv
            )
            self._cal_rv = lc * self._cal_rv + rv
        self._pk5.push(pk)
        self._pk22.push(pk)
        gk = pk
        if has_range and op > 0.0:
            co = math.log(close / op)
            gk = max(0.0, 0.5 * hl * hl - _GK_C * co * co)
        vz = 0.0
        if bar.volume > 0.0 and not math.isnan(self.vol_mean):
            vz = (math.log(bar.volume) - self.vol_mean) / math.sqrt(self.vol_var)
        self._update_flow(bar)

        var = max(self._h, _VAR_FLOOR)
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
        v[6] = _clip(math.log(max(self._vfast, _VAR_FLOOR) / max(self._vslow, _VAR_FLOOR)), clip)
        if has_range:
            v[7] = _clip(hl / sd, clip)
        v[8] = _clip(math.log(gk / var + _REL_FLOOR), clip)
        v[9] = _clip(math.log(max(self._pk5.sum, 0.0) / len(self._pk5) / var + _REL_FLOOR), clip)
        v[10] = _clip(math.log(max(self._pk22.sum, 0.0) / len(self._pk22) / var + _REL_FLOOR), clip)
        v[11] = _clip(math.log(max(self._vfast, _VAR_FLOOR) / var), clip)
        v[12] = _clip(math.log(max(self._dn5.sum, 0.0) / len(self._dn5) / var + _REL_FLOOR), clip)
        if op > 0.0 and math.isfinite(op):
            v[13] = _clip(math.log(op / prev_close) / sd, clip)
        v[_IDX["imbalance"]] = self.imbalance
        v[_IDX["volume_z"]] = _clip(vz, clip)
        if not math.isnan(self._spread):
            v[_IDX["spread"]] = _clip(self._spread / sd, clip)
        phase = _TWO_PI * (bar.ts_event % _DAY_NS) / _DAY_NS
        v[_IDX["tod_sin"]] = math.sin(phase)
        v[_IDX["tod_cos"]] = math.cos(phase)
        bar_ns = bar.spec if bar.kind == "time" and bar.spec > 0 else cfg.bar_ns
        v[_IDX["gap"]] = _clip(math.log(max(1.0, (bar.ts_event - prev_ts) / bar_ns)), clip)
        if cfg.events and _next_weekday_is_event(bar.ts_event):
            v[_IDX["event_next"]] = 1.0
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
            ret=r,
            ewma_var=max(self._vfast, _VAR_FLOOR),
            range_var=(
                max(self._pkv * self._cal_r2 / self._cal_pk, _VAR_FLOOR)
                if self._cal_pk > 0.0 and self._pkv > 0.0
                else 0.0
            ),
            rv_var=(
                max(self._rvv * self._cal_r2 / self._cal_rv, _VAR_FLOOR)
                if self._cal_rv > 0.0 and self._rvv > 0.0
                else 0.0
            ),
            bar_no=self.bars,
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
            v[_NEWS0] = math.tanh(self._news_sent)
            v[_NEWS0 + 1] = math.log1p(inten)
            emb = self._emb / max(inten, 1.0)
            v[_NEWS0 + 2 : _NEWS0 + 2 + _EMBED_DIMS] = np.clip(emb, -1.0, 1.0)
        horizon_ns = self._cfg.news_half_life_s * 1e9 * math.log2(20.0)  # weight above 5%
        return tuple(i for t, i in self._news_ids if ts - t <= horizon_ns)


_EVENT_DAYS: set[int] | None = None
_NY_OFFSET_NS: Final = 5 * 3_600_000_000_000  # a US close (20:00/21:00 UTC) minus 5 h is its New York date


def event_days() -> set[int]:
    """Days since the epoch of every scheduled event in ``config/data/events.json`` (cached)."""
    global _EVENT_DAYS
    if _EVENT_DAYS is None:
        import json
        from datetime import date
        from importlib.resources import files

        doc = json.loads(files("config").joinpath("data", "events.json").read_text(encoding="utf-8"))
        epoch = date(1970, 1, 1).toordinal()
        _EVENT_DAYS = {
            date.fromisoformat(d).toordinal() - epoch for days in doc["events"].values() for d in days
        }
    return _EVENT_DAYS


def _next_weekday_is_event(ts_ns: int) -> bool:
    day = (ts_ns - _NY_OFFSET_NS) // _DAY_NS
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    nxt = day + (3 if dow == 4 else 2 if dow == 5 else 1)
    return nxt in event_days()


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
