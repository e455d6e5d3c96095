"""The learned injection and pump detector: MiniLM passage embeddings and a small head, beside the rules.

Rules (:mod:`adapters.text.injection`, :func:`adapters.text.checker.hype_score`) catch the forms
they were written for; this head catches the *intent* in wordings they miss.  A news item is cut
into passages (:func:`passages`: its headline, then its sentences, short ones joined, long ones
split, at most ``max_passages``), each passage is embedded with MiniLM
(:class:`adapters.text.embed.Embedder`) and scored by the head (softmax over ``benign``,
``injection``, ``pump``); an item scores the maximum over its passages, so an attack sentence
inside a long, otherwise ordinary body is not averaged away.

The head (``models/injection/weights.npz``, package data, trained by ``tools/train_injection.py``
on the project's own sets only) is a multinomial logistic regression or a one-hidden-layer MLP;
its manifest holds the sha256 of the weights, the decision thresholds chosen on validation data
and the training metrics.  Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from adapters.text.errors import ModelFileError


class Encoder(Protocol):
    """What the head needs of an embedder (:class:`adapters.text.embed.Embedder`)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


__all__ = ["CLASSES", "INJECTION_DIR", "InjectionHead", "LearnedScore", "passages"]

CLASSES = ("benign", "injection", "pump")


def _default_dir() -> Path:
    from models import path

    return path("injection")


INJECTION_DIR = _default_dir()
"""The shipped head (package data of ``models``)."""

_SENT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+|(?<=-->)\s*|\s*(?=<!--)")


def passages(headline: str, body: str = "", *, max_passages: int = 16, max_words: int = 48) -> list[str]:
    """The passages of an item, in order: the headline, then the body's sentences (fragments of
    fewer than 6 words joined to the next, sentences over ``max_words`` words split), at most
    ``max_passages`` in all (the first ones: bounded cost per item, whatever its length)."""
    out: list[str] = []
    h = " ".join(headline.split())
    if h:
        out.append(" ".join(h.split()[:max_words]))
    buf: list[str] = []
    for part in _SENT.split(body[: 64 * 1024]):
        words = part.split()
        if not words:
            continue
        buf.extend(words)
        if len(buf) < 6:
            continue
        while buf and len(out) < max_passages:
            out.append(" ".join(buf[:max_words]))
            buf = buf[max_words:]
        buf = []
        if len(out) >= max_passages:
            break
    if buf and len(out) < max_passages:
        out.append(" ".join(buf))
    return out


@dataclass(frozen=True, slots=True)
class LearnedScore:
    """Per item: the highest ``injection`` and ``pump`` probabilities over its passages, in
    [0, 1], and the index of the passage that gave the injection one."""

    injection: float
    pump: float
    passage: int


class InjectionHead:
    """The head over MiniLM embeddings (see module docstring).  Thread-safe (read-only arrays)."""

    def __init__(self, model_dir: str | Path = "") -> None:
        d = Path(model_dir) if model_dir else INJECTION_DIR
        man_path = d / "manifest.json"
        w_path = d / "weights.npz"
        if not man_path.is_file() or not w_path.is_file():
            raise ModelFileError(
                f"{d}: manifest.json or weights.npz missing; run python -m tools.train_injection"
            )
        self.manifest = json.loads(man_path.read_text(encoding="utf-8"))
        want = self.manifest["files"]["weights.npz"]["sha256"]
        got = hashlib.sha256(w_path.read_bytes()).hexdigest()
        if got != want:
            raise ModelFileError(f"{w_path}: sha256 {got} does not match the manifest ({want})")
        with np.load(w_path) as z:
            self._w = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
        th = self.manifest.get("thresholds", {})
        self.injection_threshold = float(th.get("injection", 0.5))
        self.pump_threshold = float(th.get("pump", 0.5))

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        """Rows of ``emb`` (n, 384) to class probabilities (n, 3) in :data:`CLASSES` order."""
        w = self._w
        x = np.asarray(emb, dtype=np.float32)
        if "w1" in w:
            h = np.maximum(x @ w["w1"] + w["b1"], 0.0)
            z = h @ w["w2"] + w["b2"]
        else:
            z = x @ w["w"] + w["b"]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return p

    def score_passages(self, groups: Sequence[Sequence[str]], embedder: Encoder) -> list[LearnedScore]:
        """Score each item given as its passages (one ``encode`` call for all of them)."""
        flat = [p for g in groups for p in g]
        if not flat:
            return [LearnedScore(0.0, 0.0, -1) for _ in groups]
        probs = self.probabilities(embedder.encode(flat))
        return self.pool(probs, [len(g) for g in groups])

    @staticmethod
    def pool(probs: np.ndarray, sizes: Sequence[int]) -> list[LearnedScore]:
        """Max-pool passage probabilities into one score per item (``sizes`` passages each)."""
        out = []
        i = 0
        for n in sizes:
            if n == 0:
                out.append(LearnedScore(0.0, 0.0, -1))
                continue
            block = probs[i : i + n]
            j = int(np.argmax(block[:, 1]))
            out.append(LearnedScore(round(float(block[j, 1]), 6), round(float(block[:, 2].max()), 6), j))
            i += n
        return out
