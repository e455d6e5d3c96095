"""Forecast-quality statistics on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tools import quality


def test_pinball_known_values() -> None:
    y = np.array([1.0, -1.0])
    q = np.array([[0.0, 0.0], [0.0, 0.0]])
    # tau=0.1: y above q -> 0.1*1; y below -> 0.9*1.  tau=0.9: 0.9 and 0.1.
    np.testing.assert_allclose(quality.pinball(y, q, np.array([0.1, 0.9])), [0.5, 0.5])
    with pytest.raises(ValueError, match="shape mismatch"):
        quality.pinball(y, q, np.array([0.5]))


def test_crps_grid_matches_closed_form_normal() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(4000)
    levels = (np.arange(199) + 0.5) / 199
    q = np.broadcast_to(stats.norm.ppf(levels), (len(y), len(levels)))
    approx = quality.crps_quantiles(y, q, levels).mean()
    exact = np.mean(y * (2 * stats.norm.cdf(y) - 1) + 2 * stats.norm.pdf(y) - 1 / math.sqrt(math.pi))
    assert approx == pytest.approx(exact, rel=0.01)


def test_qlike_prefers_the_true_variance() -> None:
    rng = np.random.default_rng(2)
    h = np.exp(rng.standard_normal(5000))
    y = rng.standard_normal(5000) * np.sqrt(h)
    true = quality.qlike(y, h).mean()
    assert true < quality.qlike(y, h * 1.5).mean()
    assert true < quality.qlike(y, h / 1.5).mean()
    assert true < quality.qlike(y, np.full_like(h, h.mean())).mean()
    with pytest.raises(ValueError, match="> 0"):
        quality.qlike(y, np.zeros_like(h))


def test_pesaran_timmermann() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal(500)
    _, p_skill = quality.pesaran_timmermann(y, np.where(y + 0.5 * rng.standard_normal(500) > 0, 0.7, 0.3))
    _, p_none = quality.pesaran_timmermann(y, rng.uniform(size=500))
    assert p_skill < 1e-6 and p_none > 0.01
    assert math.isnan(quality.pesaran_timmermann(y, np.full(500, 0.9))[1])  # undefined: one-way forecasts
    assert quality.hit_rate(np.array([1.0, -1.0, 0.0]), np.array([0.6, 0.6, 0.9])) == 0.5


def test_diebold_mariano() -> None:
    rng = np.random.default_rng(4)
    a = rng.exponential(size=800)
    stat, p = quality.diebold_mariano(a * 0.8, a)
    assert stat < 0 and p < 1e-6
    _, p_same = quality.diebold_mariano(a, a + 0.01 * rng.standard_normal(800))
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
    e = quality.ewma_variance(r, 0.94)
    assert e[1] == pytest.approx(0.94 * e[0] + 0.06 * r[0] ** 2)
    g = quality.garch_variance(r, 1000)
    assert g.shape == (500,) and np.all(g > 0)
    # The fitted GARCH tracks the true conditional variance better than EWMA does.
    assert quality.qlike(r[1000:], g).mean() <= quality.qlike(r[1000:], e[1000:]).mean() + 1e-3
    assert np.corrcoef(g, h[1000:])[0, 1] > 0.9


def test_brier() -> None:
    y = np.array([1.0, -1.0, 0.0, 2.0])
    assert quality.brier(y, np.array([0.5, 0.5, 0.9, 0.5])) == 0.25  # the zero outcome is dropped
    assert quality.brier(y, np.array([1.0, 0.0, 0.3, 1.0])) == 0.0
    assert math.isnan(quality.brier(np.zeros(3), np.full(3, 0.5)))
