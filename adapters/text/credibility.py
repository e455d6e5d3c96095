"""Source credibility and market reaction.

:class:`CredibilityBook` keeps a Beta posterior per source: the prior mean
comes from configuration (``source_priors``, e.g. a wire service 0.9, an
anonymous social account 0.15), worth ``prior_strength`` observations; each
realised market reaction to one of the source's directional items adds one
observation (agreeing or not).  Credibility is the posterior mean in [0, 1].

Source names are matched whole, then by their first ``/`` segment (the
channel: ``twitter/@pumpking`` and even ``twitter/reuters`` are twitter
accounts), then by their last (``reconstruction/reuters`` finds ``reuters``).
``source_groups`` map outlets that share a newsroom (``wsj`` and
``marketwatch``) to one group, which is what corroboration
counts as one independent source.

:class:`MarketTracker` keeps recent bars per symbol and answers how far the
price moved since a time, in units of its own recent per-bar volatility.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CredibilityBook", "MarketTracker", "Reaction", "canonical_source"]


def canonical_source(source: str) -> str:
    """Lower-cased, trimmed source name."""
    return " ".join(source.strip().lower().split())


class CredibilityBook:
    """Beta-posterior credibility per source (see module docstring)."""

    def __init__(
        self,
        priors: Mapping[str, float],
        *,
        default: float = 0.3,
        strength: float = 10.0,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        for k, v in priors.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"credibility prior of {k!r} must be in [0, 1], got {v}")
        self._priors = {canonical_source(k): float(v) for k, v in priors.items()}
        self._groups = {canonical_source(k): canonical_source(v) for k, v in (groups or {}).items()}
        self.default = default
        self.strength = strength
        self._obs: dict[str, tuple[float, float]] = {}

    def _key(self, source: str) -> str:
        s = canonical_source(source)
        if s in self._priors:
            return s
        parts = [p for p in s.split("/") if p]
        if parts:
            # A known channel wins over the account name: "twitter/reuters" is a
            # twitter account, not Reuters.  Each account keeps its own record.
            if parts[0] in self._priors:
                return s
            if parts[-1] in self._priors:
                return parts[-1]
        return s

    def prior(self, source: str) -> float:
        k = self._key(source)
        if k in self._priors:
            return self._priors[k]
        head = k.split("/")[0]
        return self._priors.get(head, self.default)

    def credibility(self, source: str) -> float:
        """Posterior mean credibility of ``source`` in [0, 1]."""
        p = self.prior(source)
        agree, disagree = self._obs.get(self._key(source), (0.0, 0.0))
        a = p * self.strength + agree
        b = (1.0 - p) * self.strength + disagree
        return a / (a + b)

    def update(self, source: str, agreed: bool, weight: float = 1.0) -> float:
        """Record one realised reaction; return the new credibility."""
        k = self._key(source)
        agree, disagree = self._obs.get(k, (0.0, 0.0))
        self._obs[k] = (agree + weight, disagree) if agreed else (agree, disagree + weight)
        return self.credibility(source)

    def group(self, source: str) -> str:
        """The newsroom ``source`` belongs to (itself when not grouped)."""
        k = self._key(source)
        if k in self._groups:
            return self._groups[k]
        last = k.split("/")[-1]
        return self._groups.get(last, k)

    def observations(self) -> dict[str, tuple[float, float]]:
        """``{source: (agreeing, disagreeing)}`` recorded so far."""
        return dict(self._obs)


@dataclass(frozen=True, slots=True)
class Reaction:
    """Price reaction of one symbol since ``ts_from``.

    ``ret`` is the log return, ``z`` that return over ``sigma * sqrt(bars)``
    (``sigma`` the per-bar log-return standard deviation of the kept history),
    ``volume_ratio`` mean bar volume since ``ts_from`` over mean bar volume before.
    """

    ret: float
    z: float
    bars: int
    volume_ratio: float


class MarketTracker:
    """Recent bars per symbol: ``(ts_ns, close, volume)``, at most ``max_bars`` each."""

    def __init__(self, max_bars: int = 2000) -> None:
        self.max_bars = max_bars
        self._bars: dict[str, deque[tuple[int, float, float]]] = {}

    def observe(self, symbol: str, ts_ns: int, close: float, volume: float) -> None:
        if not (close > 0.0 and math.isfinite(close)):
            return
        d = self._bars.get(symbol)
        if d is None:
            d = self._bars[symbol] = deque(maxlen=self.max_bars)
        d.append((ts_ns, close, max(volume, 0.0)))

    def has(self, symbol: str) -> bool:
        return len(self._bars.get(symbol, ())) >= 2

    def last_ts(self, symbol: str) -> int | None:
        d = self._bars.get(symbol)
        return d[-1][0] if d else None

    def price_at(self, symbol: str, ts_ns: int) -> float | None:
        """Close of the last bar at or before ``ts_ns``."""
        d = self._bars.get(symbol)
        if not d or d[0][0] > ts_ns:
            return None
        best = None
        for ts, c, _ in reversed(d):
            if ts <= ts_ns:
                best = c
                break
        return best

    def reaction(self, symbol: str, ts_from: int, ts_to: int | None = None) -> Reaction | None:
        """How the price moved from ``ts_from`` to ``ts_to`` (default: the last bar); None without data."""
        d = self._bars.get(symbol)
        if not d or len(d) < 3 or d[0][0] > ts_from:
            return None
        bars = list(d)
        before = [b for b in bars if b[0] <= ts_from]
        after = [b for b in bars if ts_from < b[0] and (ts_to is None or b[0] <= ts_to)]
        if not before:
            return None
        p0 = before[-1][1]
        if not after:
            return Reaction(0.0, 0.0, 0, 1.0)
        p1 = after[-1][1]
        rets = [math.log(b[1] / a[1]) for a, b in itertools.pairwise(bars)]
        mean = sum(rets) / len(rets)
        var = sum((r - mean) ** 2 for r in rets) / max(len(rets) - 1, 1)
        sigma = math.sqrt(var) if var > 0 else 1e-6
        r = math.log(p1 / p0)
        z = r / (sigma * math.sqrt(len(after)))
        vb = sum(b[2] for b in before) / len(before)
        va = sum(b[2] for b in after) / len(after)
        return Reaction(r, z, len(after), (va / vb) if vb > 0 else 1.0)
