"""EdgeReasoner end to end on a sim-clock engine, fed real E-mini one-minute bars."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
import numpy as np
import pytest

from actors.edge_reasoner import EdgeReasonerConfig
from adapters.features import FEATURE_NAMES
from adapters.inference.gate import GateConfig
from adapters.inference.model import EdgeModel, load_edge_model
from engine.messages import Bar, DeadLetter, Forecast, Mode, Quote, ReasoningTrace, VerifiedNews
from engine.testing import capture_logs
from tests.edge.conftest import EdgeRun, running_edge

pytestmark = pytest.mark.asyncio


def _split(out: list) -> tuple[list[Forecast], list[ReasoningTrace], list[DeadLetter]]:
    f = [m for m in out if isinstance(m, Forecast)]
    t = [m for m in out if isinstance(m, ReasoningTrace)]
    d = [m for m in out if isinstance(m, DeadLetter)]
    assert len(f) + len(t) + len(d) == len(out)
    return f, t, d


async def test_one_forecast_per_warm_bar_with_valid_fields(es_bars: list[Bar], manifest) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        await run.feed(es_bars)
        out = run.outputs()
    forecasts, traces, dead = _split(out)
    warmup = manifest.model("es-1m").feature_config.warmup_bars
    # The first bar has no return, the next `warmup` ones warm the features up.
    assert len(forecasts) == len(es_bars) - 1 - warmup
    assert not dead
    seqs = [f.basis_seq for f in forecasts]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    by_seq = {b.seq: b for b in es_bars}
    for f in forecasts:
        assert f.forecast_id == f"ES-{f.basis_seq}"
        assert f.version == 1 and f.tier == "edge" and f.horizon == "1m"
        assert f.ts_event == by_seq[f.basis_seq].ts_event
        assert len(f.quantiles) == len(f.quantile_levels) >= 7
        assert all(b >= a for a, b in zip(f.quantiles, f.quantiles[1:], strict=False))
        assert f.quantiles[0] < f.point < f.quantiles[-1]
        assert f.volatility > 0 and 0.0 < f.direction_prob < 1.0
        assert f.model_version and f.model_id.startswith("es-1m")
    ids = {f.forecast_id for f in forecasts}
    for t in traces:
        assert t.forecast_id in ids
        assert 1 <= len(t.features) <= 5
        contribs = [abs(c) for _, _, c in t.features]
        assert contribs == sorted(contribs, reverse=True)
    traced = {f.forecast_id for f in forecasts if f.trace_id}
    assert traced == {t.forecast_id for t in traces}
    snap = run.summary.metrics if run.summary else {}
    assert snap["counters"]["edge_forecasts_total{actor=edge}"] == len(forecasts)


async def test_replay_is_byte_identical(es_bars: list[Bar]) -> None:
    blobs = []
    for chunk in (7, 50):
        # Different drain boundaries must not change a byte of either stream (a batch publishes
        # its forecasts before its traces, so only the interleaving of the two topics differs).
        async with running_edge(EdgeReasonerConfig(model="es-1m", trace_threshold=0.02)) as run:
            await run.feed(es_bars, chunk=chunk)
            forecasts, traces, _ = _split(run.outputs())
            blobs.append((msgspec.msgpack.encode(forecasts), msgspec.msgpack.encode(traces)))
    assert len(blobs[0][1]) > 1000  # traces were produced (and explained in batches)
    assert blobs[0] == blobs[1]


async def test_hot_swap_drops_and_reorders_nothing(es_bars: list[Bar], manifest) -> None:
    cfg = EdgeReasonerConfig(model="es-1m", specialists=False)
    async with running_edge(cfg) as run:
        await run.feed(es_bars[:150], chunk=10)
        teacher = load_edge_model(manifest, "es-1m", role="teacher")
        old = run.actor.swap_model("es-1m", None, teacher)
        assert old is not None and old.model_id == "es-1m"
        await run.feed(es_bars[150:], chunk=10)
        forecasts, _, dead = _split(run.outputs())
    assert not dead
    seqs = [f.basis_seq for f in forecasts]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == len(es_bars) - 21
    cut = es_bars[149].seq
    assert {f.model_id for f in forecasts if f.basis_seq <= cut} == {"es-1m"}
    assert {f.model_id for f in forecasts if f.basis_seq > cut} == {"es-1m.teacher"}
    old.close()


async def test_news_ids_reach_the_trace_and_features(es_bars: list[Bar]) -> None:
    t_news = es_bars[100].ts_event - 1
    news = VerifiedNews(
        id="n-syria-1",
        ts_event=t_news,
        source="reuters",
        headline="Syria strike vote",
        symbols=("ES",),
        sentiment=-0.8,
        credibility=0.9,
        embedding=tuple(np.linspace(-1, 1, 16)),
    )
    cfg = EdgeReasonerConfig(model="es-1m", trace_threshold=0.0)  # trace every forecast
    async with running_edge(cfg) as run:
        await run.feed(es_bars[:100])
        await run.feed([news])
        await run.feed(es_bars[100:110])
        _, traces, _ = _split(run.outputs())
        state = run.actor._served["es-1m"].features.state("ES")
    after = [t for t in traces if t.ts_event > t_news]
    before = [t for t in traces if t.ts_event < t_news]
    assert after and before
    # The shipped models carry no weight on news (trained without it): the item reaches the
    # features, but a trace names news ids only when news changed the forecast - here never;
    # the summary says the item was seen without effect.
    assert all(t.news_ids == () for t in traces)
    assert all("news seen without effect on this forecast: n-syria-1" in t.summary for t in after)
    assert not any("news seen" in t.summary for t in before)
    assert not any(name.startswith("news_") for t in traces for name, _, _ in t.features)
    assert state._news_int > 0.0


async def test_bad_input_is_dead_lettered_not_fatal(es_bars: list[Bar]) -> None:
    bad = msgspec.structs.replace(es_bars[40], close=math.nan)
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        await run.feed([*es_bars[:40], bad, *es_bars[41:60]])
        run.engine.bus.publish("bar.ES", "not a message")
        await run.feed(es_bars[60:80])
        forecasts, _, dead = _split(run.outputs())
    reasons = [d.reason for d in dead]
    assert len(dead) == 2
    assert any("non-finite" in r for r in reasons) and any("unexpected message type" in r for r in reasons)
    assert forecasts and forecasts[-1].basis_seq == es_bars[79].seq


async def test_quotes_feed_the_spread_feature(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        await run.feed(es_bars[:30])
        q = Quote(symbol="ES", ts_event=es_bars[30].ts_event - 1, bid=1640.0, ask=1640.25)
        await run.feed([q, es_bars[30]])
        state = run.actor._served["es-1m"].features.state("ES")
        assert state._spread == pytest.approx(0.25 / 1640.125)


async def test_deadline_mode_flushes_on_timer(es_bars: list[Bar]) -> None:
    cfg = EdgeReasonerConfig(
        model="es-1m",
        flush="deadline",
        max_batch=64,
        max_wait_us=500,
        latency_budget_us=2000,
        expected_cost_us=100,
    )
    async with running_edge(cfg) as run:
        await run.feed(es_bars[:30], chunk=1)
        first, _, _ = _split(run.outputs())
        # Bars arrive at their close time; each waits at most max_wait_us on the sim clock.
        assert len(first) == 8  # the 9th warm bar is still inside its max_wait
        run.engine.clock.advance_to(es_bars[29].ts_event + 500_000)
        await run.feed([])
        rest, _, _ = _split(run.outputs())
    assert len(first) + len(rest) == 9


async def _replay_bytes(bars: list[Bar]) -> bytes:
    async with running_edge(EdgeReasonerConfig(model="es-1m", trace_threshold=0.02)) as run:
        await run.feed(bars, chunk=13)
        return msgspec.msgpack.encode(run.outputs())


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_same_bytes_on_asyncio_and_uvloop(es_bars: list[Bar]) -> None:
    import threading

    from engine.kernel import run_on_loop

    here = await _replay_bytes(es_bars[:160])
    # uvloop in a thread of its own: a second event loop cannot run inside this one.
    box: list[bytes] = []
    t = threading.Thread(target=lambda: box.append(run_on_loop(_replay_bytes(es_bars[:160]), "uvloop")))
    t.start()
    t.join(60)
    assert box and box[0] == here and len(here) > 1000


async def test_tensorrt_request_falls_back_and_is_counted(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m", backend="tensorrt")) as run:
        await run.feed(es_bars[:40])
        forecasts, _, _ = _split(run.outputs())
        backend = run.actor.registry("es-1m").default.backend.name
    assert len(forecasts) == 40 - 21
    counters = run.summary.metrics["counters"] if run.summary else {}
    # student + the es-1m specialists each fell back once
    assert counters["edge_backend_fallbacks_total{actor=edge}"] >= 1
    assert backend == "onnxruntime"


async def test_survival_mode_keeps_forecasts_and_sheds_traces(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m", trace_threshold=0.0)) as run:
        run.engine.runtime.mode = "SURVIVAL"
        await run.feed(es_bars[:60], chunk=1)  # one bar per mailbox batch: nothing to conflate
        forecasts, traces, _ = _split(run.outputs())
    assert len(forecasts) == 60 - 21 and not traces
    assert all(f.trace_id == "" for f in forecasts)
    assert {f.model_id for f in forecasts} == {"es-1m"}  # the student, whatever the regime
    counters = run.summary.metrics["counters"] if run.summary else {}
    assert counters["edge_traces_skipped_total{actor=edge}"] == len(forecasts)
    assert _count(run, "edge_forecasts_by_path_total", path="cheap") == len(forecasts)
    assert _count(run, "edge_forecasts_by_path_total", path="full") == 0


def _count(run: EdgeRun, name: str, **labels: str) -> int:
    return run.engine.metrics.counter(name, actor="edge", **labels).value


def _dropped(run: EdgeRun) -> dict[str, int]:
    reasons = ("bad_bar", "wrong_bar", "first_bar", "warmup", "cadence", "conflated", "nonfinite_output")
    return {r: _count(run, "edge_bars_dropped_total", reason=r) for r in reasons}


async def test_every_bar_is_a_forecast_or_a_counted_drop(es_bars: list[Bar]) -> None:
    bad = msgspec.structs.replace(es_bars[45], close=math.nan)
    cfg = EdgeReasonerConfig(model="es-1m", every_n_bars=2)
    async with running_edge(cfg) as run:
        await run.feed([*es_bars[:45], bad, *es_bars[46:80]])
        forecasts, _, _ = _split(run.outputs())
    dropped = _dropped(run)
    # the first bar gives the features no row (no previous close): counted, not silently skipped
    assert dropped["first_bar"] == 1 and dropped["warmup"] == 20 and dropped["bad_bar"] == 1
    assert dropped["cadence"] == len(forecasts) - (1 if (80 - 22) % 2 else 0) > 0
    assert _count(run, "edge_bars_total") == 80 == len(forecasts) + sum(dropped.values())
    assert _count(run, "edge_forecasts_by_path_total", path="full") == len(forecasts)


async def test_cheaper_path_conflates_to_the_latest_bar_with_exact_features(es_bars: list[Bar]) -> None:
    # The serve-time gate learns only from the forecasts it served (a conflated bar has none), so
    # it is off here: what is checked is that the model saw exactly the same inputs.
    off = GateConfig(enabled=False)
    # Reference: the cheaper path on every bar (cheap_from=NORMAL), one bar per mailbox batch.
    async with running_edge(EdgeReasonerConfig(model="es-1m", cheap_from=Mode.NORMAL, gate=off)) as ref:
        await ref.feed(es_bars[:200], chunk=1)
        reference = {f.forecast_id: f for f in _split(ref.outputs())[0]}
    async with running_edge(EdgeReasonerConfig(model="es-1m", gate=off)) as run:
        run.engine.runtime.mode = "SURVIVAL"
        await run.feed(es_bars[:200], chunk=25)  # the actor is behind: 25 bars per mailbox batch
        forecasts, traces, _ = _split(run.outputs())
    # one forecast per batch (its latest bar), identical to the reference's: every conflated bar
    # still moved the features and the regime, so the kept forecast saw exactly the same inputs
    assert [f.basis_seq for f in forecasts] == [b.seq for b in es_bars[24:200:25]]
    assert all(f == reference[f.forecast_id] for f in forecasts) and not traces
    dropped = _dropped(run)
    assert dropped["conflated"] == 200 - 21 - len(forecasts)
    assert _count(run, "shed_total", reason="conflated") == dropped["conflated"]
    assert _count(run, "edge_bars_total") == 200 == len(forecasts) + sum(dropped.values())


async def test_degraded_keeps_the_full_path_on_conflated_bars(es_bars: list[Bar]) -> None:
    off = GateConfig(enabled=False)  # as above: the gate learns only from served forecasts
    # Reference: the full path on every bar, one bar per mailbox batch.
    async with running_edge(EdgeReasonerConfig(model="es-1m", gate=off)) as ref:
        await ref.feed(es_bars[:200], chunk=1)
        reference = {f.forecast_id: f for f in _split(ref.outputs())[0]}
    # 25 bars per mailbox batch, more than conflate_above_bars = 20: behind, so conflated
    cfg = EdgeReasonerConfig(model="es-1m", gate=off, conflate_above_bars=20)
    async with running_edge(cfg) as run:
        run.engine.runtime.mode = Mode.DEGRADED
        await run.feed(es_bars[:200], chunk=25)
        forecasts, _, _ = _split(run.outputs())
    # the latest bar of each batch, forecast by the full path exactly as without conflation
    assert [f.basis_seq for f in forecasts] == [b.seq for b in es_bars[24:200:25]]
    assert all(f == reference[f.forecast_id] for f in forecasts)
    assert _count(run, "edge_forecasts_by_path_total", path="full") == len(forecasts) > 0
    assert _count(run, "edge_forecasts_by_path_total", path="cheap") == 0
    assert _dropped(run)["conflated"] == 200 - 21 - len(forecasts)


async def test_degraded_forecasts_every_bar_of_a_batch_within_conflate_above_bars(es_bars: list[Bar]) -> None:
    # 25 bars per batch is within the default 64: not behind by more than a model call, so
    # DEGRADED forecasts every bar (conflating them saved nothing and lost forecasts)
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as ref:
        await ref.feed(es_bars[:200], chunk=1)
        reference = [f.forecast_id for f in _split(ref.outputs())[0]]
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        run.engine.runtime.mode = Mode.DEGRADED
        await run.feed(es_bars[:200], chunk=25)
        forecasts, _, _ = _split(run.outputs())
    assert [f.forecast_id for f in forecasts] == reference and len(reference) > 150
    assert _dropped(run)["conflated"] == 0
    # ...while the cheaper path (SURVIVAL) conflates any batch with two bars of a symbol
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        run.engine.runtime.mode = Mode.SURVIVAL
        await run.feed(es_bars[:200], chunk=25)
    assert _dropped(run)["conflated"] > 100


async def test_mode_changes_switch_paths_between_batches(es_bars: list[Bar]) -> None:
    async with running_edge(EdgeReasonerConfig(model="es-1m", trace_threshold=0.0)) as run:
        await run.feed(es_bars[:100], chunk=1)
        run.engine.runtime.mode = Mode.SURVIVAL
        await run.feed(es_bars[100:150], chunk=1)
        run.engine.runtime.mode = Mode.CONSERVE  # CONSERVE is the full path
        await run.feed(es_bars[150:200], chunk=1)
        forecasts, traces, _ = _split(run.outputs())
    cut = (es_bars[99].seq, es_bars[149].seq)
    assert all(f.trace_id for f in forecasts if f.basis_seq <= cut[0] or f.basis_seq > cut[1])
    assert not any(f.trace_id for f in forecasts if cut[0] < f.basis_seq <= cut[1])
    assert len(traces) == len(forecasts) - 50
    assert _count(run, "edge_forecasts_by_path_total", path="cheap") == 50
    assert _count(run, "edge_forecasts_by_path_total", path="full") == len(forecasts) - 50


async def test_tampered_weights_stop_the_actor_from_starting(es_bars: list[Bar], model_copy) -> None:
    data = bytearray((model_copy / "es-1m.student.onnx").read_bytes())
    data[500] ^= 0x80
    (model_copy / "es-1m.student.onnx").write_bytes(bytes(data))
    with capture_logs() as logs:
        async with running_edge(EdgeReasonerConfig(model="es-1m", model_dir=str(model_copy))) as run:
            for _ in range(300):
                await asyncio.sleep(0.01)
                if run.engine.cells["edge"].incarnations >= 2:
                    break
    assert run.engine.cells["edge"].incarnations >= 2  # every start refused
    assert not run.outputs()
    errors = [str(e.get("error", "")) for e in logs if e.get("event") == "child_failed"]
    assert errors and all("ManifestError" in e and "modified or corrupted" in e for e in errors)


async def test_bars_of_another_length_are_refused_with_a_clear_error(es_bars: list[Bar]) -> None:
    """The one-minute model refuses daily bars (dead-lettered, counted), and keeps serving minutes."""
    daily = [msgspec.structs.replace(b, spec=86_400e9) for b in es_bars[:30]]
    async with running_edge(EdgeReasonerConfig(model="es-1m")) as run:
        await run.feed([msgspec.structs.replace(b, symbol="SPX") for b in daily])
        await run.feed(es_bars[:30])
        forecasts, _, dead = _split(run.outputs())
    assert {f.symbol for f in forecasts} == {"ES"} and len(forecasts) == 30 - 21
    assert len(dead) == 30
    assert "model es-1m was trained on 1m bars; refusing a 1d bar of SPX" in dead[0].reason
    assert _dropped(run)["wrong_bar"] == 30


class _NewsMovesProb:
    """A backend wrapper whose direction probability moves with the news sentiment feature."""

    name = "news-test"
    device = "cpu"

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.array(self.inner.predict(x), copy=True)
        out[:, -1] = np.clip(out[:, -1] + 0.2 * x[:, FEATURE_NAMES.index("news_sent")], 0.0, 1.0)
        return out

    def close(self) -> None:
        self.inner.close()


async def test_a_model_that_uses_news_names_the_news_in_its_traces(es_bars: list[Bar], manifest) -> None:
    news = VerifiedNews(
        id="n-1", ts_event=es_bars[100].ts_event - 1, source="reuters", headline="h", symbols=("ES",),
        sentiment=-0.8, credibility=0.9,
    )  # fmt: skip
    plain = load_edge_model(manifest, "es-1m")
    spec = plain.spec
    moved = EdgeModel(
        spec, _NewsMovesProb(plain.backend), role="student", neutral=np.asarray(spec.feature_mean)
    )
    async with running_edge(EdgeReasonerConfig(model="es-1m", trace_threshold=0.0)) as run:
        await run.feed(es_bars[:1])
        run.actor.swap_model("es-1m", None, moved).close()  # type: ignore[union-attr]
        await run.feed(es_bars[1:100])
        await run.feed([news])
        await run.feed(es_bars[100:110])
        _, traces, _ = _split(run.outputs())
    after = [t for t in traces if t.ts_event > news.ts_event]
    assert after and all(t.news_ids == ("n-1",) for t in after)
    assert all("news_sent" in {n for n, _, _ in t.features} for t in after)
    assert all(t.news_ids == () for t in traces if t.ts_event < news.ts_event)
