"""The speculative protocol's store and the shadow comparison."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.forecast_store import (
    Decision,
    ForecastStore,
    ForecastStoreConfig,
    Outcome,
    ShadowConfig,
    ShadowEvaluator,
    crps,
    horizon_spec,
)
from engine.messages import Forecast

LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
S = 1_000_000_000


def edge(
    i: int, seq: int | None = None, point: float = 0.0, vol: float = 0.001, horizon: str = "1m"
) -> Forecast:
    z = (-1.2816, -0.6745, 0.0, 0.6745, 1.2816)
    return Forecast(
        forecast_id=f"f{i}",
        symbol="ES",
        horizon=horizon,
        version=1,
        basis_seq=seq if seq is not None else i,
        ts_event=i * S,
        point=point,
        quantile_levels=LEVELS,
        quantiles=tuple(point + vol * q for q in z),
        volatility=vol,
        direction_prob=0.5 + (0.1 if point > 0 else -0.1 if point < 0 else 0.0),
    )


def refine(fc: Forecast, version: int = 2, shift: float = 0.0) -> Forecast:
    return Forecast(
        forecast_id=fc.forecast_id,
        symbol=fc.symbol,
        horizon=fc.horizon,
        version=version,
        basis_seq=fc.basis_seq,
        ts_event=fc.ts_event + 1,
        tier="cloud",
        point=fc.point + shift,
        quantile_levels=fc.quantile_levels,
        quantiles=tuple(q + shift for q in fc.quantiles),
        volatility=fc.volatility,
        direction_prob=0.9 if shift > 0 else 0.1 if shift < 0 else 0.5,
    )


def test_refinement_of_current_forecast_is_adopted_and_notified() -> None:
    adopted: list[Outcome] = []
    store = ForecastStore(on_adopt=adopted.append)
    e = edge(1)
    assert store.offer(e).decision is Decision.NEW
    r = refine(e)
    out = store.offer(r)
    assert out.decision is Decision.ADOPTED and out.replaced == e and out.basis == e
    assert store.current("ES", "1m") == r
    assert adopted == [out]
    # the same version again, or an older one, changes nothing
    assert store.offer(r).decision is Decision.DUPLICATE
    assert store.current("ES", "1m") == r


def test_late_refinement_is_recorded_never_applied() -> None:
    late: list[Outcome] = []
    store = ForecastStore(ForecastStoreConfig(staleness_events=2), on_late=late.append)
    e1 = edge(1, seq=10)
    store.offer(e1)
    store.offer(edge(2, seq=12))  # 2 events newer: still within the window
    out = store.offer(refine(e1))
    assert out.decision is Decision.ADOPTED and out.lag_events == 2
    e3 = edge(3, seq=13)
    store.offer(e3)
    store.offer(edge(4, seq=20))
    out = store.offer(refine(e3))
    assert out.decision is Decision.LATE and out.lag_events == 7
    assert store.current("ES", "1m").forecast_id == "f4"  # type: ignore[union-attr]
    assert late == [out] and list(store.late) == [out]
    assert store.counts["late"] == 1 and store.counts["adopted"] == 1


def test_time_window_and_supersession() -> None:
    store = ForecastStore(ForecastStoreConfig(staleness_ns=5 * S))
    e1, e2 = edge(1), edge(3)
    store.offer(e1)
    store.offer(e2)
    # e2's refinement lands first; e1's (older basis) must not overwrite it
    assert store.offer(refine(e2)).decision is Decision.ADOPTED
    assert store.offer(refine(e1)).decision is Decision.LATE
    assert store.offer(refine(edge(99))).decision is Decision.UNKNOWN


def test_older_edge_forecast_does_not_become_current() -> None:
    store = ForecastStore()
    store.offer(edge(5))
    assert store.offer(edge(4)).decision is Decision.OLD
    assert store.current("ES", "1m").forecast_id == "f5"  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=40))
def test_current_never_goes_back_in_basis(ops: list[tuple[int, bool]]) -> None:
    """Whatever order edge forecasts and refinements arrive in, the current basis never regresses."""
    store = ForecastStore(ForecastStoreConfig(staleness_events=3))
    seen: dict[int, Forecast] = {}
    newest = -1
    for seq, is_refinement in ops:
        if is_refinement and seq in seen:
            out = store.offer(refine(seen[seq]))
            if out.decision is Decision.ADOPTED:
                assert newest - seq <= 3
        else:
            fc = edge(seq)
            seen[seq] = fc
            store.offer(fc)
            newest = max(newest, seq)
        cur = store.current("ES", "1m")
        assert cur is not None and cur.basis_seq >= newest - 3


def test_crps_forms() -> None:
    fc = edge(1, vol=0.01)
    # perfect median, narrow spread scores better than a far miss
    assert crps(fc, 0.0) < crps(fc, 0.05)
    g = Forecast(
        forecast_id="g", symbol="ES", horizon="1m", basis_seq=1, ts_event=0, point=0.0, volatility=1.0
    )
    # Gaussian CRPS at the mean is sigma * (sqrt(2) - 1) / sqrt(pi)
    assert crps(g, 0.0) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    p = Forecast(forecast_id="p", symbol="ES", horizon="1m", basis_seq=1, ts_event=0, point=0.3)
    assert crps(p, 0.1) == pytest.approx(0.2)


def test_horizon_spec() -> None:
    assert horizon_spec("1m") == ("ns", 60 * S)
    assert horizon_spec("1d") == ("ns", 86_400 * S)
    assert horizon_spec("50t") == ("events", 50)
    with pytest.raises(ValueError):
        horizon_spec("soon")


def _feed(ev: ShadowEvaluator, n: int, shift: float, start: int = 0) -> None:
    price = 100.0
    for i in range(start, start + n):
        ev.on_price("ES", i * 60 * S, price)
        e = edge(i * 60, point=0.0, vol=0.001)
        ev.on_edge(e)
        ev.on_adopted(refine(e, shift=shift), e)
        price *= math.exp(0.0005 if i % 2 else -0.0005)
    ev.on_price("ES", (start + n + 2) * 60 * S, price)


def test_shadow_switches_off_a_tier_that_hurts() -> None:
    switched: list[tuple[str, dict[str, object]]] = []
    ev = ShadowEvaluator(
        ShadowConfig(window=20, min_pairs=10), on_switch_off=lambda t, f: switched.append((t, f))
    )
    _feed(ev, 30, shift=0.01)  # refinements shifted 100 bps off: far worse than the edge
    s = ev.summary()
    assert s["pairs"] >= 10 and s["crps_ratio"] > 1.0
    assert not ev.tier_enabled("cloud") and switched and switched[0][0] == "cloud"
    assert len(switched) == 1  # reported once


def test_shadow_keeps_a_tier_that_helps() -> None:
    ev = ShadowEvaluator(ShadowConfig(window=20, min_pairs=10))
    price = 100.0
    for i in range(40):
        ev.on_price("ES", i * 60 * S, price)
        up = i % 2 == 0
        e = edge(i * 60, point=0.0, vol=0.001)
        ev.on_edge(e)
        ev.on_adopted(refine(e, shift=0.0005 if up else -0.0005), e)  # knows the next move
        price *= math.exp(0.0005 if up else -0.0005)
    ev.on_price("ES", 41 * 60 * S, price)
    s = ev.summary()
    assert s["pairs"] >= 30 and s["crps_ratio"] < 1.0
    assert s["hit_rate_refined"] == 1.0
    assert ev.tier_enabled("cloud")


def test_memory_is_bounded_by_history() -> None:
    store = ForecastStore(ForecastStoreConfig(history=8))
    for i in range(100):
        store.offer(edge(i))
    k = store._keys[("ES", "1m")]
    assert len(k.edge) == 8 and len(k.versions) == 8
    # a refinement of a forgotten forecast is unknown, never applied
    assert store.offer(refine(edge(3))).decision is Decision.UNKNOWN
    assert store.offer(refine(edge(99))).decision is Decision.ADOPTED
