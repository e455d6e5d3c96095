"""Duplicate detection within a time window: exact content hash and MinHash near-duplicates.

Exact duplicates are found by a hash of the case-folded alphanumeric content
(punctuation, spacing and case differences do not make a new story).  Near
duplicates are found with MinHash over character 5-gram shingles and
locality-sensitive hashing (16 bands of 4 rows), then confirmed with the exact
Jaccard similarity of the shingle sets.  Only items whose ``ts_ns`` lies within
``window_ns`` of the newest item are kept; the index is bounded by
``max_items`` as well (oldest evicted first).

Hashing is deterministic across processes (CRC32 and fixed permutation
coefficients, never Python's salted ``hash``), so replays are reproducible.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["DedupResult", "Deduplicator", "content_key", "jaccard", "shingles"]

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_PRIME = np.uint64((1 << 61) - 1)


def _canon(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.casefold()).strip()


def content_key(text: str) -> str:
    """Hex digest identifying ``text`` up to case, punctuation and spacing."""
    return hashlib.blake2b(_canon(text).encode(), digest_size=12).hexdigest()


def shingles(text: str, k: int = 5) -> frozenset[str]:
    """Character ``k``-grams of the canonical text (the whole text when shorter)."""
    c = _canon(text)
    if len(c) <= k:
        return frozenset([c]) if c else frozenset()
    return frozenset(c[i : i + k] for i in range(len(c) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two sets; 0 when both are empty."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """``kind``: ``unique``, ``exact`` or ``near``; ``of``: the earlier item's id.

    ``similarity`` is the shingle Jaccard in [0, 1] (1 for an exact duplicate).
    """

    kind: Literal["unique", "exact", "near"]
    of: str = ""
    of_source: str = ""
    similarity: float = 0.0


@dataclass(slots=True)
class _Entry:
    id: str
    source: str
    ts_ns: int
    key: str
    sh: frozenset[str]
    bands: tuple[int, ...]
    tags: frozenset[str]
    sig: np.ndarray


class Deduplicator:
    """Stateful duplicate index over a sliding time window.

    ``threshold`` is the Jaccard similarity of 5-gram shingle sets at or above
    which two texts are near-duplicates.  Not thread-safe.
    """

    def __init__(
        self,
        *,
        window_ns: int = 6 * 3600 * 10**9,
        threshold: float = 0.8,
        num_perm: int = 64,
        bands: int = 16,
        max_items: int = 50_000,
        seed: int = 20130902,
    ) -> None:
        if num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.window_ns = window_ns
        self.threshold = threshold
        self.max_items = max_items
        self._rows = num_perm // bands
        self._bands = bands
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 1 << 31, size=(num_perm, 1), dtype=np.uint64)
        self._b = rng.integers(0, 1 << 31, size=(num_perm, 1), dtype=np.uint64)
        self._entries: deque[_Entry] = deque()
        self._by_key: dict[str, _Entry] = {}
        self._buckets: dict[tuple[int, int], list[_Entry]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _signature(self, sh: frozenset[str]) -> np.ndarray:
        x = np.fromiter((zlib.crc32(s.encode()) for s in sorted(sh)), dtype=np.uint64, count=len(sh))
        # a < 2^31 and x < 2^32, so a*x + b < 2^64: no overflow before the modulus.
        h = (self._a * x[None, :] + self._b) % _PRIME
        sig: np.ndarray = h.min(axis=1)
        return sig

    def _band_keys(self, sig: np.ndarray) -> tuple[int, ...]:
        r = self._rows
        return tuple(zlib.crc32(sig[i * r : (i + 1) * r].tobytes()) for i in range(self._bands))

    def _evict(self, now_ns: int) -> None:
        horizon = now_ns - self.window_ns
        while self._entries and (self._entries[0].ts_ns < horizon or len(self._entries) > self.max_items):
            e = self._entries.popleft()
            if self._by_key.get(e.key) is e:
                del self._by_key[e.key]
            for i, bk in enumerate(e.bands):
                lst = self._buckets.get((i, bk))
                if lst is not None:
                    with contextlib.suppress(ValueError):
                        lst.remove(e)
                    if not lst:
                        del self._buckets[(i, bk)]

    def check(
        self, item_id: str, text: str, ts_ns: int, source: str = "", tags: frozenset[str] = frozenset()
    ) -> DedupResult:
        """Classify ``text`` against the window, then add it to the index.

        ``tags`` (e.g. the linked symbols) must intersect, or both be empty, for a
        *near* duplicate: two short headlines that differ only in the company
        named are different stories.  Duplicates are indexed too: a burst of
        copies keeps matching the first.
        """
        self._evict(ts_ns)
        key = content_key(text)
        prior = self._by_key.get(key)
        sh = shingles(text)
        sig = self._signature(sh) if sh else np.zeros(self._rows * self._bands, dtype=np.uint64)
        bands = self._band_keys(sig) if sh else ()
        result = DedupResult("unique")
        if prior is not None and abs(ts_ns - prior.ts_ns) <= self.window_ns:
            result = DedupResult("exact", prior.id, prior.source, 1.0)
        elif sh:
            cands: dict[int, _Entry] = {}
            for i, bk in enumerate(bands):
                for e in self._buckets.get((i, bk), ()):
                    if (tags or e.tags) and not (tags & e.tags):
                        continue
                    cands.setdefault(id(e), e)
            if cands:
                entries = list(cands.values())
                # The signature agreement estimates Jaccard; only plausible ones are checked exactly.
                est = (np.stack([e.sig for e in entries]) == sig).mean(axis=1)
                best: _Entry | None = None
                best_sim = 0.0
                for j in np.argsort(-est):
                    if est[j] < self.threshold - 0.2:
                        break
                    e = entries[int(j)]
                    sim = jaccard(sh, e.sh)
                    if sim > best_sim:
                        best, best_sim = e, sim
                        if sim >= self.threshold:
                            break
                if best is not None and best_sim >= self.threshold:
                    result = DedupResult("near", best.id, best.source, round(best_sim, 4))
        entry = _Entry(item_id, source, ts_ns, key, sh, bands, tags, sig)
        self._entries.append(entry)
        self._by_key.setdefault(key, entry)
        for i, bk in enumerate(bands):
            self._buckets.setdefault((i, bk), []).append(entry)
        return result
