"""A deterministic simulated exchange for replay: orders in, fills and rejects out.

Matching rule (the whole contract): an order submitted at ``ts_event = T``
becomes active at ``A = T + latency_ns`` and is matched against the market
events (trades or quotes) with ``ts_event >= A``, in event-time order.

* ``market``: fills in full at the first event at or after ``A``: a trade's
  price, or the far side of a quote (buy at the ask, sell at the bid), moved
  ``slippage_ticks`` against the order.  Liquidity is assumed unlimited.
* ``ioc``: at the first event at or after ``A``, fills what is marketable (a trade
  at or better than the limit, up to its size; a quote's far side up to its
  size) at the event price plus slippage, capped at the limit; the rest is
  cancelled and reported as an :class:`OrderReject` with reason
  ``ioc_unfilled``.
* ``limit``: if marketable at the first event at or after ``A``, fills like an IOC
  (taker); the rest rests and later fills as maker at the limit price when a
  trade prints *through* it (buy: trade price < limit) or the far quote touches
  it, up to the event's size.  Resting orders never get slippage.

Events the exchange has already seen are kept in a bounded history
(``history`` events per symbol), so an order that reaches the exchange after
the market events it should match (a forecast computed from a tick arrives
after the tick) still matches in event time.  A cancel at ``C`` takes effect at
``C + latency_ns`` for the quantity still open when it is processed.

Money is exact: prices are held as integer ticks of the instrument
(:class:`InstrumentSpec`), cash, fees and PnL as :class:`~decimal.Decimal` in
account currency.  Quantities are Decimal, multiples of ``lot_size``.  Market
prices off the tick grid (float noise in daily index data) are rounded to the
nearest tick.

Pre-trade checks reject with a reason: ``unknown_symbol``, ``bad_quantity``,
``bad_limit_price``, ``no_market_data``, ``insufficient_buying_power``,
``duplicate_order_id`` (among the last ``dedup_window`` ids); cancels of unknown orders are rejected
``unknown_order``.  Buying power: with a per-contract ``margin`` the
requirement is ``|position| * margin``; without, ``|position| * price *
multiplier / max_leverage``; the sum over positions after the order (filled in
full at the current mark) must not exceed equity.
"""

from __future__ import annotations

import bisect
import operator
from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from engine.messages import CancelOrder, Fill, Order, OrderReject, Quote, Trade

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "Account",
    "InstrumentSpec",
    "Position",
    "SimExchange",
    "SimExchangeConfig",
]

_ZERO: Final = Decimal(0)


class InstrumentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tradable instrument.  Money fields are decimal strings (exact).

    ``tick_size`` price increment; ``multiplier`` account currency per point
    per contract (ES: tick 0.25, $50 per point, so $12.50 per tick);
    ``fee_per_contract`` currency per contract per fill; ``fee_bps`` fee in
    basis points of notional; ``margin`` currency per contract held (futures)
    or empty for cash-settled equity-style buying power; ``lot_size`` quantity
    increment.
    """

    symbol: str
    tick_size: str = "0.01"
    multiplier: str = "1"
    fee_per_contract: str = "0"
    fee_bps: str = "0"
    margin: str = ""
    lot_size: str = "1"


DEFAULT_INSTRUMENTS: Final = (
    # CME E-mini S&P 500: 0.25 index points = $12.50; 2013 exchange+clearing+broker ~ $2.05/side;
    # initial margin in Sept 2013 was about $5,060 per contract.
    InstrumentSpec("ES", tick_size="0.25", multiplier="50", fee_per_contract="2.05", margin="5060"),
    InstrumentSpec("SPX", tick_size="0.01", multiplier="1", fee_bps="0.5"),
    InstrumentSpec("NDX", tick_size="0.01", multiplier="1", fee_bps="0.5"),
)


class SimExchangeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``latency_ns`` order-to-exchange delay (ns, simulated time);
    ``slippage_ticks`` ticks against taker fills; ``initial_cash`` per strategy
    account (decimal string); ``instruments`` the tradable specs;
    ``default_instrument`` a template (its ``symbol`` ignored) applied to any
    symbol the exchange sees market data for without a spec, or ``None`` to
    reject those as unknown; ``max_leverage`` for margin-less instruments;
    ``history`` market events kept per symbol for late orders; ``dedup_window`` how many
    recent order ids are checked for duplicates."""

    latency_ns: int = 0
    slippage_ticks: int = 0
    initial_cash: str = "1000000"
    instruments: tuple[InstrumentSpec, ...] = DEFAULT_INSTRUMENTS
    default_instrument: InstrumentSpec | None = None
    max_leverage: str = "1"
    history: int = 65_536
    dedup_window: int = 65_536


class Position(msgspec.Struct, kw_only=True):
    """A strategy's holding in one symbol.

    ``qty`` is signed; ``lots`` the open (qty, entry ticks) lots, oldest first:
    closing trades consume them FIFO, which keeps ``realized`` exact (an average
    entry price would need a division).  ``realized`` is account currency.
    """

    symbol: str
    qty: Decimal = _ZERO
    lots: list[list[Decimal]] = []
    realized: Decimal = _ZERO

    @property
    def avg_ticks(self) -> Decimal:
        """Average entry of the open lots in ticks (rounded; for display, never for money)."""
        if not self.qty:
            return _ZERO
        return sum((q * t for q, t in self.lots), _ZERO) / abs(self.qty)

    def cost_ticks(self) -> Decimal:
        """Sum of |qty| * entry ticks over the open lots (exact)."""
        return sum((q * t for q, t in self.lots), _ZERO)


class Account(msgspec.Struct, kw_only=True):
    """One strategy's account: exact cash, fees and positions, plus running totals."""

    strategy_id: str
    cash: Decimal
    initial: Decimal
    fees: Decimal = _ZERO
    traded_notional: Decimal = _ZERO
    fills: int = 0
    rejects: int = 0
    positions: dict[str, Position] = {}
    market_value: Decimal = _ZERO
    """Sum of qty x mark x tick value over positions, kept up to date as marks move."""
    need_margin: Decimal = _ZERO
    """Sum of |qty| x margin over positions of margined instruments."""
    need_notional: Decimal = _ZERO
    """Sum of |qty| x mark x tick value over positions of margin-less instruments."""


class _Instrument:
    __slots__ = ("fee_bps", "fee_per", "lot", "margin", "mult", "spec", "tick", "tick_f", "tick_value")

    def __init__(self, spec: InstrumentSpec) -> None:
        try:
            self.tick = Decimal(spec.tick_size)
            self.mult = Decimal(spec.multiplier)
            self.fee_per = Decimal(spec.fee_per_contract)
            self.fee_bps = Decimal(spec.fee_bps)
            self.margin = Decimal(spec.margin) if spec.margin else None
            self.lot = Decimal(spec.lot_size)
        except InvalidOperation as exc:
            raise ValueError(f"instrument {spec.symbol}: money fields must be decimal strings") from exc
        if self.tick <= 0 or self.mult <= 0 or self.lot <= 0:
            raise ValueError(f"instrument {spec.symbol}: tick_size, multiplier, lot_size must be > 0")
        self.spec = spec
        self.tick_f = float(self.tick)
        self.tick_value = self.tick * self.mult


class _Open:
    """A working order on the book."""

    __slots__ = ("active_ns", "cancel_ns", "filled", "inst", "limit", "order", "qty", "side", "taker_done")

    def __init__(
        self, order: Order, inst: _Instrument, qty: Decimal, limit: int | None, active_ns: int
    ) -> None:
        self.order = order
        self.inst = inst
        self.qty = qty
        self.filled = _ZERO
        self.side = order.side
        self.limit = limit
        self.active_ns = active_ns
        self.cancel_ns: int | None = None
        self.taker_done = False  # the first event at or after activation has been matched


class _Book:
    """Per-symbol market history (event time), working orders, mark and who holds positions."""

    __slots__ = ("events", "holders", "inst", "mark", "mark_ticks", "orders")

    def __init__(self, history: int, inst: _Instrument | None) -> None:
        self.events: deque[Trade | Quote] = deque(maxlen=history)
        self.orders: list[_Open] = []
        self.mark: float | None = None
        self.mark_ticks: int | None = None
        self.inst = inst
        self.holders: dict[str, Position] = {}  # strategy id -> its non-zero position here


_Out = list[Fill | OrderReject]


def _ts(ev: Trade | Quote) -> int:
    return ev.ts_event


_symbol = operator.attrgetter("symbol")


class SimExchange:
    """The exchange.  Feed it market events and orders in any interleaving; see the module doc."""

    def __init__(self, config: SimExchangeConfig | None = None) -> None:
        self.config = config or SimExchangeConfig()
        self._inst: dict[str, _Instrument] = {s.symbol: _Instrument(s) for s in self.config.instruments}
        self._default = (
            _Instrument(self.config.default_instrument) if self.config.default_instrument else None
        )
        self._books: dict[str, _Book] = {}
        self._accounts: dict[str, Account] = {}
        self._orders: dict[str, _Open] = {}
        # Duplicate detection over a bounded window of recent ids, so memory stays flat on long replays.
        self._seen_ids: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._initial = Decimal(self.config.initial_cash)
        self._leverage = Decimal(self.config.max_leverage)
        self._latency = self.config.latency_ns
        self._slip = self.config.slippage_ticks
        self._pending: dict[tuple[str, str], Decimal] = {}  # (strategy, symbol) -> signed open qty

    # --- market data -------------------------------------------------------

    def on_market(self, ev: Trade | Quote) -> _Out:
        """Record one market event; return fills of working orders it matched."""
        book = self._books.get(ev.symbol)
        if book is None:
            book = self._book(ev.symbol)
        book.events.append(ev)
        if type(ev) is Trade:
            self._remark(book, ev.price)
        else:
            self._remark(book, (ev.bid + ev.ask) / 2.0)  # type: ignore[union-attr]
        if not book.orders:
            return []
        out: _Out = []
        self._match(book, ev, out)
        return out

    def on_trades(self, trades: list[Trade]) -> _Out:
        """Many trades at once (the hot path): history and marks, matching only when orders work."""
        if not trades:
            return []
        sym = trades[0].symbol
        book = self._books.get(sym)
        if book is not None and not book.orders and all(map(sym.__eq__, map(_symbol, trades))):
            # One symbol, nothing working: extend the history in one C-level call.
            book.events.extend(trades)
            self._remark(book, trades[-1].price)  # only the last mark of the run can be observed
            return []
        out: _Out = []
        books = self._books
        for ev in trades:
            book = books.get(ev.symbol)
            if book is None:
                book = self._book(ev.symbol)
            book.events.append(ev)
            self._remark(book, ev.price)
            if book.orders:
                self._match(book, ev, out)
        return out

    def _book(self, symbol: str) -> _Book:
        if symbol not in self._inst and self._default is not None:
            spec = msgspec.structs.replace(self._default.spec, symbol=symbol)
            self._inst[symbol] = _Instrument(spec)
        book = self._books[symbol] = _Book(self.config.history, self._inst.get(symbol))
        return book

    def _remark(self, book: _Book, price: float) -> None:
        """New mark: move the holders' market value (and notional requirement) by the change, exactly."""
        book.mark = price
        inst = book.inst
        if inst is None:
            return
        t = round(price / inst.tick_f)
        old = book.mark_ticks
        book.mark_ticks = t
        if old is not None and t != old and book.holders:
            d = (t - old) * inst.tick_value
            margined = inst.margin is not None
            accounts = self._accounts
            for sid, pos in book.holders.items():
                acct = accounts[sid]
                acct.market_value += pos.qty * d
                if not margined:
                    acct.need_notional += abs(pos.qty) * d

    def mark(self, symbol: str) -> float | None:
        book = self._books.get(symbol)
        return None if book is None else book.mark

    # --- orders --------------------------------------------------------------

    def submit(self, order: Order) -> _Out:
        """Accept or reject ``order``; return fills from events already seen at or after activation."""
        acct = self.account(order.strategy_id)
        reason = self._check(order, acct)
        if reason is not None:
            acct.rejects += 1
            return [
                OrderReject(
                    order_id=order.order_id,
                    strategy_id=order.strategy_id,
                    reason=reason,
                    ts_event=order.ts_event,
                )
            ]
        inst = self._inst[order.symbol]
        qty = Decimal(repr(order.qty))
        limit = None
        if order.order_type != "market":
            assert order.limit_price is not None
            limit = round(order.limit_price / inst.tick_f)
        self._remember(order.order_id)
        key = (order.strategy_id, order.symbol)
        self._pending[key] = self._pending.get(key, _ZERO) + qty * order.side
        op = _Open(order, inst, qty, limit, order.ts_event + self._latency)
        book = self._books[order.symbol]
        out: _Out = []
        # Replay the history from activation on: the order may be late to the events it should meet.
        start = bisect.bisect_left(book.events, op.active_ns, key=_ts)
        book.orders.append(op)
        self._orders[order.order_id] = op
        if start < len(book.events):
            for i in range(start, len(book.events)):
                self._match_one(book, op, book.events[i], out)
                if op not in book.orders:
                    break
        return out

    def _remember(self, order_id: str) -> None:
        self._seen_ids.add(order_id)
        self._seen_order.append(order_id)
        if len(self._seen_order) > self.config.dedup_window:
            self._seen_ids.discard(self._seen_order.popleft())

    def cancel(self, cancel: CancelOrder) -> _Out:
        """Cancel the open quantity of an order; unknown or finished orders are rejected."""
        op = self._orders.get(cancel.order_id)
        if op is None or op.order.strategy_id != cancel.strategy_id:
            self.account(cancel.strategy_id).rejects += 1
            return [
                OrderReject(
                    order_id=cancel.order_id,
                    strategy_id=cancel.strategy_id,
                    reason="unknown_order",
                    ts_event=cancel.ts_event,
                )
            ]
        op.cancel_ns = cancel.ts_event + self._latency
        self._remove(op)
        return []

    def pending_qty(self, strategy_id: str, symbol: str) -> Decimal:
        """Signed quantity still open in ``strategy_id``'s working orders for ``symbol``."""
        return self._pending.get((strategy_id, symbol), _ZERO)

    def open_orders(self, strategy_id: str | None = None) -> list[Order]:
        return [
            o.order
            for o in self._orders.values()
            if strategy_id is None or o.order.strategy_id == strategy_id
        ]

    def _check(self, order: Order, acct: Account) -> str | None:
        inst = self._inst.get(order.symbol)
        if inst is None:
            return "unknown_symbol"
        if order.order_id in self._seen_ids:
            return "duplicate_order_id"
        q = order.qty
        if not (q > 0) or q != q or q == float("inf"):
            return "bad_quantity"
        try:
            qty = Decimal(repr(q))
        except InvalidOperation:
            return "bad_quantity"
        if qty % inst.lot != 0:
            return "bad_quantity"
        if order.order_type != "market":
            lp = order.limit_price
            if lp is None or not (lp > 0) or lp == float("inf"):
                return "bad_limit_price"
            if abs(lp / inst.tick_f - round(lp / inst.tick_f)) > 1e-6:
                return "bad_limit_price"
        book = self._books.get(order.symbol)
        if book is None or book.mark_ticks is None:
            return "no_market_data"
        # Pre-trade risk: the account after the order (and its other working orders) filled in
        # full at the current mark.  O(1): the account keeps its requirement up to date.
        mark_ticks = Decimal(book.mark_ticks)
        pending = self._pending.get((acct.strategy_id, order.symbol), _ZERO)
        pos = acct.positions.get(order.symbol)
        cur = pos.qty if pos is not None else _ZERO
        after = cur + pending + qty * order.side
        if abs(after) > abs(cur):
            need = acct.need_margin + acct.need_notional / self._leverage
            need += self._requirement(inst, after, mark_ticks) - self._requirement(inst, cur, mark_ticks)
            if need > acct.cash + acct.market_value:
                return "insufficient_buying_power"
        return None

    def _requirement(self, inst: _Instrument, qty: Decimal, mark_ticks: Decimal) -> Decimal:
        if inst.margin is not None:
            return abs(qty) * inst.margin
        return abs(qty) * mark_ticks * inst.tick_value / self._leverage

    # --- matching -------------------------------------------------------------

    def _match(self, book: _Book, ev: Trade | Quote, out: _Out) -> None:
        for op in list(book.orders):
            self._match_one(book, op, ev, out)

    def _match_one(self, book: _Book, op: _Open, ev: Trade | Quote, out: _Out) -> None:
        ts = ev.ts_event
        if ts < op.active_ns:
            return
        inst = op.inst
        side = op.side
        limit = op.limit
        if type(ev) is Trade:
            px_ticks = round(ev.price / inst.tick_f)
            avail = Decimal(repr(ev.size))
            through = None if limit is None else (px_ticks < limit if side > 0 else px_ticks > limit)
        else:
            far = ev.ask if side > 0 else ev.bid  # type: ignore[union-attr]
            px_ticks = round(far / inst.tick_f)
            size = ev.ask_size if side > 0 else ev.bid_size  # type: ignore[union-attr]
            avail = Decimal(repr(size)) if size > 0 else op.qty
            through = None
        remaining = op.qty - op.filled
        if not op.taker_done:
            op.taker_done = True
            exec_ticks = px_ticks + side * self._slip
            if op.limit is None:
                self._fill(op, remaining, exec_ticks, ts, "taker", out)
                self._remove(op)
                return
            marketable = px_ticks <= op.limit if side > 0 else px_ticks >= op.limit
            if marketable:
                capped = min(exec_ticks, op.limit) if side > 0 else max(exec_ticks, op.limit)
                self._fill(op, min(remaining, avail), capped, ts, "taker", out)
            if op.order.order_type == "ioc":
                if op.filled < op.qty:
                    out.append(
                        OrderReject(
                            order_id=op.order.order_id,
                            strategy_id=op.order.strategy_id,
                            reason="ioc_unfilled",
                            ts_event=ts,
                        )
                    )
                self._remove(op)
                return
            if op.filled >= op.qty:
                self._remove(op)
            return
        # Resting limit order: maker fill at the limit when the market trades through or touches it.
        hit = through if through is not None else (px_ticks <= op.limit if side > 0 else px_ticks >= op.limit)  # type: ignore[operator]
        if hit:
            self._fill(op, min(remaining, avail), op.limit, ts, "maker", out)  # type: ignore[arg-type]
            if op.filled >= op.qty:
                self._remove(op)

    def _remove(self, op: _Open) -> None:
        book = self._books[op.order.symbol]
        if op in book.orders:
            book.orders.remove(op)
        if self._orders.pop(op.order.order_id, None) is not None:
            key = (op.order.strategy_id, op.order.symbol)
            self._pending[key] -= (op.qty - op.filled) * op.side

    def _fill(self, op: _Open, qty: Decimal, px_ticks: int, ts: int, liquidity: str, out: _Out) -> None:
        if qty <= 0:
            return
        inst = op.inst
        order = op.order
        acct = self.account(order.strategy_id)
        ticks = Decimal(px_ticks)
        notional = qty * ticks * inst.tick_value
        fee = qty * inst.fee_per + notional * inst.fee_bps / Decimal(10_000)
        side = op.side
        acct.cash -= side * notional + fee
        acct.fees += fee
        acct.traded_notional += notional
        acct.fills += 1
        pos = acct.positions.get(order.symbol)
        if pos is None:
            pos = acct.positions[order.symbol] = Position(symbol=order.symbol)
        left = qty
        lots = pos.lots
        if pos.qty and (pos.qty > 0) != (side > 0):
            direction = 1 if pos.qty > 0 else -1
            while left and lots:
                lot = lots[0]
                take = min(left, lot[0])
                pos.realized += (ticks - lot[1]) * take * direction * inst.tick_value
                lot[0] -= take
                left -= take
                if not lot[0]:
                    lots.pop(0)
        if left:
            lots.append([left, ticks])
        q0 = pos.qty
        q1 = pos.qty = q0 + qty * side
        op.filled += qty
        self._pending[(order.strategy_id, order.symbol)] -= qty * side
        # Keep the account's market value and requirement current (at the book's mark, exact).
        book = self._books[order.symbol]
        mark = Decimal(book.mark_ticks if book.mark_ticks is not None else px_ticks)
        acct.market_value += (q1 - q0) * mark * inst.tick_value
        if inst.margin is not None:
            acct.need_margin += (abs(q1) - abs(q0)) * inst.margin
        else:
            acct.need_notional += (abs(q1) - abs(q0)) * mark * inst.tick_value
        if q1:
            book.holders[order.strategy_id] = pos
        else:
            book.holders.pop(order.strategy_id, None)
        out.append(
            Fill(
                order_id=order.order_id,
                strategy_id=order.strategy_id,
                symbol=order.symbol,
                side=side,
                qty=float(qty),
                price=float(ticks * inst.tick),
                fee=float(fee),
                ts_event=ts,
                liquidity=liquidity,  # type: ignore[arg-type]
            )
        )

    # --- accounts --------------------------------------------------------------

    def account(self, strategy_id: str) -> Account:
        acct = self._accounts.get(strategy_id)
        if acct is None:
            acct = self._accounts[strategy_id] = Account(
                strategy_id=strategy_id, cash=self._initial, initial=self._initial, positions={}
            )
        return acct

    def accounts(self) -> dict[str, Account]:
        return dict(self._accounts)

    def _mark_ticks(self, symbol: str) -> Decimal:
        book = self._books.get(symbol)
        if book is None or book.mark_ticks is None:
            return _ZERO
        return Decimal(book.mark_ticks)

    def position(self, strategy_id: str, symbol: str) -> Decimal:
        acct = self._accounts.get(strategy_id)
        pos = acct.positions.get(symbol) if acct is not None else None
        return pos.qty if pos is not None else _ZERO

    def equity(self, strategy_id: str) -> Decimal:
        """Cash plus positions marked at the last event price (exact, account currency)."""
        acct = self.account(strategy_id)
        return acct.cash + acct.market_value

    def equity_recomputed(self, strategy_id: str) -> Decimal:
        """:meth:`equity` computed from scratch over the positions (to check the running total)."""
        acct = self.account(strategy_id)
        eq = acct.cash
        for sym, pos in acct.positions.items():
            if pos.qty:
                eq += pos.qty * self._mark_ticks(sym) * self._inst[sym].tick_value
        return eq

    def unrealized(self, strategy_id: str) -> Decimal:
        acct = self.account(strategy_id)
        total = _ZERO
        for sym, pos in acct.positions.items():
            if pos.qty:
                sign = 1 if pos.qty > 0 else -1
                mark = self._mark_ticks(sym) * abs(pos.qty)
                total += (mark - pos.cost_ticks()) * sign * self._inst[sym].tick_value
        return total
