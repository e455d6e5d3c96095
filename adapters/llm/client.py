"""The OpenAI-compatible chat-completions client: structured answers, resilient, accounted.

One :class:`LLMClient` serves several endpoints (vLLM, TGI, llama.cpp, hosted
providers) side by side.  A call to :meth:`LLMClient.complete`:

1. picks an endpoint whose circuit breaker allows it (``priority`` order, or
   ``least_loaded``: lowest recent latency x in-flight / weight);
2. waits for a slot under that endpoint's adaptive concurrency limit;
3. sends the request with the endpoint's structured-output dialect, streaming by
   default so that cancelling closes the connection and the server stops;
4. if no answer came within the endpoint's observed p95 latency, sends a hedged
   copy (to another endpoint when there is one) and keeps the first answer;
5. retries server faults with full-jitter backoff on another endpoint, while the
   shared retry budget allows (retries + hedges <= ``retry_budget_ratio`` of requests);
6. validates the answer into the caller's msgspec type (and the caller's own
   check); an invalid answer is counted and raised as :class:`InvalidAnswer`;
7. accounts tokens (from ``usage``, or estimated when a stream has none) and cost.

Everything runs under one deadline; when it passes, in-flight attempts are
cancelled, their connections closed, and :class:`DeadlineExceeded` is raised.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from typing import Any, Generic, Literal, TypeVar, cast

import msgspec

from adapters.llm.dialects import Dialect, schema_for, structured_output_fields
from adapters.llm.errors import (
    BadRequest,
    CircuitOpen,
    ConnectFailed,
    DeadlineExceeded,
    InvalidAnswer,
    LLMError,
    MalformedResponse,
    NoEndpointAvailable,
    ServerError,
)
from adapters.llm.http import HttpPool, client_tls_context
from adapters.llm.resilience import (
    CircuitBreaker,
    Gradient2Limiter,
    LatencyWindow,
    RetryBudget,
    VegasLimiter,
    full_jitter,
)
from engine.metrics import Metrics

__all__ = ["ChatMessage", "Completion", "EndpointConfig", "LLMClient", "LLMClientConfig"]

T = TypeVar("T")

ChatMessage = dict[str, str]
"""``{"role": "system" | "user" | "assistant", "content": "..."}``"""


class EndpointConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One OpenAI-compatible server.  ``url`` is the API base (``http://host:port/v1``)."""

    name: str
    url: str
    model: str
    dialect: Dialect = "llamacpp"
    stream: bool = True
    """Stream the answer (SSE): cancellation then reliably stops generation on the server."""
    weight: float = 1.0
    api_key_env: str = ""
    """Name of the environment variable holding a bearer token; empty for none."""
    tls_ca: str = ""
    """CA bundle (PEM) that signs the server's certificate; empty: the system trust store."""
    tls_client_cert: str = ""
    """Client certificate chain (PEM) for servers that require mutual TLS; empty: none."""
    tls_client_key: str = ""
    """The client certificate's private key (PEM); empty: in ``tls_client_cert``."""
    region: str = ""
    """The region this endpoint serves in (see :mod:`actors.regions`); empty: any."""
    usd_per_1k_prompt_tokens: float = 0.0
    usd_per_1k_completion_tokens: float = 0.0
    initial_concurrency: int = 4
    min_concurrency: int = 1
    max_concurrency: int = 32


class LLMClientConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Client policy; times in seconds."""

    endpoints: tuple[EndpointConfig, ...]
    routing: Literal["priority", "least_loaded"] = "least_loaded"
    limiter: Literal["vegas", "gradient2"] = "vegas"
    deadline_s: float = 10.0
    connect_timeout_s: float = 2.0
    max_attempts: int = 3
    retry_budget_ratio: float = 0.1
    retry_budget_reserve: float = 2.0
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0
    hedge: bool = True
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 20
    hedge_initial_delay_s: float = 0.0
    """Hedge delay before ``hedge_min_samples`` latencies are known; 0 means no hedge until then."""
    breaker_failures: int = 5
    breaker_reset_s: float = 5.0
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0


class Completion(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A validated answer and what it cost.  ``latency_s`` is the whole call, retries included."""

    value: T
    content: str
    endpoint: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    tokens_estimated: bool
    cost_usd: float
    latency_s: float
    attempts: int
    hedged: bool


# --- wire envelopes (only the fields we read) -----------------------------------


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Envelope(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    model: str = ""


_envelope_decoder = msgspec.json.Decoder(_Envelope)


class _Raw(msgspec.Struct, frozen=True):
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    finish_reason: str


class _Endpoint:
    """Runtime state of one endpoint."""

    def __init__(self, cfg: EndpointConfig, client_cfg: LLMClientConfig, clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        tls = None
        if cfg.tls_ca or cfg.tls_client_cert:
            if not cfg.url.startswith("https://"):
                raise ValueError(f"endpoint {cfg.name!r}: TLS files need an https:// url")
            tls = client_tls_context(cfg.tls_ca, cfg.tls_client_cert, cfg.tls_client_key)
        self.pool = HttpPool(cfg.url, connect_timeout_s=client_cfg.connect_timeout_s, ssl_context=tls)
        self.breaker = CircuitBreaker(client_cfg.breaker_failures, client_cfg.breaker_reset_s, clock)
        limiter_type = VegasLimiter if client_cfg.limiter == "vegas" else Gradient2Limiter
        self.limiter = limiter_type(cfg.initial_concurrency, cfg.min_concurrency, cfg.max_concurrency)
        self.latency = LatencyWindow()
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cfg.stream:
            self.headers["Accept"] = "text/event-stream"
        if cfg.api_key_env:
            token = os.environ.get(cfg.api_key_env, "")
            if not token:
                raise ValueError(f"endpoint {cfg.name!r}: environment variable {cfg.api_key_env} is empty")
            self.headers["Authorization"] = f"Bearer {token}"

    def load_score(self) -> float:
        # Unknown latency scores 0 so that a new endpoint gets explored.
        return self.latency.ewma * (self.limiter.inflight + 1) / max(self.cfg.weight, 1e-9)


class LLMClient:
    """See the module docstring.  Use from one event loop; close with :meth:`aclose`."""

    def __init__(
        self,
        config: LLMClientConfig,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.endpoints:
            raise ValueError("LLMClientConfig.endpoints is empty")
        names = [e.name for e in config.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique, got {names}")
        if config.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self._clock = clock
        self._endpoints = [_Endpoint(e, config, clock) for e in config.endpoints]
        self.budget = RetryBudget(config.retry_budget_ratio, config.retry_budget_reserve)
        self._rng = random.Random(config.seed)
        m = self.metrics
        self._requests = m.counter("llm_requests_total")
        self._retries = m.counter("llm_retries_total")
        self._hedges = m.counter("llm_hedges_total")
        self._hedge_wins = m.counter("llm_hedge_wins_total")
        self._deadlines = m.counter("llm_deadline_exceeded_total")
        self._budget_refused = m.counter("llm_retry_budget_refused_total")
        self._no_endpoint = m.counter("llm_no_endpoint_total")
        self._cost = m.gauge("llm_cost_usd_total")

    @property
    def endpoints(self) -> Sequence[str]:
        return [e.name for e in self._endpoints]

    def endpoint_state(self, name: str) -> dict[str, Any]:
        """Breaker state, concurrency limit and latency quantiles of one endpoint (for tests and ops)."""
        ep = self._by_name(name)
        return {
            "breaker": str(ep.breaker.state),
            "limit": ep.limiter.limit,
            "inflight": ep.limiter.inflight,
            "peak_inflight": ep.limiter.peak_inflight,
            "p50_s": ep.latency.quantile(0.5),
            "p95_s": ep.latency.quantile(0.95),
            "connections_opened": ep.pool.connections_opened,
        }

    def _by_name(self, name: str) -> _Endpoint:
        for ep in self._endpoints:
            if ep.name == name:
                return ep
        raise KeyError(name)

    async def aclose(self) -> None:
        for ep in self._endpoints:
            ep.pool.close()

    # --- the call ----------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        answer_type: type[T],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        check: Callable[[T], str | None] | None = None,
        deadline_s: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion[T]:
        """Ask for an answer of type ``answer_type`` (a msgspec type).

        ``schema`` overrides the JSON schema sent to the server (e.g. with an enum
        of allowed ids); the answer is always decoded into ``answer_type`` and then
        passed to ``check``, which returns a rejection reason or None.
        Raises :class:`InvalidAnswer`, :class:`DeadlineExceeded`,
        :class:`NoEndpointAvailable` or the last attempt's :class:`LLMError`.
        """
        cfg = self.config
        self._requests.inc()
        self.budget.on_request()
        schema = schema if schema is not None else schema_for(cast(Any, answer_type))
        t0 = time.perf_counter()
        limit_s = cfg.deadline_s if deadline_s is None else deadline_s
        attempts = 0
        exclude: set[str] = set()
        try:
            async with asyncio.timeout(limit_s):
                last: LLMError | None = None
                raw: _Raw | None = None
                for attempt in range(cfg.max_attempts):
                    if attempt:
                        if not self.budget.try_spend():
                            self._budget_refused.inc()
                            break
                        self._retries.inc()
                        await asyncio.sleep(
                            full_jitter(attempt - 1, cfg.backoff_base_s, cfg.backoff_cap_s, self._rng)
                        )
                    try:
                        raw, ep, hedged, n = await self._hedged(
                            messages, schema, schema_name, max_tokens, exclude
                        )
                        attempts += n
                        break
                    except LLMError as exc:
                        attempts += 1
                        if not exc.retryable:
                            raise
                        last = exc
                        if exc.endpoint:
                            exclude.add(exc.endpoint)  # fail over
                if raw is None:
                    assert last is not None
                    raise last
        except TimeoutError:
            self._deadlines.inc()
            raise DeadlineExceeded(f"no answer within {limit_s:.3f}s") from None
        latency = time.perf_counter() - t0
        value = self._validate(raw, ep, answer_type, check)
        cost = self._account(ep, raw)
        return Completion(
            value=value,
            content=raw.content,
            endpoint=ep.name,
            model=raw.model or ep.cfg.model,
            prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens,
            tokens_estimated=raw.estimated,
            cost_usd=cost,
            latency_s=latency,
            attempts=attempts,
            hedged=hedged,
        )

    def _validate(
        self, raw: _Raw, ep: _Endpoint, answer_type: type[T], check: Callable[[T], str | None] | None
    ) -> T:
        text = _strip_fences(raw.content)
        reason = ""
        value: Any = None
        try:
            value = msgspec.json.decode(text, type=answer_type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"schema: {exc}"
            if raw.finish_reason == "length":
                reason += " (answer cut at max_tokens)"
        if not reason and check is not None:
            reason = check(value) or ""
        if reason:
            self.metrics.counter("llm_invalid_answers_total", endpoint=ep.name).inc()
            self._account(ep, raw)  # an invalid answer still cost tokens
            raise InvalidAnswer(
                f"invalid answer from {ep.name}: {reason}",
                endpoint=ep.name,
                content=raw.content,
                reason=reason,
            )
        return value  # type: ignore[no-any-return]

    def _account(self, ep: _Endpoint, raw: _Raw) -> float:
        m = self.metrics
        m.counter("llm_tokens_total", endpoint=ep.name, kind="prompt").inc(raw.prompt_tokens)
        m.counter("llm_tokens_total", endpoint=ep.name, kind="completion").inc(raw.completion_tokens)
        cost = (
            raw.prompt_tokens * ep.cfg.usd_per_1k_prompt_tokens
            + raw.completion_tokens * ep.cfg.usd_per_1k_completion_tokens
        ) / 1000.0
        self._cost.set(self._cost.value + cost)
        return cost

    # --- routing and hedging ----------------------------------------------------------

    def _pick(self, exclude: set[str]) -> _Endpoint:
        allowed = [ep for ep in self._endpoints if ep.breaker.allows()]
        fresh = [ep for ep in allowed if ep.name not in exclude]
        candidates = fresh or allowed
        if not candidates:
            self._no_endpoint.inc()
            raise NoEndpointAvailable("every endpoint's circuit breaker is open")
        if self.config.routing == "priority":
            return candidates[0]
        return min(candidates, key=_Endpoint.load_score)

    def _hedge_delay(self, ep: _Endpoint) -> float | None:
        cfg = self.config
        if not cfg.hedge:
            return None
        if len(ep.latency) >= cfg.hedge_min_samples:
            return ep.latency.quantile(cfg.hedge_quantile)
        return cfg.hedge_initial_delay_s or None

    async def _hedged(
        self,
        messages: Sequence[ChatMessage],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None,
        exclude: set[str],
    ) -> tuple[_Raw, _Endpoint, bool, int]:
        first = self._pick(exclude)
        tasks: dict[asyncio.Task[_Raw], _Endpoint] = {}

        def start(ep: _Endpoint) -> asyncio.Task[_Raw]:
            body = self._body(ep, messages, schema, schema_name, max_tokens)
            task = asyncio.get_running_loop().create_task(self._attempt(ep, body))
            tasks[task] = ep
            return task

        start(first)
        errors: list[BaseException] = []
        hedged = False
        hedge_task: asyncio.Task[_Raw] | None = None
        try:
            delay = self._hedge_delay(first)
            if delay is not None:
                done, _ = await asyncio.wait(set(tasks), timeout=delay)
                if not done:
                    if self.budget.try_spend():
                        self._hedges.inc()
                        hedged = True
                        try:
                            hedge_task = start(self._pick(exclude | {first.name}))
                        except NoEndpointAvailable:
                            hedged = False
                    else:
                        self._budget_refused.inc()
            started = len(tasks)
            while tasks:
                done, _ = await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    ep = tasks.pop(task)
                    exc = task.exception()
                    if exc is None:
                        if task is hedge_task:
                            self._hedge_wins.inc()
                        return task.result(), ep, hedged, started
                    errors.append(exc)
            raise errors[0]
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _body(
        self,
        ep: _Endpoint,
        messages: Sequence[ChatMessage],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None,
    ) -> bytes:
        cfg = self.config
        body: dict[str, Any] = {
            "model": ep.cfg.model,
            "messages": list(messages),
            "temperature": cfg.temperature,
            "max_tokens": max_tokens or cfg.max_tokens,
            "stream": ep.cfg.stream,
        }
        if cfg.seed:
            body["seed"] = cfg.seed
        body.update(structured_output_fields(ep.cfg.dialect, schema, schema_name))
        return msgspec.json.encode(body)

    async def _attempt(self, ep: _Endpoint, body: bytes) -> _Raw:
        if not ep.breaker.acquire():
            raise CircuitOpen(f"circuit of {ep.name} is open", endpoint=ep.name)
        try:
            inflight = await ep.limiter.acquire()
        except BaseException:
            ep.breaker.on_abandon()
            raise
        t0 = time.perf_counter()
        rtt: float | None = None
        dropped = False
        outcome = "cancelled"
        try:
            raw = await self._exchange(ep, body)
            rtt = time.perf_counter() - t0
            ep.latency.observe(rtt)
            self.metrics.histogram("llm_latency_ms", endpoint=ep.name).observe(rtt * 1000.0)
            ep.breaker.on_success()
            outcome = "ok"
            return raw
        except BadRequest:
            ep.breaker.on_success()  # the server is alive; our request is wrong
            outcome = "bad_request"
            raise
        except (ServerError, MalformedResponse, ConnectFailed) as exc:
            ep.breaker.on_failure()
            dropped = isinstance(exc, ServerError)
            outcome = type(exc).__name__
            exc.endpoint = ep.name
            raise
        except BaseException:
            ep.breaker.on_abandon()
            raise
        finally:
            ep.limiter.release(rtt, inflight, dropped=dropped)
            self.metrics.counter("llm_attempts_total", endpoint=ep.name, outcome=outcome).inc()

    async def _exchange(self, ep: _Endpoint, body: bytes) -> _Raw:
        resp = await ep.pool.request("POST", "/chat/completions", body, ep.headers)
        if resp.status != 200:
            text = (await resp.read())[:300].decode("utf-8", "replace")
            if resp.status >= 500 or resp.status == 429:
                raise ServerError(
                    f"{ep.name}: HTTP {resp.status}: {text}", endpoint=ep.name, status=resp.status
                )
            raise BadRequest(f"{ep.name}: HTTP {resp.status}: {text}", endpoint=ep.name, status=resp.status)
        is_sse = "text/event-stream" in resp.headers.get("content-type", "")
        if not is_sse:
            data = await resp.read()
            try:
                env = _envelope_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise MalformedResponse(
                    f"{ep.name}: body is not a completion: {exc}", endpoint=ep.name
                ) from exc
            if not env.choices or env.choices[0].message is None:
                raise MalformedResponse(f"{ep.name}: completion without choices", endpoint=ep.name)
            content = env.choices[0].message.content or ""
            usage = env.usage
            return _Raw(
                content=content,
                model=env.model,
                prompt_tokens=usage.prompt_tokens if usage else _estimate_tokens(body),
                completion_tokens=usage.completion_tokens if usage else max(1, len(content) // 4),
                estimated=usage is None,
                finish_reason=env.choices[0].finish_reason or "",
            )
        parts: list[str] = []
        pieces = 0
        usage = None
        model = ""
        finish = ""
        async with aclosing(resp.sse()) as events:
            async for payload in events:
                try:
                    chunk = _envelope_decoder.decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise MalformedResponse(f"{ep.name}: bad stream event: {exc}", endpoint=ep.name) from exc
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices[:1]:
                    piece = (choice.delta.content if choice.delta else None) or ""
                    if piece:
                        parts.append(piece)
                        pieces += 1
                    finish = choice.finish_reason or finish
        content = "".join(parts)
        return _Raw(
            content=content,
            model=model,
            # llama.cpp streams one token per event and sends no usage; count events then.
            prompt_tokens=usage.prompt_tokens if usage else _estimate_tokens(body),
            completion_tokens=usage.completion_tokens if usage else pieces,
            estimated=usage is None,
            finish_reason=finish,
        )


def _estimate_tokens(body: bytes) -> int:
    return max(1, len(body) // 4)


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()
