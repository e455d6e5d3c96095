"""Issue 15 item 3: a retracted item's influence leaves the edge features (and its id the traces)."""

from __future__ import annotations

import numpy as np

from adapters.features import FeatureConfig, FeatureEngine
from engine.messages import Bar, VerifiedNews

M = 60 * 10**9


def _bar(i: int) -> Bar:
    c = 100.0 + 0.1 * np.sin(i)
    return Bar(
        symbol="ES",
        ts_event=i * M,
        ts_open=(i - 1) * M,
        open=c,
        high=c + 0.2,
        low=c - 0.2,
        close=c,
        volume=10.0,
    )


def _news(nid: str, t: int, sentiment: float, emb: tuple[float, ...]) -> VerifiedNews:
    return VerifiedNews(
        id=nid, ts_event=t * M, source="reuters", headline="h", symbols=("ES",), sentiment=sentiment,
        credibility=0.9, embedding=emb,
    )  # fmt: skip


def test_retracting_an_item_leaves_the_features_as_if_it_never_came() -> None:
    cfg = FeatureConfig(news_half_life_s=900.0)
    with_retraction, reference = FeatureEngine(cfg), FeatureEngine(cfg)
    a = _news("a", 30, 0.8, (1.0, 0.0, 0.0))
    b = _news("b", 35, -0.3, (0.0, 1.0, 0.0))
    rows = {}
    for i in range(1, 50):
        for eng in (with_retraction, reference):
            if i == 30 and eng is with_retraction:
                eng.on_news(a)
            if i == 35:
                eng.on_news(b)
            if i == 40 and eng is with_retraction:
                eng.retract_news(a)
            row = eng.on_bar(_bar(i))
            rows[(i, eng is reference)] = row
    got, want = rows[(45, False)], rows[(45, True)]
    assert got is not None and want is not None
    assert np.allclose(got.values, want.values, atol=1e-5)
    assert got.news_ids == ("b",)
    before = rows[(39, False)]
    assert before is not None and "a" in before.news_ids  # it did weigh before the retraction
