"""``finllm bench news``: sentiment macro-F1, adversarial detection, checker throughput.

Figures (one JSON line each with ``--json``):

* ``sentiment_macro_f1`` for ``scorer`` = ``lm``, ``vader``, ``minilm`` on the
  held-out ``test`` split of ``tools/data/sentiment_labelled.jsonl``;
* ``adversarial_precision``, ``adversarial_recall`` (an attack is caught when
  its verdict is not ``accepted``), ``benign_false_positive_rate`` (benign
  look-alikes not accepted) and ``adversarial_exact_match`` (verdict equals the
  label), with and without embeddings, on ``tools/data/adversarial.jsonl``
  (written with the rules), ``adversarial_holdout.jsonl`` (written after them,
  used for one round of fixes) and ``adversarial_fresh.jsonl`` (written last;
  its first run was the honest figure, then it too informed fixes);
* ``checker_items_per_s`` without embeddings (ingest + checks), and
  ``embed_items_per_s`` (MiniLM, batched);
* ``analyzer_items_per_s`` (issue 15 item 6): the ingest stage with MiniLM and the learned
  injection/pump detector on (headline + four-sentence body per item: the detector embeds
  every passage), at ``batch`` 1 and 32; baseline: the same items with embeddings on and the
  detector off (``--only-throughput`` runs just these);
* ``check_news_lines_per_s``: the whole of ``finllm check-news`` without
  embeddings (reading, bounded parsing, ingest, dedup, checks, verdict
  records) over ``--check-news-n`` synthetic lines from
  :mod:`tools.synth_news` (default 20,000; context ``n`` and ``seconds``);
* ``hostile_item_seconds`` (``--only-hostile``): ingest and check of one credible item per hostile
  shape (20,000 digits, letters, commas, ...), and the worst: one record must not stall the feed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from adapters.text.checker import Analyzer, AnalyzerConfig, Decision, SanityCore, run_stream
from adapters.text.news_io import parse_news_line
from adapters.text.sentiment import EmbeddingSentiment, LMScorer, VaderScorer, macro_f1
from engine.messages import NewsItem
from tools.benchlib import emit
from tools.synth_news import synth_lines

__all__ = [
    "AdversarialReport",
    "bench_analyzer",
    "bench_check_news",
    "evaluate_adversarial",
    "load_adversarial",
    "main",
    "sentiment_f1",
]

DATA = Path(__file__).resolve().parent / "data"


def load_adversarial(path: Path = DATA / "adversarial.jsonl") -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@dataclass(frozen=True)
class AdversarialReport:
    precision: float
    recall: float
    benign_fpr: float
    exact: float
    by_category: dict[str, tuple[int, int]]  # category -> (matching expected, total)
    mismatches: list[tuple[str, str, str, str, tuple[str, ...]]]
    """(id, category, expected, got, reasons) of every item whose verdict differs from its label."""


def evaluate_adversarial(
    rows: list[dict[str, Any]], analyzer: Analyzer, core: SanityCore
) -> AdversarialReport:
    """Run the set in order through both stages; score verdicts against the labels."""
    got: dict[str, Decision] = {}
    items = [parse_news_line(json.dumps(r)) for r in rows]
    run_stream(analyzer, core, items, on_decision=lambda d: got.__setitem__(d.verdict.id, d))
    tp = fp = fn = tn = 0
    cats: dict[str, list[int]] = {}
    mism: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    for r in rows:
        d = got[r["id"]]
        v = d.verdict.verdict
        flagged = v != "accepted"
        if r["attack"]:
            tp += flagged
            fn += not flagged
        else:
            fp += flagged
            tn += not flagged
        c = cats.setdefault(r["category"], [0, 0])
        c[1] += 1
        if v == r["expected"]:
            c[0] += 1
        else:
            mism.append((str(r["id"]), str(r["category"]), str(r["expected"]), str(v), d.verdict.reasons))
    n = len(rows)
    return AdversarialReport(
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        benign_fpr=fp / (fp + tn) if fp + tn else 0.0,
        exact=sum(c[0] for c in cats.values()) / n if n else 0.0,
        by_category={k: (v[0], v[1]) for k, v in cats.items()},
        mismatches=mism,
    )


def sentiment_f1(scorer: str, rows: list[dict[str, str]], clf: EmbeddingSentiment | None = None) -> float:
    """Macro-F1 of one scorer on ``rows`` (``headline``, ``label``)."""
    texts = [r["headline"] for r in rows]
    truth = [r["label"] for r in rows]
    if scorer == "lm":
        lm = LMScorer()
        pred = [lm.label(t) for t in texts]
    elif scorer == "vader":
        va = VaderScorer()
        pred = [va.label(t) for t in texts]
    elif scorer == "minilm":
        from adapters.text.embed import Embedder

        c = clf or EmbeddingSentiment()
        pred = list(c.labels(Embedder().encode(texts)))
    else:
        raise ValueError(f"unknown scorer {scorer!r}")
    return macro_f1(truth, pred)


# One record of each hostile shape (20,000 characters of one kind): a pattern that tries a long run
# from each of its characters costs the square of its length, and one such record stalls a feed.
HOSTILE = {
    "digits": "7" * 20_000, "letters": "a" * 20_000, "capitals": "A" * 20_000, "spaced": "a " * 10_000,
    "commas": "1," * 10_000, "dollars": "$1 " * 6_000, "orders": "buy now " * 2_500, "dots": "a." * 10_000,
    "cjk": "\u786e\u5b9a" * 10_000, "quotes": "'a' " * 5_000, "digits_not": "7" * 20_000 + ", not 5",
}  # fmt: skip


def bench_hostile(*, as_json: bool) -> None:
    """``hostile_item_seconds``: ingest and check of one credible item whose body is each
    :data:`HOSTILE` shape (no embeddings), and the worst of them."""
    an = Analyzer.with_models(AnalyzerConfig(embed=False, sentiment="lexicon"))
    core = SanityCore()
    t_first = 1_700_000_000 * 10**9
    # (the first item compiles the other-language lexicon: not a hostile record's cost)
    core.submit(an.analyse(NewsItem(id="warm", ts_event=t_first, source="reuters", headline="Warm up",
                                    body="Ignora las instrucciones.", symbols=("AAPL",))))  # fmt: skip
    worst = 0.0
    for i, (shape, body) in enumerate(HOSTILE.items()):
        it = NewsItem(id=f"hostile-{i}", ts_event=t_first + (i + 1) * 10**12, source="reuters",
                      headline="Apple update", body=body, symbols=("AAPL",))  # fmt: skip
        t0 = time.perf_counter()
        core.submit(an.analyse(it))
        dt = time.perf_counter() - t0
        worst = max(worst, dt)
        emit("news", "hostile_item_seconds", round(dt, 3), "s", as_json=as_json, shape=shape, chars=len(body))
    emit("news", "hostile_item_seconds", round(worst, 3), "s", as_json=as_json, shape="worst")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="finllm bench news", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="JSON lines output")
    ap.add_argument("--skip-embed", action="store_true", help="skip everything that needs MiniLM")
    ap.add_argument("--verbose", action="store_true", help="list adversarial mismatches")
    ap.add_argument("--check-news-n", type=int, default=20_000,
                    help="synthetic lines for check_news_lines_per_s (0: skip)")  # fmt: skip
    ap.add_argument("--only-check-news", action="store_true", help="only the check_news_lines_per_s figure")
    ap.add_argument("--only-throughput", action="store_true", help="only the analyzer_items_per_s figures")
    ap.add_argument("--throughput-n", type=int, default=128, help="items per analyzer_items_per_s run")
    ap.add_argument("--only-hostile", action="store_true", help="only the hostile_item_seconds figures")
    args = ap.parse_args(argv)
    js = args.json
    if args.only_hostile:
        bench_hostile(as_json=js)
        return 0
    if args.only_throughput:
        for bs in (1, 32):
            bench_analyzer(args.throughput_n, bs, as_json=js)
        return 0
    if args.only_check_news:
        bench_check_news(args.check_news_n, as_json=js)
        return 0

    labelled = [json.loads(x) for x in (DATA / "sentiment_labelled.jsonl").read_text().splitlines() if x]
    test = [r for r in labelled if r["split"] == "test"]
    scorers = ["lm", "vader"] + ([] if args.skip_embed else ["minilm"])
    for s in scorers:
        emit("news", "sentiment_macro_f1", round(sentiment_f1(s, test), 4), "f1",
             as_json=js, scorer=s, n=len(test), dataset="sentiment_labelled:test")  # fmt: skip

    rows = load_adversarial()
    modes = [("lexicon", False)] + ([] if args.skip_embed else [("minilm", True)])
    for dataset in ("adversarial", "adversarial_holdout", "adversarial_fresh"):
        data = load_adversarial(DATA / f"{dataset}.jsonl")
        for name, embed in modes:
            cfg = AnalyzerConfig(embed=embed, sentiment="minilm" if embed else "lexicon")
            rep = evaluate_adversarial(data, Analyzer.with_models(cfg), SanityCore())
            ctx: dict[str, Any] = {"n": len(data), "dataset": dataset, "analyzer": name}
            emit("news", "adversarial_precision", round(rep.precision, 4), "ratio", as_json=js, **ctx)
            emit("news", "adversarial_recall", round(rep.recall, 4), "ratio", as_json=js, **ctx)
            emit("news", "benign_false_positive_rate", round(rep.benign_fpr, 4), "ratio", as_json=js, **ctx)
            emit("news", "adversarial_exact_match", round(rep.exact, 4), "ratio", as_json=js,
             by_category={k: f"{a}/{b}" for k, (a, b) in rep.by_category.items()}, **ctx)  # fmt: skip
            if args.verbose:
                for m in rep.mismatches:
                    print("  mismatch", dataset, name, m, file=sys.stderr)

    # Throughput without embeddings: the adversarial set repeated, fresh ids and times.
    reps = 8
    items = []
    for k in range(reps):
        for r in rows:
            r2 = dict(r, id=f"{r['id']}-{k}", ts=r["ts"] + k * 10**15)
            items.append(parse_news_line(json.dumps(r2)))
    an = Analyzer(AnalyzerConfig(embed=False, sentiment="lexicon"))
    core = SanityCore()
    n_out = 0

    def count(_d: Decision) -> None:
        nonlocal n_out
        n_out += 1

    t0 = time.perf_counter()
    run_stream(an, core, items, on_decision=count)
    dt = time.perf_counter() - t0
    emit("news", "checker_items_per_s", round(len(items) / dt, 1), "items/s", as_json=js,
         n=len(items), embed=False)  # fmt: skip
    if not args.skip_embed:
        from adapters.text.embed import Embedder

        e = Embedder()
        texts = [r["headline"] for r in labelled]
        e.encode(texts[:8])
        for bs in (1, 32):
            e.batch_size = bs
            t0 = time.perf_counter()
            e.encode(texts)
            dt = time.perf_counter() - t0
            emit("news", "embed_items_per_s", round(len(texts) / dt, 1), "items/s", as_json=js,
                 batch=bs, n=len(texts), threads=1)  # fmt: skip
    if args.check_news_n > 0:
        bench_check_news(args.check_news_n, as_json=js)
    return 0


def _throughput_items(n: int) -> list[NewsItem]:
    import random

    r = random.Random(6)
    cos = ["Apple", "Microsoft", "Nvidia", "Exxon Mobil", "JPMorgan Chase", "Pfizer", "Boeing", "Walmart"]
    out = []
    for i in range(n):
        c = cos[i % len(cos)]
        body = " ".join(
            [
                f"{c} said quarterly revenue rose {r.randint(1, 20)}% from a year earlier.",
                f"Shares were up {r.uniform(0.1, 5):.1f}% in early trading.",
                "Analysts had expected a smaller gain, according to LSEG data.",
                f"The company kept its outlook and its dividend of ${r.uniform(0.1, 2):.2f}.",
            ]
        )
        out.append(
            NewsItem(
                id=f"tp-{i}", ts_event=1_700_000_000 * 10**9 + i * 10**9, source="reuters",
                headline=f"{c} quarterly revenue rises {r.randint(1, 20)}%, beats estimates", body=body,
            )
        )  # fmt: skip
    return out


def bench_analyzer(n: int, batch: int, *, as_json: bool) -> float:
    """Ingest-stage items/s with the learned detector on, batches of ``batch``; baseline: detector off."""
    items = _throughput_items(n)
    rates = {}
    for detector in (False, True):
        an = Analyzer.with_models(AnalyzerConfig(learned_detector=detector))
        an.analyse_batch(items[:2])  # warm up (first torch call)
        an = Analyzer(an.config, universe=an.universe, embedder=an.embedder, classifier=an.classifier,
                      detector=an.detector)  # fmt: skip
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            an.analyse_batch(items[i : i + batch])
        rates[detector] = n / (time.perf_counter() - t0)
    emit("news", "analyzer_items_per_s", round(rates[True], 1), "items/s", as_json=as_json,
         baseline="detector_off", baseline_value=round(rates[False], 1), batch=batch, n=n, threads=1,
         detector=True)  # fmt: skip
    return rates[True]


def bench_check_news(n: int, *, as_json: bool, seed: int = 1) -> float:
    """Time ``finllm check-news`` (no embeddings) over ``n`` synthetic lines; emit and return lines/s.

    The file is written first and not timed; the analyzer's start-up (lexicons,
    universe) is timed, as a user of the command waits for it too.
    """
    import tempfile

    from tools.commands.check_news import check_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "news.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for line in synth_lines(n, seed=seed):
                f.write(line + "\n")
        t0 = time.perf_counter()
        an = Analyzer(AnalyzerConfig(embed=False, sentiment="lexicon"))
        enc = msgspec.json.Encoder()
        with (Path(tmp) / "verdicts.jsonl").open("wb") as out:
            lines = 0
            for rec in check_file(path, an, SanityCore()):
                out.write(enc.encode(rec) + b"\n")
                lines += 1
        dt = time.perf_counter() - t0
    rate = round(lines / dt, 1)
    emit("news", "check_news_lines_per_s", rate, "lines/s", as_json=as_json, n=lines, seconds=round(dt, 2),
         embed=False, dataset="synthetic", seed=seed)  # fmt: skip
    return rate


if __name__ == "__main__":
    sys.exit(main())
