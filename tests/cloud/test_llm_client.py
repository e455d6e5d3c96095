"""The LLM client's mechanisms, each against the fault server on real loopback sockets."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.llm import (
    BadRequest,
    DeadlineExceeded,
    EndpointConfig,
    InvalidAnswer,
    LLMClient,
    LLMClientConfig,
    NoEndpointAvailable,
    ServerError,
    schema_for,
)
from tests.cloud.conftest import FaultFactory
from tools.fault_llm_server import FaultConfig

MSGS = [{"role": "user", "content": "hello"}]


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    ok: bool


class Inner(msgspec.Struct):
    x: float


class Outer(msgspec.Struct):
    inner: Inner
    items: list[Inner]


def _client(*urls: str, names: tuple[str, ...] = (), stream: bool = False, **kw: Any) -> LLMClient:
    eps = tuple(
        EndpointConfig(name=names[i] if names else f"e{i}", url=u, model="m", stream=stream)
        for i, u in enumerate(urls)
    )
    return LLMClient(LLMClientConfig(endpoints=eps, **kw))


def test_inline_schema_resolves_refs() -> None:
    schema = schema_for(Outer)
    assert "$defs" not in schema and "$ref" not in msgspec.json.encode(schema).decode()
    assert schema["properties"]["inner"]["properties"]["x"]["type"] == "number"
    assert schema["properties"]["items"]["items"]["required"] == ["x"]


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("dialect", "key", "expected_type"),
    [
        ("openai", "response_format", "json_schema"),
        ("llamacpp", "response_format", "json_object"),
        ("vllm", "structured_outputs", None),
        ("none", None, None),
    ],
)
async def test_dialect_and_roundtrip(
    fault_server: FaultFactory, stream: bool, dialect: str, key: str | None, expected_type: str | None
) -> None:
    srv = await fault_server()
    ep = EndpointConfig(
        name="a",
        url=srv.url,
        model="m",
        dialect=dialect,
        stream=stream,  # type: ignore[arg-type]
        usd_per_1k_prompt_tokens=1.0,
        usd_per_1k_completion_tokens=2.0,
    )
    client = LLMClient(LLMClientConfig(endpoints=(ep,)))
    done = await client.complete(MSGS, Answer)
    await client.aclose()
    assert done.value == Answer(ok=True)
    body = srv.bodies[-1]
    assert body["stream"] is stream
    if key is None:
        assert "response_format" not in body and "structured_outputs" not in body
    elif dialect == "vllm":
        assert body["structured_outputs"]["json"]["required"] == ["ok"]
    else:
        assert body[key]["type"] == expected_type
        schema = body[key]["json_schema"]["schema"] if dialect == "openai" else body[key]["schema"]
        assert schema["properties"]["ok"]["type"] == "boolean"
    # the server reports usage without streaming; a stream is counted event by event
    assert done.tokens_estimated is stream
    assert done.completion_tokens >= 1 and done.prompt_tokens >= 1
    assert done.cost_usd == pytest.approx((done.prompt_tokens * 1.0 + done.completion_tokens * 2.0) / 1000)
    tokens = client.metrics.counter("llm_tokens_total", endpoint="a", kind="completion").value
    assert tokens == done.completion_tokens


@pytest.mark.asyncio
async def test_invalid_answer_is_counted_and_dropped(fault_server: FaultFactory) -> None:
    srv = await fault_server(FaultConfig(script=("invalid",)))
    client = _client(srv.url)
    with pytest.raises(InvalidAnswer) as info:
        await client.complete(MSGS, Answer)
    assert "schema" in info.value.reason and info.value.content.startswith('{"unexpected"')
    # the caller's own check rejects a well-formed answer the same way
    with pytest.raises(InvalidAnswer, match="not allowed"):
        await client.complete(MSGS, Answer, check=lambda a: "not allowed" if a.ok else None)
    assert client.metrics.counter("llm_invalid_answers_total", endpoint="e0").value == 2
    assert srv.stats.requests == 2  # invalid answers are not retried
    await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_and_5xx_are_retried(fault_server: FaultFactory, stream: bool) -> None:
    srv = await fault_server(FaultConfig(script=("malformed", "5xx", "ok")))
    client = _client(srv.url, stream=stream, max_attempts=3, retry_budget_reserve=2.0, backoff_base_s=0.001)
    done = await client.complete(MSGS, Answer)
    assert done.value.ok and done.attempts == 3
    assert client.metrics.counter("llm_retries_total").value == 2
    await client.aclose()


@pytest.mark.asyncio
async def test_bad_request_is_not_retried(fault_server: FaultFactory) -> None:
    srv = await fault_server()
    ep = EndpointConfig(name="a", url=srv.url.replace("/v1", "/nope"), model="m", stream=False)
    client = LLMClient(LLMClientConfig(endpoints=(ep,)))
    with pytest.raises(BadRequest):
        await client.complete(MSGS, Answer)
    assert client.endpoint_state("a")["breaker"] == "closed"
    await client.aclose()


@pytest.mark.asyncio
async def test_retry_budget_caps_extra_requests(fault_server: FaultFactory) -> None:
    srv = await fault_server(FaultConfig(error_rate=0.5, seed=7))
    client = _client(
        srv.url,
        max_attempts=6,
        retry_budget_ratio=0.1,
        retry_budget_reserve=2.0,
        backoff_base_s=0.0001,
        breaker_failures=10_000,
        hedge=False,
    )
    n = 200
    ok = failed = 0
    for _ in range(n):
        try:
            await client.complete(MSGS, Answer)
            ok += 1
        except ServerError:
            failed += 1
    await client.aclose()
    extra = srv.stats.requests - n
    assert extra == client.budget.extra
    assert extra <= 0.1 * n + 2.0
    assert client.budget.refused > 0  # the budget, not max_attempts, stopped the retries
    assert ok + failed == n and failed > 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("behaviour", "stream"), [("hang", False), ("slow", True)])
async def test_deadline_cancels_and_frees_the_server(
    fault_server: FaultFactory, behaviour: str, stream: bool
) -> None:
    srv = await fault_server(
        FaultConfig(script=(behaviour,), stream_chunk_delay_s=0.1, answer='{"ok": true}' + " " * 200)  # type: ignore[arg-type]
    )
    client = _client(srv.url, stream=stream, hedge=False)
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        await client.complete(MSGS, Answer, deadline_s=0.25)
    assert time.perf_counter() - t0 < 1.0
    for _ in range(100):  # the server notices the hang-up on its next loop turn
        if srv.stats.disconnects:
            break
        await asyncio.sleep(0.01)
    assert srv.stats.disconnects == 1 and srv.stats.active == 0
    assert client.metrics.counter("llm_deadline_exceeded_total").value == 1
    assert client.endpoint_state("e0")["inflight"] == 0
    await client.aclose()


@pytest.mark.asyncio
async def test_hedge_goes_to_another_endpoint_and_cancels_the_loser(fault_server: FaultFactory) -> None:
    slow = await fault_server(FaultConfig(latency_s=2.0))
    fast = await fault_server()
    client = _client(
        slow.url,
        fast.url,
        names=("slow", "fast"),
        routing="priority",
        hedge_initial_delay_s=0.05,
        hedge_min_samples=1000,
    )
    t0 = time.perf_counter()
    done = await client.complete(MSGS, Answer)
    assert time.perf_counter() - t0 < 1.0
    assert done.hedged and done.endpoint == "fast" and done.attempts == 2
    assert client.metrics.counter("llm_hedge_wins_total").value == 1
    for _ in range(100):
        if slow.stats.disconnects:
            break
        await asyncio.sleep(0.01)
    assert slow.stats.disconnects == 1  # the losing request's connection was closed
    await client.aclose()


@pytest.mark.asyncio
async def test_hedge_delay_follows_observed_p95(fault_server: FaultFactory) -> None:
    srv = await fault_server(FaultConfig(latency_s=0.005))
    client = _client(srv.url, hedge_min_samples=20, hedge_quantile=0.95)
    assert client._hedge_delay(client._endpoints[0]) is None  # nothing observed yet: no hedge
    for _ in range(25):
        await client.complete(MSGS, Answer)
    ep = client._endpoints[0]
    assert client._hedge_delay(ep) == ep.latency.quantile(0.95)
    assert 0.004 < ep.latency.quantile(0.95) < 0.5
    await client.aclose()


@pytest.mark.asyncio
async def test_breaker_opens_fails_over_and_half_opens(fault_server: FaultFactory) -> None:
    bad = await fault_server(FaultConfig(error_rate=1.0))
    good = await fault_server()
    now = [0.0]
    cfg = LLMClientConfig(
        endpoints=(
            EndpointConfig(name="bad", url=bad.url, model="m", stream=False),
            EndpointConfig(name="good", url=good.url, model="m", stream=False),
        ),
        routing="priority",
        breaker_failures=3,
        breaker_reset_s=10.0,
        retry_budget_reserve=100.0,
        backoff_base_s=0.0001,
        hedge=False,
    )
    client = LLMClient(cfg, clock=lambda: now[0])
    for _ in range(10):
        done = await client.complete(MSGS, Answer)
        assert done.endpoint == "good"
    assert client.endpoint_state("bad")["breaker"] == "open"
    assert bad.stats.requests == 3  # after opening, no more calls reach it
    # after reset_s one probe goes through; the endpoint has recovered, so it closes
    bad.reconfigure(FaultConfig())
    now[0] = 11.0
    assert client.endpoint_state("bad")["breaker"] == "half_open"
    done = await client.complete(MSGS, Answer)
    assert done.endpoint == "bad" and client.endpoint_state("bad")["breaker"] == "closed"
    # everything down: fail fast once the circuits are open
    bad.reconfigure(FaultConfig(error_rate=1.0))
    good.reconfigure(FaultConfig(error_rate=1.0))
    for _ in range(6):
        with pytest.raises((ServerError, NoEndpointAvailable)):
            await client.complete(MSGS, Answer)
    t0 = time.perf_counter()
    with pytest.raises(NoEndpointAvailable):
        await client.complete(MSGS, Answer)
    assert time.perf_counter() - t0 < 0.05
    await client.aclose()


@pytest.mark.asyncio
async def test_least_loaded_routing_prefers_the_faster_endpoint(fault_server: FaultFactory) -> None:
    slow = await fault_server(FaultConfig(latency_s=0.03))
    fast = await fault_server()
    client = _client(slow.url, fast.url, names=("slow", "fast"), routing="least_loaded", hedge=False)
    counts: dict[str, int] = {}
    for _ in range(40):
        done = await client.complete(MSGS, Answer)
        counts[done.endpoint] = counts.get(done.endpoint, 0) + 1
    assert counts.get("fast", 0) >= 35
    await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("limiter", ["vegas", "gradient2"])
async def test_limiter_shrinks_on_rising_latency_and_grows_on_flat(limiter: str) -> None:
    from adapters.llm.resilience import Gradient2Limiter, VegasLimiter

    kind = VegasLimiter if limiter == "vegas" else Gradient2Limiter
    flat, rising = kind(8, 1, 64), kind(8, 1, 64)
    for i in range(200):
        for lim, rtt in ((flat, 0.01), (rising, 0.01 * 1.05**i)):
            n = await lim.acquire()
            lim.release(rtt, max(n, lim.limit))
    assert flat.limit > 8
    assert rising.limit < 8


@pytest.mark.asyncio
@pytest.mark.parametrize(("capacity", "latency_s"), [(2, 0.01), (0, 0.05)])
async def test_vegas_limit_bounds_concurrency_on_a_queueing_server(
    fault_server: FaultFactory, capacity: int, latency_s: float
) -> None:
    # capacity=2: latency grows with concurrency (Little's law: 200 req/s whatever the load)
    srv = await fault_server(FaultConfig(latency_s=latency_s, capacity=capacity))
    ep = EndpointConfig(
        name="a",
        url=srv.url,
        model="m",
        stream=False,
        initial_concurrency=2,
        min_concurrency=1,
        max_concurrency=64,
    )
    client = LLMClient(LLMClientConfig(endpoints=(ep,), hedge=False, deadline_s=30.0))

    async def worker() -> None:
        for _ in range(6):
            await client.complete(MSGS, Answer)

    await asyncio.gather(*(worker() for _ in range(32)))
    state = client.endpoint_state("a")
    await client.aclose()
    if capacity:
        # 32 callers wanted to be in flight; the limit held near the knee instead
        assert state["limit"] <= 12 and srv.stats.max_active <= 16
    else:
        # flat latency: the limit rose until every caller could be in flight
        assert state["peak_inflight"] >= 24


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 20), st.floats(0.001, 1.0), st.floats(0.001, 5.0), st.integers(0, 2**32))
def test_full_jitter_stays_within_the_exponential_cap(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    from adapters.llm.resilience import full_jitter

    d = full_jitter(attempt, base, cap, random.Random(seed))
    assert 0.0 <= d <= min(cap, base * 2**attempt)


def test_retry_budget_is_a_fraction_of_requests() -> None:
    from adapters.llm.resilience import RetryBudget

    b = RetryBudget(ratio=0.1, reserve=1.0)
    spent = 0
    for _ in range(100):
        b.on_request()
        while b.try_spend():
            spent += 1
    assert spent in (10, 11) and b.extra == spent  # 1 reserve + 100 x 0.1 (float rounding)
    assert not b.try_spend() and b.refused >= 1


@pytest.mark.asyncio
async def test_connection_refused_fails_over(fault_server: FaultFactory) -> None:
    from adapters.llm.local_server import free_port

    good = await fault_server()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = _client(dead, good.url, names=("dead", "good"), routing="priority", backoff_base_s=0.001)
    done = await client.complete(MSGS, Answer)
    assert done.endpoint == "good" and done.attempts == 2
    assert client.metrics.counter("llm_attempts_total", endpoint="dead", outcome="ConnectFailed").value == 1
    await client.aclose()


@pytest.mark.asyncio
async def test_caller_cancellation_closes_the_connection(fault_server: FaultFactory) -> None:
    srv = await fault_server(FaultConfig(latency_s=5.0))
    client = _client(srv.url, stream=True, hedge=False)
    task = asyncio.get_running_loop().create_task(client.complete(MSGS, Answer))
    for _ in range(200):
        if srv.stats.active:
            break
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if srv.stats.disconnects:
            break
        await asyncio.sleep(0.01)
    assert srv.stats.disconnects == 1 and srv.stats.active == 0
    assert client.endpoint_state("e0")["inflight"] == 0 and client.endpoint_state("e0")["breaker"] == "closed"
    await client.aclose()


@pytest.mark.asyncio
async def test_mutual_tls_endpoint_needs_our_client_certificate(
    fault_server: FaultFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from adapters.llm import ConnectFailed
    from tools.tlsproxy import TlsProxy, generate_test_pki

    pki = generate_test_pki(tmp_path_factory.mktemp("llm-pki"))
    srv = await fault_server()
    proxy = await TlsProxy(
        "127.0.0.1", srv.port, cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca_cert
    ).start()
    url = f"https://127.0.0.1:{proxy.port}/v1"

    def client(cert: str = "", key: str = "") -> LLMClient:
        ep = EndpointConfig(
            name="m", url=url, model="m", tls_ca=pki.ca_cert, tls_client_cert=cert, tls_client_key=key
        )
        return LLMClient(LLMClientConfig(endpoints=(ep,), max_attempts=1, hedge=False))

    try:
        good = client(pki.client_cert, pki.client_key)
        done = await good.complete(MSGS, Answer)
        assert done.value == Answer(ok=True) and srv.stats.requests == 1
        await good.aclose()
        for bad in (client(), client(pki.rogue_cert, pki.rogue_key)):  # none, or another CA's
            with pytest.raises(ConnectFailed):
                await bad.complete(MSGS, Answer)
            await bad.aclose()
        assert srv.stats.requests == 1  # nothing without our certificate reached the server
    finally:
        await proxy.stop()


def test_tls_files_need_an_https_endpoint() -> None:
    ep = EndpointConfig(name="m", url="http://127.0.0.1:1/v1", model="m", tls_ca="/nonexistent.pem")
    with pytest.raises(ValueError, match="https"):
        LLMClient(LLMClientConfig(endpoints=(ep,)))


def _sharding_example() -> dict[str, Any]:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "sharding" / "cloud-sharded.toml"
    table: dict[str, Any] = tomllib.loads(path.read_text())["actors"][0]
    return table


@pytest.mark.asyncio
async def test_the_sharding_example_config_is_accepted_and_speaks_each_dialect(
    fault_server: FaultFactory,
) -> None:
    """docs/sharding/cloud-sharded.toml loads into the proxy's config, and each of its endpoints,
    pointed at the fault server, sends the structured-output fields of its dialect."""
    from actors.cloud_reasoner import CloudReasonerConfig
    from actors.regions import RegionRouter

    table = _sharding_example()
    assert table["class"] == "actors.cloud_reasoner:CloudReasonerProxy"
    cfg = msgspec.convert(table["config"], CloudReasonerConfig)
    assert set(cfg.regions) == {"us", "eu"} and cfg.default_region == "us"
    eps = {e.name: e for r in cfg.regions.values() for e in r.endpoints}
    assert {e.dialect for e in eps.values()} == {"vllm", "tgi"}
    mtls = eps["vllm-eu-405b"]
    assert mtls.url.startswith("https://") and mtls.tls_client_cert and mtls.tls_client_key
    assert cfg.regions["us"].failover == ("eu",) and "CME" in cfg.regions["us"].context
    llm = cfg.llm
    assert llm is not None
    router = RegionRouter(cfg.regions, llm, default=cfg.default_region)
    assert router.region_for("ESZ3") == "us" and router.region_for("SAP.DE") == "eu"
    assert router.region_for("XYZ", venue="EUREX") == "eu" and router.region_for("XYZ") == "us"
    srv = await fault_server()
    for ep in eps.values():  # the same endpoints, on loopback and without the TLS files
        local = msgspec.structs.replace(
            ep, url=srv.url, tls_ca="", tls_client_cert="", tls_client_key="", stream=False
        )
        client = LLMClient(msgspec.structs.replace(llm, endpoints=(local,), hedge=False))
        done = await client.complete(MSGS, Answer)
        await client.aclose()
        body = srv.bodies[-1]
        assert done.value.ok and body["model"] == ep.model
        if ep.dialect == "vllm":
            assert body["structured_outputs"]["json"]["required"] == ["ok"]
        else:
            assert (
                body["response_format"]["type"] == "json"
                and "ok" in body["response_format"]["value"]["properties"]
            )
