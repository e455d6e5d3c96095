"""Injection wordings in the world's other languages, read from a lexicon of words by role.

The English rules (:mod:`adapters.text.injection`) list wordings, and a dozen languages have a few
hand-written ones.  For the rest, the package data ``data/injection_lexicon.json`` lists words by
the role they play in an injection, per language: verbs that *dismiss* ("ignore", "forget"), nouns
of a reader's *instructions*, verbs that ask to *reveal*, nouns of *secrets* (system prompt,
password, API key), whole phrases that address a *machine* reader ("note to the model", "hey AI")
and imperative orders to pass something on to the audience ("tell readers").
:class:`ForeignLexicon` flags a sentence that puts a dismissal within :data:`WINDOW` characters of
an instruction noun, or a reveal that close to a secret, or holds an address to a machine or an
order to tell the audience: news reports that investors ignored a warning, or publishes the
instructions for a share offer, but it has no cause to tell its reader to forget its instructions.

English has rules of its own, and English prose about injections ("hidden text tells the model to
ignore its instructions") must not read as one: an entry that is English words only (French
"ignore", Polish "prompt") is left out (:func:`adapters.text.coverage.is_english_word`).

Entries are lower case.  In a language written with spaces, an entry matches a whole word (or
words), and an entry ending in ``*`` is a stem that matches any word it begins; in a script
written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese) an entry matches anywhere.
Entries and text are compared folded (:func:`_fold`: case folded, Turkish dotless i as i, Latin and
Greek accents and zero-width joiners dropped), so "KURALLARINI", "ΑΓΝΟΗΣΕ" and "AUSSER" read as
their lower-case entries; a match spans the folded text.  A word is letters, digits and combining
marks: Python's word class leaves out the vowel signs of Indic scripts, and a boundary there would fall
inside a word (``सूचना`` inside ``अधिसूचना``).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path

from adapters.text.coverage import is_english_word
from adapters.text.normalize import UNSPACED_SCRIPTS
from adapters.text.normalize import fold_accents as _fold

__all__ = [
    "DEFAULT_DENIALS",
    "DEFAULT_LEXICON",
    "DENIAL_ROLES",
    "MARKET_SENSE",
    "ROLES",
    "WINDOW",
    "ForeignLexicon",
    "default_denials",
    "default_lexicon",
]

DEFAULT_LEXICON = Path(__file__).resolve().parent / "data" / "injection_lexicon.json"
DEFAULT_DENIALS = Path(__file__).resolve().parent / "data" / "denial_lexicon.json"
ROLES = ("dismiss", "instruction", "reveal", "secret", "machine_note", "reader_order")
"""The word roles of the injection lexicon (each a list of entries, possibly empty or absent)."""
DENIAL_ROLES = ("deny_verb", "false_claim", "not_ours", "correction")
"""The word roles of the denial lexicon: a report denied, called false, disowned or corrected.
Any one of them found makes a text a denial (:func:`default_denials`)."""
MARKET_SENSE = frozenset({
    "korrektur", "korrigiert", "korrigierte", "korrigeiert", "correctie", "corrigeert", "corregge",
    "rettifica", "rettificato", "corectie", "korrigering", "korrigerer", "korrektion", "korjaus",
    "korrekcio", "koreksi", "korreksie", "korrigeer", "korreksje", "korrigjim", "korrezzjoni",
})  # fmt: skip
"""Folded one-word entries of the denial lexicon's ``correction`` role that also name a market's
correction (German, Dutch, Italian, Romanian, Nordic, Finnish, Hungarian, Indonesian and Javanese,
Afrikaans, Frisian, Albanian, Maltese): read only as a heading (:class:`ForeignLexicon`)."""
_ALONE = ("machine_note", "reader_order")
_PAIRS = (("dismiss", "instruction"), ("reveal", "secret"))
WINDOW = 80
"""Characters, at most, between a dismissal and its instruction noun (or a reveal and its secret)."""

# Sentence ends of the scripts the lexicon covers (Latin, Devanagari danda, Arabic and Urdu full
# stops, CJK full stops, Armenian, Ethiopic and Burmese ones); a line break ends one too.
_SENTENCE_END = re.compile(r"[.!?\n\u0964\u0965\u06d4\u061f\u3002\uff01\uff1f\u0589\u1362\u104b]")
_ANY = re.compile(r".+", re.S)


def _mark_ranges() -> str:
    """A character-class body of every combining mark (categories Mn, Mc, Me)."""
    out: list[str] = []
    start = prev = -2
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith("M"):
            if cp != prev + 1:
                if start >= 0:
                    out.append(f"\\U{start:08x}-\\U{prev:08x}")
                start = cp
            prev = cp
    out.append(f"\\U{start:08x}-\\U{prev:08x}")
    return "".join(out)


_W = rf"[\w{_mark_ranges()}]"
"""One character of a word: a letter, digit, underscore or combining mark."""
_WORD = re.compile(_W + "+")
# Between the words of an entry: spaces, or the punctuation of an address ("Hey, AI:", "Слухай, мадэль").
_GAP = r"[\s,;:!\u2013\u2014-]+"


def _alternation(entries: Iterable[str]) -> str:
    """A regex alternation of ``entries`` as a trie, so a text position is tried once, not per entry."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]  # recursive mapping of characters
    for e in entries:
        node = trie
        for ch in e:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        end = "" in node
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if end else body

    return emit(trie)


def _kept(entry: str) -> bool:
    """Whether a (folded, space-normalised) entry is used: not empty, not English words only."""
    return bool(entry.rstrip("*")) and not all(is_english_word(w) for w in entry.rstrip("*").split())


def _role_pattern(entries: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for a role's entries (folded, space-normalised and kept: see ``ForeignLexicon``)."""
    whole: set[str] = set()
    stems: set[str] = set()
    bare: set[str] = set()
    for e in entries:
        if _unspaced(e):
            bare.add(e.rstrip("*"))
        elif e.endswith("*"):
            stems.add(e[:-1])
        else:
            whole.add(e)
    parts = []
    if whole:
        parts.append(f"(?<!{_W})" + _alternation(whole).replace(r"\ ", _GAP) + f"(?!{_W})")
    if stems:
        parts.append(f"(?<!{_W})" + _alternation(stems).replace(r"\ ", _GAP) + f"{_W}*")
    if bare:
        parts.append(_alternation(bare))
    # (no re.I: entries and text are both folded, which also covers what re.I does not)
    return re.compile("|".join(parts)) if parts else None


_UNSPACED_LETTER = re.compile(f"[{UNSPACED_SCRIPTS}]")
_HEAD = 4
"""Letters of a stem the first look compares (a stem is at least this long in the bundled lexicon)."""


def _unspaced(entry: str) -> bool:
    """Whether an entry is in a script written without spaces between words."""
    return _UNSPACED_LETTER.search(entry) is not None


class ForeignLexicon:
    """Finds the wordings a lexicon describes; ``search`` returns the span it found.

    A text matches when it holds an entry of a role in ``alone``, or, in one sentence and within
    :data:`WINDOW` characters, an entry of each role of a pair in ``pairs`` (by default the
    injection lexicon's: notes to a machine and orders to tell the audience alone, a dismissal with
    an instruction noun, a reveal with a secret).  An entry in ``headed`` (folded) counts only as a
    heading: at the start of the text, of a line or of a bracket, followed by a colon, a closing
    bracket or a spaced dash.
    """

    def __init__(
        self,
        languages: Mapping[str, Mapping[str, object]],
        *,
        alone: tuple[str, ...] = _ALONE,
        pairs: tuple[tuple[str, str], ...] = _PAIRS,
        headed: frozenset[str] = frozenset(),
    ) -> None:
        roles = tuple(dict.fromkeys((*alone, *(r for p in pairs for r in p))))
        # Each entry folded and space-normalised once, English-only entries left out (_kept).
        pooled: dict[str, list[str]] = {r: [] for r in roles}
        for lang in languages.values():
            for role in roles:
                entries = lang.get(role, [])
                if isinstance(entries, list):
                    folded = (" ".join(_fold(str(e)).split()) for e in entries)
                    pooled[role].extend(e for e in folded if _kept(e))
        self.languages = tuple(languages)
        self._alone = alone
        self._pairs = pairs
        # An entry in ``headed`` counts only as a heading: the words for a correction that also name
        # a market's ("Korrektur", "correctie", "koreksi", "DAX korrigiert") are read only where a
        # wire marks its correction, "KORREKTUR:", "(Korrektur)", "Korrektur - " (review12, review13).
        self._role = {r: _role_pattern([e for e in pooled[r] if e not in headed]) for r in roles}
        heads = _role_pattern(sorted({e for r in roles for e in pooled[r] if e in headed}))
        self._headed = (
            None
            if heads is None
            else re.compile(rf"(?:^|\n|[(\[])\s*(?:{heads.pattern})(?:\s*[:\uff1a)\]]|\s+[\u2013\u2014-]\s)")
        )
        # A cheap first look.  A text an entry matches holds each of the entry's words whole (a
        # stem's last word only begins one), so one word per entry -- its longest whole word, or
        # the head of a one-word stem -- is enough to look for.  Most texts hold none, and then the
        # role patterns (each a pass over the text) need not run.
        self._keys: set[str] = set()
        self._stem_heads: dict[int, set[str]] = {}
        for e in (e for r in roles for e in pooled[r]):
            toks = _WORD.findall(e)
            if not toks or _unspaced(e):
                continue
            whole = toks[:-1] if e.endswith("*") else toks
            if whole:
                # (the rarest-looking: a word that is not English, then the longest)
                self._keys.add(max(whole, key=lambda w: (not is_english_word(w), len(w))))
            else:
                n = min(len(toks[0]), _HEAD)
                self._stem_heads.setdefault(n, set()).add(toks[0][:n])

    @classmethod
    def load(
        cls,
        path: Path = DEFAULT_LEXICON,
        *,
        alone: tuple[str, ...] = _ALONE,
        pairs: tuple[tuple[str, str], ...] = _PAIRS,
        headed: frozenset[str] = frozenset(),
    ) -> ForeignLexicon:
        """Read a lexicon file (``{"languages": {code: {role: [entries]}}}``)."""
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        return cls(data["languages"], alone=alone, pairs=pairs, headed=headed)

    def search(self, text: str) -> re.Match[str] | None:
        """The first wording of the lexicon in ``text``: a match spanning it in the folded text
        (:func:`_fold`), or ``None``."""
        text = _fold(text)
        if not self._may_hold(text):
            return None
        for role in self._alone:
            alone = self._role[role]
            if alone is not None and (m := alone.search(text)):
                return m
        if self._headed is not None and (m := self._headed.search(text)):
            return m
        for verb, noun in self._pairs:
            if (hit := self._pair(text, self._role[verb], self._role[noun])) is not None:
                return hit
        return None

    def _may_hold(self, text: str) -> bool:
        """False when no entry can match the folded ``text`` (none of the entries' key words, no
        letter of a script written without spaces); True is only a maybe."""
        if _UNSPACED_LETTER.search(text):
            return True
        heads = self._stem_heads.items()
        return any(w in self._keys or any(w[:n] in hs for n, hs in heads) for w in _WORD.findall(text))

    @staticmethod
    def _pair(
        text: str, first: re.Pattern[str] | None, second: re.Pattern[str] | None
    ) -> re.Match[str] | None:
        if first is None or second is None:
            return None
        # Each pattern runs once over the text and the two lists of matches are merged by position,
        # so the cost is linear in the text however many verbs it repeats (review12: searching per
        # verb was quadratic on a megabyte of one verb).
        firsts = list(first.finditer(text))
        if not firsts:
            return None
        seconds = list(second.finditer(text))
        starts = [n.start() for n in seconds]
        for m in firsts:
            lo = _sentence_start(text, m.start())
            hi = _sentence_end(text, m.end())
            i = bisect_left(starts, lo)
            while i < len(seconds) and starts[i] < hi:
                n = seconds[i]
                i += 1
                # The same word can play both roles in a language ("prompt"); it must be two words.
                if n.end() <= hi and (n.end() <= m.start() or n.start() >= m.end()):
                    return _ANY.match(text, min(m.start(), n.start()), max(m.end(), n.end()))
        return None


def _sentence_start(text: str, i: int) -> int:
    """Where the sentence holding ``text[i]`` starts, looking back :data:`WINDOW` characters at most."""
    floor = max(0, i - WINDOW)
    ends = [m.end() for m in _SENTENCE_END.finditer(text, floor, i)]
    return ends[-1] if ends else floor


def _sentence_end(text: str, i: int) -> int:
    """Where the sentence holding ``text[i - 1]`` ends, looking on :data:`WINDOW` characters at most."""
    m = _SENTENCE_END.search(text, i, i + WINDOW)
    return m.start() if m else min(len(text), i + WINDOW)


@functools.cache
def default_lexicon() -> ForeignLexicon:
    """The bundled injection lexicon, read once."""
    return ForeignLexicon.load()


@functools.cache
def default_denials() -> ForeignLexicon:
    """The bundled denial lexicon (any :data:`DENIAL_ROLES` entry is a denial), read once."""
    return ForeignLexicon.load(DEFAULT_DENIALS, alone=DENIAL_ROLES, pairs=(), headed=MARKET_SENSE)
