# ruff: noqa: RUF001, RUF002 - look-alike characters are this file's subject matter
"""Text normalization: Unicode NFKC, markup stripping, invisible-character and homoglyph folding.

News text arrives as HTML fragments, Markdown, or plain text decorated with
characters a reader never sees.  :func:`normalize` turns it into plain NFKC
text a human would read the same way, and records what it removed, because
what was hidden is itself evidence for the injection and obfuscation checks:

* ``hidden``: text a browser would not show (HTML comments, ``display:none``
  elements, ``<script>``/``<style>`` bodies, Unicode tag-character payloads);
* ``obfuscated``: the folded form of every word that changed under homoglyph
  folding or had invisible characters inside it (``"АAPL"`` with a Cyrillic
  A, ``"Ap\u200bple"``), so a caller can ask whether an instrument was being
  disguised;
* counts of invisible, bidirectional-control and tag characters.

The result is a fixed point: ``normalize(normalize(s).text).text == normalize(s).text``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "HANGUL",
    "HOMOGLYPHS",
    "UNSPACED_SCRIPTS",
    "NormalizedText",
    "fold_accents",
    "fold_homoglyphs",
    "is_invisible",
    "normalize",
    "strip_markup",
]

# Characters that render like a Latin letter.  Only the confusable letters of
# other scripts are listed: accents (é, ü) are real Latin letters and stay.
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q",
    "Ԝ": "W", "Ү": "Y", "Ԍ": "G", "Ӏ": "I",
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s",
    "і": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ү": "y",
    "ɡ": "g",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "ο": "o", "ν": "v", "ι": "i", "κ": "k", "ρ": "p", "υ": "u", "χ": "x", "α": "a",
    # Latin look-alikes outside ASCII
    "ı": "i", "ȷ": "j", "ſ": "s", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ᴀ": "A", "ʙ": "B",
    # Cherokee and Armenian capitals that mimic Latin
    "Ꭺ": "A", "Ᏼ": "B", "Ꮯ": "C", "Ꭼ": "E", "Ꮋ": "H", "Ꭻ": "J", "Ꮶ": "K", "Ꮇ": "M",
    "Ꮲ": "P", "Ꮪ": "S", "Ꭲ": "T", "Ꮤ": "W", "օ": "o", "ս": "u", "ց": "g",
}  # fmt: skip

_HOMOGLYPH_TABLE = str.maketrans(HOMOGLYPHS)

# Invisible characters that are never content: zero-width, joiners, soft hyphen,
# word joiner, invisible operators, variation selectors, BOM.  Bidi controls and
# tag characters are invisible too but counted apart (they are attack signals).
_ZERO_WIDTH = frozenset(
    "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u034f\u180e\u115f\u1160\u3164"
)
_BIDI = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TAG_START, _TAG_END = 0xE0000, 0xE007F


def _is_tag(ch: str) -> bool:
    return _TAG_START <= ord(ch) <= _TAG_END


def is_invisible(ch: str) -> bool:
    """True for a character that renders as nothing (format characters, selectors, tags)."""
    if ch in _ZERO_WIDTH or ch in _BIDI or _is_tag(ch):
        return True
    o = ord(ch)
    if 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF:
        return True
    return unicodedata.category(ch) == "Cf"


_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.S)
_HIDDEN_ELEMENT = re.compile(
    r"<(?P<tag>[a-zA-Z][a-zA-Z0-9]*)\b[^<>]*?"
    r"(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])|\bhidden\b)"
    r"[^<>]*>(?P<body>.*?)</(?P=tag)\s*>",
    re.S | re.I,
)
_SCRIPT = re.compile(r"<(script|style|template|noscript)\b[^<>]*>(.*?)</\1\s*>", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9:-]*(?:\s[^<>]*)?/?>")
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|table|blockquote)\b[^<>]*>", re.I)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)\s]*)[^)]*\)")
_MD_EMPH = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_HEADER = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.M)
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[^\s]+")


UNSPACED_SCRIPTS = "\u0e00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"
"""A character-class body: the scripts written without spaces between words (Thai, Lao, Tibetan,
Burmese, Khmer, kana, CJK ideographs and their compatibility forms)."""
HANGUL = "\uac00-\ud7af"
"""A character-class body: Hangul syllables (spaced, but a word carries its particles)."""

# Accents of Latin, Greek and Cyrillic letters (combining marks U+0300-U+036F after NFD; the
# marks of other scripts are letters' parts, not accents) and zero-width joiners; dotless i is i.
_ACCENTS_AND_JOINERS: dict[int, str | None] = dict.fromkeys(
    [*range(0x300, 0x370), 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
)
_ACCENTS_AND_JOINERS[ord("\u0131")] = "i"


def fold_accents(text: str) -> str:
    """``text`` case folded, with accents and zero-width joiners dropped, recomposed (NFC):
    "KURALLARINI", "\u0391\u0393\u039d\u039f\u0397\u03a3\u0395" and "Stål" read as
    "kurallarini", "\u03b1\u03b3\u03bd\u03bf\u03b7\u03c3\u03b5" and "stal"; other scripts
    keep their marks."""
    return unicodedata.normalize(
        "NFC", unicodedata.normalize("NFD", text.casefold()).translate(_ACCENTS_AND_JOINERS)
    )


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """What :func:`normalize` returns.

    ``text`` is the visible text, NFKC, whitespace collapsed to single spaces.
    ``hidden`` holds removed invisible content; ``md_images`` the URLs of
    Markdown images (a data-exfiltration channel); ``obfuscated`` the folded
    words that were disguised; the counters say how many characters of each
    invisible class were dropped.  ``styled_words`` counts words of at least two
    letters in styled forms NFKC folds to Latin (mathematical bold, fullwidth,
    circled, sub- and superscript letters), which plain news does
    not use and which hide a word from a reader that does not fold them.
    """

    text: str
    hidden: tuple[str, ...] = ()
    md_images: tuple[str, ...] = ()
    obfuscated: tuple[str, ...] = ()
    homoglyph_words: int = 0
    styled_words: int = 0
    invisible: int = 0
    bidi: int = 0
    tags: int = 0
    markup: bool = False
    flags: frozenset[str] = field(default_factory=frozenset)


def fold_homoglyphs(word: str) -> str:
    """Fold confusable letters of a word to Latin when the word is meant to read as Latin.

    A word is folded when it mixes Latin with confusables (``"Аpple"``) or
    consists only of confusables (``"ВР"`` in Cyrillic reads as ``BP``); a word
    in another script with genuine non-Latin letters (``"Газпром"``) is left alone.
    """
    if word.isascii():
        return word
    folded = word.translate(_HOMOGLYPH_TABLE)
    if folded == word:
        return word
    has_latin = any("a" <= c.lower() <= "z" for c in word)
    leftover_letters = [c for c in folded if c.isalpha() and not c.isascii()]
    foreign_left = [c for c in leftover_letters if not _is_latin_letter(c)]
    if foreign_left:
        # A real word of another script; fold only if Latin letters are mixed in.
        return folded if has_latin else word
    return folded


def _is_latin_letter(ch: str) -> bool:
    try:
        return unicodedata.name(ch).startswith("LATIN")
    except ValueError:
        return False


def strip_markup(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
    """Remove HTML and Markdown; return (visible text, hidden texts, image URLs, had markup)."""
    hidden: list[str] = []
    images: list[str] = []
    had = False

    def keep_hidden(m: re.Match[str]) -> str:
        nonlocal had
        had = True
        body = m.group(m.lastindex or 0) if m.re is not _HIDDEN_ELEMENT else m.group("body")
        body = _TAG.sub(" ", body).strip()
        if body:
            hidden.append(body)
        return " "

    text = _COMMENT.sub(keep_hidden, text)
    text = _SCRIPT.sub(keep_hidden, text)
    # Nested hidden elements: repeat until none is left.
    for _ in range(4):
        new = _HIDDEN_ELEMENT.sub(keep_hidden, text)
        if new == text:
            break
        text = new
    if _TAG.search(text):
        had = True
        text = _BLOCK_TAG.sub(" ", text)
        text = _TAG.sub("", text)

    def keep_image(m: re.Match[str]) -> str:
        nonlocal had
        had = True
        images.append(m.group(2))
        return m.group(1)

    text = _MD_IMAGE.sub(keep_image, text)
    if _MD_LINK.search(text):
        had = True
        text = _MD_LINK.sub(r"\1", text)
    text = _MD_EMPH.sub(r"\2", text)
    text = _MD_HEADER.sub("", text)
    return text, tuple(hidden), tuple(images), had


def _decode_tags(text: str) -> tuple[str, str, int]:
    """Split Unicode tag characters out of ``text``; return (rest, decoded ASCII payload, count)."""
    payload: list[str] = []
    rest: list[str] = []
    n = 0
    for ch in text:
        if _is_tag(ch):
            n += 1
            code = ord(ch) - _TAG_START
            if 0x20 <= code < 0x7F:
                payload.append(chr(code))
        else:
            rest.append(ch)
    return "".join(rest), "".join(payload), n


def _styled(ch: str) -> bool:
    """A letter in a styled form: NFKC turns it into one ASCII letter (ligatures such as
    U+FB01 fold to two and are left alone: PDF text is full of them)."""
    if ch.isascii():
        return False
    f = unicodedata.normalize("NFKC", ch)
    return len(f) == 1 and f.isascii() and f.isalpha()


def _styled_words(raw: str) -> int:
    return sum(1 for w in raw.split() if not w.isascii() and sum(map(_styled, w)) >= 2)


def _one_pass(raw: str) -> NormalizedText:
    n_styled = _styled_words(raw)
    text = unicodedata.normalize("NFKC", raw)
    text = unicodedata.normalize("NFKC", html.unescape(text))
    text, tag_payload, n_tags = _decode_tags(text)
    hidden: list[str] = []
    if tag_payload.strip():
        hidden.append(tag_payload)

    # Invisible characters inside a word disguise it; note those words before
    # dropping the characters.
    obfuscated: list[str] = []
    n_invisible = n_bidi = 0
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        if ch in _BIDI:
            n_bidi += 1
            continue
        if is_invisible(ch):
            n_invisible += 1
            continue
        out.append(ch)
    if n_invisible or n_bidi:
        for m in _WORD.finditer(text):
            w = m.group(0)
            if any(ch in _BIDI or is_invisible(ch) for ch in w):
                cleaned = "".join(ch for ch in w if not (ch in _BIDI or is_invisible(ch)))
                inner = cleaned.strip(".,;:!?\"'()[]")
                if len(inner) >= 2 and any(c.isalnum() for c in inner):
                    obfuscated.append(fold_homoglyphs(inner))
    text = "".join(out)

    text, hid, images, had_markup = strip_markup(text)
    hidden.extend(hid)

    words: list[str] = []
    n_homo = 0
    for w in text.split():
        f = fold_homoglyphs(w)
        if f != w:
            n_homo += 1
            inner = f.strip(".,;:!?\"'()[]")
            if inner:
                obfuscated.append(inner)
        words.append(f)
    text = " ".join(words)
    text = _WS.sub(" ", text).strip()

    flags: set[str] = set()
    if had_markup:
        flags.add("markup")
    if n_invisible:
        flags.add("invisible")
    if n_bidi:
        flags.add("bidi")
    if n_tags:
        flags.add("tag_chars")
    if n_homo:
        flags.add("homoglyph")
    if hidden:
        flags.add("hidden_text")
    if images:
        flags.add("md_image")
    return NormalizedText(
        text=text,
        hidden=tuple(hidden),
        md_images=images,
        obfuscated=tuple(dict.fromkeys(obfuscated)),
        homoglyph_words=n_homo,
        styled_words=n_styled,
        invisible=n_invisible,
        bidi=n_bidi,
        tags=n_tags,
        markup=had_markup,
        flags=frozenset(flags),
    )


_PLAIN_UNSAFE = frozenset("<>&[]*_#~!")


def normalize(raw: str) -> NormalizedText:
    """Normalize ``raw`` to visible NFKC text, keeping what was hidden as evidence.

    Passes repeat until the text stops changing (nested entities such as
    ``&amp;lt;`` or tags split by invisible characters unfold one layer per
    pass), so the result is idempotent.  Evidence from every pass is kept.
    """
    if raw.isascii() and _PLAIN_UNSAFE.isdisjoint(raw):
        # Plain ASCII without markup characters: only whitespace can change.
        return NormalizedText(text=" ".join(raw.split()))
    first = _one_pass(raw)
    result = first
    hidden = list(first.hidden)
    images = list(first.md_images)
    obfuscated = list(first.obfuscated)
    flags = set(first.flags)
    for _ in range(6):
        nxt = _one_pass(result.text)
        if nxt.text == result.text:
            break
        hidden.extend(nxt.hidden)
        images.extend(nxt.md_images)
        obfuscated.extend(nxt.obfuscated)
        flags |= nxt.flags
        result = NormalizedText(
            text=nxt.text,
            homoglyph_words=result.homoglyph_words + nxt.homoglyph_words,
            styled_words=result.styled_words + nxt.styled_words,
            invisible=result.invisible + nxt.invisible,
            bidi=result.bidi + nxt.bidi,
            tags=result.tags + nxt.tags,
            markup=result.markup or nxt.markup,
        )
    return NormalizedText(
        text=result.text,
        hidden=tuple(hidden),
        md_images=tuple(images),
        obfuscated=tuple(dict.fromkeys(obfuscated)),
        homoglyph_words=result.homoglyph_words,
        styled_words=result.styled_words,
        invisible=result.invisible,
        bidi=result.bidi,
        tags=result.tags,
        markup=result.markup,
        flags=frozenset(flags),
    )
