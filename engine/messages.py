"""The message vocabulary: one tagged union of frozen msgspec Structs.

Every message that crosses an actor boundary, a file or a Kafka topic is one of
the Structs below.  Each carries a ``type`` tag so a single typed decoder turns
bytes into the right class; handlers dispatch with ``match``.

Units: every ``ts_*`` field is integer nanoseconds since the Unix epoch (UTC);
``ts_event`` is when the source says it happened, ``ts_recv`` when we got it.
Prices and sizes are floats here; money inside the simulated exchange is exact.
Hot-path structs (ticks, bars, forecasts) are ``gc=False``: they hold no
reference cycles, so the garbage collector never needs to scan them.

Modes are a kernel contract (DESIGN.md "Modes"): :class:`Mode` names them, the
degradation controller announces a change with :class:`ModeChange` on
``control.mode`` (and sets the bus's mode, which actors read as ``ctx.mode``),
and every product actor documents in its module docstring what it does in each
mode.  :class:`EscalationRoute` (``control.route``) and :class:`Heartbeat` are
the other control messages.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec

__all__ = [
    "Bar",
    "BreakerState",
    "CancelOrder",
    "DeadLetter",
    "EscalationRoute",
    "Fill",
    "Forecast",
    "Heartbeat",
    "Message",
    "Mode",
    "ModeChange",
    "ModelDecision",
    "NewsItem",
    "NewsRetracted",
    "NewsVerdict",
    "Order",
    "OrderReject",
    "Quote",
    "ReasoningTrace",
    "Side",
    "Trade",
    "VerifiedNews",
    "json_decoder",
    "json_encoder",
    "msgpack_decoder",
    "msgpack_encoder",
]

Side: TypeAlias = Literal[1, -1, 0]
"""Aggressor or order side: 1 buy, -1 sell, 0 unknown."""


class _Msg(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    """Base of every message; never instantiated on its own."""


# --- market data -------------------------------------------------------------


class Trade(_Msg, frozen=True, kw_only=True, tag="trade", gc=False):
    """One print.  ``seq`` is the feed's per-symbol sequence number (1-based)."""

    symbol: str
    ts_event: int
    ts_recv: int = 0
    seq: int = 0
    price: float
    size: float
    side: Side = 0


class Quote(_Msg, frozen=True, kw_only=True, tag="quote", gc=False):
    """Top of book.  A quote with ``bid >= ask`` is crossed and is dead-lettered."""

    symbol: str
    ts_event: int
    ts_recv: int = 0
    seq: int = 0
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0


class Bar(_Msg, frozen=True, kw_only=True, tag="bar", gc=False):
    """An aggregated bar.  ``ts_event`` is the close time, ``ts_open`` the open time.

    ``kind`` names the aggregation (``time``, ``tick`` or ``dollar``) and
    ``spec`` its size (nanoseconds, ticks or dollars).  ``seq`` is the sequence
    number of the last trade in the bar.
    """

    symbol: str
    ts_event: int
    ts_open: int
    seq: int = 0
    open: float
    high: float
    low: float
    close: float
    volume: float
    dollar_volume: float = 0.0
    n_trades: int = 0
    buy_volume: float = 0.0
    kind: str = "time"
    spec: float = 0.0


# --- news --------------------------------------------------------------------


class NewsItem(_Msg, frozen=True, kw_only=True, tag="news"):
    """A news item as ingested (DESIGN.md schema), before any checking."""

    id: str
    ts_event: int
    ts_recv: int = 0
    source: str
    headline: str
    body: str = ""
    symbols: tuple[str, ...] = ()
    declared_source: str = ""
    """What the item said its source was, when ``source`` was assigned from its channel."""
    source_basis: Literal["declared", "channel"] = "declared"
    """``channel``: ``source`` comes from where the item arrived (a live node's configured feed);
    ``declared``: from the item's own field (replay files, vetted aggregators)."""


class NewsVerdict(_Msg, frozen=True, kw_only=True, tag="news_verdict"):
    """The sanity checker's verdict on one item: accepted, quarantined or rejected."""

    id: str
    ts_event: int
    verdict: Literal["accepted", "quarantined", "rejected", "invalid"]
    reasons: tuple[str, ...] = ()
    scores: dict[str, float] = {}
    symbols: tuple[str, ...] = ()
    sentiment: float = 0.0


class VerifiedNews(_Msg, frozen=True, kw_only=True, tag="verified_news"):
    """An accepted news item, normalized, linked and scored; safe to reason over.

    ``sentiment`` is in [-1, 1]; ``credibility`` in [0, 1]; ``embedding`` is a
    small summary vector (may be empty when no embedder is configured).
    """

    id: str
    ts_event: int
    source: str
    headline: str
    symbols: tuple[str, ...]
    sentiment: float = 0.0
    credibility: float = 0.5
    corroboration: int = 1
    embedding: tuple[float, ...] = ()
    corroborated_by: tuple[str, ...] = ()
    """Ids of the items from other independent sources that corroborated this one."""
    released: bool = False
    """True when the item was held for corroboration and released by a later item."""


class NewsRetracted(_Msg, frozen=True, kw_only=True, tag="news_retracted"):
    """Earlier accepted items withdrawn by a credible denial or correction (``news.retracted``).

    ``retracted`` are the ids of the withdrawn items; ``by`` the id of the denial, from
    ``source``; ``ts_event`` the denial's time (ns).  Reasoners drop the withdrawn items'
    influence from then on and record the retraction in their traces.
    """

    retracted: tuple[str, ...]
    by: str
    ts_event: int
    source: str = ""
    symbols: tuple[str, ...] = ()
    reason: str = ""


# --- forecasts ---------------------------------------------------------------


class Forecast(_Msg, frozen=True, kw_only=True, tag="forecast", gc=False):
    """A forecast of the next-``horizon`` log return of ``symbol``.

    ``version`` 1 comes from the edge tier; 2 and up are refinements of the same
    ``forecast_id``.  ``basis_seq`` is the last market event the forecast saw.
    ``horizon`` names the horizon (``"1m"``, ``"1d"``, ``"50t"``...).
    ``quantiles`` are return quantiles at ``quantile_levels``, non-decreasing.
    ``volatility`` is the forecast standard deviation of that return.
    """

    forecast_id: str
    symbol: str
    horizon: str
    version: int = 1
    basis_seq: int
    ts_event: int
    tier: Literal["edge", "cloud", "baseline"] = "edge"
    model_id: str = ""
    model_version: str = ""
    point: float = 0.0
    quantile_levels: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()
    direction_prob: float = 0.5
    volatility: float = 0.0
    confidence: float = 0.0
    trace_id: str = ""


class ReasoningTrace(_Msg, frozen=True, kw_only=True, tag="trace"):
    """Why a forecast says what it says, for humans.

    ``features`` lists (name, value, contribution) of the inputs that moved the
    forecast most; ``news_ids`` the evidence used; ``rationale`` the cloud
    model's words when there are any.
    """

    trace_id: str
    forecast_id: str
    version: int
    symbol: str
    ts_event: int
    tier: str
    model_id: str
    model_version: str
    features: tuple[tuple[str, float, float], ...] = ()
    news_ids: tuple[str, ...] = ()
    rationale: str = ""
    summary: str = ""


# --- orders and fills --------------------------------------------------------


class Order(_Msg, frozen=True, kw_only=True, tag="order"):
    """An order.  ``qty`` is positive; ``side`` says the direction.

    ``order_type`` ``market`` ignores ``limit_price``; ``ioc`` is a limit order
    whose unfilled part is cancelled immediately.
    """

    order_id: str
    strategy_id: str
    symbol: str
    side: Literal[1, -1]
    qty: float
    order_type: Literal["market", "limit", "ioc"] = "market"
    limit_price: float | None = None
    ts_event: int


class CancelOrder(_Msg, frozen=True, kw_only=True, tag="cancel"):
    order_id: str
    strategy_id: str
    ts_event: int


class Fill(_Msg, frozen=True, kw_only=True, tag="fill"):
    """An execution.  ``fee`` is in account currency, positive means paid."""

    order_id: str
    strategy_id: str
    symbol: str
    side: Literal[1, -1]
    qty: float
    price: float
    fee: float = 0.0
    ts_event: int
    liquidity: Literal["maker", "taker"] = "taker"


class OrderReject(_Msg, frozen=True, kw_only=True, tag="reject"):
    order_id: str
    strategy_id: str
    reason: str
    ts_event: int


# --- control -----------------------------------------------------------------


class Mode(enum.StrEnum):
    """The node's degradation mode, from calm to desperate.

    The value is the wire form (``"NORMAL"`` ...): a ``Mode`` is a ``str`` equal to
    its name (``Mode.DEGRADED == "DEGRADED"``), so a :class:`ModeChange` or a
    :class:`Heartbeat` encodes exactly as when modes were plain strings; decoding
    one refuses any other name.
    :attr:`level` orders them: 0 NORMAL, 1 CONSERVE, 2 DEGRADED, 3 SURVIVAL.
    """

    NORMAL = "NORMAL"
    """Everything runs."""
    CONSERVE = "CONSERVE"
    """Pressure building: optional work (cloud escalations) stops first."""
    DEGRADED = "DEGRADED"
    """Overloaded: cheaper paths everywhere (edge cheaper path, no embeddings, no explanations)."""
    SURVIVAL = "SURVIVAL"
    """Only what keeps forecasts flowing."""

    @property
    def level(self) -> int:
        """The severity: 0 (NORMAL) .. 3 (SURVIVAL)."""
        return _MODE_LEVELS[self]

    @classmethod
    def parse(cls, name: str) -> Mode:
        """The mode named ``name``; raises ValueError naming the known modes otherwise."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown mode {name!r}; expected one of {known}") from None

    @classmethod
    def at_level(cls, level: int) -> Mode:
        """The mode of severity ``level`` (0..3); raises ValueError outside that range."""
        if not 0 <= level < len(_MODE_ORDER):
            raise ValueError(f"mode level must be in 0..{len(_MODE_ORDER) - 1}, got {level}")
        return _MODE_ORDER[level]


_MODE_ORDER: Final = tuple(Mode)
_MODE_LEVELS: Final = {m: i for i, m in enumerate(_MODE_ORDER)}

# A mode in a message: a plain ``str`` to Python (the kernel and the bus hold mode names as
# strings; a Mode is one), validated on decoding, so a peer's or a file's unknown mode is refused.
_ModeName: TypeAlias = Annotated[str, msgspec.Meta(pattern=f"^({'|'.join(m.value for m in Mode)})$")]


class ModeChange(_Msg, frozen=True, kw_only=True, tag="mode"):
    """The degradation mode changed from ``previous`` to ``mode``; ``reason`` says why."""

    mode: _ModeName
    previous: _ModeName
    reason: str
    ts_event: int


class EscalationRoute(_Msg, frozen=True, kw_only=True, tag="escalation_route"):
    """Where ``node_id``'s cloud escalations go now: ``route_to`` is a peer's node id.

    ``route_to == node_id`` means stay local.  Published by the control plane on
    ``control.route`` when this node releases its partitions (and when it rejoins);
    the cloud proxy of ``node_id`` consumes it.
    """

    node_id: str
    route_to: str
    reason: str
    ts_event: int


class Heartbeat(_Msg, frozen=True, kw_only=True, tag="heartbeat"):
    """A node's periodic liveness and load report.  Latencies in microseconds."""

    node_id: str
    ts_event: int
    mode: _ModeName = Mode.NORMAL
    healthy: bool = True
    lag_p99_us: float = 0.0
    latency_p99_us: float = 0.0
    partitions: tuple[int, ...] = ()


class DeadLetter(_Msg, frozen=True, kw_only=True, tag="dead_letter"):
    """Input that could not be used, kept with the reason and the raw bytes."""

    source: str
    reason: str
    ts_event: int
    raw: bytes = b""
    detail: dict[str, Any] = {}


class ModelDecision(_Msg, frozen=True, kw_only=True, tag="model_decision"):
    """A deployment decision about an edge model version (``control.model``), logged and traced.

    ``action``: ``shadow`` (a candidate starts running in shadow), ``hold`` (scored, not
    decided yet or not better by the margin), ``promote`` (the candidate serves from the next
    micro-batch on), ``rollback`` (the previous version serves again after a regression or by
    hand), ``reject`` (the candidate failed verification or scored worse).  Scores are mean
    per-forecast losses over ``n`` realised outcomes (lower is better); ``dm_stat`` /
    ``dm_pvalue`` are the Diebold-Mariano test of candidate minus serving (negative: the
    candidate is better).  ``trace_id`` ties the decision to its log lines.
    """

    decision_id: str
    ts_event: int
    model_id: str
    action: Literal["shadow", "hold", "promote", "rollback", "reject"]
    serving_version: str = ""
    candidate_version: str = ""
    n: int = 0
    loss: str = "crps"
    loss_serving: float = 0.0
    loss_candidate: float = 0.0
    dm_stat: float = 0.0
    dm_pvalue: float = 1.0
    reason: str = ""
    trace_id: str = ""
    candidate_dir: str = ""
    """The candidate's model directory (its signed manifest is verified again before it serves)."""
    candidate_role: str = "student"
    """Which network of the candidate's manifest serves (``student``, ``teacher``)."""


class BreakerState(_Msg, frozen=True, kw_only=True, tag="breaker"):
    """The epistemic-diversity circuit breaker tripped (``state="open"``) or reset (``"closed"``).

    Published on ``control.breaker`` by :mod:`actors.diversity`.  While open, the strategy host
    refuses new orders of ``strategies`` (cancels still pass).  Figures at the decision, each
    in [0, 1] except ``correlation`` in [-1, 1]: ``correlation`` the mean pairwise correlation of
    the forecasters' errors relative to the random walk over the window, ``consensus`` the
    share of forecasters agreeing on the direction, ``crowding`` the strategies' net over gross
    position (one-sided positioning), ``crowding_rise`` its increase over the window.
    """

    breaker_id: str
    ts_event: int
    state: Literal["open", "closed"]
    strategies: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    correlation: float = 0.0
    consensus: float = 0.0
    crowding: float = 0.0
    crowding_rise: float = 0.0
    forecasters: int = 0
    reason: str = ""


Message: TypeAlias = (
    Trade
    | Quote
    | Bar
    | NewsItem
    | NewsVerdict
    | VerifiedNews
    | NewsRetracted
    | Forecast
    | ReasoningTrace
    | Order
    | CancelOrder
    | Fill
    | OrderReject
    | ModeChange
    | EscalationRoute
    | Heartbeat
    | DeadLetter
    | ModelDecision
    | BreakerState
)

# One decoder per boundary format; decoders are thread-safe and reusable.
msgpack_decoder: Final = msgspec.msgpack.Decoder(Message)
msgpack_encoder: Final = msgspec.msgpack.Encoder()
json_decoder: Final = msgspec.json.Decoder(Message)
json_encoder: Final = msgspec.json.Encoder()
