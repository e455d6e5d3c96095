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
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from adapters.text.coverage import is_english_word

__all__ = [
    "DEFAULT_DENIALS",
    "DEFAULT_LEXICON",
    "DENIAL_ROLES",
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
_ALONE = ("machine_note", "reader_order")
_PAIRS = (("dismiss", "instruction"), ("reveal", "secret"))
WINDOW = 80
"""Characters, at most, between a dismissal and its instruction noun (or a reveal and its secret)."""

# Sentence ends of the scripts the lexicon covers (Latin, Devanagari danda, Arabic and Urdu full
# stops, CJK full stops, Armenian, Ethiopic and Burmese ones); a line break ends one too.
_SENTENCE_END = re.compile(r"[.!?\n\u0964\u0965\u06d4\u061f\u3002\uff01\uff1f\u0589\u1362\u104b]")
_ANY = re.compile(r".+", re.S)
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
    """Whether a (lower-case, space-normalised) entry is used: not empty, not English words only."""
    return bool(entry.rstrip("*")) and not all(is_english_word(w) for w in entry.rstrip("*").split())


def _role_pattern(entries: Iterable[str]) -> re.Pattern[str] | None:
    whole: set[str] = set()
    stems: set[str] = set()
    bare: set[str] = set()
    for raw in entries:
        e = " ".join(raw.lower().split())
        if not _kept(e):
            continue
        if _unspaced(e):
            bare.add(e.rstrip("*"))
        elif e.endswith("*"):
            stems.add(e[:-1])
        else:
            whole.add(e)
    parts = []
    if whole:
        parts.append(r"(?<!\w)" + _alternation(whole).replace(r"\ ", _GAP) + r"(?!\w)")
    if stems:
        parts.append(r"(?<!\w)" + _alternation(stems).replace(r"\ ", _GAP) + r"\w*")
    if bare:
        parts.append(_alternation(bare))
    return re.compile("|".join(parts), re.I) if parts else None


# Scripts written without spaces between words: Thai, Lao, Tibetan, Burmese, Khmer, kana, CJK.
_UNSPACED_LETTER = re.compile(
    "[\u0e00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]"
)
_WORD = re.compile(r"\w+")
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
    an instruction noun, a reveal with a secret).
    """

    def __init__(
        self,
        languages: Mapping[str, Mapping[str, object]],
        *,
        alone: tuple[str, ...] = _ALONE,
        pairs: tuple[tuple[str, str], ...] = _PAIRS,
    ) -> None:
        roles = tuple(dict.fromkeys((*alone, *(r for p in pairs for r in p))))
        pooled: dict[str, list[str]] = {r: [] for r in roles}
        for lang in languages.values():
            for role in roles:
                entries = lang.get(role, [])
                if isinstance(entries, list):
                    pooled[role].extend(str(e) for e in entries)
        self.languages = tuple(languages)
        self._alone = alone
        self._pairs = pairs
        self._role = {r: _role_pattern(pooled[r]) for r in roles}
        # A cheap first look.  A text an entry matches holds each of the entry's words whole (a
        # stem's last word only begins one), so one word per entry -- its longest whole word, or
        # the head of a one-word stem -- is enough to look for.  Most texts hold none, and then the
        # role patterns (each a pass over the text) need not run.
        self._keys: set[str] = set()
        self._stem_heads: dict[int, set[str]] = {}
        for e in (" ".join(e.lower().split()) for r in roles for e in pooled[r]):
            toks = _WORD.findall(e)
            if not toks or _unspaced(e) or not _kept(e):
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
    ) -> ForeignLexicon:
        """Read a lexicon file (``{"languages": {code: {role: [entries]}}}``)."""
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        return cls(data["languages"], alone=alone, pairs=pairs)

    def search(self, text: str) -> re.Match[str] | None:
        """The first wording of the lexicon in ``text``: a match spanning it, or ``None``."""
        if not self._may_hold(text):
            return None
        for role in self._alone:
            alone = self._role[role]
            if alone is not None and (m := alone.search(text)):
                return m
        for verb, noun in self._pairs:
            if (hit := self._pair(text, self._role[verb], self._role[noun])) is not None:
                return hit
        return None

    def _may_hold(self, text: str) -> bool:
        """False when no entry can match ``text`` (none of the entries' key words, no letter of a
        script written without spaces); True is only a maybe."""
        if _UNSPACED_LETTER.search(text):
            return True
        heads = self._stem_heads.items()
        for w in _WORD.findall(text.lower()):
            if w in self._keys or any(w[:n] in hs for n, hs in heads):
                return True
        return False

    @staticmethod
    def _pair(
        text: str, first: re.Pattern[str] | None, second: re.Pattern[str] | None
    ) -> re.Match[str] | None:
        if first is None or second is None:
            return None
        for m in first.finditer(text):
            lo = _sentence_start(text, m.start())
            hi = min(m.end() + WINDOW, _sentence_end(text, m.end()))
            n = second.search(text, lo, hi)
            # The same word can play both roles in a language ("prompt"); it must be two words.
            while n is not None and n.start() < m.end() and n.end() > m.start():
                n = second.search(text, n.end(), hi)
            if n is not None:
                return _ANY.match(text, min(m.start(), n.start()), max(m.end(), n.end()))
        return None


def _sentence_start(text: str, i: int) -> int:
    """Where the sentence holding ``text[i]`` starts, looking back :data:`WINDOW` characters at most."""
    j = i
    floor = max(0, i - WINDOW)
    while j > floor and not _SENTENCE_END.match(text, j - 1):
        j -= 1
    return j


def _sentence_end(text: str, i: int) -> int:
    m = _SENTENCE_END.search(text, i)
    return m.start() if m else len(text)


@functools.cache
def default_lexicon() -> ForeignLexicon:
    """The bundled injection lexicon, read once."""
    return ForeignLexicon.load()


@functools.cache
def default_denials() -> ForeignLexicon:
    """The bundled denial lexicon (any :data:`DENIAL_ROLES` entry is a denial), read once."""
    return ForeignLexicon.load(DEFAULT_DENIALS, alone=DENIAL_ROLES, pairs=())
