"""The degradation controller: pure core (with hysteresis properties), snapshots, the actor."""

from __future__ import annotations

import asyncio
import itertools
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.degradation import (
    MODES,
    ActorLoad,
    CarbonAdvice,
    CarbonPolicyConfig,
    ControllerState,
    DegradationConfig,
    DegradationController,
    Levels,
    LoadSnapshot,
    SnapshotBuilder,
    VolatilityConfig,
    VolatilityRegime,
    adopt,
    carbon_advice,
    evaluate,
    mode_level,
)
from adapters.carbon import CarbonFeedConfig
from engine.actor import Actor, NoConfig
from engine.clock import SimClock
from engine.config import EngineConfig, EngineSection
from engine.kernel import Engine
from engine.mailbox import Mailbox
from engine.messages import Forecast, Mode, ModeChange, json_decoder, json_encoder
from engine.metrics import Metrics
from engine.supervisor import ChildSpec
from engine.testing import Probe, capture_logs

S = 1_000_000_000
# The core's mechanics are shown with mailbox fill alone, so load may ask for any mode here;
# the default ceiling has its own tests below.
CFG = DegradationConfig(min_dwell_s=2.0, cool_down_s=1.0, exit_ratio=0.6, load_ceiling=Mode.SURVIVAL)


def snap(t_s: float, fill: float = 0.0, **kw: object) -> LoadSnapshot:
    """A snapshot whose only pressure is one mailbox at ``fill`` of its capacity."""
    return LoadSnapshot(
        ts_ns=round(t_s * S),
        actors=(ActorLoad(name="edge", depth=int(fill * 1000), capacity=1000),),
        **kw,  # type: ignore[arg-type]
    )


def run(cfg: DegradationConfig, snaps: list[LoadSnapshot]) -> list[tuple[int, int, int]]:
    """Feed ``snaps`` in order; return (ts_ns, previous, new) for every change."""
    state = ControllerState(since_ns=snaps[0].ts_ns if snaps else 0)
    changes = []
    for s in snaps:
        d = evaluate(cfg, state, s)
        if d.changed:
            changes.append((s.ts_ns, d.previous, d.state.mode))
        state = d.state
    return changes


# --- levels and config -----------------------------------------------------------


def test_levels_count_thresholds_reached_and_reject_decreasing() -> None:
    lv = Levels(0.5, 0.8, 0.95)
    assert [lv.level(v) for v in (0.0, 0.49, 0.5, 0.8, 0.95, 3.0, math.nan)] == [0, 0, 1, 2, 3, 3, 0]
    assert lv.level(0.35, scale=0.6) == 1  # 0.35 >= 0.5 * 0.6
    with pytest.raises(ValueError, match="non-decreasing"):
        Levels(0.9, 0.5, 0.95)


def test_config_converts_from_toml_shapes_and_rejects_unknown_keys() -> None:
    cfg = msgspec.convert(
        {
            "mailbox_fill": {"conserve": 0.4, "degraded": 0.7, "survival": 0.9},
            "latency_objectives_us": {"edge": 500},
        },
        DegradationConfig,
    )
    assert cfg.mailbox_fill.degraded == 0.7 and cfg.latency_objectives_us == {"edge": 500.0}
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"interval": 3}, DegradationConfig)
    with pytest.raises(msgspec.ValidationError, match="exit_ratio"):
        msgspec.convert({"exit_ratio": 1.5}, DegradationConfig)


def test_mode_names_levels_and_wire_form() -> None:
    assert MODES == ("NORMAL", "CONSERVE", "DEGRADED", "SURVIVAL") == tuple(Mode)
    assert [mode_level(m) for m in MODES] == [0, 1, 2, 3] == [Mode.at_level(i).level for i in range(4)]
    with pytest.raises(ValueError, match="unknown mode"):
        mode_level("PANIC")
    with pytest.raises(ValueError, match="mode level"):
        Mode.at_level(4)
    # A ModeChange encodes as it did when modes were plain strings, and refuses unknown ones.
    mc = ModeChange(mode=Mode.DEGRADED, previous="NORMAL", reason="r", ts_event=1)
    wire = b'{"type":"mode","mode":"DEGRADED","previous":"NORMAL","reason":"r","ts_event":1}'
    assert json_encoder.encode(mc) == wire and json_decoder.decode(wire) == mc
    with pytest.raises(msgspec.ValidationError, match="mode"):
        json_decoder.decode(wire.replace(b'"DEGRADED"', b'"PANIC"'))
    assert DegradationConfig(abandoned_floor=Mode.SURVIVAL).abandoned_floor.level == 3
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"abandoned_floor": "PANIC"}, DegradationConfig)


# --- the pure core -------------------------------------------------------------------


def test_escalates_at_once_to_the_level_reached() -> None:
    d = evaluate(CFG, ControllerState(), snap(0.1, fill=0.85))
    assert d.changed and d.mode == "DEGRADED" and "mailbox edge fill 850/1000" in d.reason
    d2 = evaluate(CFG, d.state, snap(0.2, fill=0.97))
    assert d2.changed and d2.mode == "SURVIVAL" and d2.previous == 2


def test_steps_down_one_mode_at_a_time_after_dwell_and_cool_down() -> None:
    snaps = [snap(0.0, fill=0.99)] + [snap(t / 10, fill=0.0) for t in range(1, 200)]
    changes = run(CFG, snaps)
    assert [(p, n) for _, p, n in changes] == [(0, 3), (3, 2), (2, 1), (1, 0)]
    times = [t / S for t, _, _ in changes]
    # each down-step waits max(dwell 2 s, cool-down 1 s) after the previous change
    assert all(b - a >= 2.0 - 1e-9 for a, b in itertools.pairwise(times))
    assert times[-1] == pytest.approx(6.0, abs=0.11)


def test_signal_inside_the_hysteresis_band_never_changes_the_mode() -> None:
    # enter DEGRADED at 0.8; exit below 0.8 * 0.6 = 0.48: anything in [0.48, 0.8) holds DEGRADED
    state = evaluate(CFG, ControllerState(), snap(0.0, fill=0.85)).state
    for i, fill in enumerate([0.79, 0.5, 0.6, 0.48, 0.7, 0.49] * 20):
        d = evaluate(CFG, state, snap(0.5 + i * 0.25, fill=fill))
        assert not d.changed, (i, fill)
        state = d.state
    assert MODES[state.mode] == "DEGRADED"


def test_a_short_calm_spell_does_not_step_down() -> None:
    state = evaluate(CFG, ControllerState(), snap(0.0, fill=0.85)).state
    # calm for 0.9 s after the dwell, then pressure inside the band again: calm clock resets
    seq = (
        [snap(2.0 + k * 0.1, 0.0) for k in range(9)]
        + [snap(3.0, 0.6)]
        + [snap(3.1 + k * 0.1, 0.0) for k in range(9)]
    )
    for s in seq:
        d = evaluate(CFG, state, s)
        assert not d.changed
        state = d.state
    d = evaluate(CFG, state, snap(4.1, 0.0))
    assert d.changed and d.mode == "CONSERVE" and "below the DEGRADED exit thresholds" in d.reason


def test_shed_latency_lag_and_cloud_signals() -> None:
    shed = LoadSnapshot(ts_ns=S, actors=(ActorLoad(name="edge", offered=1000, shed=150),))
    assert evaluate(CFG, ControllerState(), shed).mode == "DEGRADED"
    # a single shed on a quiet mailbox divides by min_offered: 1/50 = 0.02 -> CONSERVE only
    quiet = LoadSnapshot(ts_ns=S, actors=(ActorLoad(name="edge", offered=1, shed=1),))
    assert evaluate(CFG, ControllerState(), quiet).mode == "CONSERVE"
    slow = LoadSnapshot(ts_ns=S, actors=(ActorLoad(name="edge", latency_us=900.0, objective_us=200.0),))
    d = evaluate(CFG, ControllerState(), slow)
    assert d.mode == "SURVIVAL" and "edge latency 900 us vs objective 200 us" in d.reason
    unset = LoadSnapshot(ts_ns=S, actors=(ActorLoad(name="edge", latency_us=900.0),))
    assert not evaluate(CFG, ControllerState(), unset).changed
    assert evaluate(CFG, ControllerState(), LoadSnapshot(ts_ns=S, loop_lag_us=25_000)).mode == "DEGRADED"
    cloud = LoadSnapshot(ts_ns=S, cloud_requests=20, cloud_errors=6, cloud_latency_ms=100.0)
    d = evaluate(CFG, ControllerState(), cloud)
    assert d.mode == "DEGRADED" and "cloud errors 6 of 20" in d.reason
    slow_cloud = LoadSnapshot(ts_ns=S, cloud_requests=20, cloud_latency_ms=30_000.0)
    assert evaluate(CFG, ControllerState(), slow_cloud).mode == "SURVIVAL"


def test_abandoned_actor_holds_at_least_degraded() -> None:
    state = ControllerState()
    for k in range(100):
        d = evaluate(CFG, state, LoadSnapshot(ts_ns=k * S, abandoned=1))
        state = d.state
    assert MODES[state.mode] == "DEGRADED" and state.changes == 1


def test_adopt_an_external_mode_restarts_the_dwell() -> None:
    st_ = adopt(ControllerState(), "DEGRADED", 5 * S)
    assert st_.mode == 2 and st_.since_ns == 5 * S
    assert adopt(st_, "DEGRADED", 9 * S) is st_
    assert not evaluate(CFG, st_, snap(6.0)).changed  # dwell from the adoption, not from 0


# --- carbon-aware policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("g", "regime", "ahead", "advice"),
    [
        (None, "low", None, CarbonAdvice.RUN),
        (300.0, "low", None, CarbonAdvice.RUN),
        (450.0, "low", None, CarbonAdvice.DOWNGRADE),
        (450.0, "low", 300.0, CarbonAdvice.DEFER),
        (450.0, "low", 400.0, CarbonAdvice.DOWNGRADE),  # 400 is not 20% greener
        (450.0, "normal", 200.0, CarbonAdvice.RUN),
        (650.0, "normal", None, CarbonAdvice.DOWNGRADE),
        (900.0, "high", 100.0, CarbonAdvice.RUN),
    ],
)
def test_carbon_advice(g: float | None, regime: str, ahead: float | None, advice: CarbonAdvice) -> None:
    assert carbon_advice(g, regime, CarbonPolicyConfig(), min_ahead=ahead) is advice


def test_carbon_policy_drives_conserve_with_its_own_hysteresis() -> None:
    cfg = DegradationConfig(min_dwell_s=0.0, cool_down_s=0.0)
    d = evaluate(cfg, ControllerState(), snap(1.0, carbon_g_per_kwh=420.0, volatility_regime="low"))
    assert d.mode == "CONSERVE" and d.carbon is CarbonAdvice.DOWNGRADE and "carbon 420.0" in d.reason
    # 380 is under the enter threshold (400) but above the exit one (360): holds
    d = evaluate(cfg, d.state, snap(2.0, carbon_g_per_kwh=380.0, volatility_regime="low"))
    assert not d.changed and d.mode == "CONSERVE"
    d2 = evaluate(cfg, d.state, snap(3.0, carbon_g_per_kwh=380.0, volatility_regime="high"))
    assert d2.changed and d2.mode == "NORMAL"  # volatile markets: refinements pay, carbon or not
    d3 = evaluate(cfg, d.state, snap(3.0, carbon_g_per_kwh=350.0, volatility_regime="low"))
    assert d3.changed and d3.mode == "NORMAL"
    off = DegradationConfig(carbon=CarbonPolicyConfig(enabled=False))
    assert not evaluate(
        off, ControllerState(), snap(1.0, carbon_g_per_kwh=900.0, volatility_regime="low")
    ).changed


# --- hysteresis properties ---------------------------------------------------------

_steps = st.lists(
    st.tuples(st.integers(min_value=1, max_value=2_000), st.floats(min_value=0.0, max_value=1.0)),
    min_size=1,
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=_steps,
    dwell_ms=st.integers(min_value=0, max_value=3_000),
    cool_ms=st.integers(min_value=0, max_value=3_000),
    exit_ratio=st.floats(min_value=0.3, max_value=1.0),
)
def test_hysteresis_invariants(
    steps: list[tuple[int, float]], dwell_ms: int, cool_ms: int, exit_ratio: float
) -> None:
    cfg = DegradationConfig(
        min_dwell_s=dwell_ms / 1000,
        cool_down_s=cool_ms / 1000,
        exit_ratio=exit_ratio,
        load_ceiling=Mode.SURVIVAL,
    )
    t = 0
    state = ControllerState()
    last_change = 0
    calm_from: int | None = 0
    for dt_ms, fill in steps:
        t += dt_ms * 1_000_000
        s = snap(t / S, fill=fill)
        enter = cfg.mailbox_fill.level(s.actors[0].depth / 1000)
        hold = cfg.mailbox_fill.level(s.actors[0].depth / 1000, exit_ratio)
        # the model of the calm clock: when did the signal last go below the current exit threshold
        model_calm = None if hold >= state.mode else (calm_from if calm_from is not None else t)
        d = evaluate(cfg, state, s)
        if enter <= state.mode <= hold:
            # nothing changes while the signal sits in [exit, enter) of the current mode
            assert not d.changed
        if d.changed and d.state.mode > state.mode:
            # up: straight to the level the signal reached, and only when it exceeds the mode
            assert d.state.mode == enter > state.mode
        elif d.changed:
            # down: exactly one mode, only when the signal is below the exit threshold,
            # after the dwell and after cool_down of uninterrupted calm
            assert d.state.mode == state.mode - 1
            assert hold < state.mode
            assert t - last_change >= dwell_ms * 1_000_000
            assert model_calm is not None and t - model_calm >= cool_ms * 1_000_000
        else:
            assert d.state.mode == state.mode
        if d.changed:
            last_change = t
            calm_from = t if d.state.mode < state.mode else None
        else:
            calm_from = model_calm
        assert 0 <= d.state.mode <= 3
        state = d.state


@settings(max_examples=100, deadline=None)
@given(
    period_ms=st.integers(min_value=10, max_value=1_500),
    high=st.floats(min_value=0.5, max_value=1.0),
    n=st.integers(min_value=10, max_value=400),
)
def test_oscillating_load_cannot_make_it_flap(period_ms: int, high: float, n: int) -> None:
    """A load that swings faster than the dwell changes the mode at most about once per dwell."""
    cfg = DegradationConfig(min_dwell_s=2.0, cool_down_s=1.0)
    snaps = [snap(i * period_ms / 1000, fill=high if i % 2 == 0 else 0.0) for i in range(n)]
    changes = run(cfg, snaps)
    duration_s = n * period_ms / 1000
    downs = [c for c in changes if c[2] < c[1]]
    assert len(downs) <= duration_s / 2.0 + 1
    assert len(changes) <= 2 * len(downs) + 1


@settings(max_examples=100, deadline=None)
@given(fills=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50))
def test_always_returns_to_normal_once_the_load_is_gone(fills: list[float]) -> None:
    snaps = [snap(i * 0.1, fill=f) for i, f in enumerate(fills)]
    t0 = len(fills) * 0.1
    snaps += [snap(t0 + i * 0.1, fill=0.0) for i in range(1, 3 * 21 + 2)]
    state = ControllerState()
    for s in snaps:
        state = evaluate(CFG, state, s).state
    assert state.mode == 0


# --- snapshots from a real registry and mailboxes -----------------------------------


def test_snapshot_builder_reports_windows_not_totals() -> None:
    cfg = DegradationConfig(latency_objectives_us={"edge": 100.0})
    metrics = Metrics()
    mb: Mailbox[int] = Mailbox(10, "drop_newest", name="edge")
    own: Mailbox[int] = Mailbox(10, "conflate", name="ctl", key=lambda m: m)
    b = SnapshotBuilder(cfg, ignore=("ctl",))
    for i in range(15):
        mb.offer(i)
    metrics.histogram("handler_latency_us", actor="edge").observe(50.0)
    metrics.counter("shed_total", actor="edge", reason="stale").inc(2)
    metrics.counter("cloud_requests_total").inc(10)
    metrics.counter("cloud_errors_total", kind="timeout").inc(3)
    metrics.histogram("cloud_latency_ms").observe(1200.0)
    metrics.histogram("loop_lag_us").observe(700.0)
    s1 = b.build(1, {"edge": mb.statistics(), "ctl": own.statistics()}, metrics)
    (edge,) = s1.actors
    assert (edge.depth, edge.capacity, edge.offered, edge.shed) == (10, 10, 15, 5 + 2)
    assert edge.latency_us == pytest.approx(50.0) and edge.objective_us == 100.0
    assert (s1.cloud_requests, s1.cloud_errors, s1.cloud_latency_ms) == (10, 3, pytest.approx(1200.0))
    assert s1.loop_lag_us == pytest.approx(700.0)
    mb.drain(10)
    for i in range(3):
        mb.offer(i)
    metrics.histogram("handler_latency_us", actor="edge").observe(250.0)
    metrics.counter("actors_abandoned_total").inc()
    s2 = b.build(2, {"edge": mb.statistics()}, metrics)
    (edge,) = s2.actors
    assert (edge.depth, edge.offered, edge.shed) == (3, 3, 0)
    assert edge.latency_us == pytest.approx(250.0)  # this window only, not the lifetime mean
    assert (s2.cloud_requests, s2.cloud_errors, s2.abandoned) == (0, 0, 1)
    assert math.isnan(s2.cloud_latency_ms)


def test_volatility_regime() -> None:
    v = VolatilityRegime(VolatilityConfig(fast_halflife=5, slow_halflife=200, warmup=20))
    for _ in range(100):
        v.observe(0.01)
    assert v.regime == "normal"
    for _ in range(30):
        v.observe(0.03)
    assert v.regime == "high"
    for _ in range(60):
        v.observe(0.003)
    assert v.regime == "low"
    v.observe(math.nan)
    v.observe(-1.0)
    assert v.n == 190


# --- the actor in an engine --------------------------------------------------------


async def _timer_armed(clock: SimClock) -> None:
    """Wait until the controller's on_start has armed its timer (it may load a file first)."""
    for _ in range(500):
        if clock.next_timer_ns is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the controller never armed its timer")


@pytest.mark.asyncio
async def test_controller_actor_publishes_mode_changes_and_sets_the_bus_mode(
    sim_engine: Engine, running: object
) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    cfg = DegradationConfig(
        interval_ms=100, min_dwell_s=0.5, cool_down_s=0.2, measure_lag=False, load_ceiling=Mode.SURVIVAL
    )
    # a stand-in for a slow edge stage: a mailbox nobody drains
    edge_mb: Mailbox[object] = Mailbox(100, "drop_newest", name="edge")
    engine.bus.subscribe("md.>", edge_mb)
    cls = DegradationController.with_stats_source(
        lambda: {**engine.mailbox_statistics(), "edge": edge_mb.statistics()}
    )
    engine.add_actor(
        "degradation",
        cls,
        cfg,
        mailbox=Mailbox(64, "conflate", name="degradation", key=lambda m: getattr(m, "symbol", "")),
        subscribe=["forecast.>"],
    )
    probe = Probe(engine.bus, "control.mode")
    running(engine)  # type: ignore[operator]
    await _timer_armed(clock)
    ctl = engine.cells["degradation"].actor
    assert isinstance(ctl, cls)
    for i in range(400):
        engine.bus.publish("md.ES", i)
    clock.advance_to(clock.now_ns() + 100_000_000)
    changes = [m for m in probe.drain() if isinstance(m, ModeChange)]
    assert [c.mode for c in changes] == ["SURVIVAL"]
    assert engine.runtime.mode == "SURVIVAL" and "shed 300 of 400" in changes[0].reason
    # the load goes away: one step per max(dwell, cool-down), back to NORMAL
    edge_mb.drain(100)
    for _ in range(30):
        clock.advance_to(clock.now_ns() + 100_000_000)
    modes = [m.mode for m in probe.drain()]
    assert modes == ["DEGRADED", "CONSERVE", "NORMAL"] and engine.runtime.mode == "NORMAL"
    assert [h.mode for h in ctl.history] == ["SURVIVAL", "DEGRADED", "CONSERVE", "NORMAL"]
    assert engine.metrics.gauge("degradation_mode").value == 0
    assert engine.metrics.counter("mode_changes_total", mode="SURVIVAL").value == 1
    # forecasts feed the volatility regime
    ts = clock.now_ns()
    for i in range(200):
        vol = 0.01 if i < 150 else 0.05
        f = Forecast(
            forecast_id=str(i), symbol=f"S{i}", horizon="1m", basis_seq=i, ts_event=ts, volatility=vol
        )
        engine.bus.publish(f"forecast.S{i}", f)
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    assert ctl.volatility_regime == "high"


@pytest.mark.asyncio
async def test_controller_reads_a_carbon_file(
    sim_engine: Engine, running: object, carbon_dir: object
) -> None:
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    # 2024-06-03 18:00 UTC in the sample is 495.9 gCO2e/kWh; replay a 2013 date by time of day
    clock.advance_to(1_378_231_200 * S)  # 2013-09-03 18:00:00 UTC
    feed = CarbonFeedConfig(path=f"{carbon_dir}/electricitymaps-history-sample.json", align="time_of_day")
    cfg = DegradationConfig(interval_ms=100, carbon_feed=feed, measure_lag=False)
    engine.add_actor("degradation", DegradationController, cfg, subscribe=["forecast.>"])
    probe = Probe(engine.bus, "control.mode")
    running(engine)  # type: ignore[operator]
    await _timer_armed(clock)
    ctl = engine.cells["degradation"].actor
    assert isinstance(ctl, DegradationController)
    ctl._vol = VolatilityRegime(VolatilityConfig(warmup=0, low_ratio=2.0))  # force a calm market
    ctl._vol.observe(0.01)
    clock.advance_to(clock.now_ns() + 100_000_000)
    (mc,) = probe.drain()
    assert mc.mode == "CONSERVE" and "carbon 495.9" in mc.reason
    assert engine.metrics.gauge("carbon_intensity_g_per_kwh").value == pytest.approx(495.9)


@pytest.mark.asyncio
async def test_a_missing_carbon_file_fails_the_start_loudly(tmp_path: object) -> None:
    engine = Engine(EngineConfig(engine=EngineSection(clock="sim", root_max_restarts=0)))
    feed = CarbonFeedConfig(path=f"{tmp_path}/nope.json")
    engine.add_actor("degradation", DegradationController, DegradationConfig(carbon_feed=feed))
    with capture_logs() as logs:
        summary = await asyncio.wait_for(engine.run(install_signals=False), 10)
    assert summary.exit_code == 1
    failed = [e for e in logs if e["event"] == "child_failed"]
    assert failed and "nope.json: cannot read" in failed[0]["error"]


def test_load_alone_asks_for_degraded_at_most_by_default() -> None:
    # 3x demand, a full mailbox and 90% of offers shed: DEGRADED answers load (conflation, the
    # front door shedding its oldest input); only distress may ask for the cheaper model.
    cfg = DegradationConfig(min_dwell_s=0.0, cool_down_s=0.0)
    flood = ActorLoad(
        name="feed", depth=8, capacity=8, offered=1000, shed=900, offered_per_s=3000.0, capacity_per_s=1000.0
    )
    d = evaluate(cfg, ControllerState(), LoadSnapshot(ts_ns=S, actors=(flood,)))
    assert d.mode == "DEGRADED" and d.pressure == 2
    assert {"mailbox feed fill 8/8", "feed shed 900 of 1000 offered"} <= set(d.reasons)
    # the same load held for long does not creep up either
    d2 = evaluate(cfg, d.state, LoadSnapshot(ts_ns=9 * S, actors=(flood,)))
    assert not d2.changed and d2.mode == "DEGRADED"
    # distress on top of it does: loop lag past the SURVIVAL threshold
    d3 = evaluate(cfg, d2.state, LoadSnapshot(ts_ns=10 * S, actors=(flood,), loop_lag_us=150_000))
    assert d3.changed and d3.mode == "SURVIVAL" and d3.reasons == ("loop lag 150000 us",)
    # and a ceiling of SURVIVAL lets load alone ask for it, as before
    wide = DegradationConfig(min_dwell_s=0.0, cool_down_s=0.0, load_ceiling=Mode.SURVIVAL)
    assert evaluate(wide, ControllerState(), LoadSnapshot(ts_ns=S, actors=(flood,))).mode == "SURVIVAL"


def test_demand_holds_a_degraded_mode_while_the_node_copes() -> None:
    cfg = DegradationConfig(min_dwell_s=0.0, cool_down_s=0.0, load_ceiling=Mode.SURVIVAL)
    over = ActorLoad(name="edge", offered_per_s=3000.0, capacity_per_s=1000.0)
    d = evaluate(cfg, ControllerState(), LoadSnapshot(ts_ns=S, actors=(over,)))
    assert d.mode == "SURVIVAL" and "edge demand 3,000/s vs capacity 1,000/s" in d.reason
    # coping thanks to the small model (no sheds, empty mailbox), demand still 1.5x capacity:
    # above the SURVIVAL exit threshold (2.0 x 0.6), so no step down into an overload
    coping = ActorLoad(name="edge", depth=0, capacity=100, offered_per_s=1500.0, capacity_per_s=1000.0)
    d2 = evaluate(cfg, d.state, LoadSnapshot(ts_ns=2 * S, actors=(coping,)))
    assert not d2.changed and d2.mode == "SURVIVAL"
    calm = ActorLoad(name="edge", offered_per_s=300.0, capacity_per_s=1000.0)
    d3 = evaluate(cfg, d2.state, LoadSnapshot(ts_ns=3 * S, actors=(calm,)))
    assert d3.changed and d3.mode == "DEGRADED"


def test_snapshot_builder_offered_rate_per_window() -> None:
    cfg = DegradationConfig(capacity_per_s={"edge": 500.0})
    mb: Mailbox[int] = Mailbox(10_000, "drop_newest", name="edge")
    b = SnapshotBuilder(cfg)
    assert b.build(0, {"edge": mb.statistics()}, Metrics()).actors[0].offered_per_s == 0.0
    for i in range(250):
        mb.offer(i)
    (edge,) = b.build(S // 2, {"edge": mb.statistics()}, Metrics()).actors
    assert edge.offered_per_s == pytest.approx(500.0) and edge.capacity_per_s == 500.0


def test_a_full_block_mailbox_overflowing_is_load_shedding() -> None:
    # A sync publish into a full `block` mailbox sheds as "overflow": the controller must see it.
    mb: Mailbox[int] = Mailbox(10, "block", name="edge")
    b = SnapshotBuilder(DegradationConfig())
    for i in range(40):
        mb.offer(i)
    (edge,) = b.build(S, {"edge": mb.statistics()}, Metrics()).actors
    assert mb.statistics().shed_by_reason == {"overflow": 30}
    assert (edge.offered, edge.shed) == (40, 30)


@pytest.mark.asyncio
@pytest.mark.parametrize(("wall", "expected"), [("auto", []), ("on", ["SURVIVAL"])])
async def test_wall_clock_signals_are_ignored_on_a_simulated_clock(
    sim_engine: Engine, running: object, wall: str, expected: list[str]
) -> None:
    """A replay must not change mode because the machine was slow: that would break determinism."""
    engine = sim_engine
    clock = engine.clock
    assert isinstance(clock, SimClock)
    cfg = msgspec.convert({"interval_ms": 100, "wall_clock_signals": wall}, DegradationConfig)
    engine.add_actor("degradation", DegradationController, cfg)
    probe = Probe(engine.bus, "control.mode")
    running(engine)  # type: ignore[operator]
    await _timer_armed(clock)
    engine.metrics.histogram("loop_lag_us").observe(500_000.0)
    clock.advance_to(clock.now_ns() + 100_000_000)
    assert [m.mode for m in probe.drain()] == expected


class _Crasher(Actor[NoConfig]):
    """Fails on every message: its supervisor gives up on it."""

    def on_message(self, msg: object) -> None:
        raise RuntimeError("broken on purpose")


@pytest.mark.asyncio
async def test_an_abandoned_actor_keeps_the_node_degraded(running: object) -> None:
    """The engine's abandon path (a supervisor gives up on a non-critical actor) and the controller agree."""
    engine = Engine(EngineConfig(engine=EngineSection(clock="sim", root_max_restarts=0)))
    clock = engine.clock
    assert isinstance(clock, SimClock)
    cfg = DegradationConfig(interval_ms=100, min_dwell_s=0.2, cool_down_s=0.1)
    engine.add_actor("degradation", DegradationController, cfg)
    engine.add_actor("crasher", _Crasher, subscribe=["junk"], child=ChildSpec(critical=False))
    probe = Probe(engine.bus, "control.mode")
    running(engine)  # type: ignore[operator]
    await _timer_armed(clock)
    engine.bus.publish("junk", 1)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if engine.runtime.mode != "NORMAL":
            break
    assert engine.runtime.mode == "DEGRADED"
    for _ in range(30):  # 3 s of quiet: the floor holds, no step down
        clock.advance_to(clock.now_ns() + 100_000_000)
    assert engine.runtime.mode == "DEGRADED"
    modes = [m.mode for m in probe.drain()]
    assert modes == ["DEGRADED"]  # the engine's change; the controller adopted it and stayed
    ctl = engine.cells["degradation"].actor
    assert isinstance(ctl, DegradationController) and ctl.last_decision is not None
    assert "1 actor(s) abandoned" in ctl.last_decision.reason


# --- what the product actors do per mode (the edge's are in tests/edge, the cloud's in tests/cloud) ---


class _FakeEmbedder:
    """Stands in for MiniLM (seconds to load): one fixed unit vector per text, calls counted."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> object:
        import numpy as np

        self.calls += 1
        return np.full((len(texts), 4), 0.5, dtype=np.float32)


@pytest.mark.asyncio
async def test_narrative_skips_embeddings_from_degraded_and_keeps_deduplicating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actors.narrative import NarrativeIngest, NarrativeIngestConfig
    from adapters.text.checker import AnalysedNews, Analyzer, AnalyzerConfig
    from engine.messages import NewsItem
    from engine.testing import FakeClock

    embedder = _FakeEmbedder()

    def with_models(cls: type[Analyzer], config: AnalyzerConfig | None = None, **_: object) -> Analyzer:
        return cls(config, embedder=embedder)  # type: ignore[arg-type]

    monkeypatch.setattr(Analyzer, "with_models", classmethod(with_models))
    engine = Engine(EngineConfig(engine=EngineSection(clock="sim")), clock=FakeClock(0))
    cfg = NarrativeIngestConfig(analyzer=AnalyzerConfig(sentiment="lexicon"))
    engine.add_actor("narrative", NarrativeIngest, cfg, subscribe=["news.raw"])
    probe = Probe(engine.bus, "news.analysed")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))

    async def ingest(i: int, headline: str) -> AnalysedNews:
        item = NewsItem(id=f"n{i}", ts_event=i * S, source=f"wire{i}", headline=headline)
        engine.bus.publish("news.raw", item)
        for _ in range(1000):
            out = probe.drain()
            if out:
                (a,) = out
                assert isinstance(a, AnalysedNews)
                return a
            await asyncio.sleep(0.005)  # the analysis runs in the executor
        raise AssertionError("no analysed item")

    try:
        head = "Boeing wins an order for 50 jets from Emirates worth $20 billion"
        normal = await ingest(1, head)
        engine.runtime.mode = Mode.DEGRADED
        degraded = await ingest(2, head)
        engine.runtime.mode = "SURVIVAL"
        survival = await ingest(3, "Microsoft to buy Nokia's devices unit for 5.44 billion euros")
        engine.runtime.mode = Mode.CONSERVE
        conserve = await ingest(4, "Verizon agrees to buy Vodafone's stake in Verizon Wireless")
    finally:
        engine.request_shutdown("test done")
        await asyncio.wait_for(task, 30)
    assert len(normal.embedding) == 4 and len(conserve.embedding) == 4 and embedder.calls == 2
    assert degraded.embedding == () == survival.embedding
    assert degraded.sentiment == normal.sentiment  # the lexicon sentiment, with or without MiniLM
    assert degraded.dup_kind != "none" and degraded.dup_of == "n1"  # one dedup window for both paths
    assert engine.metrics.counter("news_embeddings_skipped_total", actor="narrative").value == 2
