"""Entity linking to the instrument universe, ambiguity included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapters.text.entities import DEFAULT_UNIVERSE, EntityLinker, Universe
from adapters.text.errors import UniverseError

LARGEST = re.findall(
    r"\S+",
    "AAPL MSFT NVDA AMZN GOOGL META BRK.B AVGO TSLA LLY JPM V UNH XOM MA JNJ PG HD COST ABBV WMT NFLX "
    "CRM BAC ORCL CVX MRK KO AMD PEP ADBE TMO LIN CSCO ACN MCD ABT WFC PM GE IBM TXN QCOM DHR INTU VZ "
    "AMGN CAT ISRG NOW PFE DIS GS NEE CMCSA SPGI RTX UNP T AXP LOW HON UBER BKNG PGR AMAT ELV BLK SYK "
    "MS TJX COP C VRTX BSX MDT SCHW ADP LMT REGN PLD MMC CB ADI BMY GILD MU SBUX PANW LRCX KLAC DE BA "
    "INTC ANET MDLZ CI SO MO DUK",
)


def test_universe_covers_the_largest_constituents_and_index_futures(universe: Universe) -> None:
    assert len(universe) >= 500
    missing = [s for s in LARGEST if s not in universe]
    assert not missing
    for fut in ("ES", "NQ", "YM", "RTY"):
        assert universe.instruments[fut].kind == "future"


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("Verizon agrees to buy Vodafone's stake in Verizon Wireless", ("VZ", "VOD")),
        ("Buy $AAPL and $brk.b today", ("AAPL", "BRK.B")),
        ("Apple (AAPL) rises as (IT) budgets grow", ("AAPL",)),
        ("Gartner (IT) cuts outlook", ("IT",)),
        ("NYSE: IT beats estimates", ("IT",)),
        ("ICE to buy NYSE Euronext", ("ICE",)),
        ("ice cream sales at the ups store", ()),
        ("apple pie prices", ()),
        ("Morgan Stanley upgrades Exxon Mobil", ("MS", "XOM")),
        ("J.P. Morgan raises Apple's price target", ("JPM", "AAPL")),
        ("Wall Street Journal reports Boeing order", ("BA",)),
        ("ISM manufacturing index rises to 55.7", ("ES",)),
        ("S&P 500 futures climb", ("ES",)),
        ("Johnson & Johnson recalls baby powder", ("JNJ",)),
    ],
)
def test_links(linker: EntityLinker, text: str, symbols: tuple[str, ...]) -> None:
    assert linker.link(text).symbols == symbols


@pytest.mark.parametrize(
    ("text", "surface", "candidates"),
    [
        ("Morgan said profits rose", "Morgan", {"JPM", "MS"}),
        ("Johnson said the plant would close", "Johnson", {"JNJ", "JCI"}),
        ("S&P cuts the rating", "S&P", {"ES", "SPGI"}),
        ("American shares jump", "American", {"AAL", "AXP", "AIG", "AEP", "AMT", "AWK"}),
    ],
)
def test_ambiguous_names_are_reported_not_guessed(
    linker: EntityLinker, text: str, surface: str, candidates: set[str]
) -> None:
    r = linker.link(text)
    assert r.symbols == ()
    assert r.ambiguous == ((surface, tuple(sorted(candidates, key=list(r.ambiguous[0][1]).index))),)
    assert set(r.ambiguous[0][1]) == candidates


def test_ambiguity_resolved_by_a_longer_mention(linker: EntityLinker) -> None:
    r = linker.link("Morgan Stanley results: Morgan said trading was strong")
    assert r.symbols == ("MS",) and r.ambiguous == ()


def test_unknown_cashtags_and_provided_symbols(linker: EntityLinker) -> None:
    r = linker.link("$ZQXR to soar, also $5bn deal", provided=("AAPL", "NOPE"))
    assert r.unknown_cashtags == ("$ZQXR",)
    assert r.symbols == ("AAPL",)
    assert r.unknown_provided == ("NOPE",)
    assert [m.how for m in r.mentions] == ["provided"]


def test_user_files_extend_the_universe(tmp_path: Path) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps({"instruments": [{"symbol": "ACME", "name": "Acme Corp", "aliases": ["Acme"]}]})
    )
    u = Universe.load(DEFAULT_UNIVERSE, extra)
    assert EntityLinker(u).link("Acme beats estimates").symbols == ("ACME",)


def test_malformed_universe_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"instruments": [{"name": "no symbol"}]}))
    with pytest.raises(UniverseError, match=r"bad.json: instruments\[0\]"):
        Universe.load(bad)
    amb = tmp_path / "amb.json"
    amb.write_text(json.dumps({"instruments": [], "ambiguous": {"Foo": ["X", "Y"]}}))
    with pytest.raises(UniverseError, match="unknown symbol"):
        Universe.load(amb)
