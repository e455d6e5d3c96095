"""Entity linking: news text to instruments of the universe, never guessing.

An instrument is found by, in order of trust:

* a cashtag (``$AAPL``, ``$BRK.B``, ``$ES_F``);
* an exchange-qualified or parenthesised ticker (``NYSE: XOM``, ``(MSFT)``);
  common-word tickers (``(IT)``, ``(ALL)``) only with an exchange prefix;
* a company name or alias (``Exxon Mobil``, ``iPhone maker``), longest match
  first; all-caps aliases (``IBM``, ``ICE``) must match case exactly and a
  capitalised single-word alias (``Apple``) must be capitalised in the text;
* a macro topic (``ISM``, ``Federal Reserve``) that moves an index future.

An alias shared by several instruments (``Morgan``: JPM or MS) is *ambiguous*:
it is reported with its candidates and linked to none of them.

The universe file is JSON: ``{"instruments": [{"symbol", "name", "kind",
"aliases": [...], "cashtags"?: [...]}], "topics": [{"phrases", "symbols"}],
"ambiguous": {alias: [symbols]}, "stop_phrases"?: [...]}``; the default one ships as package
data, ``adapters/text/data/universe.json`` (:data:`DEFAULT_UNIVERSE`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.text.errors import UniverseError

__all__ = ["DEFAULT_UNIVERSE", "EntityLinker", "Instrument", "LinkResult", "Mention", "Universe"]

# Package data (adapters/text/data/README.md), found next to this module wherever it is installed.
DEFAULT_UNIVERSE = Path(__file__).resolve().parent / "data" / "universe.json"

# Phrases that contain an alias but name something else (mostly news outlets).
_DEFAULT_STOP = (
    "Wall Street Journal",
    "Dow Jones Newswires",
    "Dow Jones & Co",
    "Morgan Stanley Capital International",
)
# Tickers that are also words or abbreviations: only an exchange prefix or cashtag links them.
_WORD_TICKERS = frozenset(
    re.findall(
        r"\S+",
        "A ALL ARE BE BIG C CAT D DAY DOC DOW ES F GEN GL HAS IT J K KEY L LOW MA MAS MO NOW O ON "
        "OR PAYC PEG POOL RF SO T TECH V WELL WM AI CEO CFO GDP CPI US USA EU UK IPO ETF",
    )
)

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[&'.\-!][A-Za-z0-9]+)*\.?|&")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:[._][A-Za-z]{1,2})?)(?![\w])")
_EXCHANGE_TICKER = re.compile(
    r"\b(?:NYSE|NASDAQ|Nasdaq|NYSE\s?Arca|NYSE\s?American|AMEX|CME|Cboe)\s*:\s*"
    r"([A-Z]{1,5}(?:\.[A-Z])?)\b"
)
_PAREN_TICKER = re.compile(r"\(([A-Z]{1,5}(?:\.[A-Z])?)\)")


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    cashtags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mention:
    """One link: ``how`` is ``cashtag``, ``ticker``, ``name``, ``topic`` or ``provided``."""

    symbol: str
    surface: str
    how: str


@dataclass(frozen=True, slots=True)
class LinkResult:
    """Links found in one text.

    ``symbols`` are unique, in order of first mention; ``ambiguous`` lists
    ``(surface, candidates)`` that were not linked; ``unknown_cashtags`` and
    ``unknown_provided`` name symbols outside the universe.
    """

    symbols: tuple[str, ...]
    mentions: tuple[Mention, ...]
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...] = ()
    unknown_cashtags: tuple[str, ...] = ()
    unknown_provided: tuple[str, ...] = ()

    @property
    def instrument_symbols(self) -> tuple[str, ...]:
        """Symbols linked by something other than a macro topic."""
        return tuple(dict.fromkeys(m.symbol for m in self.mentions if m.how != "topic"))


def _tok_norm(tok: str) -> str:
    t = tok.replace("\u2019", "'").casefold().rstrip(".")
    if t.endswith("'s"):
        t = t[:-2]
    return t


def _tokens(text: str) -> list[tuple[str, str]]:
    """(original, normalized) tokens of ``text``."""
    return [
        (m.group(0).rstrip("."), _tok_norm(m.group(0))) for m in _TOKEN.finditer(text.replace("\u2019", "'"))
    ]


@dataclass(frozen=True, slots=True)
class _Alias:
    tokens: tuple[str, ...]  # normalized
    original: tuple[str, ...]  # as written in the universe
    targets: tuple[str, ...]  # one symbol, several when ambiguous, none for a stop phrase
    how: str


class Universe:
    """The instruments, their aliases and the topics, indexed for linking."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        topics: Iterable[tuple[tuple[str, ...], tuple[str, ...]]] = (),
        ambiguous: Mapping[str, Iterable[str]] | None = None,
        stop_phrases: Iterable[str] = _DEFAULT_STOP,
    ) -> None:
        self.instruments: dict[str, Instrument] = {}
        for inst in instruments:
            if inst.symbol in self.instruments:
                raise UniverseError(f"duplicate symbol {inst.symbol!r}")
            self.instruments[inst.symbol] = inst
        self.cashtags: dict[str, str] = {}
        for inst in self.instruments.values():
            for tag in (inst.symbol, *inst.cashtags):
                self.cashtags.setdefault(tag.upper().replace("_", "."), inst.symbol)
                self.cashtags.setdefault(tag.upper(), inst.symbol)
        targets: dict[tuple[str, ...], dict[str, Any]] = {}

        def add(phrase: str, syms: Iterable[str], how: str) -> None:
            toks = _tokens(phrase)
            if not toks:
                return
            key = tuple(n for _, n in toks)
            entry = targets.setdefault(key, {"orig": tuple(o for o, _ in toks), "syms": [], "how": how})
            for s in syms:
                if s not in entry["syms"]:
                    entry["syms"].append(s)
            if how != "topic":
                entry["how"] = how

        for inst in self.instruments.values():
            for alias in inst.aliases:
                add(alias, [inst.symbol], "name")
        for phrases, syms in topics:
            for p in phrases:
                add(p, syms, "topic")
        for alias, amb_syms in (ambiguous or {}).items():
            cands = list(amb_syms)
            for sym in cands:
                if sym not in self.instruments:
                    raise UniverseError(f"ambiguous alias {alias!r} names unknown symbol {sym!r}")
            add(alias, cands, "name")
        for p in stop_phrases:
            toks = tuple(n for _, n in _tokens(p))
            targets[toks] = {"orig": tuple(o for o, _ in _tokens(p)), "syms": [], "how": "stop"}
        self._index: dict[str, list[_Alias]] = {}
        for key, e in targets.items():
            a = _Alias(key, e["orig"], tuple(e["syms"]), e["how"])
            self._index.setdefault(key[0], []).append(a)
        for lst in self._index.values():
            lst.sort(key=lambda a: -len(a.tokens))

    def __len__(self) -> int:
        return len(self.instruments)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.instruments

    @classmethod
    def load(cls, path: str | Path = DEFAULT_UNIVERSE, *extra: str | Path) -> Universe:
        """Load a universe file, merged with ``extra`` files (later files add or override)."""
        instruments: dict[str, Instrument] = {}
        topics: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        ambiguous: dict[str, list[str]] = {}
        stops: list[str] = list(_DEFAULT_STOP)
        for p in (path, *extra):
            p = Path(p)
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise UniverseError(f"{p}: cannot read universe: {exc}") from exc
            for i, row in enumerate(doc.get("instruments", [])):
                try:
                    inst = Instrument(
                        symbol=str(row["symbol"]),
                        name=str(row.get("name", row["symbol"])),
                        kind=str(row.get("kind", "equity")),
                        aliases=tuple(str(a) for a in row.get("aliases", ())),
                        cashtags=tuple(str(a) for a in row.get("cashtags", ())),
                    )
                except (KeyError, TypeError) as exc:
                    raise UniverseError(f"{p}: instruments[{i}] is malformed: {exc!r}") from exc
                instruments[inst.symbol] = inst
            for i, t in enumerate(doc.get("topics", [])):
                try:
                    topics.append((tuple(t["phrases"]), tuple(t["symbols"])))
                except (KeyError, TypeError) as exc:
                    raise UniverseError(f"{p}: topics[{i}] is malformed: {exc!r}") from exc
            for k, v in doc.get("ambiguous", {}).items():
                ambiguous[str(k)] = [str(s) for s in v]
            stops.extend(str(s) for s in doc.get("stop_phrases", ()))
        return cls(instruments.values(), topics, ambiguous, stops)

    def match_aliases(self, text: str) -> list[tuple[str, tuple[str, ...], str]]:
        """All alias matches in ``text`` as ``(surface, targets, how)``, longest first, left to right."""
        toks = _tokens(text)
        out: list[tuple[str, tuple[str, ...], str]] = []
        i = 0
        while i < len(toks):
            cands = self._index.get(toks[i][1])
            hit: _Alias | None = None
            if cands:
                for a in cands:
                    n = len(a.tokens)
                    if i + n > len(toks):
                        continue
                    if all(toks[i + j][1] == a.tokens[j] for j in range(n)) and _case_ok(
                        a, [o for o, _ in toks[i : i + n]]
                    ):
                        hit = a
                        break
            if hit is None:
                i += 1
                continue
            out.append((" ".join(o for o, _ in toks[i : i + len(hit.tokens)]), hit.targets, hit.how))
            i += len(hit.tokens)
        return out


def _case_ok(alias: _Alias, surface: list[str]) -> bool:
    for j, (orig, text) in enumerate(zip(alias.original, surface, strict=True)):
        letters = [c for c in orig if c.isalpha()]
        if len(letters) >= 2 and all(c.isupper() for c in letters):
            # An acronym alias must be written as an acronym ("ICE", not "ice").
            if [c for c in text if c.isalpha()] != letters:
                return False
        elif j == 0 and orig[:1].isupper() and not text[:1].isupper() and not text[:1].isdigit():
            return False
    return True


class EntityLinker:
    """Links text to the instruments of a :class:`Universe`."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe

    def link(self, text: str, provided: Iterable[str] = ()) -> LinkResult:
        """Link ``text`` (normalized) and validate the source's ``provided`` symbols."""
        u = self.universe
        mentions: list[Mention] = []
        unknown_tags: list[str] = []
        unknown_prov: list[str] = []
        ambiguous: list[tuple[str, tuple[str, ...]]] = []
        for m in _CASHTAG.finditer(text):
            tag = m.group(1).upper()
            sym = u.cashtags.get(tag) or u.cashtags.get(tag.replace("_", "."))
            if sym is not None:
                mentions.append(Mention(sym, m.group(0), "cashtag"))
            else:
                unknown_tags.append("$" + tag)
        for m in _EXCHANGE_TICKER.finditer(text):
            sym = m.group(1)
            if sym in u:
                mentions.append(Mention(sym, m.group(0), "ticker"))
        for m in _PAREN_TICKER.finditer(text):
            sym = m.group(1)
            if sym in u and sym not in _WORD_TICKERS:
                mentions.append(Mention(sym, m.group(0), "ticker"))
        for surface, targets, how in u.match_aliases(text):
            if how == "stop" or not targets:
                continue
            if len(targets) > 1 and how != "topic":
                ambiguous.append((surface, targets))
                continue
            for sym in targets:
                mentions.append(Mention(sym, surface, how))
        for s in provided:
            s2 = s.strip().upper().lstrip("$")
            if s2 in u:
                mentions.append(Mention(s2, s, "provided"))
            else:
                unknown_prov.append(s)
        symbols = tuple(dict.fromkeys(m.symbol for m in mentions))
        # An ambiguous surface resolved elsewhere in the text (e.g. "Morgan Stanley ...
        # Morgan said") is no longer ambiguous.
        amb = tuple((s, c) for s, c in dict.fromkeys(ambiguous) if not any(x in symbols for x in c))
        return LinkResult(
            symbols=symbols,
            mentions=tuple(mentions),
            ambiguous=amb,
            unknown_cashtags=tuple(dict.fromkeys(unknown_tags)),
            unknown_provided=tuple(dict.fromkeys(unknown_prov)),
        )
