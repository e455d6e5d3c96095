"""ShadowEvaluator: a candidate edge model runs beside the serving one, is scored, promoted or rolled back.

Subscribe it to the serving edge reasoner's inputs (``bar.<SYM>``, ``md.<SYM>``,
``news.verified``) and outputs (``forecast.<SYM>``).  At start it loads the candidate from
``candidate_dir`` through :func:`~adapters.inference.manifest.load_manifest` (so an unsigned or
tampered candidate is refused and a ``reject`` decision published) and, for the rollback
watch, the incumbent from ``incumbent_dir`` (default: the shipped models).  For every bar it
folds the bar into its own features (the same :mod:`adapters.features` code and config as the
edge) and forecasts with the *shadow* network: the candidate while it is on trial, the
incumbent once the candidate serves.  Shadow forecasts are recorded (``shadow.<SYM>`` on the
bus and, with ``record_file``, one JSON line each) and **never served**: nothing is published
on ``forecast.*``.

Scoring: the outcome of a forecast made at a bar's close is the next bar's log return (one-bar
horizon, the edge's).  The shadow network's forecast goes through its own serve-time gate
(:class:`~adapters.inference.gate.VarianceGate`, ``gate`` in the config, by default the edge's
defaults), as the serving edge's does: what is compared is what each model *would serve*, gated
like with like (a raw network against a gated incumbent would put the gate's calibration on the
incumbent's side only).  The shadow's gates start afresh at a promotion, as the edge's do.
Each bar pairs the serving forecast (the edge's version-1 forecast of
that bar, matched by symbol and ``ts_event``) with the shadow's; per pair the loss is the CRPS
over the quantile grid (:func:`adapters.scoring.crps_one`, the shared scoring module).  Every
``decide_every`` pairs, once at least ``min_samples`` are in, :func:`decide` applies the policy:

* on trial: **promote** when the candidate's mean loss is below the serving one's by at least
  ``margin`` (relative) and the Diebold-Mariano test (:func:`adapters.scoring.diebold_mariano`,
  HAC variance) has p < ``alpha``; **reject** when it is significantly worse; else **hold**;
* serving: **rollback** when the promoted model's mean loss, over the pairs scored since the
  promotion, is above the incumbent's by at least ``rollback_margin`` (relative) with p <
  ``alpha``; else **hold**.

Each decision is a :class:`~engine.messages.ModelDecision` on ``control.model`` (with
``trace_id`` ``shadow-<n>``), logged (``model_decision``) and recorded.  ``auto_promote`` off:
promotion is only proposed (a ``hold`` whose reason says so); ``finllm models promote`` does it
by hand.  The swap itself is the edge reasoner's: it answers what it has queued with the old
model, then serves the new one from the next micro-batch on (no event dropped or reordered).

Modes: the shadow is optional work.  NORMAL and CONSERVE: as above.  DEGRADED and SURVIVAL:
bars still fold into the features (so the shadow is warm when the pressure ends) but no shadow
forecast is made (``shadow_skipped_total``); decisions wait.

Counters: ``shadow_forecasts_total``, ``shadow_pairs_scored_total``, ``shadow_skipped_total``,
``shadow_decisions_total{action}``; gauges ``shadow_loss_serving``, ``shadow_loss_candidate``.
Units: losses in return units (CRPS of a log return); ``ts_*`` ns.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec
import numpy as np

from adapters.inference.errors import InferenceError
from adapters.inference.gate import GateConfig, SymbolGates, gated_features
from adapters.inference.manifest import DEFAULT_MODEL_DIR, load_manifest
from adapters.inference.model import EdgeModel, load_edge_model
from adapters.scoring import crps_one, diebold_mariano
from engine.actor import Actor
from engine.messages import Bar, Forecast, Mode, ModelDecision, Quote, Trade, VerifiedNews, json_encoder

__all__ = ["Decision", "ShadowConfig", "ShadowEvaluator", "decide"]

_MAX_OPEN: Final = 4096  # bars per symbol waiting for their serving forecast or outcome


class ShadowConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Configuration of :class:`ShadowEvaluator`; see the module docstring.

    ``model``: the model id on trial (the serving edge's ``model``).  ``candidate_role``: the
    candidate manifest's network that would serve.  ``margin`` / ``rollback_margin``: relative
    loss differences (0.01 = 1%).  ``window``: the most recent pairs a decision looks at.
    """

    candidate_dir: str = ""
    """Empty: nothing on trial (the actor publishes one ``reject`` and idles)."""
    model: str = "es-1m"
    candidate_role: str = "student"
    incumbent_dir: str = ""
    min_samples: int = 200
    decide_every: int = 50
    window: int = 5000
    margin: float = 0.01
    rollback_margin: float = 0.01
    alpha: float = 0.05
    auto_promote: bool = True
    record_file: str = ""
    gate: GateConfig = GateConfig()
    """The shadow's serve-time gate; keep it equal to the serving edge's ``gate``."""

    def __post_init__(self) -> None:
        if self.min_samples < 3 or self.decide_every < 1 or self.window < self.min_samples:
            raise ValueError("ShadowConfig: min_samples >= 3, decide_every >= 1, window >= min_samples")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("ShadowConfig: alpha in (0, 1]")


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`decide` concluded, with the figures behind it."""

    action: Literal["hold", "promote", "rollback", "reject"]
    n: int
    loss_serving: float
    loss_candidate: float
    dm_stat: float
    dm_pvalue: float
    reason: str


def decide(
    stage: Literal["trial", "serving"],
    serving: np.ndarray,
    shadow: np.ndarray,
    cfg: ShadowConfig,
) -> Decision:
    """The promotion policy (module docstring) over paired per-forecast losses.

    ``stage`` "trial": ``serving`` are the incumbent's losses, ``shadow`` the candidate's.
    ``stage`` "serving": ``serving`` are the promoted candidate's, ``shadow`` the incumbent's.
    """
    n = len(serving)
    ls = float(np.mean(serving)) if n else math.nan
    lc = float(np.mean(shadow)) if n else math.nan
    if n < cfg.min_samples:
        return Decision(
            action="hold", n=n, loss_serving=ls, loss_candidate=lc, dm_stat=math.nan, dm_pvalue=math.nan,
            reason=f"{n} of {cfg.min_samples} pairs scored",
        )  # fmt: skip
    if stage == "trial":
        stat, p = diebold_mariano(shadow, serving)  # negative: the candidate has the lower loss
        gain = (ls - lc) / ls if ls > 0 else 0.0
        if gain >= cfg.margin and p < cfg.alpha:
            action: Literal["hold", "promote", "rollback", "reject"] = "promote"
            reason = f"candidate loss {gain:.2%} below serving (margin {cfg.margin:.2%}), DM p={p:.3g}"
        elif gain < 0 and p < cfg.alpha:
            action, reason = "reject", f"candidate loss {-gain:.2%} above serving, DM p={p:.3g}"
        else:
            action = "hold"
            reason = f"gain {gain:+.2%} vs margin {cfg.margin:.2%}, DM p={p:.3g} vs alpha {cfg.alpha}"
        return Decision(
            action=action, n=n, loss_serving=ls, loss_candidate=lc, dm_stat=stat, dm_pvalue=p, reason=reason
        )
    stat, p = diebold_mariano(serving, shadow)  # positive: the promoted model has the higher loss
    worse = (ls - lc) / lc if lc > 0 else 0.0
    if worse >= cfg.rollback_margin and p < cfg.alpha:
        action, reason = "rollback", f"promoted model {worse:.2%} worse than the incumbent, DM p={p:.3g}"
    else:
        action, reason = "hold", f"promoted model {worse:+.2%} vs incumbent, DM p={p:.3g}"
    # Reported as candidate = the promoted model, serving = what it replaced, in both stages.
    return Decision(
        action=action, n=n, loss_serving=lc, loss_candidate=ls, dm_stat=stat, dm_pvalue=p, reason=reason
    )


class _Open(msgspec.Struct, gc=False):
    """One bar whose shadow forecast waits for the serving forecast and the outcome."""

    close: float
    shadow: Forecast | None = None
    serving: Forecast | None = None
    outcome: float | None = None


class ShadowEvaluator(Actor[ShadowConfig]):
    """See the module docstring."""

    config_type = ShadowConfig
    batch_size = 512

    async def on_start(self) -> None:
        cfg = self.config
        m = self.ctx.metrics
        self._m_forecasts = m.counter("shadow_forecasts_total", actor=self.ctx.name)
        self._m_pairs = m.counter("shadow_pairs_scored_total", actor=self.ctx.name)
        self._m_skipped = m.counter("shadow_skipped_total", actor=self.ctx.name)
        self._g_serving = m.gauge("shadow_loss_serving", actor=self.ctx.name)
        self._g_candidate = m.gauge("shadow_loss_candidate", actor=self.ctx.name)
        # Opened once at start (a local file, append-only): no blocking I/O on the hot path.
        self._record: IO[bytes] | None = open(cfg.record_file, "ab") if cfg.record_file else None  # noqa: SIM115, ASYNC230
        self._decisions = 0
        self._stage: Literal["trial", "serving", "done"] = "trial"
        self._open: dict[str, dict[int, _Open]] = {}
        self._last: dict[str, int] = {}
        self._pairs: deque[tuple[float, float]] = deque(maxlen=cfg.window)
        self._serving_label = ""
        try:
            if not cfg.candidate_dir:
                raise InferenceError("no candidate_dir configured")
            cand = load_manifest(cfg.candidate_dir, metrics=self.ctx.metrics)
            self._candidate = load_edge_model(cand, cfg.model, role=cfg.candidate_role)
            inc = load_manifest(Path(cfg.incumbent_dir) if cfg.incumbent_dir else DEFAULT_MODEL_DIR)
            self._incumbent = load_edge_model(inc, cfg.model)
        except InferenceError as exc:
            self._stage = "done"
            self._shadow: EdgeModel | None = None
            self._publish("reject", None, reason=f"candidate refused: {exc}")
            return
        self._shadow = self._candidate
        self._features = gated_features(self._candidate.spec.feature_config, cfg.gate)
        self._gates = SymbolGates(cfg.gate, self._candidate.spec.quantile_levels)
        self._mid = self._candidate.spec.quantile_levels.index(0.5)
        self._publish("shadow", None, reason=f"candidate {self._label(self._candidate)} on trial")

    async def on_stop(self) -> None:
        for model in {id(m): m for m in (getattr(self, "_candidate", None), getattr(self, "_incumbent", None))
                      if m is not None}.values():  # fmt: skip
            model.close()
        if self._record is not None:
            self._record.close()

    @staticmethod
    def _label(model: EdgeModel) -> str:
        return f"{model.model_id}@{model.version}"

    # --- input -----------------------------------------------------------------------------

    def on_batch(self, msgs: list[Any]) -> None:
        if self._shadow is None:
            return
        rows = []
        for msg in msgs:
            match msg:
                case Bar():
                    row = self._on_bar(msg)
                    if row is not None:
                        rows.append(row)
                case Forecast():
                    self._on_serving(msg)
                case Quote():
                    self._features.on_quote(msg)
                case Trade():
                    self._features.on_trade(msg)
                case VerifiedNews():
                    self._features.on_news(msg)
                case _:
                    pass
        if rows:
            self._forecast(rows)

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    def _on_bar(self, bar: Bar) -> Any:
        if not (math.isfinite(bar.close) and bar.close > 0.0):
            return None
        sym = bar.symbol
        opened = self._open.setdefault(sym, {})
        prev = self._last.get(sym)
        if prev is not None and prev in opened:
            o = opened[prev]
            o.outcome = math.log(bar.close / o.close)
            self._score(sym, prev)
        self._last[sym] = bar.ts_event
        row = self._features.on_bar(bar)
        if row is None or not row.warm:
            return None
        if Mode.parse(self.ctx.mode).level >= Mode.DEGRADED.level:
            self._m_skipped.inc()
            return None
        opened[bar.ts_event] = _Open(close=bar.close)
        while len(opened) > _MAX_OPEN:  # a serving forecast that never came: forget the oldest
            del opened[next(iter(opened))]
        return row

    def _on_serving(self, fc: Forecast) -> None:
        if fc.version != 1 or fc.tier != "edge":
            return
        o = self._open.get(fc.symbol, {}).get(fc.ts_event)
        if o is None:
            return
        if self._stage == "serving" and (fc.model_id, fc.model_version) != (
            self._candidate.model_id,
            self._candidate.version,
        ):
            return  # answered before the swap landed: not the promoted model's forecast
        o.serving = fc
        self._serving_label = f"{fc.model_id}@{fc.model_version}"
        self._score(fc.symbol, fc.ts_event)

    def _forecast(self, rows: list[Any]) -> None:
        model = self._shadow
        assert model is not None
        raw = model.predict_raw(np.stack([r.values for r in rows]), 8)
        k = model.k
        gate = self.config.gate
        for row, out in zip(rows, raw.astype(np.float64), strict=True):
            if not bool(np.isfinite(out).all()):
                continue
            q = tuple(float(v) for v in out[:k])
            vol = float(out[k])
            if gate.enabled and vol > 0.0:
                gd = self._gates[row.symbol].decide(row, out[:k], vol)
                q, vol = gd.quantiles, math.sqrt(gd.variance)
            fc = Forecast(
                forecast_id=f"{row.symbol}-{row.seq}-shadow",
                symbol=row.symbol,
                horizon=model.spec.horizon,
                basis_seq=row.seq,
                ts_event=row.ts_event,
                model_id=model.model_id,
                model_version=model.version,
                point=q[self._mid],
                quantile_levels=model.spec.quantile_levels,
                quantiles=q,
                direction_prob=float(out[k + 1]),
                volatility=vol,
            )
            o = self._open.get(row.symbol, {}).get(row.ts_event)
            if o is not None:
                o.shadow = fc
            self.ctx.publish(f"shadow.{row.symbol}", fc)
            self._write(fc)
            self._m_forecasts.inc()
            self._score(row.symbol, row.ts_event)

    # --- scoring and decisions -------------------------------------------------------------

    def _score(self, sym: str, ts: int) -> None:
        o = self._open.get(sym, {}).get(ts)
        if o is None or o.shadow is None or o.serving is None or o.outcome is None:
            return
        del self._open[sym][ts]
        if not o.serving.quantiles or len(o.serving.quantiles) != len(o.serving.quantile_levels):
            return
        y = o.outcome
        self._pairs.append(
            (crps_one(y, o.serving.quantile_levels, o.serving.quantiles),
             crps_one(y, o.shadow.quantile_levels, o.shadow.quantiles))
        )  # fmt: skip
        self._m_pairs.inc()
        n = len(self._pairs)
        if self._stage != "done" and n >= self.config.min_samples and n % self.config.decide_every == 0:
            self._evaluate()

    def _evaluate(self) -> None:
        cfg = self.config
        arr = np.asarray(self._pairs)
        stage: Literal["trial", "serving"] = "serving" if self._stage == "serving" else "trial"
        d = decide(stage, arr[:, 0], arr[:, 1], cfg)
        self._g_serving.set(d.loss_serving)
        self._g_candidate.set(d.loss_candidate)
        if d.action == "promote" and not cfg.auto_promote:
            self._publish("hold", d, reason=f"{d.reason}; promotion proposed (auto_promote off)")
            return
        self._publish(d.action, d)
        if d.action == "promote":
            # From now on the candidate serves; the shadow runs the incumbent to watch for a
            # regression, on fresh pairs only.
            self._stage = "serving"
            self._shadow = self._incumbent
            self._gates = SymbolGates(self.config.gate, self._incumbent.spec.quantile_levels)
            self._pairs.clear()
            for opened in self._open.values():
                opened.clear()
        elif d.action in ("rollback", "reject"):
            self._stage = "done"

    def _publish(self, action: str, d: Decision | None, reason: str = "") -> None:
        cfg = self.config
        self._decisions += 1
        cand = getattr(self, "_candidate", None)
        msg = ModelDecision(
            decision_id=f"{self.ctx.name}-{self._decisions}",
            ts_event=self.ctx.clock.now_ns(),
            model_id=cfg.model,
            action=action,  # type: ignore[arg-type]  # one of ModelDecision's actions by construction
            serving_version=self._serving_label,
            candidate_version=self._label(cand) if cand is not None else "",
            n=d.n if d else 0,
            loss_serving=_finite(d.loss_serving) if d else 0.0,
            loss_candidate=_finite(d.loss_candidate) if d else 0.0,
            dm_stat=_finite(d.dm_stat) if d else 0.0,
            dm_pvalue=_finite(d.dm_pvalue, 1.0) if d else 1.0,
            reason=reason or (d.reason if d else ""),
            trace_id=f"shadow-{self._decisions}",
            candidate_dir=str(Path(cfg.candidate_dir).resolve()),
            candidate_role=cfg.candidate_role,
        )
        self.ctx.metrics.counter("shadow_decisions_total", actor=self.ctx.name, action=action).inc()
        log = self.ctx.log.warning if action in ("rollback", "reject") else self.ctx.log.info
        log("model_decision", **msgspec.structs.asdict(msg))
        self.ctx.publish("control.model", msg)
        self._write(msg)

    def _write(self, msg: Any) -> None:
        if self._record is not None:
            self._record.write(json_encoder.encode(msg) + b"\n")


def _finite(x: float, default: float = 0.0) -> float:
    return x if math.isfinite(x) else default
