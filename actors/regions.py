"""Regional reasoning agents: escalations routed by market to an endpoint group per region.

A *region* (:class:`RegionConfig`) is a group of OpenAI-compatible endpoints (one
:class:`~adapters.llm.LLMClient` of its own: breakers, hedging and limits across the group),
the symbols and venues it serves (``fnmatch`` globs: ``"ES*"``, ``"*.L"``), a context paragraph
the prompt carries for its market (exchange, session hours, calendar, currency...), a token
budget of its own (a bucket on the engine clock) and the regions it fails over to, in order.

:class:`RegionRouter` is what the cloud proxy (:mod:`actors.cloud_reasoner`) holds:

* :meth:`RegionRouter.region_for` maps a symbol (or ``venue:<name>``) to its region: the first
  region, in config order, with a matching glob; none matches: ``default`` (empty: no region,
  the proxy's own endpoints serve);
* :meth:`RegionRouter.charge` takes the escalation's worst-case tokens from the region's
  budget (refused: the escalation is skipped, ``why="region_budget"``), :meth:`refund` returns
  what the answer did not use;
* :meth:`RegionRouter.complete` asks the region's group; on an error that another group may not
  have (a retryable one, no endpoint available, the deadline of this region's share), it asks
  the failover regions in order, each under the remaining time and only while its own budget
  allows (counted ``cloud_region_failovers_total{region,to}``).  The prompt keeps the
  *symbol's* region context wherever it is answered: it describes the market, not the server.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from adapters.llm import (
    ChatMessage,
    Completion,
    DeadlineExceeded,
    EndpointConfig,
    LLMClient,
    LLMClientConfig,
    LLMError,
    NoEndpointAvailable,
)
from engine.metrics import Metrics

__all__ = ["RegionConfig", "RegionRouter", "region_context_message"]

T = TypeVar("T")


class RegionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One region's endpoint group, markets, prompt context, budget and failover (module doc)."""

    endpoints: tuple[EndpointConfig, ...]
    symbols: tuple[str, ...] = ()
    """Globs of the symbols this region serves (``"ES*"``); venues as ``"venue:CME"``."""
    context: str = ""
    """A paragraph about this market, added to every prompt of its symbols."""
    failover: tuple[str, ...] = ()
    """Regions to ask, in order, when this one cannot answer."""
    tokens_per_s: float = 100.0
    tokens_burst: float = 2000.0
    """The region's own token bucket (engine clock): worst case charged, unused part refunded."""

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("a region needs at least one endpoint")
        if self.tokens_per_s < 0 or self.tokens_burst < 0:
            raise ValueError("tokens_per_s and tokens_burst must be >= 0")
        if len(self.context) > 2000:
            raise ValueError("region context is limited to 2000 characters")


class _Bucket:
    __slots__ = ("burst", "level", "rate", "ts")

    def __init__(self, rate: float, burst: float, now_ns: int) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.ts = now_ns

    def take(self, cost: float, now_ns: int) -> bool:
        self.level = min(self.burst, self.level + max(0, now_ns - self.ts) / 1e9 * self.rate)
        self.ts = now_ns
        if self.level < cost:
            return False
        self.level -= cost
        return True

    def give(self, amount: float) -> None:
        self.level = min(self.burst, self.level + amount)


def region_context_message(region: str, context: str) -> str:
    """The line a prompt carries for its symbol's region (empty context: none)."""
    return f"Market context ({region}): {context.strip()}" if context.strip() else ""


class RegionRouter:
    """See the module docstring.  ``client_config`` is the policy each region's client copies
    (deadline, retries, hedging); ``now_ns`` the engine clock of the budgets."""

    def __init__(
        self,
        regions: dict[str, RegionConfig],
        client_config: LLMClientConfig,
        *,
        default: str = "",
        metrics: Metrics | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        for name, reg in regions.items():
            for other in reg.failover:
                if other not in regions or other == name:
                    raise ValueError(f"region {name!r} fails over to unknown region {other!r}")
        if default and default not in regions:
            raise ValueError(f"default region {default!r} is not configured")
        self.regions = regions
        self.default = default
        self.metrics = metrics if metrics is not None else Metrics()
        self._now = now_ns
        self._clients: dict[str, LLMClient] = {}
        self._client_config = client_config
        t = now_ns()
        self._buckets = {n: _Bucket(r.tokens_per_s, r.tokens_burst, t) for n, r in regions.items()}
        self._cache: dict[str, str] = {}

    def region_for(self, symbol: str, venue: str = "") -> str:
        """The region serving ``symbol`` (or its ``venue``); ``default`` when none matches."""
        key = f"{symbol}\x00{venue}"
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        found = self.default
        for name, reg in self.regions.items():
            if any(
                fnmatch.fnmatchcase(symbol, g) or (venue and fnmatch.fnmatchcase(f"venue:{venue}", g))
                for g in reg.symbols
            ):
                found = name
                break
        if len(self._cache) < 65_536:
            self._cache[key] = found
        return found

    def context(self, region: str) -> str:
        reg = self.regions.get(region)
        return region_context_message(region, reg.context) if reg is not None else ""

    def charge(self, region: str, cost: float) -> bool:
        """Take ``cost`` tokens from ``region``'s budget; False (nothing taken) when short."""
        ok = self._buckets[region].take(cost, self._now())
        if not ok:
            self.metrics.counter("cloud_region_budget_refused_total", region=region).inc()
        return ok

    def refund(self, region: str, amount: float) -> None:
        if amount > 0:
            self._buckets[region].give(amount)

    def budget_left(self, region: str) -> float:
        b = self._buckets[region]
        b.take(0.0, self._now())
        return b.level

    def client(self, region: str) -> LLMClient:
        c = self._clients.get(region)
        if c is None:
            cfg = msgspec.structs.replace(self._client_config, endpoints=self.regions[region].endpoints)
            c = self._clients[region] = LLMClient(cfg, metrics=self.metrics)
        return c

    async def complete(
        self,
        region: str,
        messages: Sequence[ChatMessage],
        answer_type: type[T],
        *,
        charged: float,
        deadline_s: float,
        **kw: Any,
    ) -> tuple[Completion[T], str]:
        """Ask ``region`` (already charged ``charged`` tokens), failing over (module doc).

        Returns the completion and the region that answered.  Raises the last region's
        :class:`~adapters.llm.LLMError` (an invalid answer is not failed over: the model
        answered); failover regions without budget are passed over (counted).
        """
        order = [region, *self.regions[region].failover]
        t_end = time.monotonic() + deadline_s
        last: LLMError | None = None
        for i, name in enumerate(order):
            if i and not self.charge(name, charged):
                continue  # that region's budget is spent: the next one, if any
            left = t_end - time.monotonic()
            if left <= 0:
                break
            # Leave the later regions a share of the time: a hung group must not eat it all.
            share = left if i == len(order) - 1 else max(left / (len(order) - i), min(left, 0.05))
            if i:
                self.metrics.counter("cloud_region_failovers_total", region=order[i - 1], to=name).inc()
            try:
                done = await self.client(name).complete(messages, answer_type, deadline_s=share, **kw)
            except (DeadlineExceeded, NoEndpointAvailable) as exc:
                last = exc
            except LLMError as exc:
                if not exc.retryable:
                    raise
                last = exc
            else:
                self.metrics.counter("cloud_region_answers_total", region=name).inc()
                if i:
                    self.refund(region, charged)  # the home region's charge: it did not answer
                return done, name
            if i:
                self.refund(name, charged)
        if last is None:
            raise DeadlineExceeded(f"no time left for region {region!r}")
        raise last

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
