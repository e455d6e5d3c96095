"""Duplicate detection: exact, near (MinHash), symbols, window."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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


# -- equivalence with the definition, and bounded work --------------------------------------

W = 6 * 3600 * S
STORIES = [
    H,
    "Microsoft to buy Nokia's devices and services unit for 5.44 billion euros",
    "U.S. ISM manufacturing index rises to 55.7 in August, highest since June 2011",
    "Boeing wins order for 50 jets from Emirates worth $18 billion at list prices",
    "Reserve Bank of Australia holds cash rate at record low 2.5%, says currency still high",
]
VARIANTS: list[Callable[[str], str]] = [
    lambda s: s,
    lambda s: "UPDATE 1-" + s,
    lambda s: s.upper() + "!!",
    lambda s: s + " - sources",
    lambda s: s.replace(" to ", " will "),
]
FRAMES = [  # same frame, another company: similar text, different stories
    f"{co} shares rise after upgrade"  # shingle Jaccard 0.58-0.74 between two of them
    for co in ("Apple", "Adobe", "Amgen", "Boeing", "Cisco", "Intel")
]


def _corpus() -> list[tuple[str, str, int, frozenset[str]]]:
    items: list[tuple[str, str, int, frozenset[str]]] = []
    t = 0
    for k, s in enumerate(STORIES):
        for j, v in enumerate(VARIANTS):
            t += 7 * S
            items.append((f"s{k}v{j}", v(s), t, frozenset()))
    for j, f in enumerate(FRAMES):
        t += 7 * S
        items.append((f"f{j}", f, t, frozenset()))
    items.append(("late", STORIES[0], t + W + S, frozenset()))  # all of the above left the window
    return items


def _definition(
    items: list[tuple[str, str, int, frozenset[str]]], threshold: float = 0.8
) -> list[tuple[str, str]]:
    """What the index approximates: compare each item with every earlier one in the window."""
    seen: list[tuple[str, str, frozenset[str], int, frozenset[str]]] = []
    out: list[tuple[str, str]] = []
    for item_id, text, ts, tags in items:
        key, sh = content_key(text), shingles(text)
        live = [e for e in seen if ts - e[3] <= W]
        exact = next((e for e in live if e[1] == key), None)
        if exact is not None:
            out.append(("exact", exact[0]))
        else:
            sims = [(jaccard(sh, e[2]), e[0]) for e in live if (not (tags or e[4])) or tags & e[4]]
            best = max(sims, default=(0.0, ""))
            out.append(("near", best[1]) if sh and best[0] >= threshold else ("unique", ""))
        seen.append((item_id, key, sh, ts, tags))
    return out


def test_index_agrees_with_the_definition_on_near_duplicates_and_distinct_items() -> None:
    items = _corpus()
    want = _definition(items)
    d = Deduplicator()
    got = [d.check(i, text, ts, tags=tags) for i, text, ts, tags in items]
    assert [g.kind for g in got] == [w[0] for w in want]
    texts = {i: text for i, text, _, _ in items}
    for (item_id, text, _, _), g, w in zip(items, got, want, strict=True):
        if g.kind == "exact":
            assert g.of == w[1]  # the first copy
        elif g.kind == "near":  # any earlier item over the threshold is a right answer
            assert jaccard(shingles(text), shingles(texts[g.of])) >= 0.8, item_id
    kinds = [g.kind for g in got]
    # The corpus exercises every outcome, and similar frames about other companies stay unique.
    assert {"unique", "exact", "near"} <= set(kinds)
    assert all(g.kind == "unique" for (i, *_), g in zip(items, got, strict=True) if i.startswith("f"))
    assert got[-1].kind == "unique"


def test_adversarial_set_agrees_with_the_definition() -> None:
    import json

    from tests.narrative.conftest import DATA

    rows = [json.loads(x) for x in (DATA / "adversarial.jsonl").read_text().splitlines() if x.strip()]
    rows.sort(key=lambda r: r["ts"])
    items = [(r["id"], r["headline"], r["ts"], frozenset(r.get("symbols") or ())) for r in rows]
    want = _definition(items)
    d = Deduplicator()
    got = [d.check(i, text, ts, tags=tags) for i, text, ts, tags in items]
    assert [g.kind for g in got] == [w[0] for w in want]
    assert sum(g.kind != "unique" for g in got) >= 5  # the set's duplicated spam is found


def _similar_stories(n: int) -> list[str]:
    """``n`` texts sharing one long frame with a random tail each: similar, never duplicates."""
    import random

    r = random.Random(7)
    frame = "quarterly profit beats estimates as revenue rises on strong demand for cloud"
    tail = "abcdefghijklmnopqrstuvwxyz"
    return [f"{frame} {''.join(r.choice(tail) for _ in range(24))}" for _ in range(n)]


@pytest.mark.parametrize("n", [500, 4000])
def test_work_per_check_is_bounded_as_the_window_grows(n: int) -> None:
    texts = _similar_stories(n)
    d = Deduplicator(max_items=10 * n)
    kinds = [d.check(f"i{i}", t, i * S).kind for i, t in enumerate(texts)]
    st = d.stats()
    assert st.checks == n and kinds.count("unique") == n
    # The load that made the old index quadratic: most earlier items resemble the newest.
    last = shingles(texts[-1])
    assert sum(jaccard(last, shingles(t)) >= 0.4 for t in texts[:-1]) >= 0.8 * (n - 1)
    # ... yet each check visits and compares a bounded number, whatever n is.
    assert st.max_visited <= 16 * d.bucket_scan
    assert st.max_compared <= d.max_candidates
    assert st.verified <= st.compared <= n * d.max_candidates
    assert st.compared / n <= d.max_candidates
    assert st.max_compared == d.max_candidates  # the cap is what bounds it here
    if n <= 500:  # without the caps the same load compares nearly every earlier item
        free = Deduplicator(max_items=10 * n, bucket_scan=10**9, max_candidates=10**9)
        for i, t in enumerate(texts):
            free.check(f"i{i}", t, i * S)
        assert free.stats().max_compared >= 0.8 * (n - 1)


def test_a_spam_burst_does_not_crowd_out_a_near_copy() -> None:
    d = Deduplicator(bucket_scan=4)
    d.check("story", H, 0)
    for i in range(50):  # exact copies are not indexed again, so the buckets keep the story
        assert d.check(f"spam{i}", H.upper(), S + i).of == "story"
    near = d.check("upd", "UPDATE 2-" + H, 100 * S)
    assert (near.kind, near.of) == ("near", "story")


def test_when_the_first_copy_leaves_the_window_the_next_one_stands_in() -> None:
    d = Deduplicator(window_ns=60 * S)
    d.check("a", H, 0)
    assert d.check("b", H, 30 * S).of == "a"
    exact = d.check("c", H, 70 * S)  # "a" left the window; "b" (30 s) is still in it
    assert (exact.kind, exact.of, exact.of_ts_ns) == ("exact", "b", 30 * S)
    near = d.check("d", "UPDATE 1-" + H, 75 * S)
    assert (near.kind, near.of) == ("near", "b")
    assert len(d) == 3  # "a" evicted


def test_matched_item_is_returned_for_later_corroboration() -> None:
    d = Deduplicator()
    d.check("a", H, 5 * S, source="reuters")
    r = d.check("b", "UPDATE 1-" + H, 9 * S, source="bloomberg")
    assert (r.of, r.of_source, r.of_ts_ns) == ("a", "reuters", 5 * S)


def test_long_texts_are_shingled_from_a_bounded_prefix() -> None:
    lead = f"{H} {H} {H} "  # 240 characters shared, then 20,000 words that differ
    long_a = lead + " ".join(f"w{i}" for i in range(20_000))
    long_b = lead + " ".join(f"v{i}" for i in range(20_000))
    d = Deduplicator(max_shingle_chars=200)
    d.check("a", long_a, 0)
    r = d.check("b", long_b, S)  # the same as far as dedup looks
    assert r.kind == "near" and r.of == "a"
    assert content_key(long_a) != content_key(long_b)  # the exact hash still sees all of it
    whole = Deduplicator(max_shingle_chars=10**6)
    whole.check("a", long_a, 0)
    assert whole.check("b", long_b, S).kind == "unique"
