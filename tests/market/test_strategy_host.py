"""StrategyHost: plug-in loading, failure domains, forecast ordering, fills back to strategies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.strategy_host import load_strategy, performance
from engine.messages import Bar, DeadLetter, Fill, Forecast, OrderReject, Trade
from strategies.api import StrategyError, StrategySpec
from strategies.ema_cross import EmaCross

from . import helpers
from .conftest import actor, build, feed, run

S = 1_000_000_000
T0 = 1_378_072_800 * S


def host(*strategies: dict[str, Any], **config: Any) -> dict[str, Any]:
    return actor(
        "host",
        "actors.strategy_host:StrategyHost",
        {"strategies": list(strategies), **config},
        subscribe=["md.>", "bar.>", "forecast.>"],
    )


def script(msgs: list[Any]) -> dict[str, Any]:
    return actor(
        "script", "tests.market.helpers:Script", {"messages": helpers.encode_script(msgs)}, capacity=16
    )


def bar(i: int, close: float = 1640.0) -> Bar:
    return Bar(
        symbol="ES",
        ts_event=T0 + i * 60 * S,
        ts_open=T0 + (i - 1) * 60 * S,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


def trade(ts: int, price: float = 1640.0) -> Trade:
    return Trade(symbol="ES", ts_event=ts, price=price, size=5.0)


def forecast(fid: str, basis: int, version: int, prob: float, ts: int) -> Forecast:
    return Forecast(
        forecast_id=fid,
        symbol="ES",
        horizon="1m",
        version=version,
        basis_seq=basis,
        ts_event=ts,
        direction_prob=prob,
    )


def test_load_strategy_by_dotted_path_and_errors() -> None:
    cls, params = load_strategy(StrategySpec("e", "strategies.ema_cross:EmaCross", {"fast": 3, "slow": 7}))
    assert cls is EmaCross and params.fast == 3  # type: ignore[attr-defined]
    with pytest.raises(StrategyError, match="cannot import module"):
        load_strategy(StrategySpec("x", "nope.mod:Thing"))
    with pytest.raises(StrategyError, match="no attribute"):
        load_strategy(StrategySpec("x", "strategies.ema_cross:Nope"))
    with pytest.raises(StrategyError, match=r"not a strategies\.api\.Strategy"):
        load_strategy(StrategySpec("x", "actors.sinks:JsonlSink"))
    with pytest.raises(StrategyError, match="params"):
        load_strategy(StrategySpec("x", "strategies.ema_cross:EmaCross", {"fast": 9, "slow": 3}))
    with pytest.raises(StrategyError, match="params"):
        load_strategy(StrategySpec("x", "strategies.ema_cross:EmaCross", {"typo": 1}))


@pytest.mark.asyncio
async def test_orders_fill_in_event_time_and_strategies_see_fills_and_rejects() -> None:
    helpers.SEEN.clear()
    msgs = [
        trade(T0),
        bar(1),
        trade(T0 + 60 * S + 1, 1641.0),
        trade(T0 + 60 * S + 2_000_000, 1641.25),
        bar(2),
    ]
    rec = {
        "id": "rec",
        "class": "tests.market.helpers:Recorder",
        "params": {"buy_on_bar": 1, "bad_symbol_on_bar": 2},
    }
    eng = build(script(msgs), host(rec, exchange={"latency_ns": 1_000_000}))
    summary, out = await run(eng, "fill.>")
    log = helpers.SEEN["rec"]
    # Ordered at the first bar (T0+60s); 1 ms latency: the trade 1 ns later is too early, 2 ms later fills.
    fills = [e for e in log if e[0] == "fill"]
    assert fills == [("fill", 1641.25, T0 + 60 * S + 2_000_000, 1.0)]
    assert ("reject", "unknown_symbol") in log
    assert log[-1][0] == "reject" and [e for e in log if e[0] == "bar"][-1][2] == {"ES": 1.0}
    assert [type(m) for m in out] == [Fill, OrderReject]
    assert summary.metrics["counters"]["strategy_fills_total"] == 1


@pytest.mark.asyncio
async def test_limit_orders_rest_fill_as_maker_or_get_cancelled_and_orders_are_published() -> None:
    helpers.SEEN.clear()
    msgs = [
        trade(T0),
        bar(1),
        trade(T0 + 61 * S, 1639.5),
        bar(2),
        trade(T0 + 121 * S, 1638.0),
        bar(3),
        trade(T0 + 181 * S, 1630.0),
    ]
    a = {"id": "a", "class": "tests.market.helpers:Recorder", "params": {"limit_on_bar": 1}}
    b = {
        "id": "b",
        "class": "tests.market.helpers:Recorder",
        "params": {"limit_on_bar": 1, "cancel_on_bar": 2},
    }
    eng = build(script(msgs), host(a, b, publish_orders=True))
    _, out = await run(eng, "order.>", "fill.>")
    assert [e for e in helpers.SEEN["a"] if e[0] in ("fill", "pending")] == [
        ("pending", 1.0),
        ("fill", 1639.0, T0 + 121 * S, 1.0),  # traded through 1639 at 1638: maker fill at the limit
    ]
    assert [e for e in helpers.SEEN["b"] if e[0] in ("fill", "pending")] == [
        ("pending", 1.0),
        ("pending", 0.0),
    ]
    kinds = [(type(m).__name__, m.strategy_id) for m in out]
    assert kinds == [("Order", "a"), ("Order", "b"), ("CancelOrder", "b"), ("Fill", "a")]
    assert out[-1].liquidity == "maker"


@pytest.mark.asyncio
async def test_a_failing_strategy_is_restarted_then_disabled_and_never_stops_the_engine() -> None:
    helpers.Boom.instances = 0
    boom = {"id": "boom", "class": "tests.market.helpers:Boom", "params": {"every": 2}, "max_restarts": 2}
    ema = {
        "id": "ema",
        "class": "strategies.ema_cross:EmaCross",
        "params": {"fast": 2, "slow": 5, "warmup": 5},
    }
    eng = build(feed(dataset="emini", limit=40_000), host(boom, ema))
    summary, out = await run(eng, "deadletter", "fill.>")
    assert summary.reason == "replay finished" and summary.exit_code == 0
    errors = [m for m in out if type(m) is DeadLetter and m.reason == "strategy_error"]
    assert len(errors) == 3  # two restarts, then the third failure disables it
    assert errors[0].detail["strategy"] == "boom" and "boom at bar" in errors[0].detail["error"]
    assert errors[0].raw  # the bar it choked on, msgpack-encoded
    assert helpers.Boom.instances == 3
    c = summary.metrics["counters"]
    assert c["strategy_errors_total{strategy=boom}"] == 3 and c["strategy_disabled_total"] == 1
    assert c["strategy_errors_total{strategy=ema}"] == 0
    assert (
        len([m for m in out if type(m) is Fill and m.strategy_id == "ema"]) > 5
    )  # the other one kept trading


@pytest.mark.asyncio
async def test_refinements_apply_and_late_forecasts_are_recorded_not_applied() -> None:
    helpers.SEEN.clear()
    msgs = [
        trade(T0),
        forecast("f5", 5, 1, 0.6, T0 + 1),
        forecast("f5", 5, 2, 0.7, T0 + 2),  # refinement of the held forecast: applied
        forecast("f7", 7, 1, 0.4, T0 + 3),
        forecast("f5", 5, 3, 0.9, T0 + 4),  # refinement of a superseded forecast: late
        forecast("f7", 7, 1, 0.4, T0 + 5),  # duplicate: late
    ]
    rec = {"id": "rec", "class": "tests.market.helpers:Recorder"}
    eng = build(script(msgs), host(rec))
    summary, out = await run(eng, "deadletter")
    seen = [e for e in helpers.SEEN["rec"] if e[0] == "forecast"]
    assert seen == [("forecast", "f5", 1), ("forecast", "f5", 2), ("forecast", "f7", 1)]
    assert [m.reason for m in out] == ["late_forecast", "late_forecast"]
    assert summary.metrics["counters"]["strategy_forecasts_late_total"] == 2


@pytest.mark.asyncio
async def test_forecast_threshold_targets_positions_from_probabilities() -> None:
    msgs = [trade(T0)]
    probs = [0.7, 0.3, 0.5, 0.52, 0.2]
    for i, p in enumerate(probs):
        msgs += [forecast(f"f{i}", i + 1, 1, p, T0 + (i + 1) * S), trade(T0 + (i + 1) * S + 1, 1640.0 + i)]
    ft = {
        "id": "ft",
        "class": "strategies.forecast_threshold:ForecastThreshold",
        "params": {"long_prob": 0.6, "short_prob": 0.4, "qty": 2},
    }
    eng = build(script(msgs), host(ft))
    _, out = await run(eng, "fill.>")
    fills = [(m.side, m.qty, m.price) for m in out if type(m) is Fill]
    # long 2, flip to short 2 (sell 4), flat (buy 2), unsure again (nothing), short 2 (sell 2)
    assert fills == [(1, 2.0, 1640.0), (-1, 4.0, 1641.0), (1, 2.0, 1642.0), (-1, 2.0, 1644.0)]


def test_performance_sharpe_and_drawdown() -> None:
    day = 86_400 * S
    curve = [(i * day, e) for i, e in enumerate([100.0, 110.0, 99.0, 120.0, 90.0, 95.0])]
    perf = performance(curve, 100.0)
    assert perf["max_drawdown"] == pytest.approx(30.0)
    assert perf["max_drawdown_pct"] == pytest.approx(0.25)
    assert perf["samples"] == 6
    flat = performance([(i * day, 100.0) for i in range(5)], 100.0)
    assert flat["max_drawdown"] == 0.0 and flat["sharpe"] != flat["sharpe"]  # NaN: no variance


@pytest.mark.asyncio
async def test_equity_is_sampled_once_per_bar_timestamp(tmp_path: Any) -> None:
    def tr(sym: str, ts: int, px: float) -> Trade:
        return Trade(symbol=sym, ts_event=ts, price=px, size=1.0)

    def br(sym: str, ts: int, px: float) -> Bar:
        return Bar(
            symbol=sym, ts_event=ts, ts_open=ts, open=px, high=px, low=px, close=px, volume=1.0, kind="tick"
        )

    msgs: list[Any] = []
    for day, (a, b) in enumerate([(10.0, 20.0), (11.0, 19.0), (12.0, 22.0)]):
        ts = T0 + day * 86_400 * S
        msgs += [tr("A", ts, a), br("A", ts, a), tr("B", ts, b), br("B", ts, b)]
    rec = {"id": "rec", "class": "tests.market.helpers:Recorder", "params": {"buy_on_bar": 1}}
    spec = {"symbol": "*", "tick_size": "0.01"}
    eng = build(
        script(msgs),
        host(rec, exchange={"default_instrument": spec}, results_path=str(tmp_path / "res.json")),
    )
    await run(eng)
    res = json.loads((tmp_path / "res.json").read_text())
    curve = res["strategies"]["rec"]["equity_curve"]
    # one point per day, taken after both symbols' prices of that day were known
    assert [t for t, _ in curve] == [T0 + d * 86_400 * S for d in range(3)]
    assert [e - 1_000_000 for _, e in curve] == pytest.approx([0.0, 1.0, 2.0])  # long 1 A bought at 10
    assert res["prices"]["B"] == [[T0 + d * 86_400 * S, p] for d, p in enumerate([20.0, 19.0, 22.0])]
