"""Micro-batcher deadlines and order; online regimes, change points and the registry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.features import FEATURE_NAMES, FeatureRow
from adapters.inference.batcher import MicroBatcher
from adapters.regimes import RegimeConfig, RegimeDetector

US = 1000


def test_full_batch_is_due_at_once() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=3, max_wait_ns=1000 * US)
    assert not b.add(1, 0, 10_000 * US)
    assert not b.add(2, 1, 10_000 * US)
    assert b.add(3, 2, 10_000 * US)
    assert b.take() == [1, 2, 3] and len(b) == 0 and b.due_at() is None


def test_max_wait_bounds_the_oldest_item() -> None:
    b: MicroBatcher[str] = MicroBatcher(max_batch=64, max_wait_ns=200 * US)
    b.add("a", 1_000, 10**12)
    b.add("b", 150 * US, 10**12)
    assert b.due_at() == 1_000 + 200 * US
    assert not b.due(1_000 + 200 * US - 1) and b.due(1_000 + 200 * US)


def test_deadline_minus_cost_comes_first() -> None:
    b: MicroBatcher[str] = MicroBatcher(max_batch=64, max_wait_ns=500 * US, cost_ns=50 * US)
    b.add("slack", 0, 5_000 * US)
    b.add("tight", 10 * US, 10 * US + 120 * US)  # 120 us budget, 50 us of it for inference
    assert b.due_at() == 80 * US
    b.take()
    assert b.due_at() is None


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(0, 50), min_size=0, max_size=200))
def test_take_all_keeps_every_item_in_order(max_batch: int, gaps: list[int]) -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=max_batch, max_wait_ns=100)
    now = 0
    out: list[int] = []
    for i, g in enumerate(gaps):
        now += g
        if b.add(i, now, now + 1000):
            out.extend(b.take())
    for batch in b.take_all():
        assert 1 <= len(batch) <= max_batch
        out.extend(batch)
    assert out == list(range(len(gaps)))


def test_batcher_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(0, 10)


def _row(z: float, vol_ratio: float) -> FeatureRow:
    v = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    v[FEATURE_NAMES.index("ret_1")] = z
    v[FEATURE_NAMES.index("vol_ratio")] = vol_ratio
    return FeatureRow("X", 0, 0, 1.0, 0.01, True, v)


def test_regimes_follow_vol_ratio_with_hysteresis_and_dwell() -> None:
    det = RegimeDetector(RegimeConfig(min_dwell=3))
    seq = [0.0] * 5 + [0.8] + [0.0] * 3 + [0.8] * 4 + [0.45] * 4 + [0.2] * 4 + [-0.9] * 4
    names = [det.update(_row(0.5, vr)).name for vr in seq]
    assert names[:5] == ["normal"] * 5
    assert names[5:8] == ["turbulent"] * 3  # a quick dip does not leave before min_dwell
    assert names[8] == "normal"
    assert names[9:11] == ["normal"] * 2 and names[11] == "turbulent"  # dwell, then switch
    assert set(names[12:17]) == {"turbulent"}  # 0.45 is inside the hysteresis band
    assert names[17:21] == ["normal"] * 4
    assert names[-1] == "calm"
    assert det.current("X") == "calm" and det.current("unseen") == "normal"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("factor", [3.0, 0.3])
def test_cusum_flags_a_volatility_change(seed: int, factor: float) -> None:
    rng = np.random.default_rng(seed)
    det = RegimeDetector()
    z = np.r_[rng.standard_normal(300), factor * rng.standard_normal(100)]
    flags = [det.update(_row(float(x), 0.0)).changepoint for x in z]
    assert sum(flags[:300]) == 0
    assert 300 <= flags.index(True) < 340  # found soon after the change


def test_cusum_false_alarms_are_rare() -> None:
    det = RegimeDetector()
    z = np.random.default_rng(9).standard_normal(10_000)
    alarms = sum(det.update(_row(float(x), 0.0)).changepoint for x in z)
    assert alarms <= 12
    assert det.changepoints == alarms
