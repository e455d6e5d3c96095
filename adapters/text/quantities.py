"""Amounts a report names, read the same way in any of the languages listed here.

Two accounts of one event in different languages share few words, and a report whose text is
withheld from the models (another language or script) has no embedding worth comparing, but the
amounts they name agree: "US$2.4 billion" and "24億美元", "12bn-baht" and "1.2 หมื่นล้านบาท",
"40 bil. yen" and "400億円", "1.1 trillion won" and "1조1천억원".  :func:`quantity_anchors` reads
them as *anchors*, strings that compare equal across languages:

* ``a:<value>``: an amount with a scale word (thousand and up, in the languages of
  :data:`_SCALES`) or a currency sign;
* ``p:<value>``: a percentage;
* ``n:<value>``: any other whole number of at least 10 that is not a year (1900-2100).

Values are kept to 3 significant digits.  A separator that may be either a decimal or a
thousands mark ("1.400", "1,200") gives both readings, so "US$ 1.400 millones" meets
"$1.4 billion"; scale words multiply ("mil millones", "หมื่นล้าน", "천억") and the East Asian
myriad units add up ("1조1천억" is 1.1 trillion).
"""

from __future__ import annotations

import re
import unicodedata

from adapters.text.normalize import HANGUL, UNSPACED_SCRIPTS

__all__ = ["quantity_anchors"]

# Scale words by language family; a word that is a scale in one language and something else in
# another ("mil": thousand in Spanish, a unit elsewhere) is listed where news uses it for money.
_SCALES: dict[float, tuple[str, ...]] = {
    1e3: ("thousand", "thousands", "tys.", "tys", "tis.", "tūkst.", "tuhat", "tuhatta", "ezer", "bin",
          "ribu", "nghìn", "ngàn", "mil", "mille", "mila", "tausend", "tsd.", "duizend", "tusen",
          "tusind", "тыс.", "тыс", "тысяч", "千", "천", "พัน", "hazar", "हज़ार", "हजार", "হাজার", "ألف",
          "هزار", "אלף"),
    1e4: ("万", "萬", "만", "หมื่น"),
    1e5: ("lakh", "lakhs", "lac", "แสน", "लाख", "লাখ", "লক্ষ", "લાખ", "ਲੱਖ", "லட்சம்", "ലക്ഷം", "లక్షల",
          "లక్ష", "ಲಕ್ಷ", "لاکھ"),
    1e6: ("million", "millions", "mn", "mln", "mln.", "mio.", "mio", "millionen", "millones",
          "millón", "millon", "milhão", "milhões", "milhao", "milhoes", "milioni", "milione",
          "milionów", "miliony", "milion", "milionu", "milioane", "miljoen", "miljoenen", "miljoner",
          "miljon", "millioner", "miljoonaa", "miljoona", "milj.", "millió", "milyon", "juta",
          "triệu", "ล้าน", "млн", "млн.", "миллион", "миллиона", "миллионов", "מיליון", "مليون",
          "εκατ.", "εκατομμύρια", "میلیون", "mkr", "m€", "mio€",
          # (prereg-quantities50: eastern and northern Europe, "38 miljoni euro")
          "miljoni", "miljonit", "miljonu", "miljons", "milijonas", "milijonai", "milijonų", "milijon",
          "milijona", "milijonov", "milijun", "milijuna", "miliona", "milióna", "miliónov", "milióny",
          "milionů", "milljón", "milljónir", "milljóna", "мільйон", "мільйона", "мільйонів", "милион",
          "милиона", "милиони", "милијуна", "milionë"),
    1e7: ("crore", "crores", "करोड़", "करोड", "कोटी", "কোটি", "કરોડ", "ਕਰੋੜ", "கோடி", "കോടി", "కోట్ల",
          "కోటి", "ಕೋಟಿ", "کروڑ"),
    1e8: ("億", "亿", "억"),
    1e9: ("billion", "billions", "bn", "bil.", "bln", "mrd.", "mrd", "milliarden", "milliarde",
          "miljard", "miljarden", "miljarder", "milliard", "milliards", "milliarder", "mld.", "mld",
          "miliardi", "miliardo", "miliard", "miliardów", "miliardy", "milliárd", "milyar",
          "miliar", "miljardia", "miljardi", "tỷ", "tỉ", "mia.", "md", "mds", "млрд", "млрд.",
          "миллиард", "миллиарда", "миллиардов", "מיליארד", "مليار", "δισ.", "bilhão", "bilhões",
          "bilhao", "bilhoes", "bi", "mdkr", "mdr", "md€", "mrd€", "अरब", "ارب", "میلیارد",
          "miljardit", "miljardu", "miljards", "milijardas", "milijardai", "milijardų", "milijarda",
          "milijard", "milijarde", "milijardi", "miliárd", "miliardu", "milljarður", "milljarðar",
          "milljarða", "мільярд", "мільярди", "мільярдів", "милиард", "милиарда", "милијарда",
          "милијарди", "miliardë"),
    1e12: ("trillion", "trillions", "tn", "tln", "trln", "trn", "billón", "billones", "biljoen", "biljon",
           "biljoner", "triliun", "tri", "трлн", "трлн.", "триллион", "триллиона", "триллионов", "兆", "조"),
}  # fmt: skip
# Letters glued to a number ("$90m", "Sh32bn", "5k"): only glued, a spaced "m" is metres.
_GLUED = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
# (NFKC, as the text is: "ड़" is two code points there)
_SCALE_OF = {unicodedata.normalize("NFKC", w): v for v, words in _SCALES.items() for w in words}
# The myriad units: "1조1천억" is 1조 plus 1천억.
_MYRIAD = frozenset("万萬億亿兆만억조")
# (Hangul too: "억" follows its number unspaced, "12억")
_NO_SPACE_SCRIPTS = re.compile(f"[{UNSPACED_SCRIPTS}{HANGUL}]")


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# A word in a spaced script ends at a non-letter; Thai and CJK units run on into the next word.
_SCALE = re.compile(
    rf"[\s\u00a0-]*((?:{_alternation([w for w in _SCALE_OF if not _NO_SPACE_SCRIPTS.search(w)])})"
    rf"(?![^\W\d_])|(?:{_alternation([w for w in _SCALE_OF if _NO_SPACE_SCRIPTS.search(w)])}))",
    re.I,
)
_NUMBER = re.compile(
    # Not a clock time, a date's part or a path's ("10:30", "2026-12-04", "1/2").
    r"(?<![\d.,:/])(?<!\d-)(\d{1,3}(?:[\u00a0\u202f ]\d{3})+(?![\d.,]\d)(?:[.,]\d+)?|\d+(?:[.,]\d+)*)"
    r"(?!\d|[:/]\d|-\d)"
)
_CURRENCY_BEFORE = re.compile(r"(?:US\$|[ACR]\$|NZ\$|HK\$|S\$|[$€£¥₹₩₺₫฿₪₦₱]|\bRs\.?|\bK?Sh|\bRp)\s?$", re.I)
_CURRENCY_AFTER = re.compile(
    r"\s?(?:[$€£¥₹₩₺₫฿₪₦₱]|euros?\b|dollars?\b|yen\b|won\b|baht\b|pounds?\b|rupees?\b|kronor\b|"
    r"kroner\b|kr\b|zł|złotych\b|forint|lira\b|lei\b|원|円|元|美元|บาท)",
    re.I,
)
_PERCENT_AFTER = re.compile(
    r"\s?(?:%|percent\b|per\s?cent\b|pct\b|procent|prozent|por\s+ciento|pour\s+cent|per\s+cento|"
    r"prosent|proc\.|százalék|퍼센트|パーセント)",
    re.I,
)
_PERCENT_BEFORE = re.compile(r"(?:%|yüzde\s)$", re.I)


def _readings(token: str) -> list[float]:
    """Values a written number may have: both, when a single separator may be either mark.  No
    reading for a run of more than 18 digits: an identifier or a code, not an amount (and no float)."""
    if sum(c.isdigit() for c in token) > 18:
        return []
    plain = re.sub(r"[\u00a0\u202f ]", "", token)
    if plain != token:  # grouped by spaces: the only reading
        return [float(plain.replace(",", "."))]
    seps = [c for c in plain if c in ".,"]
    if not seps:
        return [float(plain)]
    groups = re.split(r"[.,]", plain)
    if len(set(seps)) == 2:  # "1.234,5" or "1,234.5": the last mark is the decimal one
        last = plain.rfind(seps[-1])
        return [float(re.sub(r"[.,]", "", plain[:last]) + "." + plain[last + 1 :])]
    if len(seps) > 1:  # "1.234.567": thousands marks (or not a number at all)
        return [float("".join(groups))] if all(len(g) == 3 for g in groups[1:]) else []
    if len(groups[1]) == 3 and len(groups[0]) <= 3:
        return [float("".join(groups)), float(plain.replace(",", "."))]
    return [float(plain.replace(",", "."))]


def _scale_after(text: str, pos: int) -> tuple[float, int]:
    """The product of the scale words from ``pos`` on (1.0 if none), and where they end."""
    glued = re.match(r"(bn|mn|[kmbt])(?![^\W\d_])", text[pos : pos + 3], re.I)
    if glued:
        word = glued.group(1).lower()
        return _SCALE_OF.get(word, _GLUED.get(word, 1.0)), pos + glued.end()
    factor, end = 1.0, pos
    # At most three scale words in a row ("mil millones", "nghìn tỷ"): a longer chain is no amount
    # (and "billion billion ..." would overflow).
    for _ in range(3):
        m = _SCALE.match(text, end)
        if m is None:
            break
        factor *= _SCALE_OF[m.group(1).lower()]
        end = m.end()
    return factor, end


def _anchor(kind: str, value: float) -> str:
    return f"{kind}:{value:.3g}"


_LARGEST = 1e16  # no amount a report names is larger; beyond it a chain of units, not money


def quantity_anchors(text: str) -> frozenset[str]:
    """The anchors (module docstring) of the amounts in ``text``."""
    out: set[str] = set()
    pos = 0
    while m := _NUMBER.search(text, pos):
        pos = m.end()
        values = _readings(m.group(1))
        factor, end = _scale_after(text, m.end())  # end > m.end(): a scale word was read
        # "1조1천억": a myriad unit followed at once by another amount adds to it.
        while factor > 1 and text[end - 1 : end] in _MYRIAD and (nxt := _NUMBER.match(text, end)):
            more, after = _scale_after(text, nxt.end())  # "1万7000": units, more == 1.0
            values = [v * factor + w * more for v in values for w in _readings(nxt.group(1))]
            factor, end = 1.0, after
        before = text[max(0, m.start() - 6) : m.start()]
        pos = max(pos, end)
        if _PERCENT_AFTER.match(text, end) or _PERCENT_BEFORE.search(before):
            out.update(_anchor("p", v) for v in values)
        elif end > m.end() or _CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.match(text, end):
            out.update(_anchor("a", v * factor) for v in values if v * factor < _LARGEST)
        else:
            out.update(_anchor("n", v) for v in values if v >= 10 and v == int(v) and not 1900 <= v <= 2100)
    return frozenset(out)
