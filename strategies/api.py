"""The Strategy API: what a trading strategy sees and may do.

A strategy is a plain class, loaded by dotted path (``"package.module:Class"``)
from the pipeline config, so users' own modules plug in without touching ours::

    class MyParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        qty: int = 1

    class Mine(Strategy[MyParams]):
        params_type = MyParams

        def on_bar(self, bar: Bar) -> None:
            if bar.close > bar.open and self.ctx.position(bar.symbol) <= 0:
                self.ctx.submit_order(bar.symbol, side=1, qty=self.params.qty)

Hooks (all optional, all synchronous): ``on_start``, ``on_bar``, ``on_forecast``,
``on_trade`` (every tick; only called when overridden, it is the hot path),
``on_fill``, ``on_reject``, ``on_stop``.  Orders go through
:meth:`StrategyContext.submit_order` / :meth:`StrategyContext.cancel_order`;
positions are read-only views.  Time is ``ctx.now_ns``: the event time of the
message being handled (simulated time in replay), never the wall clock.

A strategy that raises is contained by its host: the error is counted, the
message dead-lettered, the strategy restarted (a fresh instance, same
positions) and, past ``max_restarts``, disabled.  It never takes the engine
down.  Strategies see only this module and :mod:`engine.messages`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import msgspec

from engine.messages import Bar, Fill, Forecast, OrderReject, Trade

__all__ = ["NoParams", "Strategy", "StrategyContext", "StrategyError", "StrategySpec"]

P = TypeVar("P", bound=msgspec.Struct)


class StrategyError(Exception):
    """Raised by :meth:`StrategyContext.submit_order` on an order that can never be valid
    (bad side, type or quantity) and by the host when a strategy cannot be loaded.

    A strategy should fix its logic; a config author should fix the dotted path or params.
    """


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The params of a strategy that takes none."""


class StrategySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"cls": "class"}):
    """One strategy in a host's config.

    ``id`` names its account and topics (``order.<id>``, ``fill.<id>``);
    ``cls`` the dotted path; ``params`` become the class's ``params_type``;
    ``symbols`` limits which symbols' events it sees (empty: all);
    ``max_restarts`` failures tolerated before it is disabled.
    """

    id: str
    cls: str
    params: dict[str, Any] = {}
    symbols: tuple[str, ...] = ()
    max_restarts: int = 3


class StrategyContext(Protocol):
    """What the host gives a strategy."""

    @property
    def strategy_id(self) -> str: ...

    @property
    def now_ns(self) -> int:
        """Event time (ns) of the message being handled."""
        ...

    def submit_order(
        self,
        symbol: str,
        side: Literal[1, -1],
        qty: float,
        order_type: Literal["market", "limit", "ioc"] = "market",
        limit_price: float | None = None,
    ) -> str:
        """Send an order; returns its id.  Fills and rejects come back via ``on_fill``/``on_reject``."""
        ...

    def cancel_order(self, order_id: str) -> None: ...

    def position(self, symbol: str) -> float:
        """Filled position, signed (contracts/shares)."""
        ...

    @property
    def positions(self) -> Mapping[str, float]:
        """All non-zero filled positions (a read-only snapshot)."""
        ...

    def pending(self, symbol: str) -> float:
        """Signed quantity of this strategy's working orders in ``symbol``."""
        ...

    def equity(self) -> float:
        """Account equity marked to the last price (account currency)."""
        ...

    @property
    def log(self) -> Any: ...


class Strategy(Generic[P]):
    """Base class of every strategy; override the hooks you need."""

    params_type: ClassVar[type[msgspec.Struct]] = NoParams

    def __init__(self, ctx: StrategyContext, params: P) -> None:
        self.ctx = ctx
        self.params = params

    def on_start(self) -> None:
        """Called once per instance before any event."""

    def on_bar(self, bar: Bar) -> None:
        """A bar of a symbol this strategy follows closed."""

    def on_forecast(self, forecast: Forecast) -> None:
        """A forecast (or a newer refinement of the one held) arrived."""

    def on_trade(self, trade: Trade) -> None:
        """Every trade (only called when a subclass overrides it)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders (partly) filled."""

    def on_reject(self, reject: OrderReject) -> None:
        """One of this strategy's orders or cancels was rejected (the reason says why)."""

    def on_stop(self) -> None:
        """Called at the end of the run or before a restart."""
