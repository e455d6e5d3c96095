"""Integration: the real llama.cpp server with SmolLM2-135M-Instruct, started by the session fixture.

These run on uvloop only (the server is slow: ~70 tokens/s on 2 threads) and
never skip: if the server cannot start, the fixture fails them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from actors.cloud_reasoner import CloudAnswer, CloudReasonerConfig, answer_schema, build_prompt
from adapters.llm import DeadlineExceeded, EndpointConfig, InvalidAnswer, LLMClient, LLMClientConfig
from adapters.llm.local_server import LocalLlamaServer
from engine.messages import Forecast, VerifiedNews

pytestmark = pytest.mark.integration

S = 1_000_000_000


class Story(msgspec.Struct):
    story: str


def _client(server: LocalLlamaServer, **kw: Any) -> LLMClient:
    ep = EndpointConfig(name="local", url=server.url, model=server.model_id, dialect="llamacpp", stream=True)
    return LLMClient(LLMClientConfig(endpoints=(ep,), hedge=False, **kw))


def _forecast() -> Forecast:
    return Forecast(
        forecast_id="ES-7",
        symbol="ES",
        horizon="1m",
        basis_seq=7,
        ts_event=100 * S,
        point=0.0001,
        quantile_levels=(0.1, 0.5, 0.9),
        quantiles=(-0.0009, 0.0001, 0.0011),
        volatility=0.0008,
        confidence=0.2,
        direction_prob=0.55,
    )


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_models_endpoint_and_structured_refinement(llama_server: LocalLlamaServer) -> None:
    client = _client(llama_server, deadline_s=60.0)
    news = [
        VerifiedNews(
            id="n-1",
            ts_event=90 * S,
            source="reuters",
            headline="Verizon agrees to buy Vodafone's 45% stake in Verizon Wireless for $130 billion",
            symbols=("ES",),
            sentiment=0.5,
            credibility=0.9,
        )
    ]
    messages = build_prompt(_forecast(), (("ret_5", 0.0012, 0.3),), news, {"last_return_bps": 2.0}, ("news",))
    schema = answer_schema(["n-1"])
    # The grammar makes the shape right; the ranges and the consistency are ours to check, and a
    # 135M model may miss them: what matters is that every answer is either valid or rejected.
    outcomes: list[str] = []
    for _ in range(2):
        try:
            done = await client.complete(messages, CloudAnswer, schema=schema, max_tokens=160)
        except InvalidAnswer as exc:
            outcomes.append("invalid")
            assert exc.content and exc.reason
            continue
        outcomes.append("valid")
        assert isinstance(done.value, CloudAnswer)
        assert set(done.value.evidence) <= {"n-1"}
        assert done.completion_tokens > 5 and done.prompt_tokens > 50
        assert done.model and done.endpoint == "local"
    invalid = client.metrics.counter("llm_invalid_answers_total", endpoint="local").value
    assert invalid == outcomes.count("invalid")
    assert "valid" in outcomes, "the real model produced no schema-valid refinement in 2 tries"
    await client.aclose()


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_cancellation_frees_the_real_server(llama_server: LocalLlamaServer) -> None:
    client = _client(llama_server)
    long_prompt = [{"role": "user", "content": "Write a very long story about a market crash, 500 words."}]
    with pytest.raises(DeadlineExceeded):
        await client.complete(long_prompt, Story, max_tokens=500, deadline_s=0.5)
    # Had the server kept generating 500 tokens (~7 s at ~70 tokens/s), this short call would
    # queue behind it; closing the stream stopped it, so it answers at once.
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    with pytest.raises(InvalidAnswer):  # 8 tokens cannot finish the JSON: cut at max_tokens
        await client.complete(long_prompt, Story, max_tokens=8, deadline_s=30.0)
    assert time.perf_counter() - t0 < 8.0
    await client.aclose()


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_proxy_refinement_round_trip(llama_server: LocalLlamaServer, rig_factory: Any) -> None:
    from tests.cloud.test_cloud_reasoner import edge, news

    llm = LLMClientConfig(
        endpoints=(EndpointConfig(name="local", url=llama_server.url, model=llama_server.model_id),),
        hedge=False,
    )
    cfg = CloudReasonerConfig(llm=llm, deadline_s=60.0)
    rig = await rig_factory(cfg)
    fc = edge(1, confidence=0.9)
    rig.publish("news.verified", news("n-1", fc.ts_event - 60 * S))
    rig.publish("forecast.ES", fc)
    await rig.until(lambda: bool(rig.traces()) or bool(rig.dead()), timeout_s=90.0)
    assert not rig.dead(), rig.dead()[0].reason
    ref = rig.refinements()[0]
    trace = rig.traces()[0]
    assert (ref.forecast_id, ref.version, ref.tier) == ("ES-1", 2, "cloud")
    assert ref.model_version == "local" and trace.model_id
    assert set(trace.news_ids) <= {"n-1"} and trace.rationale
    assert "adopted" in trace.summary
    assert rig.actor.tokens_used > 0


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_autostarted_server_lives_and_dies_with_the_actor(rig_factory: Any) -> None:
    rig = await rig_factory(CloudReasonerConfig(autostart_local=True, local_threads=1))
    server = rig.actor._server
    assert server is not None and server.proc is not None and server.proc.poll() is None
    proc = server.proc
    assert rig.actor.client.endpoints == ["local"]
    rig.mailbox.close()
    assert rig.task is not None
    await asyncio.wait_for(rig.task, 30)
    assert proc.poll() is not None  # on_stop ended the child process


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_autostart_with_a_broken_model_fails_loudly(tmp_path: Any, rig_factory: Any) -> None:
    """The real server on a file that is not a model: the tier is down, loudly, and the actor lives on
    (forecasts pass through unrefined; nothing else in the pipeline is lost)."""
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file")
    cfg = CloudReasonerConfig(autostart_local=True, local_threads=1, local_model_path=str(bogus))
    rig = await rig_factory(cfg)
    status = rig.metrics.tiers.snapshot()["cloud"]
    assert status.state == "failed"
    assert "llama.cpp server exited with exit code" in status.start_error
    assert rig.actor._server is None and rig.metrics.gauge("cloud_tier_enabled", actor="cloud").value == 0.0
    fc = _forecast()
    rig.publish("forecast.ES", msgspec.structs.replace(fc, confidence=0.0))
    await rig.until(lambda: rig.counter("cloud_forecasts_seen_total") == 1)
    # it wanted to escalate, and counted the attempt as failed instead of calling a dead server
    assert rig.counter("cloud_escalations_skipped_total", why="tier_down") == 1
    assert rig.counter("cloud_escalations_total") == 0
    assert rig.metrics.tiers.snapshot()["cloud"].failures == 1
