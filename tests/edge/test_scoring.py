"""The one scoring module (adapters.scoring): hand-computable cases and cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from adapters import scoring
from engine.messages import Forecast


def test_pinball_known_values() -> None:
    y = np.array([1.0, -1.0])
    q = np.array([[0.0, 0.0], [0.0, 0.0]])
    # tau=0.1: y above q -> 0.1*1; y below -> 0.9*1.  tau=0.9: 0.9 and 0.1.
    np.testing.assert_allclose(scoring.pinball(y, q, np.array([0.1, 0.9])), [0.5, 0.5])
    with pytest.raises(ValueError, match="shape mismatch"):
        scoring.pinball(y, q, np.array([0.5]))


def test_crps_grid_matches_closed_form_normal() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(4000)
    levels = (np.arange(199) + 0.5) / 199
    q = np.broadcast_to(stats.norm.ppf(levels), (len(y), len(levels)))
    approx = scoring.crps_quantiles(y, q, levels).mean()
    exact = np.mean(y * (2 * stats.norm.cdf(y) - 1) + 2 * stats.norm.pdf(y) - 1 / math.sqrt(math.pi))
    assert approx == pytest.approx(exact, rel=0.01)


def test_qlike_prefers_the_true_variance() -> None:
    rng = np.random.default_rng(2)
    h = np.exp(rng.standard_normal(5000))
    y = rng.standard_normal(5000) * np.sqrt(h)
    true = scoring.qlike(y, h).mean()
    assert true < scoring.qlike(y, h * 1.5).mean()
    assert true < scoring.qlike(y, h / 1.5).mean()
    assert true < scoring.qlike(y, np.full_like(h, h.mean())).mean()
    with pytest.raises(ValueError, match="> 0"):
        scoring.qlike(y, np.zeros_like(h))


def test_pesaran_timmermann() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal(500)
    _, p_skill = scoring.pesaran_timmermann(y, np.where(y + 0.5 * rng.standard_normal(500) > 0, 0.7, 0.3))
    _, p_none = scoring.pesaran_timmermann(y, rng.uniform(size=500))
    assert p_skill < 1e-6 and p_none > 0.01
    assert math.isnan(scoring.pesaran_timmermann(y, np.full(500, 0.9))[1])  # undefined: one-way forecasts
    assert scoring.hit_rate(np.array([1.0, -1.0, 0.0]), np.array([0.6, 0.6, 0.9])) == 0.5


def test_diebold_mariano() -> None:
    rng = np.random.default_rng(4)
    a = rng.exponential(size=800)
    stat, p = scoring.diebold_mariano(a * 0.8, a)
    assert stat < 0 and p < 1e-6
    _, p_same = scoring.diebold_mariano(a, a + 0.01 * rng.standard_normal(800))
    assert p_same > 0.01


def test_ewma_and_garch_baselines() -> None:
    rng = np.random.default_rng(5)
    n = 1500
    r = np.empty(n)
    h = np.empty(n)
    h[0] = 1e-4
    for t in range(n):  # a GARCH(1,1) path in daily-return units
        if t:
            h[t] = 2e-6 + 0.08 * r[t - 1] ** 2 + 0.9 * h[t - 1]
        r[t] = math.sqrt(h[t]) * rng.standard_normal()
    e = scoring.ewma_variance(r, 0.94)
    assert e[1] == pytest.approx(0.94 * e[0] + 0.06 * r[0] ** 2)
    g = scoring.garch_variance(r, 1000)
    assert g.shape == (500,) and np.all(g > 0)
    # The fitted GARCH tracks the true conditional variance better than EWMA does.
    assert scoring.qlike(r[1000:], g).mean() <= scoring.qlike(r[1000:], e[1000:]).mean() + 1e-3
    assert np.corrcoef(g, h[1000:])[0, 1] > 0.9


def test_brier() -> None:
    y = np.array([1.0, -1.0, 0.0, 2.0])
    assert scoring.brier(y, np.array([0.5, 0.5, 0.9, 0.5])) == 0.25  # the zero outcome is dropped
    assert scoring.brier(y, np.array([1.0, 0.0, 0.3, 1.0])) == 0.0
    assert math.isnan(scoring.brier(np.zeros(3), np.full(3, 0.5)))


# --- hand-computable cases -----------------------------------------------------------------------

LEVELS = (0.25, 0.5, 0.75)
GRID = (-1.0, 0.0, 1.0)


def test_crps_of_a_known_grid() -> None:
    # y = 0.5: pinball 0.25*1.5 = 0.375 (tau .25), 0.5*0.5 = 0.25 (tau .5), 0.25*0.5 = 0.125 (tau .75);
    # mean 0.25, CRPS = 2 * 0.25 = 0.5.
    assert scoring.crps_one(0.5, LEVELS, GRID) == pytest.approx(0.5)
    y = np.array([0.5, 0.0, 3.0])
    q = np.tile(GRID, (3, 1))
    # y = 0: 0.25 + 0 + 0.25 -> mean 1/6, CRPS 1/3.  y = 3: (0.25*4 + 0.5*3 + 0.75*2) / 3 = 4/3, CRPS 8/3.
    np.testing.assert_allclose(scoring.crps_quantiles(y, q, LEVELS), [0.5, 1 / 3, 8 / 3])
    assert [scoring.crps_one(v, LEVELS, GRID) for v in y] == pytest.approx([0.5, 1 / 3, 8 / 3])
    with pytest.raises(ValueError, match="levels"):
        scoring.crps_one(0.0, LEVELS, GRID[:2])


def test_crps_gaussian_and_of_a_forecast() -> None:
    # standard normal at its mean: 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1) / sqrt(pi)
    assert scoring.crps_gaussian(0.0, 0.0, 1.0) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    assert scoring.crps_gaussian(3.0, 1.0, 2.0) == pytest.approx(2 * scoring.crps_gaussian(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="sigma"):
        scoring.crps_gaussian(0.0, 0.0, 0.0)
    base = {"forecast_id": "f", "symbol": "ES", "horizon": "1m", "basis_seq": 1, "ts_event": 0}
    grid = Forecast(**base, quantile_levels=LEVELS, quantiles=GRID, point=9.0, volatility=9.0)
    assert scoring.crps_forecast(grid, 0.5) == pytest.approx(0.5)  # the grid wins over point/vol
    normal = Forecast(**base, point=1.0, volatility=2.0)
    assert scoring.crps_forecast(normal, 3.0) == pytest.approx(scoring.crps_gaussian(3.0, 1.0, 2.0))
    assert scoring.crps_forecast(Forecast(**base, point=0.25), -0.5) == 0.75  # neither: |error|


def test_normalised_qlike() -> None:
    h = np.array([1.0, 2.0, 4.0, 1.0])
    s2 = np.array([1.0, 2.0 * math.e, 0.0, 0.5])
    # s2/h - ln(s2/h) - 1: 0 when exact; e - 1 - 1 at s2/h = e; NaN without a move; 0.5 + ln 2 - 1
    np.testing.assert_allclose(scoring.qlike_norm(s2, h), [0.0, math.e - 2, np.nan, math.log(2) - 0.5])
    mean, n = scoring.qlike_norm_mean(s2, h)
    assert n == 3 and mean == pytest.approx((math.e - 2 + math.log(2) - 0.5) / 3)
    # the two forms differ by ln s2 + 1, which does not depend on the forecast
    y = np.array([0.5, -1.0, 2.0])
    hh = np.array([0.3, 1.5, 2.0])
    np.testing.assert_allclose(
        scoring.qlike(y, hh) - scoring.qlike_norm(y**2, hh), np.log(y**2) + 1.0, rtol=1e-12
    )
    assert scoring.qlike_norm_mean(np.zeros(3), np.ones(3)) == (pytest.approx(math.nan, nan_ok=True), 0)
    with pytest.raises(ValueError, match="> 0"):
        scoring.qlike_norm(s2, np.zeros(4))
    with pytest.raises(ValueError, match=">= 0"):
        scoring.qlike_norm(-s2 - 1.0, h)


def test_interval_and_level_coverage() -> None:
    levels = (0.05, 0.5, 0.95)
    y = np.array([-2.0, 0.0, 1.0, 3.0])
    q = np.tile(GRID, (4, 1))
    assert scoring.interval_coverage(y, q, levels, 0.9) == 0.5  # 0 and 1 (ends included)
    with pytest.raises(ValueError, match=r"no quantile level 0\.1"):
        scoring.interval_coverage(y, q, levels, 0.8)
    np.testing.assert_allclose(scoring.level_coverage(y, q, levels), [0.25, 0.5, 0.75])


def test_pit_on_a_grid() -> None:
    y = np.array([0.0, 0.5, -5.0, 5.0, -1.0])
    q = np.tile(GRID, (5, 1))
    # inside: linear between quantiles; beyond: the middle of the unresolved tail mass
    np.testing.assert_allclose(scoring.pit(y, q, LEVELS), [0.5, 0.625, 0.125, 0.875, 0.25])
    np.testing.assert_allclose(scoring.pit([0.5], [[1.0, 0.0, -1.0]], LEVELS), [0.625])  # crossed: sorted
    # a calibrated forecaster's PITs are uniform
    rng = np.random.default_rng(6)
    fine = (np.arange(99) + 1) / 100
    draws = rng.standard_normal(4000)
    p = scoring.pit(draws, np.broadcast_to(stats.norm.ppf(fine), (4000, 99)), fine)
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_diebold_mariano_hand_cases() -> None:
    a = np.array([0.3, 0.1, 0.7, 0.2])
    assert scoring.diebold_mariano(a, a) == (0.0, 1.0)  # identical losses
    b = np.array([0.5, 0.25, 0.75, 0.125])  # exact in binary: b - (b + 0.25) is exactly -0.25
    assert scoring.diebold_mariano(b, b + 0.25) == (-math.inf, 0.0)  # always better by the same amount
    assert all(math.isnan(v) for v in scoring.diebold_mariano(a[:2], a[:2] + 1))
    # d = [1, 2, 3, 2]: mean 2, variance 0.5 (divisor n), no lags: stat 2 / sqrt(0.5 / 4), times
    # the HLN factor sqrt((n + 1 - 2h + h(h-1)/n) / n) = sqrt(0.75); t with 3 degrees of freedom
    stat, p = scoring.diebold_mariano([2.0, 3.0, 4.0, 3.0], [1.0, 1.0, 1.0, 1.0], lags=0)
    want = 2.0 / math.sqrt(0.5 / 4) * math.sqrt(0.75)
    assert stat == pytest.approx(want) and p == pytest.approx(2 * stats.t.sf(want, 3))


def test_newey_west_variance_by_hand() -> None:
    x = [1.0, -1.0, 1.0, -1.0]
    assert scoring.newey_west_variance(x, 0) == pytest.approx(1.0)  # gamma0 = 4/4
    # gamma1 = (-1 - 1 - 1) / 4 = -0.75, Bartlett weight 1 - 1/2: 1 + 2 * 0.5 * -0.75 = 0.25
    assert scoring.newey_west_variance(x, 1) == pytest.approx(0.25)
    assert scoring.newey_west_lags(100) == 4 and scoring.newey_west_lags(1000) == 6
    assert scoring.newey_west_lags(10, horizon=5) == 4  # at least h - 1


def test_dm_with_hac_is_not_fooled_by_autocorrelated_differences() -> None:
    # Loss differences with mean zero and strong positive autocorrelation: the i.i.d. variance
    # understates the mean's uncertainty and rejects too often; the HAC variance widens it.
    rng = np.random.default_rng(8)
    e = rng.standard_normal(2000)
    d = np.convolve(e, np.ones(10) / 10, mode="valid") + 0.02
    _, p_iid = scoring.diebold_mariano(d, np.zeros_like(d), lags=0)
    _, p_hac = scoring.diebold_mariano(d, np.zeros_like(d), lags=20)
    assert p_hac > p_iid
