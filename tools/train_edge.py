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
}
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


def bars_from_trades(tape: Tape, bar_ns: int = _MINUTE_NS) -> list[Bar]:
    """Time bars from a single-symbol trade tape, built by the same
    :class:`adapters.bars.BarAggregator` the market-data feed uses (so training sees
    exactly the bars the actor gets in replay); trade ``i`` has ``seq`` ``i + 1``."""
    agg = BarAggregator(BarSpec(kind="time", size=float(bar_ns), multiplier=_ES_MULTIPLIER))
    bars = [b for _, b in agg.update_many(tape.symbol, tape.ts_ns, tape.price, tape.size, tape.side, 0)]
    bars.extend(agg.flush())
    return bars


def bars_from_daily(tape: Tape) -> Iterator[Bar]:
    """One bar per row of a daily tape (close in ``price``, open/high/low in ``extra``)."""
    sym = tape.symbol
    o, h, lo = tape.extra["open"], tape.extra["high"], tape.extra["low"]
    for i in range(len(tape)):
        ts = int(tape.ts_ns[i])
        yield Bar(
            symbol=sym,
            ts_event=ts,
            ts_open=ts - 23_400_000_000_000,
            seq=i + 1,
            open=float(o[i]),
            high=float(h[i]),
            low=float(lo[i]),
            close=float(tape.price[i]),
            volume=float(tape.size[i]),
            kind="time",
            spec=float(_DAY_NS),
        )


@dataclasses.dataclass
class Prepared:
    """Feature rows of one dataset with their next-bar targets, split chronologically.

    Row ``i``: features ``x[i]`` after bar ``ts[i]``, scale ``scale[i]`` (EWMA
    volatility), target ``y[i]`` = log return of the next bar.  ``returns`` is
    every one-bar log return in order; ``target_index[i]`` is where ``y[i]``
    sits in it.  ``train``/``val``/``test`` are row slices.
    """

    spec: DatasetSpec
    feature_config: FeatureConfig
    x: np.ndarray
    scale: np.ndarray
    y: np.ndarray
    ts: np.ndarray
    regime: np.ndarray
    returns: np.ndarray
    target_index: np.ndarray
    train: slice
    val: slice
    test: slice
    data_sha256: str

    def period(self, sl: slice) -> dict[str, Any]:
        ts = self.ts[sl]
        iso = [np.datetime_as_string(np.datetime64(int(t), "ns"), unit="m") + "Z" for t in (ts[0], ts[-1])]
        return {"first_basis": iso[0], "last_basis": iso[1], "rows": len(ts)}


def prepare(name: str) -> Prepared:
    """Load a dataset, build bars and features, and split; see :class:`Prepared`."""
    spec = DATASET_SPECS[name]
    tape = _LOADERS[name]()
    bars = bars_from_trades(tape, spec.bar_ns) if name == "emini" else bars_from_daily(tape)
    fcfg = FeatureConfig(bar_ns=spec.bar_ns, news_half_life_s=spec.news_half_life_s)
    eng = FeatureEngine(fcfg)
    det = RegimeDetector(RegimeConfig())
    closes: list[float] = []
    rows: list[tuple[int, Any]] = []  # (bar index, FeatureRow) of warm rows
    regimes: list[int] = []
    for i, bar in enumerate(bars):
        closes.append(bar.close)
        row = eng.on_bar(bar)
        if row is None:
            continue
        reg = det.update(row)
        if row.warm:
            rows.append((i, row))
            regimes.append(reg.index)
    c = np.asarray(closes)
    returns = np.log(c[1:] / c[:-1])
    rows = [(i, r) for i, r in rows if i + 1 < len(c)]  # the last bar has no target
    regimes = regimes[: len(rows)]
    x = np.stack([r.values for _, r in rows]).astype(np.float32)
    scale = np.asarray([r.scale for _, r in rows])
    tidx = np.asarray([i for i, _ in rows])  # returns[i] = log(c[i+1]/c[i]) is bar i's next return
    y = returns[tidx]
    ts = np.asarray([r.ts_event for _, r in rows], dtype=np.int64)
    n = len(rows)
    if spec.split == "fraction":
        a, b = int(n * 0.6), int(n * 0.8)
    else:
        a = int(np.searchsorted(ts, _year_ns(2011)))
        b = int(np.searchsorted(ts, _year_ns(2014)))
    return Prepared(
        spec=spec,
        feature_config=fcfg,
        x=x,
        scale=scale,
        y=y,
        ts=ts,
        regime=np.asarray(regimes, dtype=np.int64),
        returns=returns,
        target_index=tidx,
        train=slice(0, a),
        val=slice(a, b),
        test=slice(b, n),
        data_sha256=data_sha256(tape),
    )


def _year_ns(year: int) -> int:
    return int(np.datetime64(f"{year}-01-01", "ns").astype(np.int64))


def evaluate(prep: Prepared, out: np.ndarray, sl: slice | None = None) -> dict[str, float]:
    """Quality figures of model outputs ``out`` (rows of ``sl``, default test) against baselines.

    Baselines: the random walk with the empirical quantiles of the training and
    validation returns (``rw``) and of the trailing ``rw_window`` returns
    (``rw_rolling``); EWMA(0.94) variance; GARCH(1,1) fitted on the returns before
    the evaluated period.
    """
    sl = sl or prep.test
    k = len(QUANTILE_LEVELS)
    levels = np.asarray(QUANTILE_LEVELS)
    y = prep.y[sl]
    q, vol, prob = out[:, :k].astype(np.float64), out[:, k].astype(np.float64), out[:, k + 1]
    fit_end = int(prep.target_index[sl][0])
    past = prep.returns[:fit_end]
    rw_q = np.broadcast_to(np.quantile(past, levels), q.shape)
    roll_q = scoring.rolling_empirical_quantiles(prep.returns, levels, fit_end, prep.spec.rw_window)
    roll_q = roll_q[prep.target_index[sl] - fit_end]
    crps = scoring.crps_quantiles(y, q, levels)
    crps_rw = scoring.crps_quantiles(y, rw_q, levels)
    crps_roll = scoring.crps_quantiles(y, roll_q, levels)
    garch = scoring.garch_variance(prep.returns, fit_end)[prep.target_index[sl] - fit_end]
    ewma = prep.scale[sl] ** 2
    ql = scoring.qlike(y, vol**2)
    _, pt_p = scoring.pesaran_timmermann(y, prob)
    _, dm_p = scoring.diebold_mariano(crps, crps_rw)
    _, dm_roll_p = scoring.diebold_mariano(crps, crps_roll)
    cover = scoring.interval_coverage(y, q, levels, 0.9)  # the 5%-95% band
    # Normalised QLIKE against the squared return: rows with a zero return carry no information
    # (infinite loss for every forecast) and are left out, the same rows for every model.
    s2 = np.asarray(y, np.float64) ** 2
    h_model = np.asarray(vol, np.float64) ** 2
    qn, _ = scoring.qlike_norm_mean(s2, h_model)
    qn_garch, _ = scoring.qlike_norm_mean(s2, garch)
    qn_ewma, _ = scoring.qlike_norm_mean(s2, ewma)
    moved = s2 > 0.0
    _, dm_garch_p = scoring.diebold_mariano(
        scoring.qlike_norm(s2[moved], h_model[moved]), scoring.qlike_norm(s2[moved], garch[moved])
    )
    return {
        "n": float(len(y)),
        "crps": float(crps.mean()),
        "crps_rw": float(crps_rw.mean()),
        "crps_ratio_vs_rw": float(crps.mean() / crps_rw.mean()),
        "crps_rw_rolling": float(crps_roll.mean()),
        "crps_ratio_vs_rw_rolling": float(crps.mean() / crps_roll.mean()),
        "qlike": float(ql.mean()),
        "qlike_garch": float(scoring.qlike(y, garch).mean()),
        "qlike_ewma": float(scoring.qlike(y, ewma).mean()),
        "hit_rate": scoring.hit_rate(y, prob),
        "brier": scoring.brier(y, prob),
        "pt_pvalue": pt_p,
        "dm_pvalue": dm_p,
        "dm_pvalue_vs_rw_rolling": dm_roll_p,
        "coverage_90": cover,
        "coverage_80": scoring.interval_coverage(y, q, levels, 0.8),
        "qlike_norm": qn,
        "qlike_norm_garch": qn_garch,
        "qlike_norm_ewma": qn_ewma,
        "qlike_norm_ratio_vs_garch": _ratio(qn, qn_garch),
        "qlike_norm_ratio_vs_ewma": _ratio(qn, qn_ewma),
        "dm_pvalue_vs_garch": dm_garch_p,
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0.0 and math.isfinite(b) else math.nan


# --- training ----------------------------------------------------------------


class TrainConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Hyper-parameters of one training run (recorded in the manifest)."""

    seed: int = 7
    teacher_hidden: tuple[int, ...] = (128, 128, 128)
    teacher_members: int = 5  # the teacher is an ensemble of this many nets (different seeds)
    student_hidden: tuple[int, ...] = (32, 32)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch: int = 256
    max_epochs: int = 300
    patience: int = 25
    w_pinball: float = 1.0
    w_nll: float = 0.25
    w_bce: float = 0.1
    distill_alpha: float = 0.5  # weight of the true targets in the student loss
    specialist_epochs: int = 40


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


def train_dataset(name: str, out: Path, cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """Train teacher and student (and regime specialists) for one dataset; return its manifest entry."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    prep = prepare(name)
    spec = prep.spec
    log(
        f"[{name}] rows train/val/test = {prep.train.stop}/{prep.val.stop - prep.val.start}/"
        f"{prep.test.stop - prep.test.start}  ({time.perf_counter() - t0:.1f}s features)"
    )
    from adapters.inference.net import EdgeEnsemble

    members = []
    tinfos = []
    for i in range(cfg.teacher_members):
        net, info = _fit(prep, cfg.teacher_hidden, msgspec.structs.replace(cfg, seed=cfg.seed + 1000 * i))
        members.append(net)
        tinfos.append(info)
    teacher = EdgeEnsemble.of(members)
    tinfo: dict[str, Any] = {
        "members": cfg.teacher_members,
        "hidden": list(cfg.teacher_hidden),
        "params": sum(p.numel() for p in teacher.parameters()),
        "epochs": [t["epochs"] for t in tinfos],
        "best_epoch": [t["best_epoch"] for t in tinfos],
        "val_loss": [t["val_loss"] for t in tinfos],
    }
    tinfo["logit_scale"] = calibrate_direction(teacher, prep)
    log(f"[{name}] teacher {tinfo}")
    student, sinfo = _fit(prep, cfg.student_hidden, cfg, teacher=teacher)
    sinfo["logit_scale"] = calibrate_direction(student, prep)
    log(f"[{name}] student {sinfo}")
    metrics = {
        "teacher": evaluate(prep, _predict(teacher, prep.x[prep.test])),
        "student": evaluate(prep, _predict(student, prep.x[prep.test])),
    }
    for who in ("teacher", "student"):
        m = metrics[who]
        log(
            f"[{name}] {who}: crps_ratio_vs_rw={m['crps_ratio_vs_rw']:.4f} "
            f"qlike={m['qlike']:.4f} garch={m['qlike_garch']:.4f} ewma={m['qlike_ewma']:.4f} "
            f"hit={m['hit_rate']:.3f}"
        )
    entry: dict[str, Any] = {
        "dataset": name,
        "symbol": spec.symbol,
        "horizon": spec.horizon,
        "feature_config": msgspec.to_builtins(prep.feature_config),
        "data_sha256": prep.data_sha256,
        "splits": {k: prep.period(getattr(prep, k)) for k in ("train", "val", "test")},
        "student": {**_save(student, out, f"{spec.model_id}.student"), **sinfo},
        "teacher": {**_save(teacher, out, f"{spec.model_id}.teacher"), **tinfo},
        "metrics": metrics,
        "feature_mean": _norm_stats(prep.x[prep.train])[0],
        "specialists": {},
    }
    # Regime specialists: the student fine-tuned on the training rows of one regime.
    from adapters.regimes import REGIMES

    for idx, reg in enumerate(REGIMES):
        rows = np.flatnonzero(prep.regime[prep.train] == idx) + prep.train.start
        if len(rows) < 200:
            log(f"[{name}] specialist {reg}: only {len(rows)} training rows, none trained")
            continue
        spec_net, info = _fit(
            prep,
            cfg.student_hidden,
            cfg,
            teacher=teacher,
            init=student,
            rows=rows,
            max_epochs=cfg.specialist_epochs,
        )
        val_rows = np.flatnonzero(prep.regime[prep.val] == idx) + prep.val.start
        info["logit_scale"] = calibrate_direction(spec_net, prep, val_rows if len(val_rows) >= 50 else None)
        entry["specialists"][reg] = {
            **_save(spec_net, out, f"{spec.model_id}.{reg}"),
            **info,
            "train_rows": len(rows),
        }
    log(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
    return entry


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
        "models": models,
    }
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


_CARD_FIGURES = (
    ("crps_ratio_vs_rw", "CRPS / RW"),
    ("crps_ratio_vs_rw_rolling", "CRPS / rolling RW"),
    ("qlike", "QLIKE"),
    ("qlike_garch", "QLIKE GARCH(1,1)"),
    ("qlike_ewma", "QLIKE EWMA(.94)"),
    ("hit_rate", "hit rate"),
    ("pt_pvalue", "PT p"),
    ("dm_pvalue", "DM p"),
    ("coverage_90", "90% coverage"),
)


def write_model_card(out: Path, models: dict[str, Any], cfg: TrainConfig) -> Path:
    """A human-readable summary of ``manifest.json`` (regenerated with the weights)."""
    lines = [
        "# Edge models",
        "",
        "Written by `python -m tools.train_edge`; `manifest.json` is the authority (sha256 of every",
        "file, data hashes, full metrics) and is verified before any weights load.  Test periods are",
        "held out: chronological splits, early stopping and calibration on the validation period only.",
        "Lower is better for CRPS and QLIKE (QLIKE is `log h + r^2/h`, see adapters/scoring.py).",
        "",
        f"Training config: `{json.dumps(msgspec.to_builtins(cfg), sort_keys=True)}`",
        "",
    ]
    for mid, m in models.items():
        sp = m["splits"]
        lines += [
            f"## {mid} ({m['dataset']}, horizon {m['horizon']}, symbol {m['symbol']})",
            "",
            f"- data sha256 `{m['data_sha256']}`",
            *(
                f"- {k}: {sp[k]['first_basis']} .. {sp[k]['last_basis']} ({sp[k]['rows']} rows)"
                for k in ("train", "val", "test")
            ),
            f"- student: {m['student']['hidden']} hidden, {m['student']['params']} parameters",
            f"- teacher: {m['teacher'].get('members', 1)} x {m['teacher']['hidden']} hidden, "
            f"{m['teacher']['params']} parameters",
            f"- regime specialists: {', '.join(sorted(m['specialists'])) or 'none'}",
            "",
            "| model | " + " | ".join(label for _, label in _CARD_FIGURES) + " |",
            "|---|" + "---|" * len(_CARD_FIGURES),
        ]
        for role in ("student", "teacher"):
            vals = m["metrics"][role]
            lines.append(f"| {role} | " + " | ".join(f"{vals[k]:.4g}" for k, _ in _CARD_FIGURES) + " |")
        lines.append("")
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_edge", description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="emini,sp500,nasdaq")
    ap.add_argument("--out", default="models/edge")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-epochs", type=int, default=300)
    args = ap.parse_args(argv)
    out = Path(args.out)
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
