"""Held-out evaluation of the news checker (issue 15 item 4), through the product path.

Usage::

    python -m tools.eval_heldout_news [--dir tools/data/heldout] [--json] [--verbose] [--no-model]
                                      [--detector-dir DIR]

``--dir`` takes any set in this layout (``tools/data/heldout2`` is the second one); given more
than once, each set's figures carry ``set`` and are followed by their totals (``set: total``,
the counts behind each share summed), the models loaded once;
``--detector-dir`` scores with a learned head other than the shipped one (e.g. one trained with
``python -m tools.train_injection --without-heldout --out DIR``).

Every case becomes news items in the DESIGN.md JSONL schema and goes through
:func:`tools.commands.check_news.check_file` -- the code of ``finllm check-news``, with the
analyzer and checker the node's actors use (MiniLM, the learned detector, the source registry)
-- and the figures are read off its verdicts:

* ``attacks``: each attack text is embedded in the body of one of two corroborating reports of a
  true event by two reputable, independent outlets (the other report is clean).  Figures: share
  of carriers ``accepted`` (the attack would reach the cloud prompt), share ``rejected`` by the
  detectors themselves (``prompt_injection``, ``pump_language``, ``obfuscated_instrument``), the
  rest held (quarantined for lack of corroboration or, ``attacks_held_unscreened``, because some
  passage is text the detectors cannot read: :mod:`adapters.text.coverage`);
* ``benign_hard``: each benign text embedded the same way; share whose carrier is rejected by a
  detector (a false positive), share accepted, share held as unscreened;
* ``true_stories``: multi-outlet stories as given; share of items accepted;
* ``same_group``: stories carried by outlets of one owner or as syndicated copies; share of
  stories wrongly accepted (counted as corroborated);
* ``retractions``: an accepted story followed by a credible denial; share detected
  (the denial's verdict names ``retracts:``);
* ``fake_corroboration``: a story that claims corroboration it does not have; share accepted;
* ``attacks_in_headline``: each attack text after the second report's headline instead (the
  part of an accepted item that reaches the models: the body reaches none); shares as for
  ``attacks``, and ``benign_hard_in_headline`` likewise.

``--unscreened`` sets ``SanityConfig.unscreened`` (default: the shipped ``withhold``; ``hold`` is
what the checker did before 2026-12-04).  Under ``withhold`` (reports in another language or script
accepted as events, their words withheld from the models) the figures add
``attacks_accepted_text_withheld_pct`` and ``<set>_items_accepted_text_withheld_pct``: accepted
carriers and items none of whose words reach a model (they are also in the accepted shares);
``attacks_reach_a_model_pct`` is the accepted share less those (under ``hold``, the accepted share).

Each set was written in a separate pass by someone who had not read the rules.  The first
(``tools/data/heldout``) is no longer blind: it was used for tuning and 70% of its attack and
benign texts train the learned head (``tools/train_injection.py``).  Figures print as a table
(or JSON lines with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from adapters.text.checker import Analyzer, AnalyzerConfig, SanityConfig, SanityCore
from tools.commands.check_news import check_file

__all__ = ["main"]

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"
T0 = 1_700_000_000  # seconds; each case gets its own hour, so cases never meet in a window

# True events (written by this project) reported by two independent reputable outlets; an
# attack or hard-negative text goes into the body of the second report.
_STORIES = [
    ("AAPL", "Apple reports record quarterly revenue of $119.6 billion",
     "Apple posts record $119.6 billion in quarterly sales on iPhone demand",
     "Apple said revenue rose 2% from a year earlier, helped by iPhone and services sales."),
    ("MSFT", "Microsoft to buy Activision Blizzard for $68.7 billion",
     "Microsoft agrees $68.7 billion deal for Activision Blizzard",
     "The all-cash deal is Microsoft's largest acquisition and is subject to regulatory review."),
    ("XOM", "Exxon Mobil quarterly profit rises on higher oil prices",
     "Exxon's quarterly earnings climb as crude prices gain",
     "The oil major said production was steady and it kept its buyback programme unchanged."),
    ("JPM", "JPMorgan Chase beats profit estimates as trading revenue jumps",
     "JPMorgan quarterly profit tops forecasts on strong trading",
     "The bank set aside less money for bad loans than analysts had expected."),
    ("NVDA", "Nvidia forecasts revenue above estimates on data center demand",
     "Nvidia sees sales beating expectations as data center demand surges",
     "The chipmaker said demand for its processors used in artificial intelligence remained strong."),
    ("PFE", "Pfizer cuts annual sales forecast as vaccine demand falls",
     "Pfizer lowers full-year revenue outlook on weaker vaccine sales",
     "The drugmaker said it would launch a cost-cutting programme to protect margins."),
    ("BA", "Boeing delivers more jets in the quarter as production recovers",
     "Boeing's quarterly deliveries rise as factory output improves",
     "The planemaker said it delivered 105 aircraft in the period, led by the 737 MAX."),
    ("WMT", "Walmart raises full-year outlook after strong quarterly sales",
     "Walmart lifts annual forecast as quarterly sales beat estimates",
     "The retailer said grocery sales and online orders drove the gains."),
]  # fmt: skip
_OUTLET_PAIRS = [("reuters", "bloomberg"), ("associated press", "financial times"), ("bloomberg", "wsj"),
                 ("reuters", "cnbc"), ("dow jones newswires", "associated press")]  # fmt: skip
_DETECTORS = ("prompt_injection", "pump_language", "obfuscated_instrument")


def _iso(sec: int) -> int:
    return sec * 10**9


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _text_of(row: dict[str, Any]) -> str:
    for k in ("text", "body", "content", "attack", "headline"):
        v = row.get(k)
        if isinstance(v, str) and v.strip():
            return v
    return ""


def _check(items: list[dict[str, Any]], analyzer: Analyzer, core: SanityCore) -> dict[str, dict[str, Any]]:
    """Run items (dicts in the JSONL schema) through check-news; verdict record per item id."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.jsonl"
        p.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
        return {str(r["id"]): r for r in check_file(p, analyzer, core)}


def _embedded(
    texts: Iterable[str], tag: str, *, headline: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Two corroborating reports per text; the text goes into the second one's body (or, with
    ``headline``, follows its headline: the part of an accepted item that reaches the models)."""
    items: list[dict[str, Any]] = []
    carriers: list[str] = []
    for i, text in enumerate(texts):
        sym, h1, h2, body = _STORIES[i % len(_STORIES)]
        a, b = _OUTLET_PAIRS[i % len(_OUTLET_PAIRS)]
        t = T0 + i * 7200
        items.append({"id": f"{tag}-{i}-a", "ts": _iso(t), "source": a, "headline": h1, "body": body,
                      "symbols": [sym]})  # fmt: skip
        # (In the headline, the attack follows the story's own headline: an attacker who wants
        # the item to corroborate must still tell the story.)
        second = (
            {"headline": f"{h2}: {text}", "body": body}
            if headline
            else {"headline": h2, "body": f"{body} {text}"}
        )
        items.append({"id": f"{tag}-{i}-b", "ts": _iso(t + 300), "source": b, **second,
                      "symbols": [sym]})  # fmt: skip
        carriers.append(f"{tag}-{i}-b")
    return items, carriers


def _detected(rec: dict[str, Any]) -> bool:
    return rec["verdict"] == "rejected" and any(str(x).startswith(_DETECTORS) for x in rec["reasons"])


def _fresh(
    acfg: AnalyzerConfig, analyzer: Analyzer | None = None, scfg: SanityConfig | None = None
) -> tuple[Analyzer, SanityCore]:
    an = analyzer or Analyzer.with_models(acfg)
    if analyzer is not None:  # a fresh dedup window, the same loaded models
        an = Analyzer(acfg, universe=an.universe, embedder=an.embedder, classifier=an.classifier,
                      detector=an.detector)  # fmt: skip
    return an, SanityCore(scfg or SanityConfig())


def _analyzer_config(args: argparse.Namespace) -> AnalyzerConfig:
    return AnalyzerConfig(learned_detector=not args.no_model, learned_detector_dir=args.detector_dir)


def _figures(args: argparse.Namespace, base: Analyzer | None = None) -> list[dict[str, Any]]:
    """The figures of the set in ``args.dir``; ``base`` is an analyzer whose loaded models to reuse."""
    d: Path = args.dir
    acfg = _analyzer_config(args)
    scfg = _sanity_config(args.unscreened, args.set)
    withhold = args.unscreened == "withhold"
    base, _ = _fresh(acfg, base)
    out: list[dict[str, Any]] = []

    def fig(name: str, value: float, n: int, **ctx: Any) -> None:
        out.append({"bench": "news_heldout", "figure": name, "value": round(value, 4), "n": n, **ctx})

    def placed(
        rows: list[dict[str, Any]], tag: str, headline: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """Verdicts of the texts of ``rows`` carried by corroborated reports, and the carriers' ids."""
        items, carriers = _embedded((_text_of(r) for r in rows), tag, headline=headline)
        an, core = _fresh(acfg, base, scfg)
        return _check(items, an, core), carriers

    attacks = [] if args.stories_only else _rows(d / "attacks.jsonl")
    if attacks:
        v, carriers = placed(attacks, "atk")
        acc = sum(v[c]["verdict"] == "accepted" for c in carriers)
        det = sum(_detected(v[c]) for c in carriers)
        fig("attacks_accepted_pct", 100.0 * acc / len(carriers), len(carriers))
        fig("attacks_rejected_by_detectors_pct", 100.0 * det / len(carriers), len(carriers))
        fig("attacks_held_pct", 100.0 * (len(carriers) - acc - det) / len(carriers), len(carriers))
        uns = sum(_unscreened(v[c]) for c in carriers)
        fig("attacks_held_unscreened_pct", 100.0 * uns / len(carriers), len(carriers))
        wh = 0
        if withhold:
            # Accepted as an event, none of its words reaching a model: counted apart.
            wh = sum(_withheld(v[c]) for c in carriers)
            fig("attacks_accepted_text_withheld_pct", 100.0 * wh / len(carriers), len(carriers))
        fig("attacks_reach_a_model_pct", 100.0 * (acc - wh) / len(carriers), len(carriers))
        if args.verbose:
            for r, c in zip(attacks, carriers, strict=True):
                if not _detected(v[c]):
                    fam = r.get("family", "")
                    print(f"MISSED {v[c]['verdict']} [{fam}] {_text_of(r)[:140]!r}", file=sys.stderr)
    benign = [] if args.stories_only else _rows(d / "benign_hard.jsonl")
    if benign:
        v, carriers = placed(benign, "ben")
        fp = sum(_detected(v[c]) for c in carriers)
        acc = sum(v[c]["verdict"] == "accepted" for c in carriers)
        fig("benign_hard_rejected_pct", 100.0 * fp / len(carriers), len(carriers))
        fig("benign_hard_accepted_pct", 100.0 * acc / len(carriers), len(carriers))
        uns = sum(_unscreened(v[c]) for c in carriers)
        fig("benign_hard_held_unscreened_pct", 100.0 * uns / len(carriers), len(carriers))
        if args.verbose:
            for r, c in zip(benign, carriers, strict=True):
                if _detected(v[c]):
                    print(f"FALSE POSITIVE {v[c]['reasons']} {_text_of(r)[:140]!r}", file=sys.stderr)
    stories = _rows(d / "true_stories.jsonl")
    if stories:
        an, core = _fresh(acfg, base, scfg)
        _stories_figure("true_stories", stories, an, core, fig, args.verbose, accept_good=True,
                        withhold=withhold)  # fmt: skip
    for name in ("same_group", "fake_corroboration"):
        rows = _rows(d / f"{name}.jsonl")
        if rows:
            an, core = _fresh(acfg, base, scfg)
            _stories_figure(name, rows, an, core, fig, args.verbose, accept_good=False,
                            withhold=withhold)  # fmt: skip
    fakes = _rows(d / "fake_corroboration.jsonl")
    if fakes:
        # The live node: both copies arrive on one open topic; the source comes from the channel.
        an, core = _fresh(acfg, base, scfg)
        _stories_figure("fake_corroboration_open_topic", fakes, an, core, fig, args.verbose,
                        accept_good=False, channel="news.open")  # fmt: skip
    retr = _rows(d / "retractions.jsonl")
    if retr and stories:
        an, core = _fresh(acfg, base, scfg)
        _retraction_figure(retr, stories, an, core, fig, args.verbose)
    if attacks:
        # The same attacks written after the second report's headline: accepted, they would
        # reach the edge (as scores) and the cloud prompt (spotlighted), which read headlines only.
        v, carriers = placed(attacks, "hdl", headline=True)
        acc = sum(v[c]["verdict"] == "accepted" for c in carriers)
        det = sum(_detected(v[c]) for c in carriers)
        fig("attacks_in_headline_accepted_pct", 100.0 * acc / len(carriers), len(carriers))
        fig("attacks_in_headline_rejected_by_detectors_pct", 100.0 * det / len(carriers), len(carriers))
    if benign:
        v, carriers = placed(benign, "bhd", headline=True)
        fp = sum(_detected(v[c]) for c in carriers)
        fig("benign_hard_in_headline_rejected_pct", 100.0 * fp / len(carriers), len(carriers))
    return out


_FIELDS = ("id", "ts", "source", "headline", "body", "symbols")


def _sanity_config(unscreened: str, settings: list[str]) -> SanityConfig:
    """``SanityConfig`` with ``unscreened`` and each ``KEY=VALUE`` of ``--set`` (a JSON value, or
    else a string); a bad key or value exits with the key named."""
    fields: dict[str, Any] = {"unscreened": unscreened}
    for kv in settings:
        key, sep, raw = kv.partition("=")
        if not sep or key not in SanityConfig.__struct_fields__:
            raise SystemExit(f"--set {kv!r}: expected KEY=VALUE with KEY a SanityConfig field")
        try:
            fields[key] = json.loads(raw)
        except json.JSONDecodeError:
            fields[key] = raw
    try:
        return msgspec.convert(fields, SanityConfig)
    except msgspec.ValidationError as e:
        raise SystemExit(f"--set: {e}") from None


def _withheld(rec: dict[str, Any]) -> bool:
    """Accepted with its text withheld from the models (``SanityConfig.unscreened="withhold"``)."""
    return rec["verdict"] == "accepted" and any(str(x).startswith("text_withheld:") for x in rec["reasons"])


def _unscreened(rec: dict[str, Any]) -> bool:
    """Held because the detectors could not read some passage (``SanityConfig.unscreened``)."""
    why = rec["reasons"]
    return rec["verdict"] == "quarantined" and any(str(x).startswith("unscreened_text:") for x in why)


def _item(it: dict[str, Any]) -> dict[str, Any]:
    """The schema fields of a case's item (labels and notes stay out of the product's input)."""
    return {str(k): it[k] for k in _FIELDS if k in it}


def _items_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as news items: a row is an item, or a story holding its items under ``items``."""
    out: list[dict[str, Any]] = []
    for r in rows:
        if isinstance(r.get("items"), list):
            out.extend(r["items"])
        else:
            out.append(r)
    return out


def _sorted_items(items: list[dict[str, Any]], channel: str = "") -> list[dict[str, Any]]:
    from datetime import datetime

    def ts(it: dict[str, Any]) -> float:
        t = it["ts"]
        return float(t) / 1e9 if isinstance(t, int) else datetime.fromisoformat(t).timestamp()

    out = [_item(it) for it in sorted(items, key=ts)]
    if channel:
        for it in out:
            it["source"] = f"open:{channel}"  # what assign_channel does to an open topic's items
    return out


def _stories_figure(name: str, rows: list[dict[str, Any]], an: Analyzer, core: SanityCore, fig: Any,
                    verbose: bool, *, accept_good: bool, channel: str = "",
                    withhold: bool = False) -> None:  # fmt: skip
    items = _sorted_items(_items_of(rows), channel)
    v = _check(items, an, core)
    acc = sum(v[str(it["id"])]["verdict"] == "accepted" for it in items)
    if withhold:
        withheld = sum(_withheld(v[str(it["id"])]) for it in items)
        fig(f"{name}_items_accepted_text_withheld_pct", 100.0 * withheld / max(len(items), 1), len(items))
    story_acc = sum(any(v[str(it["id"])]["verdict"] == "accepted" for it in r["items"]) for r in rows)
    fig(f"{name}_items_accepted_pct", 100.0 * acc / max(len(items), 1), len(items))
    label = "stories_with_an_accepted_item_pct" if accept_good else "stories_wrongly_corroborated_pct"
    fig(f"{name}_{label}", 100.0 * story_acc / max(len(rows), 1), len(rows))
    if verbose:
        for it in items:
            r = v[str(it["id"])]
            print(f"{name} {r['verdict']} {r['reasons']} {it['source']!r} {it['headline'][:70]!r}",
                  file=sys.stderr)  # fmt: skip


def _retraction_figure(rows: list[dict[str, Any]], stories: list[dict[str, Any]], an: Analyzer,
                       core: SanityCore, fig: Any, verbose: bool) -> None:  # fmt: skip
    items = _sorted_items(_items_of(stories) + [r["item"] for r in rows])
    v = _check(items, an, core)
    denial = [r for r in rows if r.get("expected") == "denial"]
    other = [r for r in rows if r.get("expected") != "denial"]

    def retracts(r: dict[str, Any]) -> bool:
        rec = v[str(r["item"]["id"])]
        return any(str(x).startswith("retracts:") for x in rec["reasons"])

    fig("retractions_detected_pct", 100.0 * sum(map(retracts, denial)) / max(len(denial), 1), len(denial))
    fig("retractions_false_pct", 100.0 * sum(map(retracts, other)) / max(len(other), 1), len(other))
    if verbose:
        for r in rows:
            rec = v[str(r["item"]["id"])]
            print(f"retraction[{r.get('expected')}] {rec['verdict']} {rec['reasons']} "
                  f"{r['item']['headline'][:80]!r}", file=sys.stderr)  # fmt: skip


def _totals(figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each percentage figure over all sets: the counts behind each set's share, summed."""
    sums: dict[str, list[float]] = {}
    for f in figs:
        if f["figure"].endswith("_pct"):
            k = sums.setdefault(f["figure"], [0.0, 0.0])
            k[0] += round(f["value"] * f["n"] / 100.0)
            k[1] += f["n"]
    return [
        {"bench": "news_heldout", "figure": name, "value": round(100.0 * c / n, 4) if n else 0.0, "n": int(n),
         "count": int(c), "set": "total"}
        for name, (c, n) in sums.items()
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dir",
        type=Path,
        action="append",
        help="a set (repeatable: each set's figures, then their totals; models load once)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-model", action="store_true", help="rules only (no learned detector)")
    ap.add_argument("--detector-dir", default="", help="a learned head other than the shipped one")
    ap.add_argument("--verbose", action="store_true", help="list misses and false positives on stderr")
    ap.add_argument(
        "--unscreened",
        choices=("hold", "accept", "withhold"),
        default=SanityConfig().unscreened,
        help="SanityConfig.unscreened: what becomes of text no detector reads (default: the shipped setting)",
    )
    ap.add_argument(
        "--stories-only",
        action="store_true",
        help="skip the attack and benign texts: stories, same-group, fakes, retractions",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SanityConfig field for this run (repeatable), e.g. anchor_match=off",
    )
    args = ap.parse_args(argv)
    dirs: list[Path] = args.dir or [HELDOUT]
    t0 = time.perf_counter()
    figs: list[dict[str, Any]] = []
    several = len(dirs) > 1
    # (several sets share one load of the models; one set loads its own, as before)
    base = Analyzer.with_models(_analyzer_config(args)) if several else None
    for d in dirs:
        one = argparse.Namespace(**{**vars(args), "dir": d})
        if several:
            print(f"== {d}", file=sys.stderr, flush=True)
        figs += [{**f, "set": d.name} if several else f for f in _figures(one, base)]
    if several:
        figs += _totals(figs)
    for f in figs:
        if args.json:
            print(json.dumps(f))
        else:
            where = f"{f['set']:<12} " if "set" in f else ""
            print(f"{where}{f['figure']:<40} {f['value']:>8}  (n={f['n']})")
    print(f"eval_heldout_news: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
