"""Skill of a run's forecasts against the classical baselines, from what the run wrote.

:func:`run_skill` reads the edge forecasts of a run (``forecasts.jsonl``), pairs each with
the next bar of its symbol (:func:`adapters.scoring.next_bar_outcomes`), computes the
baselines of :mod:`adapters.baselines` one step ahead on the same bars, and scores all of
them on the same rows with :func:`adapters.scoring.skill`.  ``finllm bench edge`` reports its
figures; the run report's skill panel (:func:`skill_figures`) plots them.

Bars come from the same tape the replay's feed read (:func:`bars_from_tape`): a bar tape's
rows as they are (real open/high/low/close), a trade tape's time bars built by the feed's
own :class:`~adapters.bars.BarAggregator`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adapters import scoring
from adapters.baselines import baseline_forecasts
from adapters.datasets import Tape

__all__ = [
    "RunSkill",
    "SymbolBars",
    "bars_from_tape",
    "run_skill",
    "skill_figures",
    "skill_panel",
    "with_skill_panel",
    "write_skill_json",
]


@dataclasses.dataclass(frozen=True)
class SymbolBars:
    """One symbol's bars in time order: close times (ns) and open/high/low/close."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def bars_from_tape(
    tape: Tape, bar_ns: int = 60_000_000_000, multiplier: float = 1.0
) -> dict[str, SymbolBars]:
    """Per symbol, the bars a replay's feed publishes for ``tape`` (module docstring)."""
    out: dict[str, SymbolBars] = {}
    if tape.kind == "bars":
        for k, sym in enumerate(tape.symbols):
            rows = np.flatnonzero(tape.sym == k)
            if len(rows):
                out[sym] = SymbolBars(
                    tape.ts_ns[rows],
                    tape.extra["open"][rows],
                    tape.extra["high"][rows],
                    tape.extra["low"][rows],
                    tape.price[rows],
                )
        return out
    from adapters.bars import BarAggregator, BarSpec

    for k, sym in enumerate(tape.symbols):
        rows = np.flatnonzero(tape.sym == k)
        agg = BarAggregator(BarSpec(kind="time", size=float(bar_ns), multiplier=multiplier))
        bars = [
            b
            for _, b in agg.update_many(
                sym, tape.ts_ns[rows], tape.price[rows], tape.size[rows], tape.side[rows], 0
            )
        ]
        bars.extend(agg.flush())
        if bars:
            out[sym] = SymbolBars(
                np.asarray([b.ts_event for b in bars], dtype=np.int64),
                np.asarray([b.open for b in bars]),
                np.asarray([b.high for b in bars]),
                np.asarray([b.low for b in bars]),
                np.asarray([b.close for b in bars]),
            )
    return out


@dataclasses.dataclass
class RunSkill:
    """Scores of one run: ``pooled`` (all symbols' rows together), ``per_symbol``, and the
    per-row arrays the panel plots (``ts``, ``y``, the model's ``crps``/``qlike`` and each
    baseline's, ``pit``)."""

    pooled: dict[str, float]
    per_symbol: dict[str, dict[str, float]]
    ts: np.ndarray
    y: np.ndarray
    losses: dict[str, dict[str, np.ndarray]]
    pit: np.ndarray
    missing: int
    """Bars in the scored window that had no forecast (dead-lettered, warm-up)."""


def run_skill(
    forecasts: Sequence[Mapping[str, Any]],
    bars: Mapping[str, SymbolBars],
    *,
    start_ns: int = 0,
    end_ns: int | None = None,
    symbols: Iterable[str] | None = None,
    rw_window: int = 250,
    refit_every: int = 20,
    min_history: int = 60,
) -> RunSkill:
    """Score ``forecasts`` whose basis bar closes in ``[start_ns, end_ns)`` (module docstring).

    ``symbols``: only these (e.g. the tickers withheld from training).  Baselines need
    ``min_history`` returns before the first scored one; earlier bars are not scored.
    """
    by_sym: dict[str, list[Mapping[str, Any]]] = {}
    for f in forecasts:
        by_sym.setdefault(str(f["symbol"]), []).append(f)
    wanted = set(symbols) if symbols is not None else set(by_sym)
    levels: np.ndarray | None = None
    cols: dict[str, list[np.ndarray]] = {}
    base_cols: dict[str, dict[str, list[np.ndarray]]] = {}
    per_symbol: dict[str, dict[str, float]] = {}
    missing = 0
    for sym in sorted(wanted & set(by_sym) & set(bars)):
        b = bars[sym]
        fs = by_sym[sym]
        idx, keep = scoring.next_bar_outcomes(fs, b.ts, b.close)
        lo = max(min_history, int(np.searchsorted(b.ts, start_ns)))
        hi = len(b.ts) - 1 if end_ns is None else min(len(b.ts) - 1, int(np.searchsorted(b.ts, end_ns)))
        sel = (idx >= lo) & (idx < hi)
        if hi - lo < 30 or not np.any(sel):
            continue
        idx = idx[sel]
        fk = [fs[keep[j]] for j in np.flatnonzero(sel)]
        missing += (hi - lo) - len(idx)
        lv = np.asarray(fk[0]["quantile_levels"], dtype=np.float64)
        levels = lv if levels is None else levels
        r = np.log(b.close[1:] / b.close[:-1])
        base = baseline_forecasts(
            b.close, lo, lv, high=b.high, low=b.low, rw_window=rw_window, refit_every=refit_every
        )
        y = r[idx]
        q = np.asarray([f["quantiles"] for f in fk], dtype=np.float64)
        vol = np.asarray([f["volatility"] for f in fk], dtype=np.float64)
        prob = np.asarray([f["direction_prob"] for f in fk], dtype=np.float64)
        bsel = {n: (bl.variance[idx - lo], bl.quantiles[idx - lo]) for n, bl in base.items()}
        per_symbol[sym] = scoring.skill(y, q, vol, prob, lv, bsel)
        cols.setdefault("ts", []).append(b.ts[idx])
        cols.setdefault("y", []).append(y)
        cols.setdefault("q", []).append(q)
        cols.setdefault("vol", []).append(vol)
        cols.setdefault("prob", []).append(prob)
        for n, (bv, bq) in bsel.items():
            base_cols.setdefault(n, {}).setdefault("var", []).append(bv)
            base_cols[n].setdefault("q", []).append(bq)
    if levels is None:
        raise ValueError("run_skill: no forecast pairs with a bar in the scored window")
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    # Only baselines every scored symbol has (HAR needs ranges) enter the pooled figures.
    complete = {n: d for n, d in base_cols.items() if len(d["var"]) == len(cols["y"])}
    bcat = {n: (np.concatenate(d["var"]), np.concatenate(d["q"])) for n, d in complete.items()}
    pooled = scoring.skill(cat["y"], cat["q"], cat["vol"], cat["prob"], levels, bcat)
    losses: dict[str, dict[str, np.ndarray]] = {}
    s2 = cat["y"] ** 2
    for name, (v, q) in {"edge": (cat["vol"] ** 2, cat["q"]), **bcat}.items():
        ql = np.full(len(s2), np.nan)
        pos = s2 > 0
        ql[pos] = scoring.qlike_norm(s2[pos], v[pos])
        losses[name] = {"crps": scoring.crps_quantiles(cat["y"], q, levels), "qlike": ql}
    return RunSkill(
        pooled=pooled,
        per_symbol=per_symbol,
        ts=cat["ts"],
        y=cat["y"],
        losses=losses,
        pit=scoring.pit(cat["y"], cat["q"], levels),
        missing=missing,
    )


def _rolling_ratio(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    ok = ~(np.isnan(a) | np.isnan(b))
    ca = np.concatenate([[0.0], np.cumsum(np.where(ok, a, 0.0))])
    cb = np.concatenate([[0.0], np.cumsum(np.where(ok, b, 0.0))])
    if len(a) < window:
        return np.full(0, math.nan)
    out: np.ndarray = (ca[window:] - ca[:-window]) / np.maximum(cb[window:] - cb[:-window], 1e-300)
    return out


def skill_figures(skill: RunSkill, window: int = 250) -> dict[str, bytes]:
    """PNG plots for the report's skill panel: PIT histogram and rolling ``window``-bar ratios."""
    from adapters.reporting import _figure, _png

    figs: dict[str, bytes] = {}
    fig, ax = _figure(6.0, 3.0)
    ax.hist(skill.pit, bins=20, range=(0.0, 1.0), color="#4c72b0", edgecolor="white")
    ax.axhline(len(skill.pit) / 20, color="k", lw=1, ls="--", label="uniform")
    ax.set_title("PIT of edge forecasts (calibrated: flat)")
    figs["pit"] = _png(fig)
    fig, ax = _figure()
    x = np.arange(len(skill.ts))
    for name in skill.losses:
        if name == "edge":
            continue
        for loss, style in (("crps", "-"), ("qlike", ":")):
            rr = _rolling_ratio(skill.losses["edge"][loss], skill.losses[name][loss], window)
            if len(rr):
                ax.plot(x[window - 1 :], rr, style, lw=1, label=f"{loss} / {name}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_title(f"edge loss / baseline loss, rolling {window} bars (below 1: edge better)")
    ax.legend(fontsize=7, ncol=3)
    figs["rolling"] = _png(fig)
    return figs


def write_skill_json(skill: RunSkill, path: str | Path) -> None:
    """The pooled and per-symbol figures as JSON (NaN as null)."""
    import json

    def clean(d: Mapping[str, float]) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in d.items()}

    Path(path).write_text(
        json.dumps(
            {
                "pooled": clean(skill.pooled),
                "per_symbol": {s: clean(d) for s, d in skill.per_symbol.items()},
                "missing": skill.missing,
            },
            indent=1,
            sort_keys=True,
        )
    )


_PANEL_SYMBOLS = 3  # the run report scores the symbols with the most forecasts, at most this many
_PANEL_BARS = 3000  # and at most each one's last this many bars (the report must stay quick)
_MIN_HELD_OUT = 100  # forecasts after the models' validation periods needed for a held-out row


def _fitted_until_ns(model_ids: Iterable[str]) -> int:
    """The latest end of a training or validation split among ``model_ids`` in the shipped
    manifest (ns; 0 when none is known, or the manifest is refused): a forecast at or before it
    is in-sample for its model."""
    from adapters.inference.errors import InferenceError
    from adapters.inference.manifest import load_manifest

    try:
        models = load_manifest().models
    except InferenceError:
        return 0
    ends = [
        int(np.datetime64(str(last).rstrip("Z"), "ns").astype(np.int64))
        for mid in model_ids
        if mid in models
        for part in ("train", "val")
        if (last := models[mid].splits.get(part, {}).get("last_basis"))
    ]
    return max(ends, default=0)


def skill_panel(
    out: Path, prices: Mapping[str, Sequence[Sequence[float]]]
) -> tuple[list[tuple[str, list[str], list[list[str]], str]], list[tuple[str, bytes | None, str]]]:
    """The run report's "skill" panel: a table of the edge forecasts' CRPS and QLIKE against each
    baseline (ratios and Diebold-Mariano p-values), calibration, and the PIT histogram and rolling
    250-bar ratio plots.  ``prices``: symbol -> [(ts_ns, bar close), ...] (results.json); without
    highs and lows there is no HAR baseline.  Empty when the run wrote no edge forecasts; a
    failure is reported in the table, never raised (the rest of the report still gets written)."""
    path = out / "forecasts.jsonl"
    if not path.exists():
        return [], []
    fcs = scoring.read_forecasts(path)
    if not fcs:
        return [], []
    counts: dict[str, int] = {}
    for f in fcs:
        counts[str(f["symbol"])] = counts.get(str(f["symbol"]), 0) + 1
    chosen = [s for s in sorted(counts, key=lambda s: -counts[s]) if s in prices][:_PANEL_SYMBOLS]
    bars: dict[str, SymbolBars] = {}
    for s in chosen:
        arr = np.asarray(prices[s], dtype=np.float64)[-_PANEL_BARS:]
        ts = arr[:, 0].astype(np.int64)
        c = arr[:, 1]
        bars[s] = SymbolBars(ts, c, c, c, c)
    note = (
        f"Edge forecasts of {', '.join(chosen)} (the symbols with the most forecasts, last "
        f"{_PANEL_BARS} bars), "
        "each scored against the next bar; baselines one step ahead on the same bars (refitted every "
        "100 bars). Ratios below 1: the edge model's loss is lower. DM: Diebold-Mariano, HAC, two-sided."
    )
    # A run over the models' own training or validation bars (the main job replays the bundled
    # E-mini days es-1m was fitted on) scores in-sample: said so, with a held-out row beside it.
    fitted = _fitted_until_ns({str(f.get("model_id", "")) for f in fcs if f.get("tier", "edge") == "edge"})
    inside = sum(1 for f in fcs if int(f["ts_event"]) <= fitted) if fitted else 0
    history = min(250, max(60, len(fcs) // 10))
    try:
        sk = run_skill(fcs, bars, refit_every=100, min_history=history)
        held = (
            run_skill(fcs, bars, start_ns=fitted + 1, refit_every=100, min_history=history)
            if inside and len(fcs) - inside >= _MIN_HELD_OUT
            else None
        )
    except Exception as exc:  # the report is written whatever the panel's data
        return [("Skill", ["note"], [[f"not computed: {type(exc).__name__}: {exc}"]], "")], []
    m = sk.pooled
    rows = []
    for label, mm in (("", m), (" (held out)", held.pooled if held is not None else {})):
        for b in ("rw", "ewma", "garch", "gjr", "har"):
            if f"crps_ratio_vs_{b}" in mm:
                rows.append(
                    [b + label, _f(mm[f"crps_ratio_vs_{b}"]), _f(mm[f"dm_crps_pvalue_vs_{b}"]),
                     _f(mm[f"qlike_norm_ratio_vs_{b}"]), _f(mm[f"dm_pvalue_vs_{b}"])]
                )  # fmt: skip
    if inside:
        note += (
            f" IN-SAMPLE WARNING: {inside} of {len(fcs)} forecasts fall inside the serving model's "
            "training or validation period (its manifest's splits), where its skill is not evidence; "
            + (
                f"the '(held out)' rows score only the {int(held.pooled.get('n', 0))} after it."
                if held is not None
                else "too few come after it for a held-out row."
            )
        )
    calib = [[str(int(m["n"])), *(_f(m[k]) for k in ("coverage_80", "coverage_90", "pit_ks_pvalue"))]]
    calib[0] += [_f(m["hit_rate"]), _f(m["pt_pvalue"])]
    tables = [
        ("Skill: edge vs baselines", ["baseline", "CRPS ratio", "DM p (CRPS)", "QLIKE ratio", "DM p (QLIKE)"],
         rows, note),
        ("Skill: calibration", ["n", "80% coverage", "90% coverage", "PIT KS p", "hit rate", "PT p"], calib,
         "Coverage of the central 80%/90% intervals (calibrated: 0.80/0.90); PIT uniformity by "
         "Kolmogorov-Smirnov; hit rate of the direction with the Pesaran-Timmermann test."),
    ]  # fmt: skip
    figs = skill_figures(sk)
    figures: list[tuple[str, bytes | None, str]] = [
        ("Skill: PIT histogram of the edge forecasts", figs.get("pit"), ""),
        ("Skill: rolling 250-bar loss ratios, edge / baseline", figs.get("rolling"), ""),
    ]
    return tables, figures


def _f(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def with_skill_panel(
    out: Path,
    prices: Mapping[str, Sequence[Sequence[float]]],
    tables: list[Any],
    figures: list[Any],
) -> tuple[list[Any], list[Any]]:
    """``tables`` and ``figures`` with the skill panel (:func:`skill_panel`) appended."""
    t, f = skill_panel(out, prices)
    return [*tables, *t], [*figures, *f]
