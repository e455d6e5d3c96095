"""Claims: which items say the same thing, and which contradict each other.

Items are grouped into claims by the instruments they link and the words they
share: two items carry the same claim when they share a linked symbol and
either the Jaccard similarity of their content tokens reaches
``same_threshold``, or (when both have embeddings) their cosine reaches
``cosine_threshold``, or the cosine is within 0.15 of it and they share at
least a tenth of their content tokens.  Independent accounts of one event share few headline
words, so each item also brings a *story* view: the embedding of its lead (headline and first
body sentences, averaged) and the content tokens of that lead; two items carry the same claim
when their story cosine reaches ``story_cosine``, or comes within ``story_margin`` of it and
their lead tokens reach a Jaccard of ``story_jaccard``.  Accounts in different languages meet
by neither, but the amounts they name agree (:mod:`adapters.text.quantities`): with
``anchor_match="amounts"``, two items, one of them a report in another language or script, carry
the same claim when they name one amount of at least :data:`MIN_ANCHOR_AMOUNT` (with a scale word
or a currency).  Smaller figures, percentages, whole numbers and prices are not enough (review14:
dates, model numbers, head counts and share prices joined different events).  A match by amount
alone never makes a contradiction, and an item that meets several claims makes them one.  An item is
compared with every member of a claim (the last ``max_members_compared``), not only the first,
so a fourth outlet's wording need only resemble one earlier account.  Content tokens are
lower-cased words without stop words, lightly stemmed, with money amounts canonicalised (``$130 billion``,
``$130bn`` and ``130bn`` are all ``130b``) and a few verbs of deals mapped to
one form, so differently worded reports of one event still meet.

Two items *contradict* when they carry the same claim with opposite
directional sentiment (each beyond ``direction_band``), or, when their headlines match, opposite
outcome words (:func:`direction_cue`).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from adapters.text.normalize import HANGUL, UNSPACED_SCRIPTS, fold_accents

__all__ = ["MIN_ANCHOR_AMOUNT", "Claim", "ClaimIndex", "View", "content_tokens", "direction_cue"]

MIN_ANCHOR_AMOUNT = 1e6
"""The least amount (in its currency or unit) by which two accounts in different languages meet."""


def _words(text: str) -> list[str]:
    return text.split()


_STOP = frozenset(
    _words(
        """a an the and or of to in on at for by with from as is are was were be been it its this that
    these those has have had will would could should may might can after before over under into
    than then so such not no but if about up down out off more most less new says said say report
    reports reported reuters bloomberg according sources source people familiar matter monday
    tuesday wednesday thursday friday saturday sunday week today yesterday inc corp co ltd plc
    company companies group shares share stock stocks us u.s percent pct per cent reconstruction
    public reporting original text"""
    )
)
# (The look-behind starts a match only where a number starts: without it a long run of digits was
# tried from every digit, 15 s for 20,000 digits.)
_MONEY = re.compile(
    r"\$?\s?(?<![\d.,])(\d+(?:[.,]\d+)?)\s?(bn|billion|b|mln|million|mn|m|tn|trillion|t)\b", re.I
)
_WORD = re.compile(r"[^\W_]+(?:[.'&-][^\W_]+)*")
_SYN = {
    "buy": "acquire", "buys": "acquire", "buying": "acquire", "bought": "acquire",
    "purchase": "acquire", "purchases": "acquire", "acquisition": "acquire", "acquires": "acquire",
    "acquiring": "acquire", "takeover": "acquire", "sell": "acquire", "sells": "acquire",
    "selling": "acquire", "sale": "acquire", "sold": "acquire", "deal": "acquire",
    "agrees": "agree", "agreed": "agree", "agreement": "agree",
    "rises": "rise", "rose": "rise", "climbs": "rise", "climbed": "rise", "jumps": "rise",
    "jumped": "rise", "gains": "rise", "gained": "rise", "higher": "rise", "up": "rise",
    "falls": "fall", "fell": "fall", "drops": "fall", "dropped": "fall", "slides": "fall",
    "declines": "fall", "declined": "fall", "lower": "fall", "tumbles": "fall",
    "stake": "stake", "stakes": "stake", "holding": "stake",
}  # fmt: skip
_UNIT = {"bn": "b", "billion": "b", "b": "b", "mln": "m", "million": "m", "mn": "m", "m": "m",
         "tn": "t", "trillion": "t", "t": "t"}  # fmt: skip


def _stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


# Outcome words with an opposite: a claim saying one and a claim saying the other disagree,
# whatever a sentiment model makes of either.  ("contract" is not one: in company news it is the
# noun far more often than the verb, and "wins order" against "lands contract" read as opposites.)
_UP_CUES = frozenset(
    _words(
        "beat beats tops topped exceed exceeds exceeded raise raises raised rise surge surges soar "
        "soars jump jumps gain gains win wins won approve approves approved approval clear clears "
        "upgrade upgrades upgraded above expand expands accelerate accelerates record "
        "strong stronger boost boosts boosted lift lifts lifted hike hikes hiked increase increases "
        "increased ups"
    )
)
_DOWN_CUES = frozenset(
    _words(
        "miss misses missed fall cut cuts slash slashes lower lowered slump slumps plunge plunges "
        "tumble sink sinks drop lose loses lost block blocks blocked reject rejects rejected "
        "downgrade downgrades downgraded below slow slows slowed loss weak "
        "weaker gloomy warn warns warning halt halts lowers trim trims trimmed reduce reduces "
        "reduced softer softens softened"
    )
)


def direction_cue(text: str) -> int:
    """+1 when ``text`` uses only upward outcome words, -1 only downward ones, else 0."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    up = bool(words & _UP_CUES)
    down = bool(words & _DOWN_CUES)
    return 0 if up == down else (1 if up else -1)


# Scripts written without spaces between words, and Hangul (whose words carry their particles:
# "거제조선이" is "거제조선" and a subject marker): read as character pairs.
_PAIRED = re.compile(f"[{UNSPACED_SCRIPTS}{HANGUL}]+")


def content_tokens(text: str) -> frozenset[str]:
    """Canonical content words of ``text`` (see module docstring), in any script: accents of
    Latin, Greek and Cyrillic folded, runs of an unspaced script (and Hangul) as character pairs."""
    t = fold_accents(text.replace("\u2019", "'"))
    t = _MONEY.sub(lambda m: " " + m.group(1).replace(",", ".") + _UNIT[m.group(2).lower()] + " ", t)
    out: set[str] = set()
    for run in _PAIRED.findall(t):
        out.update(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
    for w in _WORD.findall(_PAIRED.sub(" ", t)):
        w = w.removesuffix("'s")
        if w in _STOP or len(w) < 2:
            continue
        w = _SYN.get(w, w)
        out.add(w if any(c.isdigit() for c in w) else _stem(w))
    return frozenset(out)


@dataclass(slots=True)
class Claim:
    """A group of items carrying one claim, and its state."""

    claim_id: str
    symbols: set[str]
    tokens: set[str]
    ts_first: int
    ts_last: int
    direction: float  # mean sentiment of members
    cue: int = 0  # outcome-word direction of the first member
    embedding: np.ndarray | None = None
    members: list[str] = field(default_factory=list)
    views: list[View] = field(default_factory=list)  # per member: what it is compared by
    groups: set[str] = field(default_factory=set)  # independent credible newsrooms
    verified: bool = False
    disputed_by: str = ""
    n: int = 0
    merged_into: Claim | None = None  # absorbed into another claim (ClaimIndex.absorb)

    def live(self) -> Claim:
        """The claim this one is now part of (itself unless absorbed)."""
        c = self
        while c.merged_into is not None:
            c = c.merged_into
        return c


@dataclass(frozen=True, slots=True)
class View:
    """What one member of a claim is compared by: headline tokens and embedding, lead (story)
    tokens and embedding (unit vectors; ``None`` when not embedded), the amounts its lead names."""

    tokens: frozenset[str]
    embedding: np.ndarray | None = None
    lead_tokens: frozenset[str] = frozenset()
    story: np.ndarray | None = None
    anchors: frozenset[str] = frozenset()  # adapters.text.quantities.quantity_anchors of the lead
    other_language: bool = False  # a report in another language or script: its words cannot meet


def _jac(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if (a or b) else 0.0


@dataclass(frozen=True, slots=True)
class Match:
    claim: Claim
    similarity: float
    contradicts: bool
    by_text: bool = True  # matched by words or embeddings, not by a shared amount alone


class ClaimIndex:
    """Recent claims within ``window_ns``; bounded to ``max_claims`` (oldest evicted)."""

    def __init__(
        self,
        *,
        window_ns: int,
        same_threshold: float = 0.3,
        cosine_threshold: float = 0.7,
        direction_band: float = 0.25,
        max_claims: int = 10_000,
        story_cosine: float = 0.6,
        story_margin: float = 0.1,
        story_jaccard: float = 0.05,
        max_members_compared: int = 8,
        anchor_match: Literal["off", "amounts"] = "off",
    ) -> None:
        self.window_ns = window_ns
        self.same_threshold = same_threshold
        self.cosine_threshold = cosine_threshold
        self.direction_band = direction_band
        self.max_claims = max_claims
        self.story_cosine = story_cosine
        self.story_margin = story_margin
        self.story_jaccard = story_jaccard
        self.max_members_compared = max_members_compared
        self.anchor_match = anchor_match
        self._claims: deque[Claim] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._claims)

    def evict(self, now_ns: int) -> None:
        while self._claims and (
            self._claims[0].ts_last < now_ns - self.window_ns or len(self._claims) > self.max_claims
        ):
            self._claims.popleft()

    def match(
        self,
        symbols: tuple[str, ...],
        tokens: frozenset[str],
        sentiment: float,
        embedding: np.ndarray | None,
        ts_ns: int,
        cue: int = 0,
        *,
        lead_tokens: frozenset[str] = frozenset(),
        story: np.ndarray | None = None,
        anchors: frozenset[str] = frozenset(),
        other_language: bool = False,
    ) -> list[Match]:
        """Claims within the window that share a symbol and are similar enough: those matched by
        words or embeddings first, then those that share only an amount; best first in each."""
        out: list[Match] = []
        syms = set(symbols)
        for c in self._claims:
            if not (syms & c.symbols) or abs(ts_ns - c.ts_last) > self.window_ns:
                continue
            views = c.views[-self.max_members_compared :] or [View(frozenset(c.tokens), c.embedding)]
            best = -1.0
            by_text = False
            parallel = False  # matched by headline: outcome words compare like with like
            for v in views:
                jac = _jac(tokens, v.tokens)
                ve = v.embedding
                cos = float(embedding @ ve) if embedding is not None and ve is not None else 0.0
                same = (
                    jac >= self.same_threshold
                    or cos >= self.cosine_threshold
                    # Paraphrases share few words; a fairly close embedding plus some
                    # shared content words is the same claim too.
                    or (cos >= self.cosine_threshold - 0.15 and jac >= 0.1)
                )
                sim = max(jac, cos)
                if story is not None and v.story is not None:
                    scos = float(story @ v.story)
                    ljac = _jac(lead_tokens, v.lead_tokens)
                    if scos >= self.story_cosine or (
                        scos >= self.story_cosine - self.story_margin and ljac >= self.story_jaccard
                    ):
                        same = True
                        sim = max(sim, scos)
                by_text = by_text or same
                if not same and self._anchored(anchors, other_language, v):
                    same = True
                    sim = max(sim, _jac(anchors, v.anchors))
                if same:
                    best = max(best, sim)
                    parallel = parallel or jac >= self.same_threshold or cos >= self.cosine_threshold
            if best < 0.0:
                continue
            b = self.direction_band
            if not by_text:
                # Met by an amount only, a sign of another direction says another event, not a
                # dispute (review14: a shared "10%" made an unrelated story dispute a real one; a
                # storm's "$2.5 billion" loss would join a record profit of that size).
                if (cue and c.cue and cue != c.cue) or (
                    abs(sentiment) > b and abs(c.direction) > b and (sentiment > 0) != (c.direction > 0)
                ):
                    continue
                opposite = False
            elif cue and c.cue and (parallel or cue == c.cue):
                # Outcome words on both sides decide when they agree, or when the headlines say
                # the same kind of thing (a sentiment model may misread either); accounts matched
                # by their leads only may use opposite words of different subjects ("patients
                # lose weight", "raises the bar").
                opposite = cue != c.cue
            else:
                # Without outcome words the sentiment model alone decides, and it reads one event's
                # framings apart ("sells quarries" +0.31, "exits in a sale" -0.46): only clearly
                # opposite readings (twice the band on both sides) dispute a matched claim.
                b *= 2.0
                opposite = (sentiment > b and c.direction < -b) or (sentiment < -b and c.direction > b)
            out.append(Match(c, best, opposite, by_text))
        # An account whose words meet one claim joins it rather than one it meets by an amount only.
        out.sort(key=lambda m: (not m.by_text, -m.similarity))
        return out

    def absorb(self, into: Claim, other: Claim) -> None:
        """Make ``other`` part of ``into`` (one item carried both: they are one claim); the
        caller merges the newsrooms (``groups``), which need the source registry."""
        if other is into or other.merged_into is not None:
            return
        into.direction = (into.direction * into.n + other.direction * other.n) / max(into.n + other.n, 1)
        into.n += other.n
        into.members.extend(other.members)
        into.views.extend(other.views)
        into.symbols |= other.symbols
        into.tokens |= other.tokens
        into.ts_first = min(into.ts_first, other.ts_first)
        into.ts_last = max(into.ts_last, other.ts_last)
        # (``verified`` is not carried over: the caller counts the merged newsrooms again.)
        other.merged_into = into
        self._claims.remove(other)

    def _anchored(self, anchors: frozenset[str], other_language: bool, v: View) -> bool:
        """Whether two accounts name one amount (``anchor_match``; module docstring)."""
        if self.anchor_match == "off" or not (other_language or v.other_language):
            return False
        return any(a.startswith("a:") and float(a[2:]) >= MIN_ANCHOR_AMOUNT for a in anchors & v.anchors)

    def new(
        self,
        item_id: str,
        symbols: tuple[str, ...],
        tokens: frozenset[str],
        sentiment: float,
        embedding: np.ndarray | None,
        ts_ns: int,
        cue: int = 0,
        *,
        lead_tokens: frozenset[str] = frozenset(),
        story: np.ndarray | None = None,
        anchors: frozenset[str] = frozenset(),
        other_language: bool = False,
    ) -> Claim:
        self._seq += 1
        c = Claim(
            claim_id=f"claim-{self._seq}",
            symbols=set(symbols),
            tokens=set(tokens),
            ts_first=ts_ns,
            ts_last=ts_ns,
            direction=sentiment,
            cue=cue,
            embedding=embedding,
        )
        c.members.append(item_id)
        c.views.append(View(tokens, embedding, lead_tokens, story, anchors, other_language))
        c.n = 1
        self._claims.append(c)
        return c

    @staticmethod
    def join(
        claim: Claim,
        item_id: str,
        symbols: tuple[str, ...],
        sentiment: float,
        ts_ns: int,
        view: View | None = None,
    ) -> None:
        claim.members.append(item_id)
        if view is not None:
            claim.views.append(view)
        claim.symbols |= set(symbols)
        claim.direction = (claim.direction * claim.n + sentiment) / (claim.n + 1)
        claim.n += 1
        claim.ts_last = max(claim.ts_last, ts_ns)
