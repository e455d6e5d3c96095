"""Incremental features against batch recomputation on real bars; neutral defaults; news decay."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.features import FEATURE_NAMES, FeatureConfig, FeatureEngine
from adapters.scoring import ewma_variance
from engine.messages import Bar, Quote, VerifiedNews

IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _rows(bars: list[Bar], cfg: FeatureConfig | None = None):
    eng = FeatureEngine(cfg)
    return eng, [r for b in bars if (r := eng.on_bar(b)) is not None]


def test_ewma_scale_matches_batch_recursion(es_bars: list[Bar]) -> None:
    cfg = FeatureConfig()
    _, rows = _rows(es_bars, cfg)
    closes = np.array([b.close for b in es_bars])
    r = np.diff(np.log(closes))
    w = cfg.warmup_bars
    # Batch: running mean for the warm-up, then RiskMetrics; out[i] forecasts r[i] from r[:i].
    init = float(np.mean(r[:w] ** 2))
    var = ewma_variance(r[w:], cfg.ewma_lambda, init=init)
    got = np.array([row.scale**2 for row in rows])
    np.testing.assert_allclose(got[w : len(r) - 1], var[1:], rtol=1e-9)
    assert [row.warm for row in rows] == [i >= w for i in range(len(rows))]


def test_multi_horizon_returns_and_imbalance(es_bars: list[Bar]) -> None:
    _, rows = _rows(es_bars)
    closes = np.array([b.close for b in es_bars])
    i = 120  # row i is after bar i + 1
    row = rows[i]
    r20 = math.log(closes[i + 1] / closes[i + 1 - 20])
    assert row.values[IDX["ret_20"]] == np.float32(max(-8.0, min(8.0, r20 / (row.scale * math.sqrt(20)))))
    b = es_bars[i + 1]
    assert -1.0 <= row.values[IDX["imbalance"]] <= 1.0
    assert b.buy_volume <= b.volume
    # ln(high/low) / vol: a bar with a range has a positive range feature.
    assert (row.values[IDX["range"]] > 0) == (b.high > b.low)


def test_neutral_defaults_without_quotes_or_news(es_bars: list[Bar]) -> None:
    _, rows = _rows(es_bars)
    news_cols = [i for n, i in IDX.items() if n.startswith("news_")]
    for row in rows:
        assert row.values[IDX["spread"]] == 0.0
        assert not np.any(row.values[news_cols])
        assert row.news_ids == ()
        assert np.all(np.isfinite(row.values))


def test_news_decays_with_its_half_life(es_bars: list[Bar]) -> None:
    cfg = FeatureConfig(news_half_life_s=600.0)
    eng = FeatureEngine(cfg)
    for b in es_bars[:50]:
        eng.on_bar(b)
    t = es_bars[49].ts_event
    eng.on_news(
        VerifiedNews(
            id="a",
            ts_event=t,
            source="x",
            headline="h",
            symbols=("ES",),
            sentiment=0.5,
            credibility=1.0,
            embedding=(1.0, 0.0, 0.0),
        )
    )
    eng.on_news(
        VerifiedNews(
            id="b", ts_event=t, source="x", headline="h", symbols=("OTHER",), sentiment=-1.0, credibility=1.0
        )
    )
    vals = {}
    for b in es_bars[50:80]:
        row = eng.on_bar(b)
        assert row is not None
        vals[(b.ts_event - t) // 60_000_000_000] = row
    # 10 minutes = one half-life: the decayed sentiment sum halves (tanh of it is reported).
    s1 = math.atanh(vals[1].values[IDX["news_sent"]])
    s11 = math.atanh(vals[11].values[IDX["news_sent"]])
    assert s11 / s1 == np.float32(0.5) or abs(s11 / s1 - 0.5) < 1e-3
    assert vals[1].news_ids == ("a",)  # "b" is for another symbol
    assert np.any(vals[1].values[[IDX[f"news_emb_{k}"] for k in range(4)]] != 0.0)


def test_quotes_set_spread(es_bars: list[Bar]) -> None:
    eng = FeatureEngine()
    for b in es_bars[:30]:
        eng.on_bar(b)
    eng.on_quote(Quote(symbol="ES", ts_event=es_bars[30].ts_event, bid=1640.0, ask=1640.5))
    eng.on_quote(
        Quote(symbol="ES", ts_event=es_bars[30].ts_event, bid=1641.0, ask=1640.5)
    )  # crossed: ignored
    row = eng.on_bar(es_bars[30])
    assert row is not None
    assert row.values[IDX["spread"]] == np.float32(min(8.0, (0.5 / 1640.25) / row.scale))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(1e-3, 1e6), st.floats(0.0, 0.2), st.floats(0.0, 1e7), st.integers(1, 10**12)),
        min_size=2,
        max_size=60,
    )
)
def test_features_always_finite(raw: list[tuple[float, float, float, int]]) -> None:
    eng = FeatureEngine(FeatureConfig(warmup_bars=3))
    ts = 0
    for close, rng, vol, dt in raw:
        ts += dt
        bar = Bar(
            symbol="X",
            ts_event=ts,
            ts_open=ts - dt,
            open=close,
            high=close * (1 + rng),
            low=close / (1 + rng),
            close=close,
            volume=vol,
            n_trades=1,
            buy_volume=vol / 3,
        )
        row = eng.on_bar(bar)
        if row is not None:
            assert np.all(np.isfinite(row.values)) and row.scale > 0
            assert np.all(np.abs(row.values[1:]) <= 8.0)
