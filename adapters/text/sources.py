"""Source identity: who published an item, which newsroom that is, and whose copy it carries.

The registry (package data ``adapters/text/data/sources.json``) lists outlets with the names,
domains and tickers they are known by, their ownership group and the syndication markers that
show another outlet is carrying their copy.  :meth:`SourceRegistry.resolve` maps what a feed says
(``Reuters``, ``reuters.com``, ``https://www.reuters.com/markets/...``, ``RTRS``, ``dowjones``,
``apnews``, ``AP``) to one outlet id; unknown names stay themselves (lower-cased), unknown web
hosts become ``web:<host>``.  Platforms of anonymous accounts are channels: ``twitter/reuters``
is an account on twitter, never Reuters, and ``twitter.com/reuters`` is the same account.

Independence for corroboration is by *origin*: the group of the outlet (WSJ, MarketWatch and
Barron's are Dow Jones), or, when the text carries another outlet's syndication marker (a
``(Reuters) -`` dateline inside Yahoo's copy), that outlet's group -- a carried wire story adds
no second witness.  :meth:`SourceRegistry.origin` answers it.

Source basis: in a live node an item's source comes from the channel it arrived on
(``channel``); a replay file or an open topic only *declares* it (``declared``).  Items keep
what they claimed in ``NewsItem.declared_source`` (see :func:`assign_channel`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

from engine.messages import NewsItem

__all__ = [
    "DEFAULT_REGISTRY",
    "OPEN_PREFIX",
    "Outlet",
    "SourceRegistry",
    "assign_channel",
]

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "data" / "sources.json"
OPEN_PREFIX = "open:"
"""Source id prefix of items from a channel that vouches for nobody (``open:<topic>``)."""

_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?::\d+)?(?:/.*)?$")


@dataclass(frozen=True, slots=True)
class Outlet:
    """One registered outlet: ``id``, prior ``credibility`` in [0, 1], ownership ``group``."""

    id: str
    credibility: float
    group: str
    syndication: tuple[re.Pattern[str], ...] = field(default=())


_DESK_TEXT = (
    "news business markets market money finance financial economy economics breakingviews wire "
    "newswire newswires agency service online digital edition english international global live "
    "tv radio world europe asia uk us usa america americas africa india australia canada japan china "
    "emea apac "
    # "news" and "economy" in the languages of the registry's outlets ("Yle Uutiset", "NOS Nieuws")
    "uutiset nyheter nyheder nachrichten noticias noticies actualites nieuws wiadomosci zpravy spravy "
    "hirek haberler novosti notizie stiri uudised zinas naujienos ekonomi ekonomia economia wirtschaft "
    "talous economie"
)
_DESK_WORDS = frozenset(_DESK_TEXT.split())
"""Words an outlet's desk, edition or service adds to its name (``resolve`` drops them from the end)."""


def _squash(name: str) -> str:
    # Accents fold to their base letters first ("RTÉ" is "rte", "Expansión" "expansion"): dropping
    # every non-ASCII letter made "RTÉ News" "rtnews", which named nobody.  Letters of other
    # scripts stay: dropping them squashed "日本経済新聞" and every name in Japanese, Korean, Cyrillic
    # or Arabic to "", so no outlet could be known by its own name.
    # Turkish dotless i (U+0131) has no decomposition: "Anadolu Ajans\u0131" is "anadolu ajansi" (heldout33).
    decomposed = unicodedata.normalize("NFKD", name.casefold().replace("\u0131", "i"))
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def _canon(name: str) -> str:
    return " ".join(name.strip().casefold().split())


class SourceRegistry:
    """Outlets, platforms and their names (see module docstring).  Immutable once built."""

    def __init__(self, doc: Mapping[str, object]) -> None:
        self.outlets: dict[str, Outlet] = {}
        self._names: dict[str, str] = {}  # squashed name -> outlet id
        self._tickers: dict[str, str] = {}  # upper-case ticker -> outlet id
        self._domains: dict[str, str] = {}  # host -> outlet id or platform
        self.platforms: dict[str, float] = {}
        # group -> the groups it may be (an outlet known by a name several newsrooms share)
        self._may_be: dict[str, frozenset[str]] = {}
        for o in _list(doc.get("outlets")):
            if not isinstance(o, Mapping):
                raise ValueError(f"registry outlet must be an object, got {o!r}")
            oid = _canon(str(o["id"]))
            cred = float(o.get("credibility", 0.5))
            if not 0.0 <= cred <= 1.0:
                raise ValueError(f"credibility of outlet {oid!r} must be in [0, 1], got {cred}")
            pats = tuple(re.compile(str(p), re.I) for p in _list(o.get("syndication")))
            self.outlets[oid] = Outlet(oid, cred, _canon(str(o.get("group") or oid)), pats)
            may_be = frozenset(_canon(str(g)) for g in _list(o.get("may_be")))
            if may_be:
                self._may_be[self.outlets[oid].group] = may_be
            self._names[_squash(oid)] = oid
            for n in _list(o.get("names")):
                self._names.setdefault(_squash(str(n)), oid)
            for t in _list(o.get("tickers")):
                self._tickers[str(t).upper()] = oid
            for d in _list(o.get("domains")):
                self._domains[str(d).lower()] = oid
        plat = doc.get("platforms", {})
        if isinstance(plat, Mapping):
            self.platforms = {_canon(str(k)): float(v) for k, v in plat.items()}
        pd = doc.get("platform_domains", {})
        if isinstance(pd, Mapping):
            for k, v in pd.items():
                self._domains[str(k).lower()] = "platform:" + _canon(str(v))
        # Legacy files ({"priors": {...}, "groups": {...}}): each prior is an outlet of its own.
        groups = doc.get("groups", {})
        legacy_groups = (
            {_canon(str(k)): _canon(str(v)) for k, v in groups.items()} if isinstance(groups, Mapping) else {}
        )
        priors = doc.get("priors", {})
        if isinstance(priors, Mapping):
            for k, v in priors.items():
                oid = _canon(str(k))
                if oid in self.platforms or oid in self.outlets:
                    continue
                self.outlets[oid] = Outlet(oid, float(v), legacy_groups.get(oid, oid))
                self._names.setdefault(_squash(oid), oid)
        self._markers = tuple((o.id, p) for o in self.outlets.values() for p in o.syndication)

    @classmethod
    def load(cls, path: str | Path = "") -> SourceRegistry:
        """Read a registry file (empty: the bundled one)."""
        p = Path(path) if path else DEFAULT_REGISTRY
        return cls(json.loads(p.read_text(encoding="utf-8")))

    # -- identity ---------------------------------------------------------------------------

    def resolve(self, source: str) -> str:
        """The canonical id of ``source`` (see module docstring); ``""`` stays ``""``."""
        raw = source.strip()
        s = _canon(raw)
        if not s:
            return ""
        if s.startswith(OPEN_PREFIX):
            return s
        if s in self.outlets or s in self.platforms:
            return s
        if raw.isupper() and raw in self._tickers:
            return self._tickers[raw]
        web = self._web(s)
        if web is not None:
            return web
        if "/" in s:
            parts = [p for p in s.split("/") if p]
            if parts and parts[0] in self.platforms:
                return "/".join(parts)  # an account on a platform, whatever it calls itself
            if parts:
                inner = self.resolve(parts[-1])
                if inner in self.outlets:
                    return inner
            return s
        sq = _squash(s)
        if sq in self._names:
            return self._names[sq]
        if raw.upper() in self._tickers and len(raw) <= 5:
            return self._tickers[raw.upper()]
        # A known outlet with a desk, edition or service word ("AFP News", "BBC Business",
        # "Politico Europe", "Reuters Markets"): the outlet.  Only trailing words are dropped,
        # so a distinct title built on another's name ("Business Insider") is left alone.
        words = s.split()
        # Two names of one outlet in a row ("Sveriges Radio Ekot": the broadcaster and its news
        # programme, heldout34): that outlet.  Names of two outlets stay unknown.
        for i in range(1, len(words)):
            head = self._names.get(_squash(" ".join(words[:i])))
            if head is not None and head == self._names.get(_squash(" ".join(words[i:]))):
                return head
        while len(words) > 1 and _squash(words[-1]) in _DESK_WORDS:
            words.pop()
            hit = self._names.get(_squash(" ".join(words)))
            if hit is not None:
                return hit
        return s

    def _web(self, s: str) -> str | None:
        if "://" in s:
            parts = urlsplit(s)
            host, path = (parts.hostname or ""), parts.path
        elif _HOST.match(s) and " " not in s:
            host, _, path = s.partition("/")
            host = host.split(":")[0]
            path = "/" + path
        else:
            return None
        host = host.lower().removeprefix("www.").removeprefix("m.").removeprefix("feeds.")
        if not host:
            return None
        labels = host.split(".")
        for i in range(len(labels) - 1):
            hit = self._domains.get(".".join(labels[i:]))
            if hit is None:
                continue
            if hit.startswith("platform:"):
                plat = hit.removeprefix("platform:")
                acct = next((p for p in path.split("/") if p), "")
                return f"{plat}/{acct}" if acct else plat
            return hit
        return f"web:{host}"

    def credibility(self, source_id: str, default: float) -> float:
        """Prior credibility of a resolved id; platform accounts get their platform's prior."""
        o = self.outlets.get(source_id)
        if o is not None:
            return o.credibility
        head = source_id.split("/")[0]
        if head in self.platforms:
            return self.platforms[head]
        return default

    def group(self, source_id: str) -> str:
        """The ownership group (newsroom) of a resolved id; itself when not registered."""
        o = self.outlets.get(source_id)
        return o.group if o is not None else source_id

    def carried(self, text: str) -> str:
        """The outlet whose syndication marker ``text`` carries (first found), else ``""``."""
        for oid, pat in self._markers:
            if pat.search(text):
                return oid
        return ""

    def origin(self, source_id: str, text: str) -> str:
        """The independent origin of an item: the group of the outlet whose copy it carries when
        that is another group's, else the group of its own source (module docstring)."""
        own = self.group(source_id)
        wire = self.carried(text)
        if wire:
            g = self.group(wire)
            if g != own:
                return g
        return own

    def independent(self, origin: str, others: set[str] | frozenset[str]) -> bool:
        """Whether ``origin`` is a newsroom apart from every origin in ``others``.  An outlet known
        by a name several newsrooms share ("The Business Times") may be any of the groups its
        registry entry lists (``may_be``): it is apart only from origins that cannot be one of
        them -- nor, when that origin is a shared name too ("Herald" beside "The Herald"), be any
        group it may be."""
        mine = self._possible(origin)
        return not any(mine & self._possible(g) for g in others)

    def _possible(self, group: str) -> frozenset[str]:
        """The newsrooms an origin may be: itself and, for a shared name, its ``may_be``."""
        return self._may_be.get(group, frozenset()) | {group}

    def priors(self) -> dict[str, float]:
        """``{id: prior}`` of every outlet and platform."""
        return {**{k: o.credibility for k, o in self.outlets.items()}, **self.platforms}

    def groups(self) -> dict[str, str]:
        """``{id: group}`` of every outlet whose group is not itself."""
        return {k: o.group for k, o in self.outlets.items() if o.group != k}


def _list(x: object) -> list[object]:
    if isinstance(x, list):
        return list(x)
    return []


def assign_channel(item: NewsItem, channel: str, channels: Mapping[str, str]) -> NewsItem:
    """The item as a live node must see it: its source from the channel it arrived on.

    ``channels`` maps a channel (a topic, or a credential's name; a key with ``*`` is a
    pattern, tried in order after the exact names) to a source id, or to
    ``"declared"`` for a vetted aggregator whose items' own ``source`` fields are trusted
    (then marked declared).  A channel not in the table vouches for nobody: the source becomes
    ``open:<channel>`` (the unknown-source prior).  What the item claimed is kept in
    ``declared_source`` either way.
    """
    mapped = channels.get(channel)
    if mapped is None:
        mapped = next((v for k, v in channels.items() if "*" in k and fnmatchcase(channel, k)), None)
    if mapped == "declared":
        return _with_source(item, item.source, "declared")
    src = mapped if mapped else OPEN_PREFIX + channel
    return _with_source(item, src, "channel")


def _with_source(item: NewsItem, source: str, basis: str) -> NewsItem:
    import msgspec

    declared = item.declared_source or item.source
    return msgspec.structs.replace(item, source=source, declared_source=declared, source_basis=basis)
