"""The rules' signature over the project's corpora, and what a rule change changes in it.

``python -m tools.rule_signature --out SIG.json`` runs the rules (``injection.scan`` and
``checker.hype_score``; no learned head, no corroboration) over every text of the project's corpora and
writes, per text, its kind (``attack``, ``benign`` or ``story``), whether the rules flag it (a score of
0.5 or more) and the kinds of rule that fired.  ``python -m tools.rule_signature --diff BEFORE.json
AFTER.json`` prints what a change newly flags and what it no longer flags, by corpus: the counts the
rule-ship rule of ``docs/prereg/prereg-rules44.md`` is decided on (0 benign texts or story items newly
flagged, attack texts newly flagged outside the set that prompted the rule).

The corpora: the spent held-out sets (``tools/data/heldout*``: attacks, benign texts and every story,
same-group, fake and retraction item), ``injection_train``, ``adversarial*``, ``injection_extra/*``,
``injection_dev``, ``sentiment_labelled`` headlines, and the blind reviews in ``docs/prereg``
(``review*-benign.jsonl``, ``review*-attacks.jsonl``).  A held-out directory without a ``DONE`` marker
is being written blind and is never read; ``--skip`` leaves out others (a set not yet run).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from adapters.text.checker import hype_score
from adapters.text.injection import scan

__all__ = ["corpus_texts", "diff", "main", "signature"]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tools" / "data"
PREREG = ROOT / "docs" / "prereg"


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    # (Not eval_heldout_news._rows or train_injection._jsonl_rows: those read a missing file as
    # empty, and a corpus missing here would shrink both signatures alike and hide what a change does.)
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _item_text(it: dict[str, Any]) -> str:
    return f"{it.get('headline') or ''}\n{it.get('body') or it.get('text') or ''}"


def corpus_texts(skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, str, str, str]]:
    """``(corpus, kind, id, text)`` for every text of the corpora (module docstring)."""
    for d in sorted(DATA.glob("heldout*")):
        if d.name in skip or not d.is_dir() or (d.name != "heldout" and not (d / "DONE").exists()):
            continue
        for fn, kind in (("attacks.jsonl", "attack"), ("benign_hard.jsonl", "benign")):
            if (d / fn).exists():
                for r in _rows(d / fn):
                    yield d.name, kind, str(r["id"]), str(r["text"])
        for fn in ("true_stories.jsonl", "same_group.jsonl", "fake_corroboration.jsonl", "retractions.jsonl"):
            if (d / fn).exists():
                for s in _rows(d / fn):
                    for it in s.get("items") or [s["item"]]:
                        yield d.name, "story", str(it["id"]), _item_text(it)
    for r in _rows(DATA / "injection_train.jsonl"):
        kind = "benign" if r["label"] == "benign" else "attack"
        yield "injection_train", kind, str(r["id"]), str(r["text"])
    for f in sorted(DATA.glob("adversarial*.jsonl")):
        for i, r in enumerate(_rows(f)):
            yield f.name, "attack" if r.get("attack", True) else "benign", str(r.get("id", i)), _item_text(r)
    for f in sorted((DATA / "injection_extra").glob("*.jsonl")):
        for r in _rows(f):
            yield f.name, "benign" if r["label"] == "benign" else "attack", str(r["id"]), str(r["text"])
    for fn, kind in (("attacks.jsonl", "attack"), ("benign_hard.jsonl", "benign")):
        for r in _rows(DATA / "injection_dev" / fn):
            yield "injection_dev", kind, str(r["id"]), str(r["text"])
    for r in _rows(DATA / "sentiment_labelled.jsonl"):
        yield "sentiment_labelled", "benign", str(r["id"]), str(r["headline"])
    for f in sorted(PREREG.glob("review*-benign.jsonl")):
        for r in _rows(f):
            yield f.name, "benign", str(r["id"]), str(r["text"])
    for f in sorted(PREREG.glob("review*-attacks.jsonl")):
        for r in _rows(f):
            yield f.name, "attack", str(r["id"]), str(r["text"])


def signature(skip: frozenset[str] = frozenset()) -> dict[str, tuple[str, bool, list[str]]]:
    """``{"corpus|id": (kind, flagged, rule kinds)}`` over :func:`corpus_texts`."""
    out: dict[str, tuple[str, bool, list[str]]] = {}
    texts = list(corpus_texts(skip))
    for corpus, kind, tid, text in tqdm(texts, desc="rule signature", unit="text", file=sys.stderr):
        rep = scan(text)
        flagged = rep.score >= 0.5 or hype_score(text) >= 0.5
        out[f"{corpus}|{tid}"] = (kind, flagged, sorted({f.kind for f in rep.findings}))
    return out


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Counter[tuple[str, str]]]:
    """Counts by ``(corpus, kind)`` of the texts in both signatures that ``after`` newly flags
    (``new``) and no longer flags (``lost``)."""
    new: Counter[tuple[str, str]] = Counter()
    lost: Counter[tuple[str, str]] = Counter()
    for key, (kind, flagged, _) in after.items():
        if key not in before:
            continue
        was = bool(before[key][1])
        corpus = key.split("|", 1)[0]
        if flagged and not was:
            new[(corpus, kind)] += 1
        elif was and not flagged:
            lost[(corpus, kind)] += 1
    return {"new": new, "lost": lost}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.rule_signature", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the signature of this checkout's rules here")
    ap.add_argument("--diff", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two signatures")
    ap.add_argument("--skip", action="append", default=[], help="a held-out set to leave out; repeatable")
    args = ap.parse_args(argv)
    if (args.out is None) == (args.diff is None):
        ap.error("give exactly one of --out and --diff")
    if args.out is not None:
        sig = signature(frozenset(args.skip))
        args.out.write_text(json.dumps(sig), encoding="utf-8")
        print(f"{len(sig)} texts, {sum(v[1] for v in sig.values())} flagged -> {args.out}")
        return 0
    before, after = (json.loads(p.read_text(encoding="utf-8")) for p in args.diff)
    for what, counts in diff(before, after).items():
        total = Counter[str]()
        for (_, kind), n in counts.items():
            total[kind] += n
        print(f"{what}: {dict(total) or 'none'}")
        for (corpus, kind), n in sorted(counts.items()):
            print(f"  {corpus} {kind}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
