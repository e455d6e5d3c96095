"""The classical baselines: one step ahead, no look-ahead, and the figures they are meant to give."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.baselines import baseline_forecasts, parkinson_variance
from adapters.datasets import load_sp500
from adapters.inference.manifest import QUANTILE_LEVELS

LEVELS = np.asarray(QUANTILE_LEVELS)


def _closes(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sd = 0.01 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
    r = rng.standard_normal(n) * sd
    c = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    hi = c * np.exp(np.abs(rng.normal(0, 0.5, n + 1)) * 0.01)
    lo = c * np.exp(-np.abs(rng.normal(0, 0.5, n + 1)) * 0.01)
    return c, hi, lo


def test_no_baseline_looks_ahead() -> None:
    """Changing the returns after step i leaves every forecast up to i as it was."""
    c, hi, lo = _closes(400)
    start, cut = 250, 330
    a = baseline_forecasts(c, start, LEVELS, high=hi, low=lo, refit_every=40)
    c2, hi2, lo2 = c.copy(), hi.copy(), lo.copy()
    c2[cut + 1 :] *= np.exp(np.linspace(0.0, 0.5, len(c) - cut - 1))  # a different future
    hi2[cut + 1 :] *= 1.5
    b = baseline_forecasts(c2, start, LEVELS, high=hi2, low=lo2, refit_every=40)
    assert set(a) == {"rw", "ewma", "garch", "gjr", "har"}
    k = cut - start + 1  # forecasts of r[start..cut] use closes up to c[cut] only
    for name in a:
        np.testing.assert_allclose(a[name].variance[:k], b[name].variance[:k], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(a[name].quantiles[:k], b[name].quantiles[:k], rtol=1e-12, err_msg=name)
        assert not np.allclose(a[name].variance[k + 20 :], b[name].variance[k + 20 :]), name


def test_garch_matches_arch_one_step_forecast_at_a_refit() -> None:
    """At each refit the filtered variance equals arch's own one-step forecast from the same fit."""
    from arch import arch_model

    r = np.diff(np.log(load_sp500().price))[:1200]
    c = np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    start = 1000
    got = baseline_forecasts(c, start, LEVELS, which=("garch",), refit_every=1000)["garch"].variance[0]
    sd = float(np.std(r[:start]))
    res = arch_model(r[:start] / sd, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    want = float(res.forecast(horizon=1, reindex=False).variance.iloc[-1, 0]) * sd * sd
    assert got == pytest.approx(want, rel=0.02)


def test_parkinson_and_shapes() -> None:
    assert parkinson_variance([np.e], [1.0])[0] == pytest.approx(1.0 / (4.0 * np.log(2.0)))
    assert parkinson_variance([1.0, 2.0], [1.0, 3.0]).tolist() == [0.0, 0.0]  # empty / crossed range
    c, _, _ = _closes(120)
    out = baseline_forecasts(c, 60, LEVELS, refit_every=30)
    assert "har" not in out  # no ranges given
    for b in out.values():
        assert b.variance.shape == (60,) and b.quantiles.shape == (60, len(LEVELS))
        assert np.all(b.variance > 0) and np.all(np.diff(b.quantiles, axis=1) >= 0)
    with pytest.raises(ValueError, match="start"):
        baseline_forecasts(c, 10, LEVELS)
