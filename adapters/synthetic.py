"""A seeded synthetic multi-symbol quote/trade generator, for load tests only.

Never use it to judge a strategy or a model: prices are a geometric random
walk and carry no information.  What it does model is the shape of load: quiet
stretches with exponential gaps, then bursts where events arrive ``burst_gap_ns``
apart, several symbols interleaved, quotes and trades mixed.  The same config
(seed included) always yields the same tape, bit for bit.
"""

from __future__ import annotations

import msgspec
import numpy as np

from adapters.datasets import Tape

__all__ = ["SyntheticConfig", "generate"]


class SyntheticConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Shape of the generated tape.

    ``n`` events in all; ``start_ns`` first timestamp (ns, UTC);
    ``mean_gap_ns`` mean gap between events outside bursts (exponential);
    ``burst_prob`` chance that an event starts a burst of ``burst_len`` events
    ``burst_gap_ns`` apart; ``vol_bps`` per-event return standard deviation in
    basis points; ``quote_ratio`` share of events that are quotes; ``tick``
    price increment every price is rounded to; ``spread_ticks`` quoted spread.
    """

    seed: int = 7
    symbols: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD")
    n: int = 100_000
    start_ns: int = 1_378_072_800_000_000_000  # 2013-09-01 22:00 UTC, like the E-mini tape
    mean_gap_ns: int = 2_000_000
    burst_prob: float = 0.002
    burst_len: int = 500
    burst_gap_ns: int = 10_000
    vol_bps: float = 1.0
    quote_ratio: float = 0.5
    start_price: float = 100.0
    tick: float = 0.01
    spread_ticks: int = 1
    max_size: int = 10

    def __post_init__(self) -> None:
        if self.n < 0 or not self.symbols or self.tick <= 0 or self.mean_gap_ns <= 0:
            raise ValueError("synthetic: need n >= 0, symbols, tick > 0, mean_gap_ns > 0")
        if not 0.0 <= self.quote_ratio <= 1.0 or not 0.0 <= self.burst_prob <= 1.0:
            raise ValueError("synthetic: quote_ratio and burst_prob must be in [0, 1]")


def _snap(x: np.ndarray, tick: float) -> np.ndarray:
    # The second round strips float noise (119.99000000000001) so prices print cleanly.
    return np.round(np.round(x / tick) * tick, 10)


def generate(cfg: SyntheticConfig | None = None) -> Tape:
    """Generate a tape; quote rows are flagged in ``extra['is_quote']``."""
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n
    gaps = rng.exponential(cfg.mean_gap_ns, n)
    # A burst start marks the next burst_len gaps as tight.
    starts = np.flatnonzero(rng.random(n) < cfg.burst_prob)
    in_burst = np.zeros(n + cfg.burst_len + 1, dtype=np.int32)
    np.add.at(in_burst, starts + 1, 1)
    np.add.at(in_burst, np.minimum(starts + 1 + cfg.burst_len, len(in_burst) - 1), -1)
    burst = np.cumsum(in_burst)[:n] > 0
    gaps = np.where(burst, cfg.burst_gap_ns, gaps)
    ts = cfg.start_ns + np.cumsum(gaps.astype(np.int64))
    k = len(cfg.symbols)
    sym = rng.integers(0, k, n).astype(np.int32)
    rets = rng.normal(0.0, cfg.vol_bps * 1e-4, n)
    mid = np.empty(n, dtype=np.float64)
    for code in range(k):
        mask = sym == code
        path = cfg.start_price * (1.0 + 0.1 * code) * np.exp(np.cumsum(rets[mask]))
        mid[mask] = _snap(path, cfg.tick)
    half = cfg.spread_ticks * cfg.tick / 2.0
    bid = _snap(mid - half, cfg.tick)
    ask = _snap(np.maximum(mid + half, bid + cfg.tick), cfg.tick)
    is_quote = rng.random(n) < cfg.quote_ratio
    side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    price = np.where(side > 0, ask, bid)
    size = rng.integers(1, cfg.max_size + 1, n).astype(np.float64)
    return Tape(
        name="synthetic",
        ts_ns=ts,
        price=price,
        size=size,
        side=np.where(is_quote, 0, side).astype(np.int8),
        sym=sym,
        symbols=tuple(cfg.symbols),
        extra={
            "is_quote": is_quote.astype(np.float64),
            "bid": bid,
            "ask": ask,
            "bid_size": rng.integers(1, 50, n).astype(np.float64),
            "ask_size": rng.integers(1, 50, n).astype(np.float64),
        },
    )
