"""EdgeReasoner: a version-1 forecast for every bar, within the latency budget, with its reasons.

Subscribe it to ``bar.<SYM>`` (what triggers forecasts), ``md.<SYM>`` (quotes
feed the spread feature, trades the sequence numbers) and ``news.verified``
(narrative features and the news ids in traces).  For each bar it updates the
symbol's incremental features (:mod:`adapters.features`) and volatility regime
(:mod:`adapters.regimes`), queues the row in a :class:`MicroBatcher`, and runs
the model that serves the symbol's current regime (:class:`RegimeRegistry`)
on whole micro-batches.  Each forecast goes to ``forecast.<SYM>``
(:class:`~engine.messages.Forecast`, ``version`` 1, ``tier`` "edge", id
``"<SYM>-<basis_seq>"``); a forecast whose direction probability is at least
``trace_threshold`` from 0.5, or whose median is at least ``trace_z``
volatilities from 0, also gets a :class:`~engine.messages.ReasoningTrace` on
``trace.<SYM>`` with the features that moved it most (occlusion) and the ids of
the news items that changed it (see News).

Flushing: ``flush = "chunk"`` (replay) runs everything queued at the end of each
mailbox batch - deterministic, no timers; ``flush = "deadline"`` (live) holds a
partial batch until ``max_wait_us`` or the tightest latency budget minus the
expected inference cost, whichever comes first, on an engine-clock timer.

Determinism: a row's outputs must not depend on which rows share its batch.
onnxruntime's CPU GEMM gives bit-identical rows when the batch size is a
multiple of 8 (and torch's for any size >= 2), so batches are padded to a
multiple of ``pad_multiple`` rows (the padding rows are discarded); replay
is then byte-identical however the mailbox happens to be drained.

News: verified items update the symbol's narrative features.  A trace names news ids
(``news_ids``) only when news changed that forecast: the row is run again with its news
features at the no-news value and the outputs compared.  The shipped models were trained
on periods for which no timestamped news exists, so their weights on the news features
are pinned at zero: their traces name no news ids, and the summary says which items were
seen without effect.  Likewise a trace's ``features`` are only those whose occlusion
changed the forecast (a feature without weight is never named).

Gate (``gate``, on by default): what is served is not the network's variance alone.  Per
symbol a :class:`~adapters.inference.gate.VarianceGate` scores, as each next bar arrives, the
QLIKE of the model's variance forecast and of classical ones the feature engine keeps for
every bar (the model's GJR anchor, EWMA 0.94, a calibrated range EWMA), and serves the
log-variance blend weighted by their discounted past losses; the quantiles are rescaled to
the served variance (the model's shape, blended towards the normal by the baselines' share).
When the model's own recent losses are worse than a baseline's, the baseline is served.  A
forecast's ``volatility``, ``quantiles`` and ``point`` are the served ones; ``direction_prob``
is the model's.  Its trace says what was served and why (weights and relative losses); a
change of the candidate it mostly serves is always traced (with hysteresis).
``edge_gate_served_total{served="model"|"blend"|"baseline"}`` counts them.  Only past
returns enter (no look-ahead), in bar order per symbol, so replays stay byte-identical.

Modes (``ctx.mode``, read per mailbox batch for conflation and per micro-batch
for the network and the attributions, so a switch lands between two batches: no
bar is answered twice or lost in it):

=========  ====================================================================
mode       edge reasoner
=========  ====================================================================
NORMAL     **full path**: every bar forecast by the network serving the symbol's
           regime (a regime specialist, else the student); significant
           forecasts traced with occlusion attributions; partial micro-batches
           flush per ``flush``
CONSERVE   the full path (forecasts are the product: the cloud tier gives way
           first)
DEGRADED   the full path on **conflated** bars (from ``conflate_from`` on): when
           one mailbox batch holds more than ``conflate_above_bars`` bars (the
           actor is behind by more than about one model call) and several of a
           symbol, every bar folds into the features and the regime, but only
           the latest is forecast - the older ones are counted as
           ``edge_bars_dropped_total{reason="conflated"}`` and, for the
           degradation controller, ``shed_total{reason="conflated"}``.  Under
           overload the full path keeps serving the freshest bar of every
           symbol instead of a backlog of stale ones
SURVIVAL   **cheaper path** (from ``cheap_from`` on), conflated as well: the
           student alone for every regime (one network call per micro-batch
           instead of one per regime); no attributions (significant forecasts go
           untraced, ``edge_traces_skipped_total``); micro-batches flush at the
           end of each mailbox batch (no wait for stragglers)
=========  ====================================================================

The shipped manifests hold no network cheaper than the student (the regime
specialists have the same 2,157 parameters, the teacher is 87x larger), so the
cheaper path saves the work around the network, not inside it.  Every forecast
is counted by the path that served it: ``edge_forecasts_by_path_total{path=
"full"|"cheap"}``.

Accounting: every bar handled is a forecast, a counted drop or still queued -
``edge_bars_total = edge_forecasts_total + sum(edge_bars_dropped_total) +``
(micro-batch queue, answered at stop).  Drop reasons: ``bad_bar`` (non-finite or
non-positive; also dead-lettered), ``wrong_bar`` (a time bar whose length differs from
the one the symbol's model was trained on, e.g. daily bars to the one-minute model:
refused, dead-lettered with both lengths, logged once per symbol), ``first_bar`` (the features need a previous
close: no row), ``warmup`` (features not warm and ``emit_warmup`` off),
``cadence`` (``every_n_bars``), ``conflated`` (DEGRADED and worse, above) and
``nonfinite_output`` (the model's output was not finite; also dead-lettered).

Units: ``*_us`` microseconds; feature and regime details in their modules.
"""

from __future__ import annotations

import math
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import numpy as np

from adapters.features import FEATURE_NAMES, FeatureRow
from adapters.inference.batcher import MicroBatcher
from adapters.inference.errors import BackendUnavailable
from adapters.inference.gate import GateConfig, GateDecision, SymbolGates, gated_features
from adapters.inference.manifest import DEFAULT_MODEL_DIR, ModelSpec, load_manifest
from adapters.inference.model import EdgeModel, load_edge_model
from adapters.inference.registry import RegimeRegistry
from adapters.regimes import RegimeConfig, RegimeDetector, RegimeState
from engine.actor import Actor
from engine.clock import TimerHandle
from engine.messages import (
    Bar,
    Forecast,
    Mode,
    ModeChange,
    ModelDecision,
    NewsRetracted,
    Quote,
    ReasoningTrace,
    Trade,
    VerifiedNews,
)

__all__ = ["EdgeReasoner", "EdgeReasonerConfig"]


class EdgeReasonerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Configuration of :class:`EdgeReasoner`; see the module docstring.

    ``model``: the model id serving symbols not named in ``symbol_models``.
    ``backend``: ``onnxruntime``, ``torch`` or ``tensorrt``; when it cannot run
    here, ``fallback_backend`` is used instead (empty: fail to start).
    ``every_n_bars``: forecast cadence per symbol.  ``emit_warmup``: forecast
    before the features are warm (with confidence 0).  ``conflate_from``: the
    least severe mode in which bars conflate per symbol; ``cheap_from``: the least
    severe mode in which the cheaper path runs (module docstring; NORMAL makes it
    permanent, e.g. to measure its capacity; the cheaper path always conflates).
    ``conflate_above_bars``: below the cheaper path, a mailbox batch conflates only when it
    holds more bars than this (0: whenever a symbol has two).  A batch of up to about one
    micro-batch of bars costs about one model call whether or not it is conflated: under
    input-bound overload (the front door shedding, the edge keeping up) conflating it threw
    away about 7% of the forecasts and saved nothing.
    ``feature_log``: a file path; when
    set, every forecast's input row is appended to it as one JSON line (``symbol``,
    ``ts_event``, ``features``: name -> value) - what the model was *served*, for the
    train/serve skew check (``tests/edge/test_skew.py``); empty: off.  ``gate``: the
    serve-time gate between the model's variance and classical baselines
    (:mod:`adapters.inference.gate`; module docstring, Gate).
    """

    model_dir: str = ""
    model: str = "es-1m"
    symbol_models: dict[str, str] = {}
    backend: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    fallback_backend: Literal["onnxruntime", "torch", ""] = "onnxruntime"
    device: str = "cpu"
    threads: int = 1
    specialists: bool = True
    max_batch: int = 64
    max_wait_us: int = 200
    latency_budget_us: int = 1000
    expected_cost_us: int = 100
    flush: Literal["chunk", "deadline"] = "chunk"
    every_n_bars: int = 1
    emit_warmup: bool = False
    trace_threshold: float = 0.1
    trace_z: float = 0.5
    trace_top: int = 5
    pad_multiple: int = 8
    regime: RegimeConfig = RegimeConfig()
    conflate_from: Mode = Mode.DEGRADED
    cheap_from: Mode = Mode.SURVIVAL
    conflate_above_bars: int = 64
    feature_log: str = ""
    gate: GateConfig = GateConfig()

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.every_n_bars < 1 or self.trace_top < 0:
            raise ValueError("EdgeReasonerConfig: max_batch and every_n_bars >= 1, trace_top >= 0")
        if self.conflate_above_bars < 0:
            raise ValueError("EdgeReasonerConfig: conflate_above_bars >= 0")
        if self.max_wait_us < 0 or self.latency_budget_us <= 0 or self.expected_cost_us < 0:
            raise ValueError("EdgeReasonerConfig: max_wait_us, expected_cost_us >= 0; latency_budget_us > 0")


class _Pending(msgspec.Struct, gc=False):
    row: FeatureRow
    regime: RegimeState
    model_id: str
    t0_perf: int
    deadline_ns: int


class _Served:
    """Everything one model id needs: its features, regimes and regime registry."""

    __slots__ = ("detector", "features", "gates", "registry", "spec")

    def __init__(
        self, spec: ModelSpec, registry: RegimeRegistry, regime: RegimeConfig, gate: GateConfig
    ) -> None:
        self.spec = spec
        self.features = gated_features(spec.feature_config, gate)
        self.detector = RegimeDetector(regime)
        self.registry = registry
        self.gates = SymbolGates(gate, spec.quantile_levels)


class EdgeReasoner(Actor[EdgeReasonerConfig]):
    """See the module docstring."""

    config_type = EdgeReasonerConfig
    batch_size = 512

    async def on_start(self) -> None:
        self._tier = self.ctx.tier("edge")
        try:
            self._load_models()
        except Exception as exc:
            self._tier.start_failed(f"{type(exc).__name__}: {exc}", self.ctx.clock.now_ns())
            raise
        self._tier.configured()

    def _load_models(self) -> None:
        cfg = self.config
        self._manifest = load_manifest(
            Path(cfg.model_dir) if cfg.model_dir else DEFAULT_MODEL_DIR, metrics=self.ctx.metrics
        )
        self._served: dict[str, _Served] = {}
        for mid in sorted({cfg.model, *cfg.symbol_models.values()}):
            spec = self._manifest.model(mid)
            default = self._open(mid, "student")
            specialists = {}
            if cfg.specialists:
                specialists = {r: self._open(mid, r) for r in spec.specialists}
            self._served[mid] = _Served(spec, RegimeRegistry(default, specialists), cfg.regime, cfg.gate)
        self._batcher: MicroBatcher[_Pending] = MicroBatcher(
            cfg.max_batch, cfg.max_wait_us * 1000, cfg.expected_cost_us * 1000
        )
        self._timer: TimerHandle | None = None
        self._bars: dict[str, int] = {}
        # news.retracted: recent verified items by id, to take a withdrawn one's influence back
        # out; the retraction is named in the next trace of each symbol it touched.
        self._folded: OrderedDict[str, VerifiedNews] = OrderedDict()
        self._retraction_note: dict[str, str] = {}
        self._level_mid = self._manifest.model(cfg.model).quantile_levels.index(0.5)
        m = self.ctx.metrics
        name = self.ctx.name
        self._m_nonfinite = m.counter("edge_nonfinite_outputs_total", actor=name)
        self._m_forecasts = m.counter("edge_forecasts_total", actor=name)
        self._m_traces = m.counter("edge_traces_total", actor=name)
        self._m_traces_skipped = m.counter("edge_traces_skipped_total", actor=name)
        self._m_warmup = m.counter("edge_warmup_bars_total", actor=name)
        self._m_late = m.counter("edge_deadline_missed_total", actor=name)
        self._m_batches = m.counter("edge_batches_total", actor=name)
        self._m_changepoints = m.counter("edge_changepoints_total", actor=name)
        self._m_latency = m.histogram("edge_forecast_latency_us", actor=name)
        self._m_bars = m.counter("edge_bars_total", actor=name)
        self._m_dropped = {
            r: m.counter("edge_bars_dropped_total", actor=name, reason=r) for r in _DROP_REASONS
        }
        self._m_shed_conflated = m.counter("shed_total", actor=name, reason="conflated")
        self._m_by_path = {p: m.counter("edge_forecasts_by_path_total", actor=name, path=p) for p in _PATHS}
        self._m_batch = m.histogram("edge_batch_size", actor=name)
        self._m_gate = {g: m.counter("edge_gate_served_total", actor=name, served=g) for g in _GATE_SERVED}
        self._gate_leader: dict[str, str] = {}  # symbol -> the candidate the gate mostly serves
        self._replaced: dict[str, tuple[EdgeModel, dict[str, EdgeModel]]] = {}
        self._refused_symbols: set[str] = set()
        # model -> whether its outputs depend on the news inputs (weak: swapped-out models go)
        self._news_weight: weakref.WeakKeyDictionary[EdgeModel, bool] = weakref.WeakKeyDictionary()
        self._feature_log = open(cfg.feature_log, "ab") if cfg.feature_log else None  # noqa: SIM115
        self.ctx.log.info(
            "edge_reasoner_started",
            models={k: v.spec.version for k, v in self._served.items()},
            backend=self._served[cfg.model].registry.default.backend.name,
        )

    def _open(self, model_id: str, role: str) -> EdgeModel:
        cfg = self.config
        try:
            return load_edge_model(
                self._manifest,
                model_id,
                backend=cfg.backend,
                role=role,
                device=cfg.device,
                threads=cfg.threads,
                max_batch=cfg.max_batch,
            )
        except BackendUnavailable as exc:
            if not cfg.fallback_backend or cfg.fallback_backend == cfg.backend:
                raise
            self.ctx.metrics.counter("edge_backend_fallbacks_total", actor=self.ctx.name).inc()
            self.ctx.log.warning(
                "edge_backend_fallback", wanted=cfg.backend, using=cfg.fallback_backend, reason=str(exc)
            )
            return load_edge_model(
                self._manifest,
                model_id,
                backend=cfg.fallback_backend,
                role=role,
                device="cpu",
                threads=cfg.threads,
                max_batch=cfg.max_batch,
            )

    async def on_stop(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()  # type: ignore[union-attr]
        # Whatever is still queued is answered, not dropped.
        if hasattr(self, "_batcher"):
            for batch in self._batcher.take_all():
                self._run(batch)
        for s in getattr(self, "_served", {}).values():
            s.registry.close()
        log = getattr(self, "_feature_log", None)
        if log is not None:
            log.close()

    # --- input -------------------------------------------------------------

    def on_batch(self, msgs: list[Any]) -> None:
        t0 = time.perf_counter_ns()
        # Conflation: the index of each symbol's last bar in this batch (module docstring).
        latest = None
        if self._conflate():
            latest, bars = _last_bar_index(msgs)
            if bars <= self.config.conflate_above_bars and not self._cheap():
                latest = None
        for i, msg in enumerate(msgs):
            match msg:
                case Bar():
                    self._on_bar(msg, t0, latest is None or latest[msg.symbol] == i)
                case Quote():
                    self._served_for(msg.symbol).features.on_quote(msg)
                case Trade():
                    self._served_for(msg.symbol).features.on_trade(msg)
                case VerifiedNews():
                    for s in self._served.values():
                        s.features.on_news(msg)
                    self._folded[msg.id] = msg
                    while len(self._folded) > 4096:
                        self._folded.popitem(last=False)
                case NewsRetracted():
                    self._on_retracted(msg)
                case ModelDecision():
                    self._on_model_decision(msg)
                case ModeChange():
                    pass  # the mode is read from ctx.mode once per batch (module docstring)
                case _:
                    self.ctx.dead_letter(
                        f"edge_reasoner: unexpected message type {type(msg).__name__}",
                        raw=_encode(msg),
                    )
        self._flush()

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    def _on_retracted(self, r: NewsRetracted) -> None:
        for nid in r.retracted:
            n = self._folded.pop(nid, None)
            if n is None:
                continue  # never folded in here (or long gone): nothing to take back
            for s in self._served.values():
                s.features.retract_news(n)
            for sym in n.symbols:
                self._retraction_note[sym] = f"; retracted news dropped: {nid} (by {r.by})"
            self.ctx.metrics.counter("edge_news_retracted_total", actor=self.ctx.name).inc()

    def _served_for(self, symbol: str) -> _Served:
        return self._served[self.config.symbol_models.get(symbol, self.config.model)]

    def _conflate(self) -> bool:
        """True when the current mode asks for conflated bars (module docstring)."""
        level = Mode.parse(self.ctx.mode).level
        return level >= min(self.config.conflate_from.level, self.config.cheap_from.level)

    def _cheap(self) -> bool:
        """True when the current mode asks for the cheaper path (module docstring)."""
        return Mode.parse(self.ctx.mode).level >= self.config.cheap_from.level

    def _drop(self, reason: str) -> None:
        self._m_dropped[reason].inc()

    def _on_bar(self, bar: Bar, t0: int, forecast: bool = True) -> None:
        """Fold ``bar`` into its symbol's features and queue its forecast; ``forecast`` false
        (an older bar of a conflated batch) folds it in without a forecast."""
        self._m_bars.inc()
        if not (
            math.isfinite(bar.close)
            and bar.close > 0.0
            and math.isfinite(bar.high)
            and math.isfinite(bar.low)
            and math.isfinite(bar.volume)
        ):
            self.ctx.dead_letter(
                "edge_reasoner: bar with a non-finite or non-positive price/volume",
                raw=_encode(bar),
                ts_event=bar.ts_event,
                symbol=bar.symbol,
            )
            self._drop("bad_bar")
            return
        served = self._served_for(bar.symbol)
        bar_ns = served.spec.feature_config.bar_ns
        if bar.kind == "time" and bar.spec > 0 and abs(bar.spec - bar_ns) > 0.01 * bar_ns:
            # A model forecasts the next bar of the length it was trained on; a 1-minute model
            # fed daily bars (or the reverse) would serve numbers with no meaning.
            self.ctx.dead_letter(
                f"edge_reasoner: model {served.spec.model_id} was trained on {_span(bar_ns)} bars; "
                f"refusing a {_span(bar.spec)} bar of {bar.symbol} (serve it with a model trained "
                "for that bar length: finllm train, or symbol_models)",
                raw=_encode(bar),
                ts_event=bar.ts_event,
                symbol=bar.symbol,
            )
            if bar.symbol not in self._refused_symbols:
                self._refused_symbols.add(bar.symbol)
                self.ctx.log.error(
                    "edge_bar_refused", symbol=bar.symbol, model=served.spec.model_id,
                    model_bar=_span(bar_ns), bar=_span(bar.spec),
                )  # fmt: skip
            self._drop("wrong_bar")
            return
        row = served.features.on_bar(bar)
        if row is None:
            self._drop("first_bar")
            return
        regime = served.detector.update(row)
        if regime.changepoint:
            self._m_changepoints.inc()
        if not row.warm:
            self._m_warmup.inc()
            if not self.config.emit_warmup:
                self._drop("warmup")
                return
        n = self._bars.get(bar.symbol, 0) + 1
        self._bars[bar.symbol] = n
        if (n - 1) % self.config.every_n_bars:
            self._drop("cadence")
            return
        if not forecast:
            self._drop("conflated")
            self._m_shed_conflated.inc()
            return
        now = self.ctx.clock.now_ns()
        self._batcher.add(
            _Pending(row, regime, served.spec.model_id, t0, now + self.config.latency_budget_us * 1000),
            now,
            now + self.config.latency_budget_us * 1000,
        )

    # --- batching and output ---------------------------------------------------

    def _flush(self) -> None:
        b = self._batcher
        if self.config.flush == "chunk" or self._cheap():
            # Replay, or the cheaper path: whatever is queued runs now, in batches as large as
            # the backend takes, without waiting for stragglers.
            for batch in b.take_all():
                self._run(batch)
            return
        now = self.ctx.clock.now_ns()
        while b.due(now):
            self._run(b.take())
        at = b.due_at()
        if at is not None and self._timer is None:
            self._timer = self.ctx.call_later(max(0, at - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flush()

    def _run(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        self._m_batches.inc()
        self._m_batch.observe(len(batch))
        cheap = self._cheap()
        # One registry lookup per (model id, regime) per batch: a swap lands between batches.
        # The cheaper path serves every regime with the default network (the student).
        groups: dict[int, tuple[EdgeModel, list[int]]] = {}
        for i, p in enumerate(batch):
            reg = self._served[p.model_id].registry
            model = reg.default if cheap else reg.get(p.regime.name)
            groups.setdefault(id(model), (model, []))[1].append(i)
        results: list[tuple[EdgeModel, np.ndarray, int] | None] = [None] * len(batch)
        for model, idx in groups.values():
            raw = model.predict_raw(np.stack([batch[i].row.values for i in idx]), self.config.pad_multiple)
            for j, i in enumerate(idx):
                results[i] = (model, raw, j)
        now = self.ctx.clock.now_ns()
        # Forecasts first (they carry the latency budget), then the traces of the significant
        # ones, explained by one batched occlusion call per model.
        explain: dict[int, tuple[EdgeModel, list[int]]] = {}
        traced: dict[int, tuple[str, str]] = {}
        for i, (p, res) in enumerate(zip(batch, results, strict=True)):
            assert res is not None
            model, raw, j = res
            t = self._emit(p, model, raw[j].astype(np.float64), cheap)
            if t is not None:
                traced[i] = t
                explain.setdefault(id(model), (model, []))[1].append(i)
            if now > p.deadline_ns:
                self._m_late.inc()
        feats: dict[int, list[tuple[str, float, float]]] = {}
        news_moved: set[int] = set()
        for model, idx in explain.values():
            rows = np.stack([batch[i].row.values for i in idx])
            for i, fs in zip(idx, model.attribute_many(rows, self.config.trace_top), strict=True):
                # A trace names only features that carry weight: one whose occlusion leaves the
                # forecast exactly as it was (news inputs of a model trained without news) is left out.
                feats[i] = [f for f in fs if f[2] != 0.0]
            news_moved.update(self._news_moved(model, [i for i in idx if batch[i].row.news_ids], batch))
        for i in sorted(traced):  # traces in event order, whatever model explained them
            res = results[i]
            assert res is not None
            self._trace(batch[i], res[0], *traced[i], feats[i], i in news_moved)

    def _news_moved(self, model: EdgeModel, idx: list[int], batch: list[_Pending]) -> list[int]:
        """The rows of ``idx`` whose forecast changes when their news features are set to the
        no-news value (0): only their traces name news ids.  A model whose outputs never depend on
        its news inputs (checked once per model on probe rows) needs no per-row check."""
        if not idx or not self._carries_news(model):
            return []
        rows = np.stack([batch[i].row.values for i in idx])
        off = rows.copy()
        off[:, _NEWS_COLS] = 0.0
        pad = self.config.pad_multiple
        a, b = model.predict_raw(rows, pad), model.predict_raw(off, pad)
        return [i for j, i in enumerate(idx) if not np.array_equal(a[j], b[j])]

    def _carries_news(self, model: EdgeModel) -> bool:
        """Whether ``model``'s outputs depend on the news features at all (cached per model)."""
        known = self._news_weight.get(model)
        if known is None:
            rng = np.random.default_rng(0)
            base = np.tile(np.asarray(model.spec.feature_mean, dtype=np.float32), (8, 1))
            probe = base.copy()
            probe[:, _NEWS_COLS] = rng.uniform(-1.0, 1.0, (8, len(_NEWS_COLS))).astype(np.float32)
            known = not np.array_equal(model.predict_raw(base, 8), model.predict_raw(probe, 8))
            self._news_weight[model] = known
        return known

    def _emit(self, p: _Pending, model: EdgeModel, out: np.ndarray, cheap: bool) -> tuple[str, str] | None:
        """Publish the forecast; return (forecast id, summary) when it is to be traced
        (never on the cheaper path: its attributions are the work it sheds)."""
        cfg = self.config
        row = p.row
        k = model.k
        q: np.ndarray | tuple[float, ...] = out[:k]
        vol = float(out[k])
        prob = float(out[k + 1])
        sym = row.symbol
        basis = row.seq if row.seq else self._bars.get(sym, 0)
        fid = f"{sym}-{basis}"
        self._tier.attempt()
        if not bool(np.isfinite(out).all()):
            # Never publish inf/NaN: consumers would size positions on it.  The input row is kept
            # with the dead letter so the cause (a feature out of range) can be found.
            self._m_nonfinite.inc()
            self._tier.failure("model output not finite", self.ctx.clock.now_ns())
            self.ctx.dead_letter(
                "edge_reasoner: model output not finite; forecast withheld",
                raw=_encode(row.values.tolist()),
                ts_event=row.ts_event,
                symbol=sym,
                forecast_id=fid,
            )
            self._drop("nonfinite_output")
            return None
        gate: GateDecision | None = None
        switched = False
        if cfg.gate.enabled and vol > 0.0:
            gate = self._served[p.model_id].gates[sym].decide(row, out[:k], vol)
            q = gate.quantiles
            vol = math.sqrt(gate.variance)
            self._m_gate[gate.served].inc()
            # A change of the candidate the gate mostly serves is explained in a trace, significant
            # or not; with hysteresis (the new one must lead by 0.1), so near-ties do not flap.
            lead = self._gate_leader.get(sym, "model")
            new = gate.leader
            if new != lead:
                w = dict(zip(gate.names, gate.weights, strict=True))
                if w[new] >= w.get(lead, 0.0) + 0.1:
                    switched = True
                    self._gate_leader[sym] = new
        point = float(q[self._level_mid])
        significant = (
            switched
            or abs(prob - 0.5) >= cfg.trace_threshold
            or (vol > 0.0 and abs(point) / vol >= cfg.trace_z)
        )
        trace_id = ""
        if significant and cfg.trace_top:
            if cheap:
                self._m_traces_skipped.inc()
            else:
                trace_id = f"{fid}-t1"
        self.ctx.publish(
            f"forecast.{sym}",
            Forecast(
                forecast_id=fid,
                symbol=sym,
                horizon=model.spec.horizon,
                version=1,
                basis_seq=basis,
                ts_event=row.ts_event,
                tier="edge",
                model_id=model.model_id,
                model_version=model.version,
                point=point,
                quantile_levels=model.spec.quantile_levels,
                quantiles=tuple(float(v) for v in q),
                direction_prob=prob,
                volatility=vol,
                confidence=min(1.0, abs(2.0 * prob - 1.0)) if row.warm else 0.0,
                trace_id=trace_id,
            ),
        )
        self._m_forecasts.inc()
        if self._feature_log is not None:
            self._feature_log.write(
                msgspec.json.encode(
                    {
                        "symbol": sym,
                        "ts_event": row.ts_event,
                        "features": dict(zip(FEATURE_NAMES, row.values.tolist(), strict=True)),
                    }
                )
                + b"\n"
            )
        self._m_by_path["cheap" if cheap else "full"].inc()
        self._tier.success()
        self._m_latency.observe((time.perf_counter_ns() - p.t0_perf) / 1000.0)
        if not trace_id:
            return None
        summary = f"P(up)={prob:.3f}, median {point:+.2e}, vol {vol:.2e}, regime {p.regime.name}"
        if gate is not None:
            summary += f"; {gate.explain()}"
        return fid, summary

    def _trace(
        self,
        p: _Pending,
        model: EdgeModel,
        fid: str,
        summary: str,
        feats: list[tuple[str, float, float]],
        news_moved: bool = False,
    ) -> None:
        row = p.row
        top = ", ".join(f"{n}={v:+.2f} ({c:+.3f})" for n, v, c in feats[:3]) or "no single feature"
        unmoved = ""
        if row.news_ids and not news_moved:
            unmoved = f"; news seen without effect on this forecast: {', '.join(row.news_ids)}"
        self.ctx.publish(
            f"trace.{row.symbol}",
            ReasoningTrace(
                trace_id=f"{fid}-t1",
                forecast_id=fid,
                version=1,
                symbol=row.symbol,
                ts_event=row.ts_event,
                tier="edge",
                model_id=model.model_id,
                model_version=model.version,
                features=tuple(feats),
                news_ids=row.news_ids if news_moved else (),
                summary=(
                    f"{summary}; moved most by {top}{unmoved}{self._retraction_note.pop(row.symbol, '')}"
                ),
            ),
        )
        self._m_traces.inc()

    # --- operations ----------------------------------------------------------

    def swap_model(self, model_id: str, regime: str | None, model: EdgeModel) -> EdgeModel | None:
        """Serve ``regime`` (None: the default) of ``model_id`` with ``model`` from the next batch on.

        Call it on the event loop (from a handler, a timer or a control task); returns the
        model it replaced, which the caller closes once it no longer shares it.  The serve-time
        gate keeps what it learnt (a swap of like for like); :meth:`reset_gate` starts it afresh.
        """
        return self._served[model_id].registry.swap(regime, model)

    def reset_gate(self, model_id: str) -> None:
        """Forget the serve-time gate's losses and calibrations for every symbol of ``model_id``
        (they described the network that served before); it starts again from its prior."""
        self._served[model_id].gates.clear()
        cfg = self.config
        for sym in [s for s in self._gate_leader if cfg.symbol_models.get(s, cfg.model) == model_id]:
            del self._gate_leader[sym]

    def registry(self, model_id: str) -> RegimeRegistry:
        return self._served[model_id].registry

    def _on_model_decision(self, d: ModelDecision) -> None:
        """``control.model`` (:mod:`actors.shadow`, ``finllm models promote|rollback``): on
        ``promote`` the candidate's network serves every regime of ``d.model_id``, on ``rollback``
        the set it replaced serves again.  What is queued is answered first by the model it was
        queued for, so the swap lands between two micro-batches: no bar dropped or reordered."""
        if d.action not in ("promote", "rollback") or d.model_id not in self._served:
            return
        for batch in self._batcher.take_all():
            self._run(batch)
        reg = self._served[d.model_id].registry
        if d.action == "rollback":
            prev = self._replaced.pop(d.model_id, None)
            if prev is not None:
                promoted, _ = reg.replace_all(*prev)
                promoted.close()
                self.reset_gate(d.model_id)
            self.ctx.log.warning("edge_model_rolled_back", model=d.model_id, decision=d.decision_id,
                                 restored=prev is not None, trace_id=d.trace_id)  # fmt: skip
            return
        try:  # the candidate's signature and hashes are checked again here, where it would serve
            manifest = load_manifest(d.candidate_dir, metrics=self.ctx.metrics)
            model = load_edge_model(
                manifest,
                d.model_id,
                backend=self.config.fallback_backend or "onnxruntime",
                role=d.candidate_role,
                max_batch=self.config.max_batch,
            )
        except Exception as exc:  # a refused candidate never stops the serving model
            self.ctx.metrics.counter("edge_promotions_refused_total", actor=self.ctx.name).inc()
            self.ctx.log.error(
                "edge_promotion_refused", model=d.model_id, decision=d.decision_id, error=str(exc)
            )
            return
        self._replaced.setdefault(d.model_id, reg.replace_all(model))
        # Another network: the gate's losses and calibration were the old one's.
        self.reset_gate(d.model_id)
        self.ctx.log.info("edge_model_promoted", model=d.model_id, version=model.version,
                          role=d.candidate_role, decision=d.decision_id, trace_id=d.trace_id)  # fmt: skip


# The module docstring's drop reasons and serving paths, in that order.
_DROP_REASONS: Final = (
    "bad_bar", "wrong_bar", "first_bar", "warmup", "cadence", "conflated", "nonfinite_output",
)  # fmt: skip


def _span(ns: float) -> str:
    """A bar length for messages: ``1d``, ``1m``, ``5s``..."""
    for unit, size in (("d", 86_400e9), ("h", 3_600e9), ("m", 60e9), ("s", 1e9)):
        if ns >= size and ns % size == 0:
            return f"{int(ns // size)}{unit}"
    return f"{ns / 1e9:g}s"


_PATHS: Final = ("full", "cheap")
_GATE_SERVED: Final = ("model", "blend", "baseline")
_NEWS_COLS: Final = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("news_")]


def _last_bar_index(msgs: list[Any]) -> tuple[dict[str, int], int]:
    """(symbol -> index of its last :class:`Bar` in ``msgs``, how many bars ``msgs`` holds)."""
    latest: dict[str, int] = {}
    bars = 0
    for i, m in enumerate(msgs):
        if type(m) is Bar:
            latest[m.symbol] = i
            bars += 1
    return latest, bars


def _encode(msg: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(msg)
    except (TypeError, msgspec.EncodeError):
        return repr(msg).encode()
