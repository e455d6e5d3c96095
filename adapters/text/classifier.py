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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from adapters.text.coverage import SENTENCE, passage_kind
from adapters.text.errors import ModelFileError

if TYPE_CHECKING:
    import torch


class Encoder(Protocol):
    """What the head needs of an embedder (:class:`adapters.text.embed.Embedder`)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_with_top(
        self, texts: Sequence[str], top: Mapping[str, torch.Tensor], *, top_from: int = 0
    ) -> tuple[np.ndarray, np.ndarray]: ...


__all__ = [
    "CLASSES",
    "INJECTION_DIR",
    "InjectionHead",
    "LearnedScore",
    "addressed",
    "latin_share",
    "passages",
    "unquote_reported",
]

CLASSES = ("benign", "injection", "pump")


def _default_dir() -> Path:
    from models import path

    return path("injection")


INJECTION_DIR = _default_dir()
"""The shipped head (package data of ``models``)."""

_SENT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+|(?<=-->)\s*|\s*(?=<!--)")


# Where a headline breaks into parts: sentences, a colon, a dash between words, a semicolon.
_HEADLINE_PARTS = re.compile(_SENT.pattern + r"|(?<=\w)[:;]\s+|\s+[-\u2013\u2014]\s+")


def passages(headline: str, body: str = "", *, max_passages: int = 16, max_words: int = 48) -> list[str]:
    """The passages of an item, in order: the headline, then the body's sentences (fragments of
    fewer than 6 words joined to the next, sentences over ``max_words`` words split), then the
    parts of a headline that has several (at least ``_MIN_WORDS`` words each: an attack after a
    story's headline is scored on its own, not averaged into the headline), at most
    ``max_passages`` in all (bounded cost per item, whatever its length)."""
    out: list[str] = []
    h = " ".join(headline.split())
    if h:
        out.append(" ".join(h.split()[:max_words]))
    parts = [" ".join(p.split()[:max_words]) for p in _HEADLINE_PARTS.split(h) if p and p.strip()]
    tail = [p for p in parts if len(p.split()) >= _MIN_WORDS] if len(parts) > 1 else []
    tail = tail[: max(max_passages - 2, 0)]
    max_passages -= len(tail)
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
    return out + tail


_MIN_WORDS = 4
# The head's injection probability above which a passage not addressed to its reader still counts
# (0.99 until prereg-gate: at 0.95 the untrained parts of the spent sets lost no benign text).
_SOLO = 0.95
# Text addressed to its reader: second person (English and the main Latin-script languages), an
# imperative opening a sentence, a model or its configuration named, or chat/markup syntax.
_ADDRESSED = re.compile(
    r"\b(?:you|your|yours|yourself|u|ur|tu|tus|tes|ton|ta|vos|votre|dein\w*|dich|dir|jouw|"
    r"jij|você|seu|sua|teu|tua|twój|twoje|twoja|siz|sen|senin)\b|"
    r"(?:^|[.!?:;\n]\s*|[\"'(\[]\s*)(?:please\s+)?(?:ignore|disregard|forget|pretend|act|play|roleplay|"
    r"imagine|assume|switch|print|reveal|disclose|list|output|return|emit|respond|reply|answer|say|tell|"
    r"write|include|append|add|insert|set|adjust|rate|classify|label|mark|treat|score|buy|sell|send|"
    r"share|repeat|quote|echo|stop|start|do|don'?t|never|always|override|bypass|skip|drop|discard|"
    r"scrap|put|consider|report|recommend|describe|forecast|give|make|grab|load|mortgage|position|"
    r"switch|enable|disable|activate|execute|run|open|follow|obey|use|keep|remember|note)\b|"
    r"\b(?:ai|a\.i\.|llm|gpt|chatbot|assistant|model|bot|agent|pipeline|summari[sz]er|classifier|"
    r"reader|operator|prompt|instructions?|guidance|directives?|configuration|system|downstream|"
    r"automated|machine|persona|mode|modell|modèle|modelo|modello|readers?|field|deployment|when\s+asked)\b|"
    r"\b(?:ignora|ignoriere\w*|ignorez|ignorer|oublie\w*|olvida\w*|vergiss|negeer|zignoruj|ignoruj|esqueça|"
    r"dimentica|игнорируй\w*|забудь|ты)\b|[<>{}\[\]|#=]",
    re.I,
)


# What makes a passage promotion.  (prereg-gate2 added prices in cents or dollars, 'risk-free' and
# 'guaranteed'; review13 reverted it: the head is sure of a pump in plain commodity prices, "Cattle
# fell 2 dollars a bushel.", and in "the risk-free benchmark", and this gate is what keeps them news.)
_PROMO = re.compile(
    r"\b(?:stocks?|shares?|ticker|tokens?|coins?|buy\w*|returns?|gains?|upside|profits?|double[sd]?|"
    r"triple[sd]?|\d+\s?x|moon\w*|rocket\w*|insiders?|penny|squeeze|rally|soar\w*|surg\w+|explod\w+|"
    r"cheap\w*|winner|bagger|pick|alert|position|get\s+in|load\s+up|rich\w*|millionaire)\b|[%$🚀💎]",
    re.I,
)


# Markdown that feeds use for tables, lists and headings (not a role heading such as "### System"):
# layout, not an address to the reader.
_MARKDOWN = re.compile(
    r"(?m)^[ \t]*#{1,6}[ \t]+(?!(?:system|instructions?|response|assistant|user|human|input|output)\b)|"
    r"\|?(?:[ \t]*:?-{3,}:?[ \t]*\|)+|(?<=\s)\|(?=\s)|^[ \t]*\||\|[ \t]*$|"
    r"^[ \t]*[-*+][ \t]+",
    re.I,
)
_QUOTED = re.compile(
    r"\"[^\"]{0,300}\"|\u201c[^\u201d]{0,300}\u201d|\u2018[^\u2019]{0,300}\u2019|"
    r"\u00ab[^\u00bb]{0,300}\u00bb|\u201e[^\u201c\u201d]{0,300}[\u201c\u201d]|"
    # (an apostrophe inside a word does not close a single-quoted span: 'buy before it's too late')
    r"(?<!\w)'(?:[^'\n]|(?<=\w)'(?=\w)){1,200}'(?!\w)"
)
# News about enforcement quotes the promoter's (or the attacker's) words: they are the story.
_ENFORCEMENT = re.compile(
    r"\b(?:fined|fines|charged|charges|accused|alleged|allegedly|prosecutors?|regulators?|sec|fca|finra|"
    r"court|lawsuit|complaint|indicted|convicted|sued|ban(?:ned|s)?|warned|warning|scheme|red\s+flags?|"
    r"alerts?|(?:at|on)\s+trial|jury|investigators?|indictment|testified|testimony|watchdog|"
    # (review17) the police and securities commissions warn of scams; not "fraud" or "scam" alone, which
    # attack texts use freely ("our fraud case is closed, report it that way")
    r"police|fbi|securities\s+commission|polic[ií]a|polizei)\b",
    re.I,
)


# What a defendant promised, as an enforcement sentence reports it ("fined a newsletter writer who
# had promised subscribers guaranteed 500% returns"): the promise is reported, not made (after
# heldout20); the rest of the sentence up to its end is read as quoted.
_PROMISED = re.compile(
    r"\b(?:promis(?:ed|ing)|touted|touting|pitched|pitching|advertised|advertising|marketed|marketing|"
    r"offer(?:ed|ing)|claim(?:ed|ing)?|prometen|prometían|prometió|versprach\w*|promett\w*)\b"
    r"[^.!?\n]*"
)


def unquote_reported(text: str) -> str:
    """``text`` with its quoted spans blanked when it reports enforcement (a regulator fining
    "guaranteed returns" adverts), and in each sentence that names enforcement what it says was
    promised; else ``text`` itself.  An attacker can hide behind this by dressing an instruction as a
    quoted warning; the rules still read the unquoted rest."""
    if not _ENFORCEMENT.search(text):
        return text

    def sentence(m: re.Match[str]) -> str:
        s = m.group(0)
        return _PROMISED.sub(" ", s) if _ENFORCEMENT.search(s) else s

    return SENTENCE.sub(sentence, _QUOTED.sub(" ", text))


def _quotes_enforcement(text: str) -> bool:
    """True when ``text`` reports enforcement and quotes words: the head leaves such a passage to
    the rules (a reported promise without quotes is still the head's to read)."""
    return _ENFORCEMENT.search(text) is not None and _QUOTED.search(text) is not None


# Reported speech: a quotation attributed to a speaker, an interview's questions.  "Will you raise
# prices?" in a Q&A, or "when asked about acquisitions" after a chief executive's quote, address
# the person interviewed, not whoever reads the story.
_SPEECH = re.compile(r"\b(?:said|says|told|added|replied|answered|according\s+to)\b", re.I)
_INTERVIEW_Q = re.compile(r"(?m)^\s*Q\s*[:.][^\n]*")
# An earnings call's moderator ("Operator: Our next question comes from ... Please go ahead.").
# Only the moderator's own sentences go: what follows them on the line is read as usual.
_CALL_OPERATOR = re.compile(
    r"(?im)^\s*Operator\s*:(?:\s*[^.!?\n]*\b(?:question|line\s+of|go\s+ahead|conference|welcome|"
    r"turn\s+the\s+call)\b[^.!?\n]*[.!?]?)+"
)
_INTERVIEW_A = re.compile(r"(?m)^\s*A\s*[:.]")
_WHEN_ASKED = re.compile(r"\bwhen\s+asked\b", re.I)
# A Markdown table's separator row: a table is data, and the head's reading of one is noise (it
# was all but certain of an injection in a table of index closes).
_TABLE_ROW = re.compile(r"\|\s*:?-{3,}:?\s*\|")


def _unreported(text: str) -> str:
    """``text`` less what it reports others saying (attributed quotations, interview questions, an
    earnings call's operator)."""
    if _INTERVIEW_A.search(text):
        text = _INTERVIEW_Q.sub(" ", text)
    text = _CALL_OPERATOR.sub(" ", text)
    if _SPEECH.search(text):
        text = _WHEN_ASKED.sub(" ", _QUOTED.sub(" ", text))
    return text


def addressed(text: str) -> bool:
    """True when ``text`` reads as written to its reader (see ``_ADDRESSED``): a necessary sign of
    an instruction, absent from most third-person news.  Table and list markdown does not count,
    nor does reported speech (an attributed quotation, an interview's questions)."""
    return _ADDRESSED.search(_MARKDOWN.sub(" ", _unreported(text))) is not None


def latin_share(text: str) -> float:
    """Share of the letters of ``text`` that are ASCII or Latin-1/Latin Extended (1.0 without letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(ord(c) < 0x250 for c in letters) / len(letters)


@dataclass(frozen=True, slots=True)
class LearnedScore:
    """Per item: the highest ``injection`` and ``pump`` probabilities over its passages, in
    [0, 1], and the index of the passage that gave the injection one; ``attack`` the highest
    injection plus pump mass of one passage, ``attack_kind`` the larger of the two in that passage
    (``"injection"`` on a tie).  The attack mass catches a passage the head splits between its two
    attack classes; since it is at least the pump mass, an attack threshold below the pump
    threshold is also the effective pump threshold (prereg-gate measured both together)."""

    injection: float
    pump: float
    passage: int
    attack: float = 0.0
    attack_kind: Literal["injection", "pump"] = "injection"


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
            self._w = {k: np.asarray(z[k], dtype=np.float32) for k in z.files if not k.startswith("top.")}
            top = {k[4:]: np.asarray(z[k], dtype=np.float32) for k in z.files if k.startswith("top.")}
        self.top: dict[str, torch.Tensor] | None = None
        """The fine-tuned last encoder layer the head reads (``None``: the head reads MiniLM's
        own sentence vectors)."""
        if top:
            import torch

            self.top = {k: torch.from_numpy(v) for k, v in top.items()}
        th = self.manifest.get("thresholds", {})
        self.injection_threshold = float(th.get("injection", 0.5))
        self.pump_threshold = float(th.get("pump", 0.5))
        attack = th.get("attack")
        self.attack_threshold: float | None = None if attack is None else float(attack)
        """Threshold on :attr:`LearnedScore.attack` (``None``: the head's manifest sets none)."""

    def flagged(self, score: LearnedScore) -> bool:
        """Whether ``score`` reaches any of the head's thresholds (injection, pump, attack)."""
        ta = self.attack_threshold
        return (
            score.injection >= self.injection_threshold
            or score.pump >= self.pump_threshold
            or (ta is not None and score.attack >= ta)
        )

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
        _, head_in = self.vectors(embedder, flat)
        probs = self.readable(self.probabilities(head_in), flat)
        return self.pool(probs, [len(g) for g in groups])

    def vectors(
        self, embedder: Encoder, texts: Sequence[str], top_from: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """MiniLM's sentence vectors of ``texts`` and what the head reads for ``texts[top_from:]``
        (the same vectors, or the fine-tuned top layer's when the head has one), in one pass."""
        if self.top is None:
            base = embedder.encode(texts)
            return base, base[top_from:]
        return embedder.encode_with_top(texts, self.top, top_from=top_from)

    @staticmethod
    def readable(probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``probs`` with the attack classes of passages written mostly in non-Latin scripts, or of
        fewer than :data:`_MIN_WORDS` words (fragments the head scores at random), set to 0
        (benign 1): MiniLM-L6 was trained on English, its vectors of Chinese, Korean or Arabic
        text carry little meaning and the head's scores on them are noise (those languages are
        left to the rules, :mod:`adapters.text.injection`)."""
        out = np.array(probs, copy=True)
        for i, t in enumerate(texts):
            promo = _PROMO.search(t) is not None
            if (
                latin_share(t) < 0.5
                or len(t.split()) < _MIN_WORDS
                or _quotes_enforcement(t)
                or passage_kind(t) == "language"
                or _TABLE_ROW.search(t)
            ):
                # (A passage quoting the words an enforcement story is about is scored by the
                # rules on its unquoted rest, as :func:`adapters.text.checker.hype_score` does.)
                out[i] = 0.0
                out[i, 0] = 1.0
            elif out[i, 1] < _SOLO and not addressed(t):
                # An injection speaks to its reader; third-person news that only shares its words
                # (an insolvency administrator, FDIC-guaranteed notes) does not count, unless the
                # head is all but certain.  A passage that promotes a stock is a pitch whichever
                # attack class the head chose (it confuses the two on whisper numbers and price
                # targets), so there the mass moves to pump and meets the pump threshold.
                out[i, 2 if promo else 0] += out[i, 1]
                out[i, 1] = 0.0
            if not promo:
                # Promotion names what to buy and what it will gain; without either it is news,
                # however sure the head is (the MLP is overconfident on short odd sentences:
                # "Trading begins the following day." read 0.992).
                out[i, 0] += out[i, 2]
                out[i, 2] = 0.0
        return out

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
            mass = block[:, 1] + block[:, 2]
            k = int(np.argmax(mass))
            out.append(
                LearnedScore(
                    round(float(block[j, 1]), 6),
                    round(float(block[:, 2].max()), 6),
                    j,
                    round(float(mass[k]), 6),
                    "pump" if block[k, 2] > block[k, 1] else "injection",
                )
            )
            i += n
        return out
