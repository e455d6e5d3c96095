"""Amounts read alike across languages (adapters.text.quantities), and the claims they join."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.text.checker import Analyzer, SanityCore
from adapters.text.claims import content_tokens
from adapters.text.quantities import quantity_anchors
from tests.narrative.conftest import news, run_items


@pytest.mark.parametrize(
    ("english", "other"),
    [
        ("to build US$2.4 billion plant", "斥資24億美元 高雄建先進封裝廠"),
        ("plans 12bn-baht biorefinery", "ทุ่ม 1.2 หมื่นล้านบาทสร้างไบโอรีไฟเนอรี"),
        ("to buy German grinder maker for 40 bil. yen", "独研削盤メーカーを400億円で買収"),
        ("wins 1.1 trillion won order", "거제조선, 1조1천억원 규모 수주"),
        # (prereg-sources49's Q49: wire style writes trillions "tln" or "trln")
        ("wins 1.2 tln won order", "영도중공업, LNG운반선 4척 1조2천억원 수주"),
        ("a 3 trln yen package", "3兆円の経済対策"),
        # (prereg-quantities50: millions and billions of eastern and northern Europe)
        ("a €38 million ferry refit contract", "38 miljoni euro suuruse lepingu"),
        ("a 12 million euro plant", "12 milijonų eurų vertės gamykla"),
        ("invests 2.5 billion euros", "uloži 2,5 milijarde eura"),
        ("300 million hryvnias", "300 мільйонів гривень"),
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
        # (heldout38: a Hindi report of a Rs 2,400 crore plant met none of its English copies)
        (
            "Rs 2,400 crore solar glass plant",
            "2,400 करोड़ रुपये का प्लांट",
        ),
        ("a Tk 500 crore expansion", "৫০০ কোটি টাকা"),
        (
            "a $3 billion contract",
            "قرارداد ۳ میلیارد دلاری",
        ),
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
        ("1万7000人", {"a:1.7e+04"}),  # a myriad unit and the units after it (review14)
        ("3,5 трлн долларов", {"a:3.5e+12"}),
        ("R$ 2,5 bi", {"a:2.5e+09"}),
        ("spadł o 12 proc.", {"p:12"}),
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


@pytest.mark.parametrize(("mode", "accepted"), [("off", False), ("amounts", True)])
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


@pytest.mark.parametrize(
    ("other", "english"),
    [
        # review14's false merges: a date, a model number, a head count, a percentage, a share price
        (("애플, 12월 12일 서울에 신규 매장 개점", "애플이 12월 12일 서울에 매장을 연다."),
         ("EU to announce Apple fine decision on Dec. 12", "The decision is due on Dec. 12.")),
        (("A cég 500 embert vesz fel.", "Új gyár épül, 500 munkahely."),
         ("Apple to cut 500 jobs", "Apple will cut 500 jobs in Ireland.")),
        (("Les ventes ont progressé de 10%.", "Le chiffre d'affaires a progressé de 10%."),
         ("Apple shares fall 10% on probe", "The shares fell 10% after the probe was announced.")),
        (("L'action cotait 182,50 dollars.", "Le titre valait 182,50 dollars."),
         ("Apple unveils new watch", "The shares traded at $182.50.")),
        (("La filiale a investi 900 000 euros.", "Un investissement de 900 000 euros."),
         ("Apple opens Dublin office", "The office cost 900,000 euros.")),
    ],
)  # fmt: skip
def test_small_figures_do_not_join_accounts_in_two_languages(
    lexicon_analyzer: Analyzer,
    make_core: Callable[..., SanityCore],
    other: tuple[str, str],
    english: tuple[str, str],
) -> None:
    items = [
        news(other[0], body=other[1], source="AFP", symbols=("AAPL",), id="o"),
        news(english[0], body=english[1], source="Reuters", symbols=("AAPL",), t=600, id="e"),
    ]
    out = run_items(lexicon_analyzer, make_core(), items)
    assert out["e"].verdict.verdict != "accepted", out["e"].verdict.reasons


def test_two_english_reports_do_not_meet_by_an_amount(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """English accounts meet by their words; a shared "$2.5 billion" alone is no claim (review14)."""
    a = news("Apple buys chip startup", body="The deal is worth $2.5 billion.", source="Reuters",
             symbols=("AAPL",), id="a")  # fmt: skip
    b = news("Apple fined by regulator", body="The fine totals $2.5 billion.", source="Bloomberg",
             symbols=("AAPL",), t=600, id="b")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), [a, b])
    assert out["b"].verdict.verdict != "accepted"


@pytest.mark.parametrize(
    "headline", ["Apple plunges after massive losses and weak outlook", "Apple supplier hit"]
)
def test_an_amount_alone_never_joins_or_disputes_another_direction(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore], headline: str
) -> None:
    """review14: an unrelated story that shared a figure with a real claim disputed it.  Met by an
    amount only, an account that reads the other way is neither a dispute nor a corroboration."""
    up = "Apple profit soars to record, strong gains"
    de = "Der Konzern verdiente im Quartal 2,5 Mrd. Dollar, teilte das Unternehmen am Donnerstag mit."
    items = [
        news(up, body="Apple earned $2.5 billion.", source="Reuters", symbols=("AAPL",), id="r"),
        news(up, body="Apple earned $2.5 billion in the quarter.", source="Bloomberg", symbols=("AAPL",),
             t=120, id="b"),
        news("Apple verdient so viel wie noch nie", body=de, source="dpa", symbols=("AAPL",), t=300, id="d"),
        news(headline, body="A storm may cost the supplier 2.5 billion dollars.", source="Associated Press",
             symbols=("AAPL",), t=600, id="ap"),
    ]  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), items)
    assert out["r"].verdict.verdict == "accepted" and out["d"].verdict.verdict == "accepted"
    reasons = {k: d.verdict.reasons for k, d in out.items()}
    bad = [r for v in reasons.values() for r in v if r.startswith(("contradicts", "contradicted_by"))]
    assert not bad, reasons
    # A headline with no direction still joins by the amount (the narrow rule's known limit).
    assert (out["ap"].verdict.verdict == "accepted") is (headline == "Apple supplier hit"), reasons


def test_an_account_that_meets_two_claims_makes_them_one(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """heldout33 (spent): a Korean report met one Korean report by its words and the English
    wire by its amount; joining only one left the other held.  Both claims become one."""
    ko1 = news("거제조선 LNG 운반선 4척 수주", body="거제조선이 LNG 운반선 4척을 수주했다.", source="Yonhap",
               symbols=("AAPL",), t=0, id="ko1")  # fmt: skip
    en = news("Shipyard books big order", body="The deal is worth 1.1 trillion won.", source="Reuters",
              symbols=("AAPL",), t=300, id="en")  # fmt: skip
    ko2 = news("거제조선 LNG 운반선 4척 수주", body="수주 규모는 1조1천억원이다.", source="Bloomberg",
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
    toronto = news("アクメが大型受注", body="受注額は25億ドル。", source="Toronto Star",
                   symbols=("AAPL",), t=300, id="ts")  # fmt: skip
    again = news("Acme wins order worth $2.5 billion", body="Acme won a large defence order.",
                 source="thestar.com", symbols=("AAPL",), t=600, id="again")  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), [star, toronto, again])
    assert all(d.verdict.verdict != "accepted" for d in out.values()), out


def test_reports_in_a_script_meet_by_their_words_not_by_a_shared_digit(
    lexicon_analyzer: Analyzer, make_core: Callable[..., SanityCore]
) -> None:
    """review14 (X5): a Korean and a Chinese report of different events met by one shared "12"
    (their content tokens were their digits only).  Words of any script now count."""
    different = [
        news("애플, 12월 3일 삼성과 부품 공급 계약",
             body="애플이 12월 3일 삼성전자와 부품 공급 계약을 맺었다.", source="Yonhap", symbols=("AAPL",),
             id="ko"),
        news("苹果12月3日在上海开设研发中心", body="苹果12月3日在上海开设新的研发中心。", source="Xinhua",
             symbols=("AAPL",), t=300, id="zh"),
    ]  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), different)
    assert out["zh"].verdict.verdict != "accepted", out["zh"].verdict.reasons
    same = [
        news("Skärvik Stål bygger nytt valsverk i Luleå",
             body="Bolaget investerar i ett nytt valsverk i Luleå.", source="Sveriges Radio",
             symbols=("MSFT",), id="sv1"),
        news("Skärvik Stål satsar på nytt valsverk",
             body="Skärvik Stål bygger ett valsverk i Luleå, enligt bolaget.", source="Dagens Industri",
             symbols=("MSFT",), t=300, id="sv2"),
    ]  # fmt: skip
    out = run_items(lexicon_analyzer, make_core(), same)
    assert out["sv2"].verdict.verdict == "accepted", out["sv2"].verdict.reasons


@pytest.mark.parametrize(
    "text",
    ["1" * 20_000, "1" * 20_000 + " bn", "1 " + "billion " * 5_000, "999999999999999999\uc870" * 300],
)
def test_a_run_of_digits_or_units_is_no_amount(text: str) -> None:
    """A 20,000-digit run overflowed a float (OverflowError), and a chain of scale words reached
    infinity; neither is an amount.  (Their cost is bench material, not a test's.)"""
    anchors = quantity_anchors(text)
    assert all(float(a.partition(":")[2]) < 1e16 for a in anchors), anchors
    assert "130b" in content_tokens("$130 billion and " + "1" * 2_000)
