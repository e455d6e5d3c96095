"""Duplicate detection: exact, near (MinHash), symbols, window."""

from __future__ import annotations

from adapters.text.dedup import Deduplicator, content_key, jaccard, shingles

S = 10**9
H = "Verizon agrees to buy Vodafone's 45% stake in Verizon Wireless for $130 billion"


def test_exact_duplicates_ignore_case_punctuation_and_spacing() -> None:
    d = Deduplicator()
    assert d.check("a", H, 0).kind == "unique"
    r = d.check(
        "b", "  VERIZON agrees to buy Vodafone's 45% stake in Verizon Wireless, for $130 billion!! ", S
    )
    assert (r.kind, r.of, r.similarity) == ("exact", "a", 1.0)
    assert content_key(H) != content_key(H.replace("130", "13"))


def test_near_duplicates_are_found_and_different_stories_are_not() -> None:
    d = Deduplicator(threshold=0.8)
    d.check("a", H, 0)
    near = d.check("b", "UPDATE 1-" + H, S)
    assert near.kind == "near" and near.of == "a" and 0.8 <= near.similarity < 1.0
    other = d.check("c", "Microsoft to buy Nokia's devices and services unit for 5.44 billion euros", 2 * S)
    assert other.kind == "unique"


def test_near_duplicates_need_a_shared_symbol() -> None:
    d = Deduplicator()
    d.check("a", "Apple raises full-year profit forecast", 0, tags=frozenset({"AAPL"}))
    r = d.check("b", "Adobe raises full-year profit forecast", S, tags=frozenset({"ADBE"}))
    assert r.kind == "unique"
    r2 = d.check("c", "Apple raises its full-year profit forecast", S, tags=frozenset({"AAPL"}))
    assert r2.kind == "near" and r2.of == "a"


def test_window_expires_old_items_and_index_is_bounded() -> None:
    d = Deduplicator(window_ns=60 * S, max_items=3)
    d.check("a", H, 0)
    assert d.check("b", H, 61 * S).kind == "unique"  # "a" left the window
    for i in range(10):
        d.check(f"x{i}", f"story number {i} about something else entirely", 62 * S + i)
    assert len(d) <= 4


def test_shingles_and_jaccard() -> None:
    a, b = shingles("abcdefg"), shingles("abcdefh")
    assert a == frozenset({"abcde", "bcdef", "cdefg"})
    assert jaccard(a, b) == 2 / 4
    assert jaccard(frozenset(), frozenset()) == 0.0
    assert shingles("ab") == frozenset({"ab"})
