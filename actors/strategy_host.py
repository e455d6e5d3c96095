"""StrategyHost: runs strategies, each its own failure domain, against the simulated exchange.

Subscribe it to ``md.<SYM>`` (ticks: the exchange matches against them),
``bar.<SYM>`` and ``forecast.<SYM>``.  Its single mailbox fixes the order in
which ticks, bars, forecasts and orders meet, and it calls the
:class:`~adapters.sim_exchange.SimExchange` directly (no bus hop), so fills are
deterministic.  Fills and rejects go to the strategy (``on_fill`` /
``on_reject``) after the callback that caused them returns, and are published
on ``fill.<strategy_id>`` (orders on ``order.<strategy_id>`` when
``publish_orders``).

Forecasts: per symbol the host holds the newest forecast by
``(basis_seq, version)``; a refinement (version >= 2) of the forecast held is
delivered, anything not newer is counted as late
(``strategy_forecasts_late_total``) and recorded on ``deadletter`` with the
reason ``late_forecast``, never applied.

Failures: a strategy hook that raises is counted
(``strategy_errors_total{strategy}``), the message it was handling is
dead-lettered (``strategy_error``), and the strategy is replaced by a fresh
instance (``on_start`` again; positions live in the exchange and survive).
After ``max_restarts`` failures it is disabled (``strategy_disabled_total``)
and its working orders are cancelled.  The host itself never fails for it.

Epistemic-diversity breaker: subscribe the host to ``control.breaker`` too.  While a
:class:`~engine.messages.BreakerState` is open for a (strategy, symbol) pair (its
``strategies`` x ``symbols``; empty strategies: every hosted one), new orders of that
strategy in that symbol are refused with an :class:`OrderReject` (reason ``breaker_open``,
counted ``strategy_orders_paused_total{strategy}``), except orders that only reduce the
position; cancels always pass.  A closed state lifts the pause.

Results: the host samples each strategy's equity (exact Decimal, reported as
float) at the end of each timestamp that had a bar of ``equity_symbol`` (any
symbol when empty), keeps bar
closes for the report, and on stop writes ``results_path`` (JSON): per
strategy PnL, Sharpe, max drawdown, turnover, fills, fees and the equity curve.
"""

from __future__ import annotations

import bisect
import itertools
import math
import types
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.sim_exchange import SimExchange, SimExchangeConfig
from engine.actor import Actor
from engine.config import resolve
from engine.errors import ConfigError
from engine.messages import Bar, BreakerState, CancelOrder, Fill, Forecast, Order, OrderReject, Quote, Trade
from strategies.api import Strategy, StrategyError, StrategySpec

__all__ = ["StrategyHost", "StrategyHostConfig", "load_strategy", "performance"]

_YEAR_NS = 365.25 * 24 * 3600 * 1e9


class StrategyHostConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``strategies`` to host; ``exchange`` the simulated exchange; ``publish_fills`` /
    ``publish_orders`` put fills/rejects and orders on the bus; ``equity_symbol`` whose bars
    sample the equity curves (empty: every bar); ``results_path`` where to write results on stop;
    ``bar_kind`` which bar series strategies get (others are ignored)."""

    strategies: tuple[StrategySpec, ...] = ()
    exchange: SimExchangeConfig = SimExchangeConfig()
    publish_fills: bool = True
    publish_orders: bool = False
    equity_symbol: str = ""
    results_path: str | None = None
    bar_kind: Literal["time", "tick", "dollar", "any"] = "any"
    max_curve_points: int = 20_000


class _Slot:
    """One hosted strategy: its spec, current instance and health."""

    __slots__ = (
        "cls",
        "ctx",
        "disabled",
        "failures",
        "instance",
        "params",
        "spec",
        "symbols",
        "wants_trades",
    )

    def __init__(self, spec: StrategySpec, cls: type[Strategy[Any]], params: msgspec.Struct) -> None:
        self.spec = spec
        self.cls = cls
        self.params = params
        self.symbols = frozenset(spec.symbols)
        self.failures = 0
        self.disabled = False
        self.instance: Strategy[Any] | None = None
        self.ctx: _Ctx | None = None
        self.wants_trades = cls.on_trade is not Strategy.on_trade


class _Ctx:
    """The :class:`~strategies.api.StrategyContext` a host gives one strategy."""

    def __init__(self, host: StrategyHost, slot: _Slot) -> None:
        self._host = host
        self._slot = slot
        self._sid = slot.spec.id
        self.log = host.ctx.log.bind(strategy=self._sid)

    @property
    def strategy_id(self) -> str:
        return self._sid

    @property
    def now_ns(self) -> int:
        return self._host._now

    def submit_order(
        self,
        symbol: str,
        side: Literal[1, -1],
        qty: float,
        order_type: Literal["market", "limit", "ioc"] = "market",
        limit_price: float | None = None,
    ) -> str:
        if side not in (1, -1):
            raise StrategyError(f"side must be 1 or -1, got {side!r}")
        if order_type not in ("market", "limit", "ioc"):
            raise StrategyError(f"unknown order type {order_type!r}")
        host = self._host
        host._order_seq += 1
        oid = f"{self._sid}-{host._order_seq}"
        order = Order(
            order_id=oid,
            strategy_id=self._sid,
            symbol=symbol,
            side=side,
            qty=float(qty),
            order_type=order_type,
            limit_price=limit_price,
            ts_event=host._now,
        )
        if host._paused and (self._sid, symbol) in host._paused and not host._reduces(order):
            host._refuse_paused(order)
            return oid
        host._submit(order)
        return oid

    def cancel_order(self, order_id: str) -> None:
        self._host._cancel(CancelOrder(order_id=order_id, strategy_id=self._sid, ts_event=self._host._now))

    def position(self, symbol: str) -> float:
        return float(self._host.exchange.position(self._sid, symbol))

    @property
    def positions(self) -> Mapping[str, float]:
        acct = self._host.exchange.account(self._sid)
        return types.MappingProxyType({s: float(p.qty) for s, p in acct.positions.items() if p.qty})

    def pending(self, symbol: str) -> float:
        return float(self._host.exchange.pending_qty(self._sid, symbol))

    def equity(self) -> float:
        return float(self._host.exchange.equity(self._sid))


class StrategyHost(Actor[StrategyHostConfig]):
    """Hosts strategies; see the module docstring."""

    config_type = StrategyHostConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        self.exchange = SimExchange(cfg.exchange)
        self._now = self.ctx.clock.now_ns()
        self._order_seq = 0
        self._outbox: deque[Fill | OrderReject] = deque()
        self._slots: list[_Slot] = [self._load(spec) for spec in cfg.strategies]
        self._by_id = {s.spec.id: s for s in self._slots}
        ids = [s.spec.id for s in self._slots]
        if len(set(ids)) != len(ids):
            raise StrategyError(f"strategy ids must be unique, got {ids}")
        m = self.ctx.metrics
        self._errors = {
            s.spec.id: m.counter("strategy_errors_total", strategy=s.spec.id) for s in self._slots
        }
        self._disabled = m.counter("strategy_disabled_total")
        self._late = m.counter("strategy_forecasts_late_total")
        self._n_fills = m.counter("strategy_fills_total")
        self._n_rejects = m.counter("strategy_rejects_total")
        self._held: dict[str, tuple[int, int]] = {}
        self._sample_ts: int | None = None
        self._curves: dict[str, list[tuple[int, float]]] = {s.spec.id: [] for s in self._slots}
        self._prices: dict[str, list[tuple[int, float]]] = {}
        self._fill_log: list[tuple[str, int, str, int, float, float]] = []
        self._any_trades = any(s.wants_trades for s in self._slots)
        self._paused: set[tuple[str, str]] = set()
        """(strategy, symbol) pairs whose new orders the diversity breaker paused."""
        for slot in self._slots:
            self._instantiate(slot)

    def _load(self, spec: StrategySpec) -> _Slot:
        cls, params = load_strategy(spec)
        return _Slot(spec, cls, params)

    def _instantiate(self, slot: _Slot) -> None:
        slot.ctx = _Ctx(self, slot)
        slot.instance = slot.cls(slot.ctx, slot.params)
        self._call(slot, "on_start", None)

    # --- the hot path ------------------------------------------------------------

    def on_batch(self, msgs: list[Any]) -> None:
        if self._any_trades:
            for m in msgs:
                self._one(m)
            return
        # Runs of trades go to the exchange in one call; only the other messages are
        # dispatched one by one (a replay batch is almost all trades).
        others = [i for i, m in enumerate(msgs) if type(m) is not Trade]
        if not others:
            self._trades(msgs)
            return
        prev = 0
        for i in others:
            if i > prev:
                self._trades(msgs[prev:i])
            self._one(msgs[i])
            prev = i + 1
        if prev < len(msgs):
            self._trades(msgs[prev:])

    def _one(self, m: Any) -> None:
        ex = self.exchange
        t = type(m)
        if self._sample_ts is not None and m.ts_event > self._sample_ts:
            self._sample()
        if t is Trade:
            self._now = m.ts_event
            self._deliver(ex.on_market(m))
            for slot in self._slots:
                if slot.wants_trades and not slot.disabled and (not slot.symbols or m.symbol in slot.symbols):
                    self._call(slot, "on_trade", m)
        elif t is Bar:
            self._on_bar(m)
        elif t is Forecast:
            self._on_forecast(m)
        elif t is Quote:
            self._now = m.ts_event
            self._deliver(ex.on_market(m))
        elif t is Fill or t is OrderReject:
            pass  # our own publications echoed back by a broad subscription
        elif t is BreakerState:
            self._on_breaker(m)
        else:
            self.ctx.dead_letter("unexpected_message", raw=msgspec.msgpack.encode(m), type=type(m).__name__)

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    def _trades(self, run: list[Trade]) -> None:
        due = self._sample_ts
        if due is not None and run[-1].ts_event > due:
            i = bisect.bisect_right(run, due, key=_ts)
            if i:
                self._now = run[i - 1].ts_event
                fills = self.exchange.on_trades(run[:i])
                if fills:
                    self._deliver(fills)
            self._sample()
            run = run[i:]
        self._now = run[-1].ts_event
        fills = self.exchange.on_trades(run)
        if fills:
            self._deliver(fills)

    def _sample(self) -> None:
        """Record each strategy's equity at the pending sample time."""
        ts = self._sample_ts
        self._sample_ts = None
        if ts is None:
            return
        cap = self.config.max_curve_points
        for slot in self._slots:
            curve = self._curves[slot.spec.id]
            if len(curve) < cap:
                curve.append((ts, float(self.exchange.equity(slot.spec.id))))

    def _on_bar(self, bar: Bar) -> None:
        self._now = bar.ts_event
        cfg = self.config
        if cfg.bar_kind != "any" and bar.kind != cfg.bar_kind:
            return
        sym = bar.symbol
        prices = self._prices.get(sym)
        if prices is None:
            prices = self._prices[sym] = []
        if len(prices) < cfg.max_curve_points:
            prices.append((bar.ts_event, bar.close))
        for slot in self._slots:
            if not slot.disabled and (not slot.symbols or sym in slot.symbols):
                self._call(slot, "on_bar", bar)
        if not cfg.equity_symbol or sym == cfg.equity_symbol:
            # Sampled once the clock moves past this bar's time, so a curve point is the
            # equity at the end of its timestamp, however many symbols' bars share it.
            self._sample_ts = bar.ts_event

    def _on_forecast(self, fc: Forecast) -> None:
        self._now = fc.ts_event
        key = (fc.basis_seq, fc.version)
        held = self._held.get(fc.symbol)
        if held is not None and key <= held:
            self._late.inc()
            self.ctx.dead_letter(
                "late_forecast",
                ts_event=fc.ts_event,
                forecast_id=fc.forecast_id,
                version=fc.version,
                held_basis_seq=held[0],
                held_version=held[1],
            )
            return
        self._held[fc.symbol] = key
        for slot in self._slots:
            if not slot.disabled and (not slot.symbols or fc.symbol in slot.symbols):
                self._call(slot, "on_forecast", fc)

    # --- orders and fills ----------------------------------------------------------

    def _on_breaker(self, b: BreakerState) -> None:
        sids = b.strategies or tuple(self._by_id)
        pairs = {(sid, sym) for sid in sids for sym in b.symbols}
        if b.state == "open":
            self._paused |= pairs
        else:
            self._paused -= pairs
        self.ctx.log.warning(
            "strategy_orders_paused" if b.state == "open" else "strategy_orders_resumed",
            strategies=list(sids),
            symbols=list(b.symbols),
            reason=b.reason,
        )

    def _reduces(self, order: Order) -> bool:
        """Whether ``order`` only brings its strategy's position in the symbol toward zero."""
        pos = float(self.exchange.position(order.strategy_id, order.symbol))
        pos += float(self.exchange.pending_qty(order.strategy_id, order.symbol))
        return pos * order.side < 0 and order.qty <= abs(pos)

    def _refuse_paused(self, order: Order) -> None:
        self.ctx.metrics.counter("strategy_orders_paused_total", strategy=order.strategy_id).inc()
        self._outbox.append(
            OrderReject(
                order_id=order.order_id,
                strategy_id=order.strategy_id,
                reason="breaker_open: epistemic-diversity breaker paused new orders",
                ts_event=self._now,
            )
        )

    def _submit(self, order: Order) -> None:
        if self.config.publish_orders:
            self.ctx.publish(f"order.{order.strategy_id}", order)
        self._outbox.extend(self.exchange.submit(order))

    def _cancel(self, cancel: CancelOrder) -> None:
        if self.config.publish_orders:
            self.ctx.publish(f"order.{cancel.strategy_id}", cancel)
        self._outbox.extend(self.exchange.cancel(cancel))

    def _deliver(self, msgs: list[Fill | OrderReject]) -> None:
        self._outbox.extend(msgs)
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        box = self._outbox
        by_id = self._by_id
        while box:
            m = box.popleft()
            slot = by_id.get(m.strategy_id)
            if type(m) is Fill:
                self._n_fills.inc()
                if len(self._fill_log) < self.config.max_curve_points:
                    self._fill_log.append((m.strategy_id, m.ts_event, m.symbol, m.side, m.qty, m.price))
                hook = "on_fill"
            else:
                self._n_rejects.inc()
                hook = "on_reject"
            if self.config.publish_fills:
                self.ctx.publish(f"fill.{m.strategy_id}", m)
            if slot is not None and not slot.disabled:
                self._call(slot, hook, m)

    def _call(self, slot: _Slot, hook: str, msg: Any) -> None:
        """Run one strategy hook in its failure domain, then deliver what it caused."""
        inst = slot.instance
        if inst is None:
            return
        try:
            if msg is None:
                getattr(inst, hook)()
            else:
                getattr(inst, hook)(msg)
        except Exception as exc:
            self._strategy_failed(slot, hook, msg, exc)
        if self._outbox:
            self._flush_outbox()

    def _strategy_failed(self, slot: _Slot, hook: str, msg: Any, exc: Exception) -> None:
        sid = slot.spec.id
        slot.failures += 1
        self._errors[sid].inc()
        raw = b""
        if msg is not None:
            try:
                raw = msgspec.msgpack.encode(msg)
            except (TypeError, msgspec.EncodeError):
                raw = repr(msg).encode()
        self.ctx.dead_letter(
            "strategy_error",
            raw=raw,
            ts_event=self._now,
            strategy=sid,
            hook=hook,
            error=f"{type(exc).__name__}: {exc}",
            failures=slot.failures,
        )
        self.ctx.log.warning(
            "strategy_failed", strategy=sid, hook=hook, error=repr(exc), failures=slot.failures
        )
        old = slot.instance
        slot.instance = None
        if old is not None and hook != "on_stop":
            try:
                old.on_stop()
            except Exception as stop_exc:  # a broken strategy may break again on the way out
                self.ctx.log.warning("strategy_on_stop_failed", strategy=sid, error=repr(stop_exc))
        if slot.failures > slot.spec.max_restarts:
            slot.disabled = True
            self._disabled.inc()
            self.ctx.log.error("strategy_disabled", strategy=sid, failures=slot.failures)
            for o in self.exchange.open_orders(sid):
                self.exchange.cancel(CancelOrder(order_id=o.order_id, strategy_id=sid, ts_event=self._now))
            return
        if hook != "on_stop":
            self._instantiate(slot)

    # --- results ------------------------------------------------------------------

    async def on_stop(self) -> None:
        self._sample()
        for slot in self._slots:
            if slot.instance is not None and not slot.disabled:
                self._call(slot, "on_stop", None)
        if self.config.results_path:
            _write(Path(self.config.results_path), msgspec.json.encode(self.results()))

    def results(self) -> dict[str, Any]:
        """Per-strategy performance, equity curves and bar closes (JSON-ready)."""
        ex = self.exchange
        out: dict[str, Any] = {"strategies": {}, "prices": self._prices}
        for slot in self._slots:
            sid = slot.spec.id
            acct = ex.account(sid)
            curve = self._curves[sid]
            perf = performance(curve, float(acct.initial))
            equity = ex.equity(sid)
            out["strategies"][sid] = {
                "class": slot.spec.cls,
                "pnl": str(equity - acct.initial),
                "pnl_float": float(equity - acct.initial),
                "equity": str(equity),
                "realized": str(sum((p.realized for p in acct.positions.values()), Decimal(0))),
                "fees": str(acct.fees),
                "fills": acct.fills,
                "rejects": acct.rejects,
                "turnover": float(acct.traded_notional / acct.initial) if acct.initial else math.nan,
                "traded_notional": str(acct.traded_notional),
                "positions": {s: float(p.qty) for s, p in acct.positions.items() if p.qty},
                "failures": slot.failures,
                "disabled": slot.disabled,
                **perf,
                "equity_curve": curve,
                "fills_log": [f[1:] for f in self._fill_log if f[0] == sid][:5000],
            }
        return out


def _ts(m: Any) -> int:
    return m.ts_event  # type: ignore[no-any-return]


def load_strategy(spec: StrategySpec) -> tuple[type[Strategy[Any]], msgspec.Struct]:
    """Resolve a strategy class by dotted path and convert its params; StrategyError if either fails."""
    key = f"strategies[{spec.id}]"
    try:
        cls = resolve(spec.cls, key=f"{key}.class")
    except ConfigError as exc:
        raise StrategyError(str(exc)) from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{key}: {spec.cls!r} is not a strategies.api.Strategy subclass")
    try:
        params = msgspec.convert(spec.params, cls.params_type)
    except (msgspec.ValidationError, ValueError) as exc:
        raise StrategyError(f"{key}.params: {exc}") from exc
    return cls, params


def _write(path: Path, data: bytes) -> None:
    # A one-off write at the end of a run; the loop has nothing else to do by then.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def performance(curve: list[tuple[int, float]], initial: float) -> dict[str, float]:
    """Sharpe (annualised from the sampling rate of ``curve``) and max drawdown.

    Returns per sample are simple returns of equity; the annualisation factor
    is sqrt(samples per year), samples per year = len / (span in years).  Over
    spans of a few days (the E-mini tape) the annualised figure is noisy; the
    result carries ``span_days`` so readers can judge.
    Drawdown is the largest peak-to-trough fall, in currency and as a
    fraction of the peak.  NaN where there are too few samples.
    """
    if len(curve) < 3:
        return {
            "sharpe": math.nan,
            "max_drawdown": 0.0,
            "max_drawdown_pct": 0.0,
            "samples": float(len(curve)),
        }
    eq = [initial] + [e for _, e in curve]
    rets = [(b - a) / a for a, b in itertools.pairwise(eq) if a]
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / max(1, len(rets) - 1)
    span = curve[-1][0] - curve[0][0]
    per_year = (len(curve) - 1) / (span / _YEAR_NS) if span > 0 else math.nan
    sharpe = mean / math.sqrt(var) * math.sqrt(per_year) if var > 0 and per_year == per_year else math.nan
    peak = eq[0]
    mdd = mdd_pct = 0.0
    for e in eq:
        if e > peak:
            peak = e
        dd = peak - e
        if dd > mdd:
            mdd = dd
            mdd_pct = dd / peak if peak else 0.0
    return {
        "sharpe": sharpe,
        "max_drawdown": mdd,
        "max_drawdown_pct": mdd_pct,
        "samples": float(len(curve)),
        "span_days": span / 86_400e9,
    }
