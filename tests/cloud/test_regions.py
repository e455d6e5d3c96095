"""Regional reasoning agents (actors/regions.py, the cloud proxy's ``regions``).

Against the fault servers on loopback: symbols and venues map to regions by glob, the prompt
carries the symbol's market context, a failing region fails over to the next in its list (the
context stays the symbol's), budgets are per region; through the proxy, the trace names the
region that answered.  Once against the real llama.cpp server.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.cloud_reasoner import CloudAnswer, CloudReasonerConfig
from actors.regions import RegionConfig, RegionRouter
from adapters.llm import EndpointConfig, LLMClientConfig, ServerError
from adapters.llm.local_server import LocalLlamaServer
from tests.cloud.conftest import FaultFactory
from tests.cloud.test_cloud_reasoner import S, answer_citing, edge, news
from tools.fault_llm_server import FaultConfig

US_CONTEXT = "CME equity index futures; regular session 09:30-16:00 America/New_York; USD."
EU_CONTEXT = "Eurex index futures; session 08:00-22:00 Europe/Berlin; EUR."
MSGS = [{"role": "user", "content": "hello"}]
POLICY = LLMClientConfig(
    endpoints=(EndpointConfig(name="unused", url="http://127.0.0.1:9/v1", model="m"),),
    hedge=False,
    max_attempts=2,
    backoff_base_s=0.001,
)


def _ep(name: str, url: str) -> EndpointConfig:
    return EndpointConfig(name=name, url=url, model="m", stream=False)


def _regions(us_url: str, eu_url: str, **us: Any) -> dict[str, RegionConfig]:
    return {
        "us": RegionConfig(
            endpoints=(_ep("us-1", us_url),),
            symbols=("ES*", "NQ*", "venue:CME"),
            context=US_CONTEXT,
            failover=("eu",),
            **us,
        ),
        "eu": RegionConfig(endpoints=(_ep("eu-1", eu_url),), symbols=("FDAX*", "*.DE"), context=EU_CONTEXT),
    }


class _Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def test_symbols_and_venues_map_to_regions_by_glob() -> None:
    router = RegionRouter(_regions("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), POLICY, default="eu")
    assert router.region_for("ESZ3") == "us" and router.region_for("NQH4") == "us"
    assert router.region_for("SAP.DE") == "eu" and router.region_for("FDAXZ3") == "eu"
    assert router.region_for("XYZ", venue="CME") == "us"
    assert router.region_for("XYZ") == "eu"  # the default
    assert "Market context (us): CME" in router.context("us")
    with pytest.raises(ValueError, match="unknown region"):
        RegionRouter({"us": RegionConfig(endpoints=(_ep("a", "http://x/v1"),), failover=("mars",))}, POLICY)
    with pytest.raises(ValueError, match="default region"):
        RegionRouter(_regions("http://x/v1", "http://x/v1"), POLICY, default="apac")


@pytest.mark.asyncio
async def test_a_failing_region_fails_over_keeping_the_symbols_context(fault_server: FaultFactory) -> None:
    us = await fault_server(FaultConfig(error_rate=1.0))
    eu = await fault_server(FaultConfig(answer='{"ok": true}'))
    router = RegionRouter(_regions(us.url, eu.url), POLICY)
    msgs = [{"role": "user", "content": router.context("us") + "\nhello"}]
    import msgspec

    class Ok(msgspec.Struct):
        ok: bool

    done, answered = await router.complete("us", msgs, Ok, charged=100.0, deadline_s=5.0)
    assert answered == "eu" and done.value.ok and done.endpoint == "eu-1"
    assert us.stats.requests >= 1 and eu.stats.requests == 1
    assert US_CONTEXT in eu.bodies[-1]["messages"][0]["content"]  # the market, not the server's
    assert router.metrics.counter("cloud_region_failovers_total", region="us", to="eu").value == 1
    assert router.metrics.counter("cloud_region_answers_total", region="eu").value == 1
    await router.aclose()


@pytest.mark.asyncio
async def test_budgets_are_per_region(fault_server: FaultFactory) -> None:
    us = await fault_server(FaultConfig(error_rate=1.0))
    eu = await fault_server()
    clock = _Clock()
    regions = _regions(us.url, eu.url, tokens_per_s=10.0, tokens_burst=1000.0)
    regions["eu"] = RegionConfig(
        endpoints=(_ep("eu-1", eu.url),), symbols=("FDAX*",), tokens_per_s=0.0, tokens_burst=150.0
    )
    router = RegionRouter(regions, POLICY, now_ns=clock)
    assert router.charge("us", 600.0) and not router.charge("us", 600.0)  # 400 left
    clock.t = 20 * S  # +200 tokens at 10/s
    assert router.charge("us", 600.0)
    assert router.budget_left("eu") == 150.0
    # us fails, eu cannot take a 500-token call: nothing to fail over to.
    with pytest.raises(ServerError):
        await router.complete("us", MSGS, CloudAnswer, charged=500.0, deadline_s=5.0)
    assert eu.stats.requests == 0 and router.budget_left("eu") == 150.0
    assert router.metrics.counter("cloud_region_budget_refused_total", region="eu").value == 1
    await router.aclose()


def _region_cfg(us_url: str, eu_url: str, **kw: Any) -> CloudReasonerConfig:
    base: dict[str, Any] = {
        "llm": LLMClientConfig(endpoints=(_ep("local", "http://127.0.0.1:9/v1"),), hedge=False),
        "regions": _regions(us_url, eu_url),
        "max_escalation_fraction": 1.0,
        "escalation_burst": 5.0,
        "max_inflight": 4,
    }
    base.update(kw)
    return CloudReasonerConfig(**base)


@pytest.mark.asyncio
async def test_the_proxy_routes_by_region_with_context_and_names_it(
    fault_server: FaultFactory, rig_factory: Any
) -> None:
    us = await fault_server(answer_fn=answer_citing())
    eu = await fault_server(answer_fn=answer_citing())
    rig = await rig_factory(_region_cfg(us.url, eu.url))
    fc = edge(1, confidence=0.1)
    rig.publish("news.verified", news("n-1", fc.ts_event - S))
    rig.publish("forecast.ES", fc)
    await rig.until(lambda: bool(rig.traces()))
    assert us.stats.requests == 1 and eu.stats.requests == 0
    user = us.bodies[-1]["messages"][1]["content"]
    assert user.splitlines()[1] == f"Market context (us): {US_CONTEXT}"
    assert rig.traces()[0].summary.endswith("; adopted") and "region us" in rig.traces()[0].summary
    assert rig.counter("cloud_region_escalations_total", region="us") == 1
    # The us group goes down: the next escalation is answered by eu, still with us context.
    us.reconfigure(FaultConfig(error_rate=1.0))
    rig.publish("forecast.ES", edge(2, confidence=0.1))
    await rig.until(lambda: len(rig.traces()) == 2)
    assert eu.stats.requests == 1 and US_CONTEXT in eu.bodies[-1]["messages"][1]["content"]
    assert "region eu" in rig.traces()[1].summary
    assert rig.metrics.counter("cloud_region_failovers_total", region="us", to="eu").value == 1


@pytest.mark.asyncio
async def test_an_exhausted_region_budget_skips_the_escalation(
    fault_server: FaultFactory, rig_factory: Any
) -> None:
    us = await fault_server(answer_fn=answer_citing())
    eu = await fault_server(answer_fn=answer_citing())
    regions = _regions(us.url, eu.url, tokens_per_s=0.0, tokens_burst=600.0)  # one call's worth
    rig = await rig_factory(_region_cfg(us.url, eu.url, regions=regions, max_tokens=160))
    for i in (1, 2, 3):
        rig.publish("forecast.ES", edge(i, confidence=0.1))
        await rig.until(lambda i=i: rig.counter("cloud_forecasts_seen_total") == i)
        await rig.until(lambda: not rig.actor._inflight)
    assert rig.counter("cloud_escalations_skipped_total", why="region_budget") >= 1
    assert us.stats.requests <= 2  # the refund of unused tokens may allow a second call, no more


@pytest.mark.integration
@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_region_served_by_the_real_llama_server_after_failover(
    llama_server: LocalLlamaServer, fault_server: FaultFactory, rig_factory: Any
) -> None:
    down = await fault_server(FaultConfig(error_rate=1.0))
    real = EndpointConfig(name="llama", url=llama_server.url, model=llama_server.model_id)
    regions = {
        "us": RegionConfig(
            endpoints=(_ep("us-down", down.url),), symbols=("ES*",), context=US_CONTEXT, failover=("eu",)
        ),
        "eu": RegionConfig(endpoints=(real,), symbols=("FDAX*",), context=EU_CONTEXT),
    }
    rig = await rig_factory(_region_cfg(down.url, llama_server.url, regions=regions, deadline_s=90.0))
    fc = edge(1, confidence=0.1)
    rig.publish("news.verified", news("n-1", fc.ts_event - 60 * S))
    rig.publish("forecast.ES", fc)
    await rig.until(lambda: bool(rig.traces()) or bool(rig.dead()), timeout_s=120.0)
    assert not rig.dead(), rig.dead()[0].reason
    trace = rig.traces()[0]
    assert trace.model_version == "llama" and "region eu" in trace.summary and trace.rationale
    assert down.stats.requests >= 1
    assert rig.metrics.counter("cloud_region_failovers_total", region="us", to="eu").value == 1
