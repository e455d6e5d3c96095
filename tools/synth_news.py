"""Synthetic news lines for load tests of the news checker (``finllm check-news``, ``bench news``).

``python -m tools.synth_news --n 200000 --out /tmp/news.jsonl`` writes ``n``
lines of the DESIGN.md news schema, in time order, deterministic for a seed.
They are made to look like a real multi-outlet feed about S&P 500 companies,
not like one repeated line: stories of ten kinds (earnings, deals, guidance,
analyst calls, buybacks, management, legal, recalls, contracts, macro) with
random companies from the bundled universe and random figures; each story is
reported by one to four outlets within minutes (paraphrased, an ``UPDATE``
of the headline, or a syndicated exact copy), often with a body that carries
agency boilerplate; now and then a spam burst repeats a pump post.  Stories
start at exponential gaps of mean ``--gap-s`` seconds (default 6: about
14,000 stories a day, a busy wire), so a 200k-line file spans about a week.

``--recycle FILE`` instead cycles through the items of ``FILE`` (e.g.
``tools/data/adversarial.jsonl``) with a running number appended to each
headline: every line is then a near copy of many earlier ones, the worst case
for near-duplicate search.

``--bad-every K`` puts a malformed line (not JSON, nested 3,000 deep, invalid
UTF-8, a wrong type, a line over 1 MiB) after every ``K`` good ones.

The text is generated, not real reporting; it is for measuring cost, not quality.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.text.entities import DEFAULT_UNIVERSE

__all__ = ["bad_lines", "main", "recycled_lines", "synth_lines"]

_UNIVERSE = DEFAULT_UNIVERSE  # the shipped universe (package data of adapters.text)
_T0 = 1_717_372_800 * 10**9  # 2024-06-03 00:00 UTC, a Monday

_OUTLETS = ("reuters", "bloomberg", "dow jones newswires", "cnbc", "marketwatch", "associated press",
            "financial times", "yahoo finance", "benzinga", "seeking alpha")  # fmt: skip
_BANKS = ("Goldman Sachs", "Morgan Stanley", "JPMorgan", "Jefferies", "Barclays", "UBS", "Citi",
          "Bernstein", "Wells Fargo", "BofA Securities", "Evercore ISI", "Piper Sandler")  # fmt: skip
_PEOPLE = ("Maria Chen", "David Okafor", "Laura Schmidt", "James Patel", "Sofia Rossi",
           "Kenji Tanaka", "Amal Haddad", "Peter Novak", "Grace Kim", "Tom Lindqvist", "Nadia Volkova",
           "Luis Ortega")  # fmt: skip
_ORDINAL = ("first", "second", "third", "fourth")
_AGENCIES = ("SEC", "FTC", "Justice Department", "Pentagon", "Department of Energy", "NASA", "EPA")
_PRODUCTS = ("vehicles", "laptops", "air fryers", "infant car seats", "insulin pens", "smoke detectors",
             "e-bikes", "space heaters", "blood pressure monitors", "dishwashers")  # fmt: skip
_DEFECTS = ("a fire risk", "faulty wiring", "a software glitch", "a choking hazard", "brake problems",
            "battery overheating", "mislabelled doses")  # fmt: skip
_INDICATORS = (("ISM manufacturing index", 45.0, 60.0, ""), ("consumer prices", -0.3, 0.8, "%"),
               ("retail sales", -1.5, 2.0, "%"), ("jobless claims", 190.0, 280.0, "k"),
               ("producer prices", -0.5, 0.9, "%"), ("housing starts", 1.2, 1.7, "mln"))  # fmt: skip
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")  # fmt: skip
_FILLER = (
    "Shares were {dir} {pct}% in premarket trading.",
    "The company will hold a call with analysts at {hour}:30 a.m. ET.",
    "Analysts polled by LSEG had expected {alt}.",
    "The stock has {dir2} about {pct2}% so far this year.",
    "A spokesperson declined to comment beyond the statement.",
    "The deal is expected to close in the {half} half of next year, subject to regulatory approval.",
    "Trading volume was {vol} times the 30-day average.",
    "The move follows a strategic review that began in {month}.",
)
_BOILER = ("Reporting by {a} in New York; Editing by {b}", "Writing by {a}; additional reporting by {b}",
           "(Reporting by {a}; Editing by {b})")  # fmt: skip


def _companies() -> list[tuple[str, str]]:
    doc = json.loads(_UNIVERSE.read_text(encoding="utf-8"))
    out = []
    for ins in doc["instruments"]:
        if ins.get("kind") != "equity":
            continue
        name = ins["aliases"][0] if ins.get("aliases") else ins["name"].split(" Inc")[0]
        out.append((ins["symbol"], name))
    return out


def _pct(r: random.Random, lo: float = 0.5, hi: float = 14.0) -> str:
    return f"{r.uniform(lo, hi):.1f}"


def _story(r: random.Random, cos: list[tuple[str, str]]) -> tuple[list[str], dict[str, Any]]:
    """Headline variants of one story (first is the original) and its facts."""
    sym, co = r.choice(cos)
    sym2, co2 = r.choice(cos)
    kind = r.randrange(10)
    up = r.random() < 0.5
    f: dict[str, Any] = {"co": co, "sym": sym, "up": up}
    if kind == 0:
        q, eps, est = r.randint(1, 4), r.uniform(0.2, 6.0), 0.0
        est = eps * (0.9 if up else 1.1)
        rev = r.uniform(1.0, 120.0)
        heads = [
            f"{co} quarterly profit {'beats' if up else 'misses'} estimates as revenue "
            f"{'rises' if up else 'falls'} {_pct(r)}%",
            f"{co} Q{q} EPS ${eps:.2f} vs ${est:.2f} expected; revenue ${rev:.1f}bn",
            f"{co} {'tops' if up else 'falls short of'} forecasts for {_ORDINAL[q - 1]} quarter",
        ]
    elif kind == 1:
        x = r.choice((r.uniform(1, 9), r.uniform(10, 90)))
        heads = [
            f"{co} to buy {co2} for ${x:.1f} billion",
            f"{co} agrees to acquire {co2} in ${x:.1f}bn deal",
            f"{co2} to be acquired by {co} for about ${x:.0f} billion",
        ]
        f["sym2"] = sym2
    elif kind == 2:
        what = r.choice(("revenue", "profit", "sales", "earnings"))
        yr = r.choice((2024, 2025))
        heads = [
            f"{co} {'raises' if up else 'cuts'} full-year {what} forecast",
            f"{co} {'lifts' if up else 'lowers'} {yr} {what} outlook",
            f"{co} now sees {yr} {what} {'above' if up else 'below'} prior guidance",
        ]
    elif kind == 3:
        bank = r.choice(_BANKS)
        rating = r.choice(("buy", "overweight", "outperform") if up else ("sell", "underweight", "neutral"))
        heads = [
            f"{co} shares {'rise' if up else 'fall'} {_pct(r, 1, 9)}% after {bank} "
            f"{'upgrade' if up else 'downgrade'}",
            f"{bank} {'upgrades' if up else 'downgrades'} {co} to {rating}",
            f"{co} {'upgraded' if up else 'downgraded'} to {rating} at {bank}",
        ]
    elif kind == 4:
        x = r.uniform(0.5, 60.0)
        heads = [
            f"{co} announces ${x:.1f} billion share buyback",
            f"{co} board approves ${x:.1f}bn stock repurchase",
            f"{co} to buy back up to ${x:.1f} billion of its shares",
        ]
    elif kind == 5:
        a, b = r.sample(_PEOPLE, 2)
        heads = [
            f"{co} CEO {a} to step down; {b} named successor",
            f"{co} names {b} chief executive as {a} retires",
            f"{co} says {a} will leave the top job, {b} to take over",
        ]
    elif kind == 6:
        x, ag = r.randint(5, 950), r.choice(_AGENCIES)
        heads = [
            f"{co} to pay ${x} million to settle {ag} probe",
            f"{co} agrees ${x}mln settlement with {ag}",
            f"{ag} fines {co} ${x} million",
        ]
    elif kind == 7:
        n, p, d = r.randint(2, 900) * 1000, r.choice(_PRODUCTS), r.choice(_DEFECTS)
        heads = [
            f"{co} recalls {n:,} {p} over {d}",
            f"{co} recalling about {n // 1000}k {p} due to {d}",
            f"Regulators say {co} to recall {n:,} {p}",
        ]
    elif kind == 8:
        x, ag = r.randint(40, 9000), r.choice(_AGENCIES)
        heads = [
            f"{co} wins ${x} million {ag} contract",
            f"{co} awarded ${x}mln contract by {ag}",
            f"{ag} picks {co} for ${x} million deal",
        ]
    else:
        name, lo, hi, unit = r.choice(_INDICATORS)
        v, month = r.uniform(lo, hi), r.choice(_MONTHS)
        heads = [
            f"U.S. {name} {'rises' if up else 'falls'} to {v:.1f}{unit} in {month}",
            f"US {name} {'beat' if up else 'miss'} forecasts in {month} at {v:.1f}{unit}",
            f"U.S. {name} {'stronger' if up else 'weaker'} than expected in {month}",
        ]
        f["sym"] = ""
    return heads, f


def _body(r: random.Random, head: str, f: dict[str, Any]) -> str:
    who = "the company said" if f["sym"] else "data showed"
    day = r.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"))
    parts = [f"{head.rstrip('.')}, {who} on {day}."]
    for tpl in r.sample(_FILLER, r.randint(1, 3)):
        parts.append(
            tpl.format(
                dir="up" if f["up"] else "down",
                pct=_pct(r, 0.3, 8),
                hour=r.randint(7, 10),
                alt=f"${r.uniform(0.1, 5):.2f} a share",
                dir2=r.choice(("gained", "lost")),
                pct2=_pct(r, 1, 40),
                half=r.choice(("first", "second")),
                vol=r.randint(2, 9),
                month=r.choice(_MONTHS),
            )
        )
    if r.random() < 0.5:
        a, b = r.sample(_PEOPLE, 2)
        parts.append(r.choice(_BOILER).format(a=a, b=b))
    return " ".join(parts)


def _item(n: int, ts: int, source: str, head: str, body: str, syms: list[str]) -> str:
    obj: dict[str, Any] = {"id": f"syn-{n:07d}", "ts": ts, "source": source, "headline": head}
    if body:
        obj["body"] = body
    if syms:
        obj["symbols"] = syms
    return json.dumps(obj, ensure_ascii=False)


def _reports(
    r: random.Random, t: int, cos: list[tuple[str, str]]
) -> Iterator[tuple[int, str, str, str, list[str]]]:
    """(ts, source, headline, body, symbols) of every report of one story starting at ``t`` (ns)."""
    if r.random() < 0.01:  # a spam burst: one pump post pasted again and again
        sym, co = r.choice(cos)
        head = f"{co} ${sym} to the moon!!! Buy now before it's too late 🚀🚀"
        src = r.choice(("stocktwits", "telegram", "forum"))
        for k in range(r.randint(3, 20)):
            yield t + k * r.randint(1, 20) * 10**9, src, head, "", []
        return
    heads, f = _story(r, cos)
    syms = [f["sym"]] if f["sym"] and r.random() < 0.3 else []
    outlets = r.sample(_OUTLETS, r.choices((1, 2, 3, 4), weights=(40, 30, 20, 10))[0])
    body = _body(r, heads[0], f) if r.random() < 0.6 else ""
    for k, src in enumerate(outlets):
        dt = 0 if k == 0 else r.randint(20, 1200) * 10**9
        style = 0 if k == 0 else r.choice((0, 1, 2, 2, 2))
        if style == 0:  # syndicated copy of the original
            yield t + dt, src, heads[0], body, syms
        elif style == 1:
            yield t + dt, src, "UPDATE 1-" + heads[0], body, syms
        else:  # the outlet's own wording
            yield t + dt, src, r.choice(heads[1:]), _body(r, heads[0], f) if body else "", syms


def synth_lines(n: int, *, seed: int = 1, gap_s: float = 6.0, bad_every: int = 0) -> Iterator[str]:
    """``n`` good news lines in time order (plus one bad line after every ``bad_every`` good ones)."""
    r = random.Random(seed)
    cos = _companies()
    t = _T0
    pending: list[tuple[int, int, str, str, str, list[str]]] = []  # a heap by (ts, seq)
    made = seq = 0
    bad = bad_lines()
    while made < n:
        t += int(r.expovariate(1.0 / gap_s) * 1e9)
        for ts, src, head, body, syms in _reports(r, t, cos):
            seq += 1
            heapq.heappush(pending, (ts, seq, src, head, body, syms))
        # Reports land at most 20 minutes after their story starts: everything older is final.
        while pending and pending[0][0] <= t - 1200 * 10**9 and made < n:
            ts, _, src, head, body, syms = heapq.heappop(pending)
            made += 1
            yield _item(made, ts, src, head, body, syms)
            if bad_every and made % bad_every == 0:
                yield bad[(made // bad_every - 1) % len(bad)]
    # n reached: reports still pending are dropped, so exactly n good lines come out.


def recycled_lines(path: Path, n: int, *, gap_s: float = 1.0) -> Iterator[str]:
    """``n`` lines made by cycling through the items of ``path`` with a running number appended
    to each headline, ``gap_s`` seconds apart: every line is a near copy of many earlier ones,
    the worst case for near-duplicate search (how the quadratic dedup of issue 12 was found)."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    for i in range(n):
        r = rows[i % len(rows)]
        obj = {k: r[k] for k in ("source", "headline", "body", "symbols") if k in r}
        obj.update(id=f"rec-{i + 1:07d}", ts=_T0 + int(i * gap_s * 1e9), headline=f"{r['headline']} ({i})")
        yield json.dumps(obj, ensure_ascii=False)


def bad_lines() -> list[str]:
    """Malformed lines of every kind the reader must refuse (as text; invalid UTF-8 via surrogateescape)."""
    return [
        "this is not json",
        "[" * 3000 + "]" * 3000,
        '{"id":"deep","ts":1,"source":"x","headline":"h","meta":' + "[" * 3000 + "]" * 3000 + "}",
        b'{"id":"utf","ts":1,"source":"x","headline":"caf\xe9 \xff"}'.decode("utf-8", "surrogateescape"),
        '{"id":"typ","ts":1,"source":"x","headline":42}',
        '{"id":"big","ts":1,"source":"x","headline":"' + "a" * (2 << 20) + '"}',
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.synth_news", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, required=True, help="good lines to write")
    ap.add_argument("--out", type=Path, required=True, help="output file ('-' for stdout)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gap-s", type=float, default=6.0, help="mean seconds between stories")
    ap.add_argument("--bad-every", type=int, default=0, help="a malformed line after every K good ones")
    ap.add_argument(
        "--recycle", type=Path, default=None, help="instead: cycle through this file, numbering headlines"
    )
    args = ap.parse_args(argv)
    lines = (
        recycled_lines(args.recycle, args.n, gap_s=args.gap_s)
        if args.recycle
        else synth_lines(args.n, seed=args.seed, gap_s=args.gap_s, bad_every=args.bad_every)
    )
    f = sys.stdout.buffer if str(args.out) == "-" else args.out.open("wb")
    try:
        for line in lines:
            f.write(line.encode("utf-8", "surrogateescape") + b"\n")
    finally:
        if f is not sys.stdout.buffer:
            f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
