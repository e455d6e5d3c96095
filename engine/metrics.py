"""Counters, gauges and latency histograms that every actor gets for free.

Histograms are log-bucketed (each bucket 5% wider than the last, from 0.01 up),
so a percentile is exact to within 5% at any scale with constant memory.
Names follow Prometheus conventions; labels are keyword arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import msgspec

from engine.health import TierHealth, TierState

__all__ = ["Counter", "Gauge", "Histogram", "Metrics"]

_RATIO = 1.05
_INV_LOG_RATIO = 1.0 / math.log(_RATIO)
_FLOOR = 0.01


class Counter:
    """A monotonically increasing total."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class Gauge:
    """A value that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, v: float) -> None:
        self.value = v


class Histogram:
    """A log-bucketed histogram of non-negative values (units are the caller's; name them)."""

    __slots__ = ("_buckets", "count", "max", "min", "sum")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.min = math.inf

    def observe(self, v: float) -> None:
        idx = int(math.log(v / _FLOOR) * _INV_LOG_RATIO) if v > _FLOOR else 0
        b = self._buckets
        b[idx] = b.get(idx, 0) + 1
        self.count += 1
        self.sum += v
        if v > self.max:
            self.max = v
        if v < self.min:
            self.min = v

    def percentile(self, q: float) -> float:
        """The value at quantile ``q`` in [0, 1] (bucket midpoint, clamped to min/max); NaN if empty."""
        if not self.count:
            return math.nan
        rank = q * self.count
        seen = 0
        for idx in sorted(self._buckets):
            seen += self._buckets[idx]
            if seen >= rank:
                mid = _FLOOR * _RATIO ** (idx + 0.5) if idx else _FLOOR / 2
                return min(max(mid, self.min), self.max)
        return self.max

    def summary(self) -> dict[str, float]:
        """count, mean, p50, p99, p99.9 and max."""
        return {
            "count": float(self.count),
            "mean": self.sum / self.count if self.count else math.nan,
            "p50": self.percentile(0.5),
            "p99": self.percentile(0.99),
            "p999": self.percentile(0.999),
            "max": self.max if self.count else math.nan,
        }

    def merge(self, other: Histogram) -> None:
        for idx, n in other._buckets.items():
            self._buckets[idx] = self._buckets.get(idx, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)


_Key = tuple[str, tuple[tuple[str, str], ...]]


class Metrics:
    """A registry.  ``counter``/``gauge``/``histogram`` return the same object for the same name+labels."""

    def __init__(self) -> None:
        self._counters: dict[_Key, Counter] = {}
        self._gauges: dict[_Key, Gauge] = {}
        self._histograms: dict[_Key, Histogram] = {}
        self.tiers = TierHealth()
        """Which configured tiers worked (see :mod:`engine.health`); part of every snapshot."""

    @staticmethod
    def _key(name: str, labels: dict[str, Any]) -> _Key:
        return name, tuple(sorted((k, str(v)) for k, v in labels.items()))

    def counter(self, name: str, **labels: Any) -> Counter:
        key = self._key(name, labels)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = Counter()
        return c

    def gauge(self, name: str, **labels: Any) -> Gauge:
        key = self._key(name, labels)
        g = self._gauges.get(key)
        if g is None:
            g = self._gauges[key] = Gauge()
        return g

    def histogram(self, name: str, **labels: Any) -> Histogram:
        key = self._key(name, labels)
        h = self._histograms.get(key)
        if h is None:
            h = self._histograms[key] = Histogram()
        return h

    def counters(self) -> Iterator[tuple[str, dict[str, str], int]]:
        for (name, labels), c in sorted(self._counters.items()):
            yield name, dict(labels), c.value

    def gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        for (name, labels), g in sorted(self._gauges.items()):
            yield name, dict(labels), g.value

    def histograms(self) -> Iterator[tuple[str, dict[str, str], Histogram]]:
        for (name, labels), h in sorted(self._histograms.items(), key=lambda kv: kv[0]):
            yield name, dict(labels), h

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view: counters, gauges and histogram summaries."""

        def fmt(name: str, labels: dict[str, str]) -> str:
            if not labels:
                return name
            return name + "{" + ",".join(f"{k}={v}" for k, v in labels.items()) + "}"

        return {
            "counters": {fmt(n, lb): v for n, lb, v in self.counters()},
            "gauges": {fmt(n, lb): v for n, lb, v in self.gauges()},
            "histograms": {fmt(n, lb): h.summary() for n, lb, h in self.histograms() if h.count},
            "tiers": {name: msgspec.to_builtins(st) for name, st in self.tiers.snapshot().items()},
        }

    def prometheus(self, prefix: str = "finllm_") -> str:
        """The registry in the Prometheus text exposition format (histograms as summaries)."""

        def lbl(labels: dict[str, str], extra: str = "") -> str:
            parts = [f'{k}="{_escape(v)}"' for k, v in labels.items()]
            if extra:
                parts.append(extra)
            return "{" + ",".join(parts) + "}" if parts else ""

        lines: list[str] = []
        typed: set[str] = set()
        for name, labels, cv in self.counters():
            if name not in typed:
                lines.append(f"# TYPE {prefix}{name} counter")
                typed.add(name)
            lines.append(f"{prefix}{name}{lbl(labels)} {cv}")
        for name, labels, gv in self.gauges():
            if name not in typed:
                lines.append(f"# TYPE {prefix}{name} gauge")
                typed.add(name)
            lines.append(f"{prefix}{name}{lbl(labels)} {gv}")
        for name, labels, h in self.histograms():
            if name not in typed:
                lines.append(f"# TYPE {prefix}{name} summary")
                typed.add(name)
            for q in (0.5, 0.99, 0.999):
                v = h.percentile(q)
                ql = lbl(labels, 'quantile="' + str(q) + '"')
                lines.append(f"{prefix}{name}{ql} {0.0 if math.isnan(v) else v}")
            lines.append(f"{prefix}{name}_sum{lbl(labels)} {h.sum}")
            lines.append(f"{prefix}{name}_count{lbl(labels)} {h.count}")
        tiers = self.tiers.snapshot()
        if tiers:
            # 1 for the tier's current state, 0 for the others: alert on tier_state{state="failed"} == 1.
            lines.append(f"# TYPE {prefix}tier_state gauge")
            for name, st in tiers.items():
                for state in TierState:
                    on = int(st.state is state)
                    lines.append(f'{prefix}tier_state{{tier="{_escape(name)}",state="{state}"}} {on}')
            lines.append(f"# TYPE {prefix}tier_failures counter")
            for name, st in tiers.items():
                lines.append(f'{prefix}tier_failures{{tier="{_escape(name)}"}} {st.failures}')
        return "\n".join(lines) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
