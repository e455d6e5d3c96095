"""Simulated exchange: matching in event time, exact money, rejects with reasons."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sim_exchange import InstrumentSpec, SimExchange, SimExchangeConfig
from engine.messages import CancelOrder, Fill, Order, OrderReject, Quote, Trade

S = 1_000_000_000


def tr(ts: int, price: float, size: float = 10.0, symbol: str = "ES") -> Trade:
    return Trade(symbol=symbol, ts_event=ts, price=price, size=size)


def order(
    oid: str,
    side: int,
    qty: float,
    ts: int,
    kind: str = "market",
    limit: float | None = None,
    symbol: str = "ES",
    strategy: str = "s1",
) -> Order:
    return Order(
        order_id=oid,
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        qty=qty,  # type: ignore[arg-type]
        order_type=kind,
        limit_price=limit,
        ts_event=ts,
    )  # type: ignore[arg-type]


def test_market_order_fills_at_first_event_after_latency() -> None:
    ex = SimExchange(SimExchangeConfig(latency_ns=5 * S))
    ex.on_market(tr(0, 1640.00))
    assert ex.submit(order("a", 1, 2, ts=1 * S)) == []
    assert ex.on_market(tr(3 * S, 1640.25)) == []  # before T + latency
    fills = ex.on_market(tr(6 * S, 1640.50))
    assert len(fills) == 1
    f = fills[0]
    assert isinstance(f, Fill) and f.price == 1640.50 and f.qty == 2 and f.ts_event == 6 * S
    assert f.fee == pytest.approx(4.10)
    assert ex.position("s1", "ES") == 2


def test_late_order_matches_history_in_event_time() -> None:
    """A forecast reaching the exchange after later ticks still fills at the right tick."""
    ex = SimExchange(SimExchangeConfig(latency_ns=1 * S))
    for i, px in enumerate([1640.0, 1640.25, 1640.5, 1640.75]):
        ex.on_market(tr(i * S, px))
    fills = ex.submit(order("late", -1, 1, ts=1 * S))
    assert [(f.price, f.ts_event) for f in fills] == [(1640.5, 2 * S)]  # type: ignore[union-attr]


def test_es_pnl_is_exact_dollars() -> None:
    ex = SimExchange(SimExchangeConfig(slippage_ticks=1))
    ex.on_market(tr(0, 1640.00))
    ex.submit(order("b", 1, 3, ts=0))  # fills at the same event: 1640.00 + 1 tick
    ex.on_market(tr(1, 1641.00))
    ex.submit(order("s", -1, 3, ts=1))  # 1641.00 - 1 tick
    acct = ex.account("s1")
    # (1640.75 - 1640.25) * 3 contracts * $50 = $75 gross, minus 6 * $2.05 fees.
    assert ex.account("s1").positions["ES"].realized == Decimal("75")
    assert acct.fees == Decimal("12.30")
    assert ex.equity("s1") == Decimal("1000000") + Decimal("75") - Decimal("12.30")
    assert ex.position("s1", "ES") == 0


def test_quotes_fill_market_orders_at_the_far_side() -> None:
    ex = SimExchange()
    q = Quote(symbol="ES", ts_event=0, bid=1640.0, ask=1640.25, bid_size=5, ask_size=5)
    ex.on_market(q)
    (buy,) = ex.submit(order("b", 1, 1, ts=0))
    (sell,) = ex.submit(order("s", -1, 1, ts=0))
    assert (buy.price, sell.price) == (1640.25, 1640.0)  # type: ignore[union-attr]


def test_limit_order_rests_then_fills_as_maker_when_traded_through() -> None:
    ex = SimExchange()
    ex.on_market(tr(0, 1640.50))
    assert ex.submit(order("l", 1, 2, ts=0, kind="limit", limit=1640.00)) == []
    assert ex.on_market(tr(1, 1640.00, size=5)) == []  # touching is not enough for a trade
    (f,) = ex.on_market(tr(2, 1639.75, size=1))
    assert isinstance(f, Fill) and f.price == 1640.00 and f.qty == 1 and f.liquidity == "maker"
    (g,) = ex.on_market(tr(3, 1639.50, size=9))
    assert g.qty == 1  # type: ignore[union-attr]
    assert ex.open_orders() == []


def test_marketable_limit_is_capped_at_its_price() -> None:
    ex = SimExchange(SimExchangeConfig(slippage_ticks=4))
    ex.on_market(tr(0, 1640.00))
    (f,) = ex.submit(order("l", 1, 1, ts=0, kind="limit", limit=1640.50))
    assert f.price == 1640.50 and f.liquidity == "taker"  # type: ignore[union-attr]


def test_ioc_fills_what_it_can_and_cancels_the_rest() -> None:
    ex = SimExchange()
    ex.on_market(tr(0, 1640.00, size=3))
    out = ex.submit(order("i", 1, 5, ts=0, kind="ioc", limit=1640.00))
    assert [type(m) for m in out] == [Fill, OrderReject]
    assert out[0].qty == 3 and out[1].reason == "ioc_unfilled"  # type: ignore[union-attr]
    (r,) = ex.submit(order("j", 1, 1, ts=0, kind="ioc", limit=1639.00))
    assert isinstance(r, OrderReject) and r.reason == "ioc_unfilled"
    assert ex.open_orders() == []


def test_cancel_removes_a_resting_order() -> None:
    ex = SimExchange()
    ex.on_market(tr(0, 1640.0))
    ex.submit(order("l", 1, 1, ts=0, kind="limit", limit=1630.0))
    assert ex.cancel(CancelOrder(order_id="l", strategy_id="s1", ts_event=1)) == []
    assert ex.on_market(tr(2, 1620.0)) == []
    (r,) = ex.cancel(CancelOrder(order_id="l", strategy_id="s1", ts_event=3))
    assert r.reason == "unknown_order"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("o", "reason"),
    [
        (order("a", 1, 1, 0, symbol="ZZ"), "unknown_symbol"),
        (order("b", 1, 0, 0), "bad_quantity"),
        (order("c", 1, -2, 0), "bad_quantity"),
        (order("d", 1, 1.5, 0), "bad_quantity"),
        (order("e", 1, float("nan"), 0), "bad_quantity"),
        (order("f", 1, 1, 0, kind="limit", limit=None), "bad_limit_price"),
        (order("g", 1, 1, 0, kind="limit", limit=1640.10), "bad_limit_price"),
        (order("h", 1, 1000, 0), "insufficient_buying_power"),
        (order("i", 1, 1, 0, symbol="SPX"), "no_market_data"),
    ],
)
def test_rejects_carry_reasons(o: Order, reason: str) -> None:
    ex = SimExchange()
    ex.on_market(tr(0, 1640.0))
    (r,) = ex.submit(o)
    assert isinstance(r, OrderReject) and r.reason == reason
    assert ex.account("s1").rejects == 1


def test_duplicate_order_id_is_rejected() -> None:
    ex = SimExchange()
    ex.on_market(tr(0, 1640.0))
    ex.submit(order("a", 1, 1, 0))
    (r,) = ex.submit(order("a", 1, 1, 0))
    assert r.reason == "duplicate_order_id"  # type: ignore[union-attr]


def test_duplicate_detection_window_is_bounded() -> None:
    ex = SimExchange(SimExchangeConfig(dedup_window=2))
    ex.on_market(tr(0, 1640.0))
    for oid in "abc":
        assert isinstance(ex.submit(order(oid, 1, 1, 0))[0], Fill)
    assert ex.submit(order("c", -1, 1, 0))[0].reason == "duplicate_order_id"  # type: ignore[union-attr]
    assert isinstance(ex.submit(order("a", -1, 1, 0))[0], Fill)  # forgotten: outside the window


def test_buying_power_allows_reducing_a_position() -> None:
    ex = SimExchange(SimExchangeConfig(initial_cash="20000"))  # 3 ES contracts of margin
    ex.on_market(tr(0, 1640.0))
    assert isinstance(ex.submit(order("a", 1, 3, 0))[0], Fill)
    assert ex.submit(order("b", 1, 1, 0))[0].reason == "insufficient_buying_power"  # type: ignore[union-attr]
    assert isinstance(ex.submit(order("c", -1, 3, 0))[0], Fill)


def test_default_instrument_covers_unlisted_symbols() -> None:
    ex = SimExchange(SimExchangeConfig(default_instrument=InstrumentSpec("*", tick_size="0.01")))
    ex.on_market(tr(0, 25.55, symbol="A"))
    (f,) = ex.submit(order("a", 1, 100, 0, symbol="A"))
    assert isinstance(f, Fill) and f.price == 25.55
    assert ex.equity("s1") == Decimal("1000000")  # no fee, marked at the fill price


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, -1]), st.integers(1, 5), st.integers(-8, 8)),
        min_size=1,
        max_size=30,
    )
)
def test_equity_identity_holds_exactly(trades: list[tuple[int, int, int]]) -> None:
    """equity == initial + realized + unrealized - fees, to the cent, after any fill sequence."""
    ex = SimExchange(SimExchangeConfig(initial_cash="100000000"))
    for i, (side, qty, dticks) in enumerate(trades):
        ex.on_market(tr(i, 1640.0 + 0.25 * dticks))
        out = ex.submit(order(f"o{i}", side, qty, i))
        assert all(isinstance(m, Fill) for m in out)
    acct = ex.account("s1")
    realized = sum((p.realized for p in acct.positions.values()), Decimal(0))
    assert ex.equity("s1") == acct.initial + realized + ex.unrealized("s1") - acct.fees
    assert ex.equity("s1") == ex.equity_recomputed("s1")
    net = sum(side * qty for side, qty, _ in trades)
    assert ex.position("s1", "ES") == net


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ES", "A", "B"]),
            st.sampled_from([1, -1]),
            st.integers(1, 4),
            st.integers(-40, 40),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_running_equity_and_requirement_match_a_full_recount(
    steps: list[tuple[str, int, int, int, bool]],
) -> None:
    """The O(1) running totals equal a from-scratch recount after any mix of fills and price moves."""
    ex = SimExchange(
        SimExchangeConfig(initial_cash="50000", default_instrument=InstrumentSpec("*", fee_bps="1"))
    )
    base = {"ES": 1640.0, "A": 25.0, "B": 80.0}
    for i, (sym, side, qty, dticks, trade_now) in enumerate(steps):
        tick = 0.25 if sym == "ES" else 0.01
        ex.on_market(tr(i, base[sym] + tick * dticks, symbol=sym))
        if trade_now:
            ex.submit(order(f"o{i}", side, qty * (1 if sym == "ES" else 100), i, symbol=sym))
        assert ex.equity("s1") == ex.equity_recomputed("s1")
    acct = ex.account("s1")
    margin = sum((abs(p.qty) * Decimal(5060) for s, p in acct.positions.items() if s == "ES"), Decimal(0))
    notional = sum(
        (
            abs(p.qty) * Decimal(ex._books[s].mark_ticks) * Decimal("0.01")
            for s, p in acct.positions.items()
            if s != "ES"
        ),
        Decimal(0),
    )
    assert acct.need_margin == margin and acct.need_notional == notional
    assert ex.pending_qty("s1", "ES") == 0  # market orders never stay open


def test_buying_power_follows_the_mark_of_margin_less_positions() -> None:
    eq = InstrumentSpec("*", tick_size="0.01")
    ex = SimExchange(SimExchangeConfig(initial_cash="10000", default_instrument=eq))
    ex.on_market(tr(0, 50.0, symbol="A"))
    assert isinstance(ex.submit(order("a", 1, 150, 0, symbol="A"))[0], Fill)  # $7,500 of A
    ex.on_market(tr(1, 60.0, symbol="A"))  # now worth $9,000; equity $11,500
    assert ex.equity("s1") == Decimal("11500")
    assert isinstance(ex.submit(order("b", 1, 40, 1, symbol="A"))[0], Fill)  # 190 x 60 = 11,400 <= 11,500
    (r,) = ex.submit(order("c", 1, 2, 1, symbol="A"))
    assert r.reason == "insufficient_buying_power"  # type: ignore[union-attr]
