"""The epistemic-diversity circuit breaker (actors/diversity.py) and the strategy host's pause.

A synthetic herding scenario trips it (forecasters copying one signal while every strategy
piles into the same side) and it resets with hysteresis once diversity returns; diversity
collapse without crowding, or crowding without collapse, does not trip it.  While open, the
strategy host refuses the crowded strategies' new orders in that symbol but lets them reduce.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from actors.diversity import (
    DiversityBreaker,
    DiversityConfig,
    SymbolMonitor,
    consensus_share,
    crowding_index,
    mean_pairwise_correlation,
)
from actors.strategy_host import StrategyHost, StrategyHostConfig
from engine.config import loads_config
from engine.kernel import Engine
from engine.messages import Bar, BreakerState, Fill, Forecast, OrderReject, Trade
from engine.testing import Probe
from strategies.api import Strategy, StrategySpec

T0 = 1_700_000_000_000_000_000
MIN = 60_000_000_000
HERDERS = ("edge:m1", "cloud:llm", "peer:edge-2")


def test_figures() -> None:
    a = [1.0, 2.0, 3.0, 4.0]
    assert mean_pairwise_correlation({"a": list(a), "b": [2 * x for x in a]}, 3) == pytest.approx(1.0)
    assert mean_pairwise_correlation({"a": list(a), "b": [-x for x in a]}, 3) == pytest.approx(-1.0)
    assert math.isnan(mean_pairwise_correlation({"a": [1.0, None, 3.0], "b": [1.0, 2.0, None]}, 2))
    assert consensus_share([1, 1, -1, 0]) == pytest.approx(2 / 3)
    assert math.isnan(consensus_share([1, 0]))
    assert crowding_index({"s1": 1.0, "s2": 2.0}, 2) == pytest.approx(1.0)
    assert crowding_index({"s1": 1.0, "s2": -1.0}, 2) == 0.0
    assert crowding_index({"s1": 1.0}, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="hysteresis"):
        DiversityConfig(crowding_reset=0.9, crowding_trip=0.9)


def _scenario(
    *, herd: bool, crowd: bool, seed: int = 7, n: int = 420
) -> list[tuple[float, dict[str, float], dict[str, float]]]:
    """Per bar: (close, forecasters' points, strategies' positions).

    Bars 0-149 normal (independent forecasters, strategies on both sides); 150-299 the stress
    phase (``herd``: every forecaster copies one signal; ``crowd``: the strategies pile in
    long, one more lot each bar); 300+ normal again (positions back to mixed)."""
    rng = random.Random(seed)
    price = 100.0
    out = []
    for i in range(n):
        stress = 150 <= i < 300
        price *= math.exp(rng.gauss(0.0002 if stress else 0.0, 0.001))
        common = rng.gauss(2e-4, 1e-4)
        points = {
            name: (common + rng.gauss(0, 2e-6)) if herd and stress else rng.gauss(0, 1e-4) for name in HERDERS
        }
        k = min(i - 149, 10) if stress else 0
        positions = {"s1": 1.0 + k, "s2": -1.0 + 2 * k} if crowd and stress else {"s1": 1.0, "s2": -1.0}
        out.append((price, points, positions))
    return out


def _run(rows: list[Any], cfg: DiversityConfig) -> list[tuple[int, str]]:
    mon = SymbolMonitor(cfg, "ES")
    changes = []
    for i, (close, points, positions) in enumerate(rows):
        for name, p in points.items():
            mon.on_forecast(name, p)
        mon.on_bar(close, positions, 2)
        change = mon.decide()
        if change is not None:
            changes.append((i, change))
    return changes


def test_herding_with_rising_crowding_trips_and_resets_with_hysteresis() -> None:
    changes = _run(_scenario(herd=True, crowd=True), DiversityConfig())
    assert [c for _, c in changes] == ["open", "closed"], changes
    (opened, _), (closed, _) = changes
    assert 150 < opened < 150 + DiversityConfig().window, opened  # within a window of herding
    # Closed only after the stress ends and reset_after calm evaluations, not before.
    assert closed >= 300 + DiversityConfig().reset_after - 1, closed


@pytest.mark.parametrize(("herd", "crowd"), [(True, False), (False, True), (False, False)])
def test_no_trip_without_both_collapse_and_crowding(herd: bool, crowd: bool) -> None:
    assert _run(_scenario(herd=herd, crowd=crowd), DiversityConfig()) == []


class _Flipper(Strategy[Any]):
    """On every bar: buys one lot when flat or short, sells one when long."""

    def on_bar(self, bar: Bar) -> None:
        self.ctx.submit_order(bar.symbol, -1 if self.ctx.position(bar.symbol) > 0 else 1, 1.0)


def _forecasts(i: int, points: dict[str, float]) -> list[Forecast]:
    out = []
    for name, p in points.items():
        tier, model = name.split(":")
        out.append(
            Forecast(
                forecast_id=f"{name}-{i}", symbol="ES", horizon="1m", basis_seq=i, ts_event=T0 + i * MIN,
                tier="cloud" if tier == "cloud" else "edge", model_id=model,
                version=2 if tier == "cloud" else 1, point=p,
            )
        )  # fmt: skip
    return out


def _bar(i: int, close: float) -> Bar:
    ts = T0 + i * MIN
    return Bar(
        symbol="ES", ts_event=ts, ts_open=ts - MIN, open=close, high=close, low=close, close=close, volume=1.0
    )


async def _until(pred: Any, what: str) -> None:
    for _ in range(500):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


@pytest.mark.asyncio
async def test_the_breaker_actor_trips_on_the_herding_scenario_and_says_why() -> None:
    engine = Engine(loads_config('[engine]\nnode_id = "n1"\n', path="<breaker>"))
    cfg = DiversityConfig(n_strategies=2)
    engine.add_actor("breaker", DiversityBreaker, cfg, subscribe=["forecast.>", "bar.>", "fill.>"])
    probe = Probe(engine.bus, "control.breaker")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    rows = _scenario(herd=True, crowd=True, n=260)
    try:
        await asyncio.wait_for(engine.runtime.wait_started(), 10)
        prev = {"s1": 0.0, "s2": 0.0}
        for i, (close, points, positions) in enumerate(rows):
            for fc in _forecasts(i, points):
                engine.bus.publish("forecast.ES", fc)
            for sid, pos in positions.items():  # the positions, as the fills that changed them
                if pos != prev[sid]:
                    fill = Fill(
                        order_id=f"{sid}-{i}", strategy_id=sid, symbol="ES",
                        side=1 if pos > prev[sid] else -1, qty=abs(pos - prev[sid]), price=close,
                        ts_event=T0 + i * MIN,
                    )  # fmt: skip
                    engine.bus.publish(f"fill.{sid}", fill)
                    prev[sid] = pos
            engine.bus.publish("bar.ES", _bar(i, close))
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        got: list[Any] = []
        await _until(lambda: got.extend(probe.drain()) or got, "no breaker state published")
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(task, 20)
    assert [m.state for m in got] == ["open"]
    state = got[0]
    assert isinstance(state, BreakerState) and state.symbols == ("ES",)
    assert set(state.strategies) == {"s1", "s2"} and state.forecasters == 5  # 3 herders + 2 baselines
    assert state.correlation >= 0.9 and state.crowding >= 0.9 and "diversity collapsed on ES" in state.reason
    assert T0 + 150 * MIN < state.ts_event < T0 + 210 * MIN
    assert engine.metrics.counter("diversity_breaker_trips_total", actor="breaker").value == 1


@pytest.mark.asyncio
async def test_the_host_refuses_new_orders_of_paused_strategies_but_lets_them_reduce() -> None:
    engine = Engine(loads_config('[engine]\nnode_id = "n1"\n', path="<host>"))
    flipper = "tests.ops.test_diversity_breaker:_Flipper"
    host_cfg = StrategyHostConfig(
        strategies=(StrategySpec(id="s1", cls=flipper), StrategySpec(id="s2", cls=flipper))
    )
    engine.add_actor("host", StrategyHost, host_cfg, subscribe=["md.>", "bar.>", "control.breaker"])
    probe = Probe(engine.bus, "fill.>")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    seq = 0

    def step(i: int) -> None:
        nonlocal seq
        for dt in (-1, 0, 1):  # a trade before (market data to order against), the bar, one after
            if dt == 0:
                engine.bus.publish("bar.ES", _bar(i, 100.0))
                continue
            seq += 1
            trade = Trade(symbol="ES", ts_event=T0 + i * MIN + dt, seq=seq, price=100.0, size=50.0)
            engine.bus.publish("md.ES", trade)

    def paused() -> float:
        return engine.metrics.counter("strategy_orders_paused_total", strategy="s1").value

    try:
        await asyncio.wait_for(engine.runtime.wait_started(), 10)
        step(0)  # both buy one lot, filled by the trade
        await _until(lambda: _pos(engine, "s1") > 0, "s1 long")
        open_ = BreakerState(breaker_id="b", ts_event=T0, state="open", strategies=("s1",), symbols=("ES",))
        engine.bus.publish("control.breaker", open_)
        step(1)  # s1 is long: its sell only reduces -> allowed; s2 sells too
        await _until(lambda: _pos(engine, "s1") == 0, "s1 reduced to flat")
        step(2)  # s1 flat: its buy is new risk -> refused; s2 (not paused) buys
        await _until(lambda: paused() == 1 and _pos(engine, "s2") > 0, "s1's buy refused, s2's filled")
        assert _pos(engine, "s1") == 0
        engine.bus.publish("control.breaker", BreakerState(
            breaker_id="b2", ts_event=T0, state="closed", strategies=("s1",), symbols=("ES",)))  # fmt: skip
        step(3)
        await _until(lambda: _pos(engine, "s1") > 0, "s1 trades again once closed")
        rejects = [m for m in probe.drain() if isinstance(m, OrderReject)]
        assert [r.strategy_id for r in rejects] == ["s1"] and rejects[0].reason.startswith("breaker_open")
        assert paused() == 1
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(task, 20)


def _pos(engine: Engine, sid: str) -> float:
    host = engine.cells["host"].actor
    assert isinstance(host, StrategyHost)
    return float(host.exchange.position(sid, "ES"))
