"""Amounts read alike across languages (adapters.text.quantities), and the claims they join."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.text.checker import Analyzer, SanityCore
from adapters.text.quantities import quantity_anchors
from tests.narrative.conftest import news, run_items


@pytest.mark.parametrize(
    ("english", "other"),
    [
        ("to build US$2.4 billion plant", "斥資24億美元 高雄建先進封裝廠"),
        ("plans 12bn-baht biorefinery", "ทุ่ม 1.2 หมื่นล้านบาทสร้างไบโอรีไฟเนอรี"),
        ("to buy German grinder maker for 40 bil. yen", "独研削盤メーカーを400億円で買収"),
        ("wins 1.1 trillion won order", "거제조선, 1조1천억원 규모 수주"),
        ("LNG carriers worth 1.3 trillion won", "LNG선 4척 1조3000억원 수주"),
        ("to spend $1.4 billion in Atacama", "invertirá US$ 1.400 millones en Atacama"),
        ("will spend 40 billion forints", "40 milliárd forintból új üzemet épít"),
        ("will cost 150 million euros", "Yat\u0131r\u0131m tutar\u0131 150 milyon euro."),
        ("Sh32 billion factory", "plans Sh32bn plant"),
        ("a hospital order worth SEK 3.1 billion", "sjukhusorder för 3,1 miljarder"),
        ("raises tariffs by 35%", "tarifelere yüzde 35 zam"),
        ("to cut 1,200 jobs", "1.200 Stellen fallen weg"),
        ("to hire 500 workers", "500 embert vesz fel"),
        ("Rs 500 crore plant", "a 5 billion rupee plant"),
    ],
)
def test_one_amount_reads_alike_in_two_languages(english: str, other: str) -> None:
    assert quantity_anchors(english) & quantity_anchors(other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on June 22, 2026 at 10:30", {"n:22"}),  # not the year, not the clock
        ("dated 2026-12-04, item 1/2", set()),  # parts of dates and fractions are not amounts
        ("cut 9 jobs", set()),  # a whole number under 10 says too little
        ("a $90m plant", {"a:9e+07"}),
        ("90m deep", {"a:9e+07"}),  # glued letters read as a scale (metres are rare in news leads)
        ("90 m deep", {"n:90"}),  # a spaced letter does not
        ("US$ 1.400 millones", {"a:1.4e+09", "a:1.4e+06"}),  # the mark may be either: both readings
        ("1.234,5 Mio.", {"a:1.23e+09"}),
        ("1 200 emplois", {"n:1.2e+03"}),
        ("yüzde 35, %12", {"p:35", "p:12"}),
        ("1조1천억원", {"a:1.1e+12"}),
    ],
)
def test_anchors_of_a_text(text: str, expected: set[str]) -> None:
    assert quantity_anchors(text) == expected


@given(st.text(max_size=200))
def test_any_text_gives_anchors_without_raising(text: str) -> None:
    for a in quantity_anchors(text):
        kind, _, value = a.partition(":")
        assert kind in {"a", "p", "n"} and float(value) >= 0


KO = ("거제조선, LNG 운반선 4척 수주", "거제조선이 1조1천억원 규모의 LNG 운반선 4척을 수주했다.")
EN = ("Geoje Shipbuilding wins four LNG carriers", "The order is worth 1.1 trillion won, the shipyard said.")


def _story(ko_source: str = "Yonhap", en_source: str = "Reuters") -> list:  # type: ignore[type-arg]
    return [
        news(KO[0], body=KO[1], source=ko_source, symbols=("AAPL",), t=0, id="ko"),
        news(EN[0], body=EN[1], source=en_source, symbols=("AAPL",), t=600, id="en"),
    ]


@pytest.mark.parametrize(("mode", "accepted"), [("off", False), ("amounts", True), ("numbers", True)])
def test_a_story_in_korean_and_english_corroborates_by_its_amount(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore], mode: str, accepted: bool
) -> None:
    out = run_items(lexicon_analyzer, make_core(anchor_match=mode), _story())
    assert (out["en"].verdict.verdict == "accepted") is accepted
    assert (out["ko"].verdict.verdict == "accepted") is accepted


def test_one_newsroom_in_two_languages_is_still_one_source(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """The amount joins the claim; it does not make a second newsroom."""
    out = run_items(lexicon_analyzer, make_core(), _story("Reuters", "Reuters"))
    assert out["en"].verdict.verdict != "accepted"


def test_different_amounts_on_one_symbol_stay_apart(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    items = [
        news(KO[0], body=KO[1], source="Yonhap", symbols=("AAPL",), t=0, id="ko"),
        news(
            "Geoje Shipbuilding wins two tankers",
            body="The order is worth 300 billion won.",
            source="Reuters",
            symbols=("AAPL",),
            t=600,
            id="en",
        ),
    ]
    out = run_items(lexicon_analyzer, make_core(), items)
    assert out["en"].verdict.verdict != "accepted"


@pytest.mark.parametrize(("mode", "accepted"), [("amounts", False), ("numbers", True)])
def test_a_whole_number_joins_only_across_languages(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore], mode: str, accepted: bool
) -> None:
    hu = news("Új gyár épül", body="A cég 500 embert vesz fel.", source="MTI", symbols=("AAPL",), id="hu")
    en = news("Plant to be built", body="It will hire 500 workers.", source="Reuters", symbols=("AAPL",),
              t=600, id="en")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(anchor_match=mode), [hu, en])
    assert (out["en"].verdict.verdict == "accepted") is accepted
    # Two English reports that share only a head count are two claims, whatever the mode.
    a = news("Plant to be built", body="It will hire 500 workers.", source="Reuters", symbols=("MSFT",),
             id="a")  # fmt: skip
    b = news("Office lease signed", body="The lease covers 500 desks.", source="Bloomberg",
             symbols=("MSFT",), t=600, id="b")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(anchor_match="numbers"), [a, b])
    assert out["b"].verdict.verdict != "accepted"


def test_an_account_that_meets_two_claims_makes_them_one(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """heldout33 (spent): a Korean report met one Korean report by its words and the English
    wire by its amount; joining only the second left the first held.  Both claims become one."""
    ko1 = news("Geoje wins LNG carrier order", body="Geoje Shipbuilding won four LNG carriers today.",
               source="Yonhap", symbols=("AAPL",), t=0, id="ko1")  # fmt: skip
    en = news("Shipyard books big order", body="The deal is worth 1.1 trillion won.", source="Reuters",
              symbols=("AAPL",), t=300, id="en")  # fmt: skip
    ko2 = news("Geoje wins LNG carrier order worth 1.1 trillion won",
               body="Geoje Shipbuilding won four LNG carriers today.", source="Bloomberg",
               symbols=("AAPL",), t=600, id="ko2")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), [ko1, en, ko2])
    assert {k: d.verdict.verdict for k, d in out.items()} == dict.fromkeys(("ko1", "en", "ko2"), "accepted")


def test_a_merge_counts_a_newsroom_only_if_independent(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """ "The Star" may be Torstar's title: held in two claims, they do not corroborate each other
    when a third report joins the claims into one."""
    star = news("Acme wins order", body="Acme won a large defence order.", source="The Star",
                symbols=("AAPL",), t=0, id="star")  # fmt: skip
    toronto = news("Acme lands deal", body="The contract is worth $2.5 billion.", source="Toronto Star",
                   symbols=("AAPL",), t=300, id="ts")  # fmt: skip
    again = news("Acme wins order worth $2.5 billion", body="Acme won a large defence order.",
                 source="thestar.com", symbols=("AAPL",), t=600, id="again")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), [star, toronto, again])
    assert all(d.verdict.verdict != "accepted" for d in out.values()), out
