"""Duplicate detection within a time window: exact content hash and MinHash near-duplicates.

Exact duplicates are found by a hash of the case-folded alphanumeric content
(punctuation, spacing and case differences do not make a new story).  Near
duplicates are found with MinHash over character 5-gram shingles and
locality-sensitive hashing (16 bands of 4 rows), then confirmed with the exact
Jaccard similarity of the shingle sets.  Only items whose ``ts_ns`` lies within
``window_ns`` of the newest item are kept; the index is bounded by
``max_items`` as well (oldest evicted first).

Cost per check is bounded, whatever the window holds:

* each LSH bucket is keyed by (band, band hash, tag), so items whose tags
  (linked symbols) cannot match are never visited; an item is indexed under at
  most ``max_tags`` of its tags (sorted), or under the empty tag when it has
  none;
* of each bucket only the ``bucket_scan`` newest entries are visited, and at
  most ``max_candidates`` distinct items are compared, so one check touches at
  most ``bands * max_tags * bucket_scan`` entries however many similar items
  (templated headlines, a spam burst) the window holds;
* exact copies are not indexed a second time (their first copy stands for
  them), so a burst of copies cannot crowd real candidates out of a bucket;
* eviction deletes an entry from its buckets in O(1) (buckets are
  insertion-ordered dicts keyed by a sequence number);
* shingles are taken from the first ``max_shingle_chars`` characters of the
  canonical text only (the exact hash still covers all of it).

The bounds trade a little recall in pathological cases (a near copy whose every
band bucket holds more than ``bucket_scan`` newer similar items) for cost that
does not grow with the input; :meth:`Deduplicator.stats` counts the work so
tests can check the bound.

Hashing is deterministic across processes (CRC32 and fixed permutation
coefficients, never Python's salted ``hash``), so replays are reproducible.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["DedupResult", "DedupStats", "Deduplicator", "content_key", "jaccard", "shingles"]

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# Universal hashing h(x) = (a*x + b) mod p with a, b, x < p = 2^31 - 1 (a Mersenne prime):
# a*x + b < 2^63, so it is exact in uint64.  (With p = 2^61 - 1 and a, x < 2^32 the
# modulus almost never wrapped: every "permutation" then ordered the shingles alike, the
# 64 minima were nearly one, and LSH both missed close copies and bucketed unrelated texts.)
_PRIME = (1 << 31) - 1
_NO_TAG = ""  # the bucket tag of items without tags: they only ever meet each other


def _canon(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.casefold()).strip()


def content_key(text: str) -> str:
    """Hex digest identifying ``text`` up to case, punctuation and spacing."""
    return hashlib.blake2b(_canon(text).encode(), digest_size=12).hexdigest()


def shingles(text: str, k: int = 5, max_chars: int | None = None) -> frozenset[str]:
    """Character ``k``-grams of the canonical text (the whole text when shorter).

    ``max_chars`` (None: no limit) keeps only the first that many canonical characters.
    """
    c = _canon(text)
    if max_chars is not None:
        c = c[:max_chars]
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
    """``kind``: ``unique``, ``exact`` or ``near``; the matched earlier item is
    ``of`` (its id), ``of_source`` and ``of_ts_ns`` (its time, ns).

    ``similarity`` is the shingle Jaccard in [0, 1] (1 for an exact duplicate).
    """

    kind: Literal["unique", "exact", "near"]
    of: str = ""
    of_source: str = ""
    similarity: float = 0.0
    of_ts_ns: int = 0


@dataclass(frozen=True, slots=True)
class DedupStats:
    """Work done so far, counted (not timed).

    ``checks``: calls of :meth:`Deduplicator.check`; ``visited``: bucket
    entries looked at; ``compared``: distinct candidates whose signatures were
    compared; ``verified``: exact Jaccard computations; ``max_visited`` and
    ``max_compared``: the most of each in any one check.
    """

    checks: int
    visited: int
    compared: int
    verified: int
    max_visited: int
    max_compared: int


@dataclass(slots=True)
class _Entry:
    seq: int
    id: str
    source: str
    ts_ns: int
    key: str
    sh: frozenset[str]
    sig: np.ndarray
    buckets: tuple[tuple[int, int, str], ...]  # the buckets holding it; empty for an exact copy


_BucketKey = tuple[int, int, str]


class Deduplicator:
    """Stateful duplicate index over a sliding time window.

    ``threshold`` is the Jaccard similarity of 5-gram shingle sets at or above
    which two texts are near-duplicates.  ``bucket_scan``, ``max_candidates``,
    ``max_tags`` and ``max_shingle_chars`` bound the work of one check (see the
    module docstring).  Not thread-safe.
    """

    def __init__(
        self,
        *,
        window_ns: int = 6 * 3600 * 10**9,
        threshold: float = 0.8,
        num_perm: int = 64,
        bands: int = 16,
        max_items: int = 50_000,
        bucket_scan: int = 16,
        max_candidates: int = 64,
        max_tags: int = 8,
        max_shingle_chars: int = 16_384,
        seed: int = 20130902,
    ) -> None:
        if num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if min(bucket_scan, max_candidates, max_tags, max_shingle_chars, max_items) < 1:
            raise ValueError(
                "bucket_scan, max_candidates, max_tags, max_shingle_chars, max_items must be >= 1"
            )
        self.window_ns = window_ns
        self.threshold = threshold
        self.max_items = max_items
        self.bucket_scan = bucket_scan
        self.max_candidates = max_candidates
        self.max_tags = max_tags
        self.max_shingle_chars = max_shingle_chars
        self._rows = num_perm // bands
        self._bands = bands
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, _PRIME, size=(num_perm, 1), dtype=np.uint64)
        self._b = rng.integers(0, _PRIME, size=(num_perm, 1), dtype=np.uint64)
        self._seq = 0
        self._entries: deque[_Entry] = deque()
        # Copies of one content key, oldest first: the first still in the window answers "exact".
        self._by_key: dict[str, deque[_Entry]] = {}
        self._buckets: dict[_BucketKey, dict[int, _Entry]] = {}
        self._checks = self._visited = self._compared = self._verified = 0
        self._max_visited = self._max_compared = 0

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> DedupStats:
        """A snapshot of the work counters (see :class:`DedupStats`)."""
        return DedupStats(
            self._checks, self._visited, self._compared, self._verified, self._max_visited, self._max_compared
        )

    # -- hashing ------------------------------------------------------------------

    def _signature(self, sh: frozenset[str]) -> np.ndarray:
        # The minimum does not depend on the order, so the set's (salted) order is harmless.
        x = np.fromiter((zlib.crc32(s.encode()) for s in sh), dtype=np.uint64, count=len(sh))
        x %= np.uint64(_PRIME)
        h = (self._a * x[None, :] + self._b) % np.uint64(_PRIME)
        sig: np.ndarray = h.min(axis=1)
        return sig

    def _band_hashes(self, sig: np.ndarray) -> tuple[int, ...]:
        r = self._rows
        return tuple(zlib.crc32(sig[i * r : (i + 1) * r].tobytes()) for i in range(self._bands))

    def _index_tags(self, tags: frozenset[str]) -> tuple[str, ...]:
        return tuple(sorted(tags)[: self.max_tags]) if tags else (_NO_TAG,)

    # -- index maintenance --------------------------------------------------------

    def _evict(self, now_ns: int) -> None:
        horizon = now_ns - self.window_ns
        while self._entries and (self._entries[0].ts_ns < horizon or len(self._entries) > self.max_items):
            self._drop(self._entries.popleft())

    def _drop(self, e: _Entry) -> None:
        copies = self._by_key.get(e.key)
        if copies is not None:
            if copies and copies[0] is e:
                copies.popleft()
            else:  # cannot happen while eviction is first-in first-out; stay correct anyway
                copies.remove(e)
            if not copies:
                del self._by_key[e.key]
        for bk in e.buckets:
            bucket = self._buckets.get(bk)
            if bucket is not None:
                bucket.pop(e.seq, None)
                if not bucket:
                    del self._buckets[bk]
        if e.buckets and copies:
            # The evicted entry stood for its exact copies in the LSH index: the oldest
            # surviving copy takes over, so later near copies still find the story.
            self._bucket(copies[0], e.buckets)

    def _bucket(self, e: _Entry, keys: tuple[_BucketKey, ...]) -> None:
        # A promoted copy may already be indexed under its own keys: keep both, so
        # dropping it later removes it from every bucket that holds it.
        e.buckets = tuple(dict.fromkeys(e.buckets + keys))
        for bk in keys:
            self._buckets.setdefault(bk, {})[e.seq] = e

    # -- lookup ---------------------------------------------------------------------

    def _candidates(self, keys: tuple[_BucketKey, ...]) -> list[_Entry]:
        """Entries sharing a bucket: the newest ``bucket_scan`` of each bucket, then the
        ``max_candidates`` that share the most buckets (more shared bands, likelier a copy)."""
        hits: dict[int, int] = {}
        found: dict[int, _Entry] = {}
        visited = 0
        for bk in keys:
            bucket = self._buckets.get(bk)
            if not bucket:
                continue
            for n, seq in enumerate(reversed(bucket)):
                if n >= self.bucket_scan:
                    break
                visited += 1
                hits[seq] = hits.get(seq, 0) + 1
                found[seq] = bucket[seq]
        self._visited += visited
        self._max_visited = max(self._max_visited, visited)
        if len(found) > self.max_candidates:
            # Most shared bands first, then the newest: deterministic, no salted hashing.
            best = sorted(hits, key=lambda q: (-hits[q], -q))[: self.max_candidates]
            return [found[q] for q in best]
        return list(found.values())

    def _best_near(self, sh: frozenset[str], sig: np.ndarray, cands: list[_Entry]) -> DedupResult | None:
        self._compared += len(cands)
        self._max_compared = max(self._max_compared, len(cands))
        if not cands:
            return None
        # The signature agreement estimates Jaccard; only plausible ones are checked exactly.
        est = (np.stack([e.sig for e in cands]) == sig).mean(axis=1)
        for j in np.argsort(-est, kind="stable"):
            if est[j] < self.threshold - 0.2:
                break
            e = cands[int(j)]
            self._verified += 1
            sim = jaccard(sh, e.sh)
            if sim >= self.threshold:
                return DedupResult("near", e.id, e.source, round(sim, 4), e.ts_ns)
        return None

    def check(
        self, item_id: str, text: str, ts_ns: int, source: str = "", tags: frozenset[str] = frozenset()
    ) -> DedupResult:
        """Classify ``text`` against the window, then add it to the index.

        ``tags`` (e.g. the linked symbols) must intersect, or both be empty, for a
        *near* duplicate: two short headlines that differ only in the company
        named are different stories.  Duplicates are indexed too: a burst of
        copies keeps matching the first.
        """
        self._checks += 1
        self._evict(ts_ns)
        key = content_key(text)
        self._seq += 1
        copies = self._by_key.get(key)
        prior = copies[0] if copies else None
        if prior is not None and abs(ts_ns - prior.ts_ns) <= self.window_ns:
            # An exact copy: remembered for the exact path, not indexed again for LSH.
            entry = _Entry(self._seq, item_id, source, ts_ns, key, prior.sh, prior.sig, ())
            self._add(entry)
            return DedupResult("exact", prior.id, prior.source, 1.0, prior.ts_ns)
        sh = shingles(text, max_chars=self.max_shingle_chars)
        if not sh:
            self._add(_Entry(self._seq, item_id, source, ts_ns, key, sh, np.zeros(0, np.uint64), ()))
            return DedupResult("unique")
        sig = self._signature(sh)
        keys = tuple(
            (i, bh, tag) for i, bh in enumerate(self._band_hashes(sig)) for tag in self._index_tags(tags)
        )
        result = self._best_near(sh, sig, self._candidates(keys)) or DedupResult("unique")
        entry = _Entry(self._seq, item_id, source, ts_ns, key, sh, sig, ())
        self._add(entry)
        self._bucket(entry, keys)
        return result

    def _add(self, e: _Entry) -> None:
        self._entries.append(e)
        self._by_key.setdefault(e.key, deque()).append(e)
