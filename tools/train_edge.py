"""Train the edge forecasting models on real data: a teacher, then a distilled student.

Usage::

    python -m tools.train_edge [--datasets emini,sp500,nasdaq] [--out models/edge] [--seed 7]

For each dataset it builds bars (E-mini: 1-minute bars from the mlfinpy trades;
S&P 500 / NASDAQ: the arch daily bars), runs them through the *same*
:class:`adapters.features.FeatureEngine` the actor uses, and fits

* a teacher: an ensemble (:class:`~adapters.inference.net.EdgeEnsemble`) of five
  :class:`~adapters.inference.net.EdgeNet` (3 x 128 hidden units each, different
  seeds) fitted on the true next-bar returns, and
* the student (2 x 32, the edge model) on a mix of the true targets and the
  teacher's outputs (distillation),

each with early stopping on the validation split.  Splits are chronological:
E-mini 60/20/20 by bar count; daily data train < 2011, validation 2011-2013,
test 2014 onwards.  Both models are scored on the test split against the
random walk (empirical quantiles of the training returns), EWMA(0.94) and
GARCH(1,1).  Weights (ONNX + torch state_dict) and ``manifest.json`` (sha256
of every file, hash of the training data, training config, test metrics) go
to ``--out``.  Two shared CPU cores: a full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from adapters import scoring
from adapters.bars import BarAggregator, BarSpec
from adapters.datasets import Tape, load_emini, load_nasdaq, load_sp500
from adapters.features import FEATURE_NAMES, FEATURE_SCHEMA, FeatureConfig, FeatureEngine
from adapters.inference.manifest import MANIFEST_NAME, QUANTILE_LEVELS, sha256_file
from adapters.regimes import RegimeConfig, RegimeDetector
from engine.messages import Bar

__all__ = [
    "DATASET_SPECS",
    "DatasetSpec",
    "Prepared",
    "bars_from_daily",
    "bars_from_trades",
    "data_sha256",
    "evaluate",
    "main",
    "prepare",
]

_MINUTE_NS: Final = 60_000_000_000
_DAY_NS: Final = 86_400_000_000_000
_ES_MULTIPLIER: Final = 50.0  # dollars per index point of one E-mini contract
_NEWS_COLS: Final = tuple(i for i, n in enumerate(FEATURE_NAMES) if n.startswith("news_"))


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How one dataset becomes a model: its bars, features and split."""

    name: str
    model_id: str
    symbol: str
    horizon: str
    bar_ns: int
    split: str  # "fraction" (60/20/20 of rows) or "date" (train < 2011, val 2011-13, test 2014+)
    news_half_life_s: float
    rw_window: int  # trailing window of the rolling random-walk baseline, in bars


DATASET_SPECS: Final = {
    "emini": DatasetSpec("emini", "es-1m", "ES", "1m", _MINUTE_NS, "fraction", 1800.0, 390),
    "sp500": DatasetSpec("sp500", "spx-1d", "SPX", "1d", _DAY_NS, "date", 86400.0 * 2, 250),
    "nasdaq": DatasetSpec("nasdaq", "ndx-1d", "NDX", "1d", _DAY_NS, "date", 86400.0 * 2, 250),
    "eq-daily": DatasetSpec("eq-daily", "eq-1d", "*", "1d", _DAY_NS, "date", 86400.0 * 2, 250),
}
"""``eq-daily``: one cross-sectional daily model (``eq-1d``) for S&P 500, NASDAQ and US stocks;
the manifest also lists it as ``spx-1d`` and ``ndx-1d`` (the same files) for the index replays."""
_LOADERS: Final = {"emini": load_emini, "sp500": load_sp500, "nasdaq": load_nasdaq}


def data_sha256(tape: Tape) -> str:
    """A hash of the raw tape columns the model was trained on."""
    h = hashlib.sha256()
    for arr in (tape.ts_ns, tape.price, tape.size, tape.side):
        h.update(np.ascontiguousarray(arr).tobytes())
    for key in sorted(tape.extra):
        h.update(key.encode())
        h.update(np.ascontiguousarray(tape.extra[key]).tobytes())
    return h.hexdigest()


def bars_from_trades(tape: Tape, bar_ns: int = _MINUTE_NS, multiplier: float = _ES_MULTIPLIER) -> list[Bar]:
    """Time bars from a single-symbol trade tape, built by the same
    :class:`adapters.bars.BarAggregator` the market-data feed uses (so training sees
    exactly the bars the actor gets in replay); trade ``i`` has ``seq`` ``i + 1``."""
    agg = BarAggregator(BarSpec(kind="time", size=float(bar_ns), multiplier=multiplier))
    bars = [b for _, b in agg.update_many(tape.symbol, tape.ts_ns, tape.price, tape.size, tape.side, 0)]
    bars.extend(agg.flush())
    return bars


def bars_from_daily(tape: Tape) -> Iterator[Bar]:
    """One bar per row of a daily bar tape (close in ``price``, open/high/low in ``extra``), any
    number of symbols; each symbol's bars numbered 1, 2, ... as the feed numbers them."""
    o, h, lo = tape.extra["open"], tape.extra["high"], tape.extra["low"]
    open_ns = tape.bar_open_ns or 23_400_000_000_000
    seq: dict[str, int] = {}
    for i in range(len(tape)):
        sym = tape.symbols[int(tape.sym[i])]
        seq[sym] = seq.get(sym, 0) + 1
        ts = int(tape.ts_ns[i])
        yield Bar(
            symbol=sym,
            ts_event=ts,
            ts_open=ts - open_ns,
            seq=seq[sym],
            open=float(o[i]),
            high=float(h[i]),
            low=float(lo[i]),
            close=float(tape.price[i]),
            volume=float(tape.size[i]),
            kind="time",
            spec=float(tape.bar_ns or _DAY_NS),
        )


@dataclasses.dataclass
class Prepared:
    """Feature rows with their next-bar targets, split.

    Row ``i``: features ``x[i]`` after bar ``ts[i]`` of ``sym[i]``, scale ``scale[i]`` (the
    anchor volatility), target ``y[i]`` = log return of that symbol's next bar.  Rows are
    ordered train, then validation, then test (chronological within a series); ``train``/
    ``val``/``test`` are row slices.
    """

    spec: DatasetSpec
    feature_config: FeatureConfig
    x: np.ndarray
    scale: np.ndarray
    y: np.ndarray
    ts: np.ndarray
    sym: np.ndarray
    regime: np.ndarray
    train: slice
    val: slice
    test: slice
    data_sha256: str
    withheld: tuple[str, ...] = ()

    def period(self, sl: slice) -> dict[str, Any]:
        ts = self.ts[sl]
        if not len(ts):
            return {"first_basis": "", "last_basis": "", "rows": 0}
        iso = [
            np.datetime_as_string(np.datetime64(int(t), "ns"), unit="m") + "Z" for t in (ts.min(), ts.max())
        ]
        return {"first_basis": iso[0], "last_basis": iso[1], "rows": len(ts)}


def _bars(name: str, tape: Tape, spec: DatasetSpec) -> list[Bar]:
    return bars_from_trades(tape, spec.bar_ns) if name == "emini" else list(bars_from_daily(tape))


def fit_anchor(returns: np.ndarray) -> dict[str, float]:
    """GJR-GARCH(1,1) parameters (zero mean, normal) of ``returns`` (training returns only);
    GARCH(1,1)'s (``gjr_gamma`` 0) when the fitted asymmetry is negative."""
    from arch import arch_model

    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    sd = float(np.std(r))
    res: Any = arch_model(r / sd, mean="Zero", vol="GARCH", p=1, o=1, q=1, rescale=False).fit(disp="off")
    p = res.params
    a, g, b = float(p["alpha[1]"]), float(p["gamma[1]"]), float(p["beta[1]"])
    if g < 0.0:
        # No leverage effect in these returns (arch allows gamma < 0 while alpha + gamma >= 0):
        # the anchor is then a plain GARCH(1,1).
        res = arch_model(r / sd, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
        a, g, b = float(res.params["alpha[1]"]), 0.0, float(res.params["beta[1]"])
    if not a + g / 2 + b < 0.999:  # keep the variance target meaningful
        b = 0.999 - a - g / 2
    return {"gjr_alpha": a, "gjr_gamma": g, "gjr_beta": b}


def _anchored(spec: DatasetSpec, p: dict[str, float]) -> FeatureConfig:
    return FeatureConfig(
        bar_ns=spec.bar_ns,
        news_half_life_s=spec.news_half_life_s,
        events=spec.bar_ns >= _DAY_NS,  # the scheduled-event calendar is one of US daily releases
        anchor="gjr",
        gjr_alpha=p["gjr_alpha"],
        gjr_gamma=p["gjr_gamma"],
        gjr_beta=p["gjr_beta"],
    )


def _rows(bars: list[Bar], fcfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Warm feature rows of one or more symbols' bars, each with its next bar's return and the
    symbol's online regime (as the actor computes them)."""
    eng = FeatureEngine(fcfg)
    dets: dict[str, RegimeDetector] = {}
    last: dict[str, tuple[Any, float, int]] = {}
    xs, sc, ys, ts, syms, regs = [], [], [], [], [], []
    for bar in bars:
        prev = last.pop(bar.symbol, None)
        if prev is not None and bar.close > 0:
            row, c0, reg_idx = prev
            xs.append(row.values)
            sc.append(row.scale)
            ys.append(math.log(bar.close / c0))
            ts.append(row.ts_event)
            syms.append(bar.symbol)
            regs.append(reg_idx)
        row = eng.on_bar(bar)
        if row is None:
            continue
        det = dets.get(bar.symbol)
        if det is None:
            det = dets[bar.symbol] = RegimeDetector(RegimeConfig())
        reg = det.update(row)
        if row.warm:
            last[bar.symbol] = (row, bar.close, reg.index)
    return {
        "x": np.stack(xs).astype(np.float32) if xs else np.zeros((0, len(FEATURE_NAMES)), np.float32),
        "scale": np.asarray(sc),
        "y": np.asarray(ys),
        "ts": np.asarray(ts, dtype=np.int64),
        "sym": np.asarray(syms, dtype=object),
        "regime": np.asarray(regs, dtype=np.int64),
    }


def _daily_split(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return ts < _year_ns(2011), (ts >= _year_ns(2011)) & (ts < _year_ns(2014)), ts >= _year_ns(2014)


def _assemble(
    spec: DatasetSpec,
    fcfg: FeatureConfig,
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]],
    sha: str,
    withheld: tuple[str, ...] = (),
) -> Prepared:
    """Rows of several series, each with a split label per row (0 train, 1 val, 2 test)."""
    order: list[dict[str, np.ndarray]] = []
    bounds = []
    for label in (0, 1, 2):
        n0 = sum(len(o["y"]) for o in order)
        for rows, lab in parts:
            keep = lab == label
            order.append({k: v[keep] for k, v in rows.items()})
        bounds.append((n0, sum(len(o["y"]) for o in order)))
    cat = {k: np.concatenate([o[k] for o in order]) for k in order[0]}
    return Prepared(
        spec=spec,
        feature_config=fcfg,
        x=cat["x"],
        scale=cat["scale"],
        y=cat["y"],
        ts=cat["ts"],
        sym=cat["sym"],
        regime=cat["regime"],
        train=slice(*bounds[0]),
        val=slice(*bounds[1]),
        test=slice(*bounds[2]),
        data_sha256=sha,
        withheld=withheld,
    )


def prepare(name: str, feature_config: FeatureConfig | None = None) -> Prepared:
    """Load one dataset, build bars and features, and split; see :class:`Prepared`.

    ``feature_config``: the features to compute (a shipped model's); default: the GJR anchor
    with parameters fitted on this dataset's training returns.  ``eq-daily``: the pooled
    daily set (S&P 500 + NASDAQ + the ``sp500-tickers`` not withheld, :func:`withheld_tickers`).
    """
    spec = DATASET_SPECS[name]
    if name == "eq-daily":
        return _prepare_pooled(spec, feature_config)
    tape = _LOADERS[name]()
    bars = _bars(name, tape, spec)
    c = np.asarray([b.close for b in bars])
    r = np.log(c[1:] / c[:-1])
    n_train = (
        int(len(r) * 0.6) if spec.split == "fraction" else int(np.searchsorted(tape.ts_ns, _year_ns(2011)))
    )
    fcfg = feature_config or _anchored(spec, fit_anchor(r[:n_train]))
    rows = _rows(bars, fcfg)
    if spec.split == "fraction":
        n = len(rows["y"])
        a, b = int(n * 0.6), int(n * 0.8)
        lab = np.where(np.arange(n) < a, 0, np.where(np.arange(n) < b, 1, 2))
    else:
        tr, va, _ = _daily_split(rows["ts"])
        lab = np.where(tr, 0, np.where(va, 1, 2))
    return _assemble(spec, fcfg, [(rows, lab)], data_sha256(tape))


def prepare_tape(tape: Tape, spec: DatasetSpec, feature_config: FeatureConfig | None = None) -> Prepared:
    """A user's tape (``finllm train --file``): bars as the replay's feed makes them (a bar file's
    rows; a trade file's ``spec.bar_ns`` time bars), the GJR anchor fitted on the first 60% of
    the time span, splits 60/20/20 of the time span (every symbol in each)."""
    bars = list(bars_from_daily(tape)) if tape.kind == "bars" else bars_from_trades(tape, spec.bar_ns, 1.0)
    t_lo, t_hi = int(tape.ts_ns.min()), int(tape.ts_ns.max())
    cut_a, cut_b = t_lo + int(0.6 * (t_hi - t_lo)), t_lo + int(0.8 * (t_hi - t_lo))
    if feature_config is None:
        per: dict[str, list[float]] = {}
        for b in bars:
            if b.ts_event < cut_a:
                per.setdefault(b.symbol, []).append(b.close)
        zs = []
        for closes in per.values():
            r = np.diff(np.log(np.asarray(closes)))
            if len(r) > 20 and np.std(r) > 0:
                zs.append(r / np.std(r))
        if not zs:
            raise ValueError("too few bars before the validation period to fit the anchor")
        feature_config = _anchored(spec, fit_anchor(np.concatenate(zs)))
    rows = _rows(bars, feature_config)
    lab = np.where(rows["ts"] < cut_a, 0, np.where(rows["ts"] < cut_b, 1, 2))
    return _assemble(spec, feature_config, [(rows, lab)], data_sha256(tape))


def withheld_tickers(symbols: tuple[str, ...]) -> tuple[str, ...]:
    """Every 10th ticker in alphabetical order (from the 5th): never trained on, scored by the bench."""
    return tuple(sorted(symbols)[4::10])


def _prepare_pooled(spec: DatasetSpec, feature_config: FeatureConfig | None) -> Prepared:
    from adapters.datasets import load_sp500_tickers

    idx_tapes = {"sp500": load_sp500(), "nasdaq": load_nasdaq()}
    tick = load_sp500_tickers()
    withheld = withheld_tickers(tick.symbols)
    if feature_config is None:
        r = np.diff(np.log(idx_tapes["sp500"].price))
        n_train = int(np.searchsorted(idx_tapes["sp500"].ts_ns, _year_ns(2011)))
        feature_config = _anchored(spec, fit_anchor(r[:n_train]))
    parts = []
    h = hashlib.sha256()
    for t in (*idx_tapes.values(), tick):
        h.update(data_sha256(t).encode())
    for t in idx_tapes.values():
        rows = _rows(list(bars_from_daily(t)), feature_config)
        tr, va, _ = _daily_split(rows["ts"])
        parts.append((rows, np.where(tr, 0, np.where(va, 1, 2))))
    rows = _rows(list(bars_from_daily(tick)), feature_config)
    held = np.isin(rows["sym"], np.asarray(withheld, dtype=object))
    # Tickers: 2009-10, inside the indexes' training years; the withheld ones go to "test".
    parts.append((rows, np.where(held, 2, 0)))
    return _assemble(spec, feature_config, parts, h.hexdigest(), withheld)


def _iso(ts: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ts, "ns"), unit="m")) + "Z"


def _year_ns(year: int) -> int:
    return int(np.datetime64(f"{year}-01-01", "ns").astype(np.int64))


def evaluate(prep: Prepared, out: np.ndarray, sl: slice | None = None) -> dict[str, float]:
    """Figures of raw model outputs ``out`` on rows ``sl`` (default validation): CRPS, normalised
    QLIKE, coverage, hit rate - and the same for the anchor alone (normal quantiles of the
    anchor volatility), with the ratios.  Training-time only (the gate); held-out figures come
    from ``finllm bench edge`` (a replay of the product)."""
    from scipy.stats import norm

    sl = sl or prep.val
    k = len(QUANTILE_LEVELS)
    levels = np.asarray(QUANTILE_LEVELS)
    y = prep.y[sl]
    q, vol, prob = out[:, :k].astype(np.float64), out[:, k].astype(np.float64), out[:, k + 1]
    anchor = prep.scale[sl]
    aq = anchor[:, None] * norm.ppf(levels)[None, :]
    s2 = y * y
    crps = float(scoring.crps_quantiles(y, q, levels).mean())
    crps_a = float(scoring.crps_quantiles(y, aq, levels).mean())
    qn, _ = scoring.qlike_norm_mean(s2, vol**2)
    qa, _ = scoring.qlike_norm_mean(s2, anchor**2)
    return {
        "n": float(len(y)),
        "crps": crps,
        "crps_anchor": crps_a,
        "crps_ratio_vs_anchor": crps / crps_a,
        "qlike_norm": qn,
        "qlike_norm_anchor": qa,
        "qlike_norm_ratio_vs_anchor": _ratio(qn, qa),
        "coverage_80": scoring.interval_coverage(y, q, levels, 0.8),
        "coverage_90": scoring.interval_coverage(y, q, levels, 0.9),
        "hit_rate": scoring.hit_rate(y, prob),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0.0 and math.isfinite(b) else math.nan


# --- training ----------------------------------------------------------------


class TrainConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Hyper-parameters of one training run (recorded in the manifest)."""

    seed: int = 7
    teacher_hidden: tuple[int, ...] = (64, 64, 64)
    teacher_members: int = 3  # the teacher is an ensemble of this many nets (different seeds)
    student_hidden: tuple[int, ...] = (32, 32)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch: int = 512
    max_epochs: int = 60
    patience: int = 8
    w_pinball: float = 1.0
    w_nll: float = 0.5
    w_bce: float = 0.1
    distill_alpha: float = 0.5  # weight of the true targets in the student loss
    specialist_epochs: int = 0  # 0: no regime specialists (the student serves every regime)
    index_weight: int = 5  # eq-daily: each index training row counts this many times


def _norm_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    mean = x.mean(axis=0).astype(np.float64)
    std = x.std(axis=0).astype(np.float64)
    for j in range(x.shape[1]):
        if j in _NEWS_COLS or std[j] < 1e-6:
            # Constant in training (no news in the historical data): leave it unscaled.
            mean[j], std[j] = 0.0, 1.0
    return mean.tolist(), std.tolist()


def _loss(net: Any, xb: Any, zb: Any, cfg: TrainConfig, teacher: Any = None) -> Any:
    import torch
    from torch.nn import functional as F

    h = net.heads(xb)
    tau = torch.tensor(QUANTILE_LEVELS, dtype=xb.dtype)
    d = zb - h.q_z
    pin = torch.maximum(tau * d, (tau - 1.0) * d).mean()
    nll = (h.a + zb * zb * torch.exp(-h.a)).mean()
    nz = zb != 0.0
    bce = F.binary_cross_entropy_with_logits(h.logit[nz], (zb[nz] > 0).to(xb.dtype)) if nz.any() else 0.0
    loss = cfg.w_pinball * pin + cfg.w_nll * nll + cfg.w_bce * bce
    if teacher is None:
        return loss
    with torch.no_grad():
        t = teacher.heads(xb)
    dist = (
        F.mse_loss(h.q_z, t.q_z)
        + cfg.w_nll * F.mse_loss(h.a, t.a)
        + cfg.w_bce * F.binary_cross_entropy_with_logits(h.logit, torch.sigmoid(t.logit))
    )
    return cfg.distill_alpha * loss + (1.0 - cfg.distill_alpha) * dist


def _fit(
    prep: Prepared,
    hidden: tuple[int, ...],
    cfg: TrainConfig,
    teacher: Any = None,
    init: Any = None,
    rows: np.ndarray | None = None,
    max_epochs: int | None = None,
    fixed_epochs: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit one network.  Early stopping on the validation loss, unless ``fixed_epochs`` is
    given (then exactly that many epochs and the last state: used to refit on train+val)."""
    import torch

    from adapters.inference.net import EdgeNet

    torch.manual_seed(cfg.seed)
    train_idx = np.arange(prep.train.start, prep.train.stop) if rows is None else rows
    xtr = prep.x[train_idx]
    mean, std = _norm_stats(prep.x[train_idx] if rows is not None and init is None else prep.x[prep.train])
    net = EdgeNet(len(FEATURE_NAMES), hidden, len(QUANTILE_LEVELS), mean, std, frozen_inputs=_NEWS_COLS)
    if init is not None:
        net.load_state_dict(init.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt = torch.from_numpy(xtr)
    zt = torch.from_numpy((prep.y[train_idx] / prep.scale[train_idx]).astype(np.float32))[:, None]
    xv = torch.from_numpy(prep.x[prep.val])
    zv = torch.from_numpy((prep.y[prep.val] / prep.scale[prep.val]).astype(np.float32))[:, None]
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, bad, epochs, best_epoch = math.inf, None, 0, 0, 0
    for epoch in range(fixed_epochs or max_epochs or cfg.max_epochs):
        epochs = epoch + 1
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), cfg.batch):
            b = perm[s : s + cfg.batch]
            opt.zero_grad()
            _loss(net, xt[b], zt[b], cfg, teacher).backward()
            opt.step()
            _keep_news_frozen(net)
        net.eval()
        with torch.no_grad():
            # Early stopping always on the true-target loss: that is what we ship for.
            v = float(_loss(net, xv, zv, cfg))
        if fixed_epochs is not None:
            best, best_epoch = v, epochs
            best_state = net.state_dict()
        elif v < best - 1e-5:
            best, bad, best_epoch = v, 0, epochs
            best_state = {k: t.clone() for k, t in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    return net, {
        "epochs": epochs,
        "best_epoch": best_epoch,
        "val_loss": best,
        "params": params,
        "hidden": list(hidden),
    }


def calibrate_direction(net: Any, prep: Prepared, rows: np.ndarray | None = None) -> float:
    """Temperature-scale the direction logit on validation rows (all of them, or ``rows``).

    Fits the scale ``s`` in [0.01, 2] minimising the binary cross-entropy of
    ``sigmoid(s * logit)`` against the sign of non-zero returns, stores it in the
    network (so the exported graph carries it) and returns it.  Only the
    confidence changes; the predicted direction (and so the hit rate) does not.
    """
    import torch
    from scipy.optimize import minimize_scalar

    idx = np.arange(prep.val.start, prep.val.stop) if rows is None else rows
    net.logit_scale.fill_(1.0)
    with torch.no_grad():
        logit = net.heads(torch.from_numpy(prep.x[idx])).logit.numpy()[:, 0].astype(np.float64)
    y = prep.y[idx]
    keep = y != 0.0
    logit, up = logit[keep], (y[keep] > 0).astype(np.float64)

    def bce(s: float) -> float:
        z = s * logit
        return float(np.mean(np.logaddexp(0.0, z) - up * z))

    best = float(minimize_scalar(bce, bounds=(0.01, 2.0), method="bounded").x)
    net.logit_scale.fill_(best)
    return best


def _keep_news_frozen(net: Any) -> None:
    """News inputs are constant in training; pin their weights at 0 so weight noise can't act on them."""
    import torch

    with torch.no_grad():
        for j in _NEWS_COLS:
            net.body[0].weight[:, j] = 0.0


def _predict(net: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out: np.ndarray = net(torch.from_numpy(x)).numpy()
    return out


def export_onnx(net: Any, path: Path) -> None:
    """Write ``net`` as ONNX (opset 17, dynamic batch), input ``features``, output ``forecast``."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not installed); for a plain MLP the two give the same graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(2, net.n_features),),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter accepts file objects
            dynamo=False,
            opset_version=17,
            input_names=["features"],
            output_names=["forecast"],
            dynamic_axes={"features": {0: "batch"}, "forecast": {0: "batch"}},
        )
    path.write_bytes(buf.getvalue())


def _save(net: Any, out: Path, stem: str) -> dict[str, str]:
    import torch

    onnx_name, pt_name = f"{stem}.onnx", f"{stem}.pt"
    export_onnx(net, out / onnx_name)
    torch.save(net.state_dict(), out / pt_name)
    return {"onnx": onnx_name, "state_dict": pt_name}


_GATE_GRID: Final = tuple(i / 10 for i in range(11))


def _anchor_bias(prep: Prepared) -> np.ndarray:
    """Head bias (with zero head weights) whose output is the anchor alone: quantiles at the
    empirical quantiles of the training returns in anchor units, no variance correction
    (``a = 0``), no direction (logit 0)."""
    k = len(QUANTILE_LEVELS)
    z = prep.y[prep.train] / prep.scale[prep.train]
    zq = np.quantile(z, QUANTILE_LEVELS)
    b = np.zeros(k + 2)
    b[0] = zq[0]
    b[1:k] = np.log(np.expm1(np.maximum(np.diff(zq), 1e-3)))  # softplus^-1 of each step
    return b


def gate(net: Any, prep: Prepared, log: Any = print, who: str = "") -> dict[str, Any]:
    """Shrink ``net`` towards the anchor by the weight ``w`` in [0, 1] that minimises the sum of
    its validation CRPS and normalised-QLIKE ratios to the anchor alone.

    The head's outputs become ``w * net + (1 - w) * anchor`` (weights scaled, biases blended, so
    the exported graph carries the gate): ``w = 0`` serves the anchor itself - the model cannot
    be worse on validation than the anchor it corrects.  Returns the weight and the validation
    figures at ``w = 1``, ``0`` and the chosen ``w``.
    """
    import torch

    heads = [m.head for m in net.members] if hasattr(net, "members") else [net.head]
    orig = [(h.weight.detach().clone(), h.bias.detach().clone()) for h in heads]
    base = torch.from_numpy(_anchor_bias(prep).astype(np.float32))
    saved_scale = net.logit_scale.clone()

    def set_w(w: float) -> dict[str, float]:
        with torch.no_grad():
            for h, (w0, b0) in zip(heads, orig, strict=True):
                h.weight.copy_(w * w0)
                h.bias.copy_(w * b0 + (1.0 - w) * base)
        return evaluate(prep, _predict(net, prep.x[prep.val]))

    scores = {}
    figs = {}
    for w in _GATE_GRID:
        m = set_w(w)
        figs[w] = m
        scores[w] = m["crps_ratio_vs_anchor"] + m["qlike_norm_ratio_vs_anchor"]
    best = min(_GATE_GRID, key=lambda w: (round(scores[w], 6), w))
    set_w(best)
    net.logit_scale.copy_(saved_scale)
    log(
        f"  gate {who}: w={best} val CRPS/anchor {figs[best]['crps_ratio_vs_anchor']:.4f} "
        f"QLIKE/anchor {figs[best]['qlike_norm_ratio_vs_anchor']:.4f} (ungated "
        f"{figs[1.0]['crps_ratio_vs_anchor']:.4f}/{figs[1.0]['qlike_norm_ratio_vs_anchor']:.4f})"
    )
    return {
        "weight": best,
        "validation": {"ungated": figs[1.0], "anchor_only": figs[0.0], "gated": figs[best]},
    }


def train_dataset(name: str, out: Path, cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """Train the teacher and the student for one dataset, gate both against the anchor on
    validation (:func:`gate`), and return the manifest entry."""
    return train_prepared(prepare(name), out, cfg, log)


def train_prepared(prep: Prepared, out: Path, cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """:func:`train_dataset` on rows already prepared (a bundled dataset or a user's file)."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    name = prep.spec.name
    spec = prep.spec
    log(
        f"[{name}] rows train/val/test = {prep.train.stop}/{prep.val.stop - prep.val.start}/"
        f"{prep.test.stop - prep.test.start}  ({time.perf_counter() - t0:.1f}s features); anchor "
        f"{msgspec.to_builtins(prep.feature_config)}"
    )
    rows = None
    if name == "eq-daily":
        tr = np.arange(prep.train.start, prep.train.stop)
        is_index = np.isin(prep.sym[tr], np.asarray(["SPX", "NDX"], dtype=object))
        rows = np.concatenate([tr, np.repeat(tr[is_index], cfg.index_weight - 1)])
    from adapters.inference.net import EdgeEnsemble

    members = []
    tinfos = []
    for i in range(cfg.teacher_members):
        net, info = _fit(
            prep, cfg.teacher_hidden, msgspec.structs.replace(cfg, seed=cfg.seed + 1000 * i), rows=rows
        )
        members.append(net)
        tinfos.append(info)
        log(f"[{name}] teacher member {i}: {info['epochs']} epochs ({time.perf_counter() - t0:.0f}s)")
    teacher = EdgeEnsemble.of(members)
    tinfo: dict[str, Any] = {
        "members": cfg.teacher_members,
        "hidden": list(cfg.teacher_hidden),
        "params": sum(p.numel() for p in teacher.parameters()),
        "epochs": [t["epochs"] for t in tinfos],
        "best_epoch": [t["best_epoch"] for t in tinfos],
        "val_loss": [t["val_loss"] for t in tinfos],
    }
    student, sinfo = _fit(prep, cfg.student_hidden, cfg, teacher=teacher, rows=rows)
    log(f"[{name}] student: {sinfo['epochs']} epochs ({time.perf_counter() - t0:.0f}s)")
    tgate = gate(teacher, prep, log, "teacher")
    sgate = gate(student, prep, log, "student")
    tinfo["logit_scale"] = calibrate_direction(teacher, prep)
    sinfo["logit_scale"] = calibrate_direction(student, prep)
    tinfo["gate"] = tgate["weight"]
    sinfo["gate"] = sgate["weight"]
    feature_mean = _norm_stats(prep.x[prep.train if rows is None else rows])[0]
    entry: dict[str, Any] = {
        "dataset": name,
        "symbol": spec.symbol,
        "horizon": spec.horizon,
        "feature_config": msgspec.to_builtins(prep.feature_config),
        "data_sha256": prep.data_sha256,
        "splits": {k: prep.period(getattr(prep, k)) for k in ("train", "val", "test")},
        "student": {**_save(student, out, f"{spec.model_id}.student"), **sinfo},
        "teacher": {**_save(teacher, out, f"{spec.model_id}.teacher"), **tinfo},
        "metrics": {"validation": {"student": sgate["validation"], "teacher": tgate["validation"]}},
        "feature_mean": feature_mean,
        "specialists": {},
        "anchor": "gjr",
        "gate": {"student": sgate["weight"], "teacher": tgate["weight"], "grid": list(_GATE_GRID)},
    }
    if prep.withheld:
        entry["withheld_symbols"] = list(prep.withheld)
        entry["symbol_splits"] = {}
        for sym in ("SPX", "NDX"):
            per = {}
            for k in ("train", "val", "test"):
                sl = getattr(prep, k)
                ts = prep.ts[sl][prep.sym[sl] == sym]
                per[k] = (
                    prep.period(slice(0, 0))
                    if not len(ts)
                    else {
                        "first_basis": _iso(int(ts.min())),
                        "last_basis": _iso(int(ts.max())),
                        "rows": len(ts),
                    }
                )
            entry["symbol_splits"][sym] = per
    log(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
    return entry


def _aliases(models: dict[str, Any]) -> dict[str, Any]:
    """``eq-1d`` is also listed as ``spx-1d`` and ``ndx-1d`` (same files), each with its index's
    own chronological splits, so the index replays name the model they always named."""
    eq = models.get("eq-1d")
    if eq is None:
        return models
    out = dict(models)
    for mid, sym, ds in (("spx-1d", "SPX", "sp500"), ("ndx-1d", "NDX", "nasdaq")):
        splits = eq["symbol_splits"][sym]
        out[mid] = {**eq, "symbol": sym, "dataset": ds, "alias_of": "eq-1d", "splits": splits}
        out[mid].pop("withheld_symbols", None)
        out[mid].pop("symbol_splits", None)
    return out


def write_manifest(out: Path, models: dict[str, Any], cfg: TrainConfig) -> Path:
    files = sorted(p.name for p in out.iterdir() if p.suffix in {".onnx", ".pt"})
    manifest = {
        "schema": 1,
        "created_by": "tools/train_edge.py",
        "feature_schema": FEATURE_SCHEMA,
        "feature_names": list(FEATURE_NAMES),
        "quantile_levels": list(QUANTILE_LEVELS),
        "output_layout": "quantiles[k], volatility, prob_up",
        "train_config": msgspec.to_builtins(cfg),
        "files": {f: sha256_file(out / f) for f in files},
        "models": _aliases(models),
    }
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _gjr(fc: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(x), 4) for k, x in fc.items() if k.startswith("gjr")}


def write_model_card(out: Path, models: dict[str, Any], cfg: TrainConfig) -> Path:
    """A human-readable summary of ``manifest.json`` (regenerated with the weights)."""
    lines = [
        "# Edge models",
        "",
        "Written by `python -m tools.train_edge`; `manifest.json` is the authority (sha256 of every",
        "file, data hashes, splits, gates) and is verified before any weights load.",
        "",
        "Design (issue 14): every model is a learned *correction* of a classical anchor, the",
        "GJR-GARCH(1,1) volatility computed online by the feature engine (parameters fitted on",
        "training returns only, variance targeting per symbol).  The network's head is shrunk towards",
        "the anchor alone by a weight chosen on the validation period (CRPS + normalised QLIKE):",
        "weight 0 serves the anchor itself.  Held-out figures against the baselines come from",
        "`finllm bench edge` (a replay of the product), not from this script.",
        "",
        f"Training config: `{json.dumps(msgspec.to_builtins(cfg), sort_keys=True)}`",
        "",
    ]
    for mid, m in models.items():
        sp = m["splits"]
        v = m["metrics"]["validation"]["student"]
        lines += [
            f"## {mid} ({m['dataset']}, horizon {m['horizon']}, symbol {m['symbol']})",
            "",
            f"- data sha256 `{m['data_sha256']}`",
            *(
                f"- {k}: {sp[k]['first_basis']} .. {sp[k]['last_basis']} ({sp[k]['rows']} rows)"
                for k in ("train", "val", "test")
            ),
            f"- anchor GJR(1,1): {json.dumps(_gjr(m['feature_config']))}",
            f"- student: {m['student']['hidden']} hidden, {m['student']['params']} parameters, gate weight "
            f"{m['gate']['student']}; teacher: {m['teacher'].get('members', 1)} x {m['teacher']['hidden']}, "
            f"gate weight {m['gate']['teacher']}",
            f"- withheld tickers (never trained on): {len(m.get('withheld_symbols', []))}",
            "",
            "| validation | CRPS / anchor | QLIKE / anchor | cov80 | cov90 |",
            "|---|---|---|---|---|",
        ]
        for role in ("ungated", "gated"):
            f = v[role]
            lines.append(
                f"| student {role} | {f['crps_ratio_vs_anchor']:.4f} | {f['qlike_norm_ratio_vs_anchor']:.4f} "
                f"| {f['coverage_80']:.3f} | {f['coverage_90']:.3f} |"
            )
        lines.append("")
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


_HELD_OUT_KEYS: Final = (
    "n", "crps", "qlike_norm", "coverage_80", "coverage_90", "hit_rate", "pt_pvalue",
    *(f"{m}_vs_{b}" for m in ("crps_ratio", "qlike_norm_ratio", "dm_pvalue", "dm_crps_pvalue")
      for b in ("rw", "ewma", "garch", "gjr", "har")),
)  # fmt: skip
_HELD_OUT_MODEL: Final = {"emini": "es-1m", "sp500": "spx-1d", "nasdaq": "ndx-1d", "sp500-tickers": "eq-1d"}


def attach_held_out(model_dir: Path, skill_dir: Path) -> list[str]:
    """Put the held-out figures ``finllm bench edge`` measured from a replay (``skill-<dataset>.json``
    written with ``FINLLM_SKILL_OUT``) into the manifest's ``metrics.held_out`` and the model card.
    The manifest changes, so it must be signed again.  Returns the model ids updated."""
    import statistics

    path = model_dir / MANIFEST_NAME
    raw = json.loads(path.read_text())
    done = []
    for ds, mid in _HELD_OUT_MODEL.items():
        f = skill_dir / f"skill-{ds}.json"
        if not f.is_file() or mid not in raw["models"]:
            continue
        sk = json.loads(f.read_text())
        fig = {k: sk["pooled"].get(k) for k in _HELD_OUT_KEYS if k in sk["pooled"]}
        fig["source"] = f"finllm bench edge (replay of {ds})"
        if ds == "sp500-tickers":
            per = sk["per_symbol"].values()
            for k in ("qlike_norm_ratio_vs_garch", "crps_ratio_vs_garch", "dm_pvalue_vs_garch"):
                vals = [d[k] for d in per if d.get(k) is not None]
                fig[f"{k}_median_ticker"] = statistics.median(vals) if vals else None
        raw["models"][mid].setdefault("metrics", {})["held_out"] = fig
        done.append(mid)
    path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    card = model_dir / "MODEL_CARD.md"
    lines = ["", "## Held-out figures (from `finllm bench edge`, a replay of the product)", "",
             "| model | n | CRPS/GARCH | CRPS/GJR | CRPS/RW | QLIKE/GARCH | DM p | QLIKE/GJR | QLIKE/HAR "
             "| cov80 | cov90 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for mid in done:
        h = raw["models"][mid]["metrics"]["held_out"]

        def g(k: str, h: dict[str, Any] = h) -> str:
            v = h.get(k)
            return "n/a" if v is None else f"{v:.3f}"

        cells = [f"{mid} ({h['source']})", str(int(h["n"]))]
        cells += [g(k) for k in ("crps_ratio_vs_garch", "crps_ratio_vs_gjr", "crps_ratio_vs_rw")]
        cells += [
            g(k) for k in ("qlike_norm_ratio_vs_garch", "dm_pvalue_vs_garch", "qlike_norm_ratio_vs_gjr")
        ]
        cells += [g(k) for k in ("qlike_norm_ratio_vs_har", "coverage_80", "coverage_90")]
        lines.append("| " + " | ".join(cells) + " |")
    text = card.read_text().split("\n## Held-out figures")[0].rstrip("\n") + "\n"
    card.write_text(text + "\n".join(lines) + "\n")
    return done


_GATE_SERIES: Final = {"sp500": ("spx-1d", "SPX"), "nasdaq": ("ndx-1d", "NDX"), "emini": ("es-1m", "ES")}


def gate_series(name: str, model_dir: Path, gate: Any, fresh_from: int = 0) -> dict[str, np.ndarray]:
    """One bundled series as the edge reasoner serves it, gate included: per warm bar (in order)
    its time, the next bar's return ``y``, the model's variance, each baseline's and the gated
    variance, and the split label (0 train, 1 validation, 2 test) of the serving model.

    The bars and features are the replay's (:func:`bars_from_trades` / :func:`bars_from_daily`
    through :class:`FeatureEngine`, the model's feature config with the gate's range decay),
    the model is the shipped student on onnxruntime and the gate the actor's
    :class:`~adapters.inference.gate.VarianceGate`, so the figures are the product's up to
    the replay's plumbing.  For choosing the gate's settings on the validation split only.
    ``fresh_from``: the gate starts at the first row of this split (1: a symbol whose history
    begins with the validation period, like a ticker new to the model); earlier rows serve the
    model."""
    from adapters.inference.gate import VarianceGate

    levels, rows, q, vol, lab = _gate_rows(name, str(model_dir), gate.range_lambda)
    g = VarianceGate(gate, levels)
    ds = [g.decide(r, q[i], float(vol[i])) if lab[i] >= fresh_from else None for i, r in enumerate(rows)]
    served = np.asarray([d.variance if d else vol[i] ** 2 for i, d in enumerate(ds)])
    return {
        "levels": np.asarray(levels),
        "q_model": q,
        "q_gate": np.stack([d.quantiles if d else q[i] for i, d in enumerate(ds)]),
        "ts": np.asarray([r.ts_event for r in rows], dtype=np.int64),
        "y": np.asarray([rows[i + 1].ret if i + 1 < len(rows) else math.nan for i in range(len(rows))]),
        "model": vol**2,
        "anchor": np.asarray([r.scale**2 for r in rows]),
        "ewma": np.asarray([r.ewma_var for r in rows]),
        "range": np.asarray([r.range_var for r in rows]),
        "gate": served,
        "split": lab,
    }


def _rows_with_trades(tape: Tape, eng: FeatureEngine) -> list[Any]:
    """Warm feature rows of a trade tape's one-minute bars with the trades fed as the replay's
    feed publishes them (each bar just before the trade that closed it)."""
    from adapters.datasets import iter_trades

    agg = BarAggregator(BarSpec(kind="time", size=float(_MINUTE_NS), multiplier=_ES_MULTIPLIER))
    rows = []
    for seq, tr in enumerate(iter_trades(tape), 1):
        bar = agg.update(tr.symbol, tr.ts_event, tr.price, tr.size, tr.side, seq)
        if bar is not None:
            row = eng.on_bar(bar)
            if row is not None and row.warm:
                rows.append(row)
        eng.on_trade(tr)
    for bar in agg.flush():
        row = eng.on_bar(bar)
        if row is not None and row.warm:
            rows.append(row)
    return rows


@functools.cache
def _gate_rows(
    name: str, model_dir: str, range_lambda: float
) -> tuple[tuple[float, ...], list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """(levels, warm feature rows, model quantiles, model volatility, split labels) of a series."""
    from adapters.inference.manifest import load_manifest
    from adapters.inference.model import load_edge_model

    mid = _GATE_SERIES[name][0]
    manifest = load_manifest(model_dir)
    spec = manifest.model(mid)
    model = load_edge_model(manifest, mid, max_batch=4096)
    fcfg = msgspec.structs.replace(spec.feature_config, range_lambda=range_lambda)
    tape = _LOADERS[name]()
    eng = FeatureEngine(fcfg)
    if name == "emini":
        rows = _rows_with_trades(tape, eng)
    else:
        rows = [r for r in (eng.on_bar(b) for b in bars_from_daily(tape)) if r is not None and r.warm]
    out = model.predict(np.stack([r.values for r in rows]))
    model.close()
    ts = np.asarray([r.ts_event for r in rows], dtype=np.int64)

    def at(split: str) -> int:
        return int(np.datetime64(spec.splits[split]["first_basis"].rstrip("Z"), "ns").astype(np.int64))

    lab = np.where(ts < at("val"), 0, np.where(ts < at("test"), 1, 2))
    return spec.quantile_levels, rows, out.quantiles, out.volatility, lab


def tune_gate(model_dir: Path, datasets: tuple[str, ...] = ("sp500", "nasdaq", "emini")) -> None:
    """Print the validation-split normalised QLIKE of the gate over a grid of its settings, per
    series, and its ratio to the model alone: how the shipped defaults were chosen.  The daily
    series are scored twice: with the gate running since the first bar, and with a gate that
    starts at the validation period (``fresh``: a symbol new to the model, like a withheld
    ticker).  Only rows labelled validation are scored; the test split is never read."""
    from adapters.inference.gate import GateConfig

    grid = [
        GateConfig(half_life=hl, eta=eta, prior_model=pm, calibrate_half_life=cal, calibrate_prior=cp)
        for pm in (0.25, 0.5, 0.8, 0.9, 0.97)
        for cal in (0.0, 500.0, 2000.0)
        for cp in ((20.0, 100.0) if cal else (20.0,))
        for hl, eta in ((1000.0, 0.05), (500.0, 0.1), (250.0, 0.25))
    ]
    series = [(d, 0) for d in datasets] + [(d, 1) for d in datasets if d != "emini"]
    heads = " ".join(f"{d}{'-fresh' if f else ''}" for d, f in series)
    print(f"prior_model calibrate(hl,prior) half_life eta | QLIKE: {heads} | mean ratio to the model")
    for gcfg in grid:
        ratios = []
        cells = []
        for d, fresh in series:
            s = gate_series(d, model_dir, gcfg, fresh)
            val = (s["split"] == 1) & np.isfinite(s["y"]) & (s["y"] != 0.0)
            s2 = s["y"][val] ** 2
            gated = float(np.mean(scoring.qlike_norm(s2, s["gate"][val])))
            ratios.append(gated / float(np.mean(scoring.qlike_norm(s2, s["model"][val]))))
            cells.append(f"{gated:.4f}")
        print(f"{gcfg.prior_model:<5} {gcfg.calibrate_half_life:>5.0f},{gcfg.calibrate_prior:<4.0f} "
              f"{gcfg.half_life:>5.0f} {gcfg.eta:<5} | {' '.join(cells)} | {float(np.mean(ratios)):.5f}",
              flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_edge", description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="emini,eq-daily")
    ap.add_argument("--out", default="models/edge")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument(
        "--attach-held-out",
        metavar="SKILL_DIR",
        help="only put bench figures (skill-*.json) into --out's manifest",
    )
    ap.add_argument(
        "--tune-gate",
        action="store_true",
        help="only print the serve-time gate's validation QLIKE over a grid of its settings",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.tune_gate:
        tune_gate(out)
        return 0
    if args.attach_held_out:
        done = attach_held_out(out, Path(args.attach_held_out))
        print(f"held-out figures attached to {done}; sign the manifest again")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(seed=args.seed, max_epochs=args.max_epochs)
    models = {}
    for name in args.datasets.split(","):
        if name not in DATASET_SPECS:
            print(f"unknown dataset {name!r}; choose from {sorted(DATASET_SPECS)}", file=sys.stderr)
            return 2
        models[DATASET_SPECS[name].model_id] = train_dataset(name, out, cfg)
    path = write_manifest(out, models, cfg)
    card = write_model_card(out, models, cfg)
    print(f"wrote {path} and {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
