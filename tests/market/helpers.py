"""Test-only actors and strategies, loaded by dotted path like users' own modules."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from engine.actor import Actor
from engine.messages import Bar, Fill, Forecast, OrderReject, Quote, Trade, json_decoder, json_encoder
from engine.replay import Emit, ReplayDriver
from strategies.api import Strategy

__all__ = ["Boom", "Recorder", "Script", "ScriptConfig", "encode_script"]


def encode_script(msgs: list[Any]) -> list[str]:
    return [json_encoder.encode(m).decode() for m in msgs]


class ScriptConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``messages``: JSON-encoded messages to publish in order, one per step."""

    messages: list[str] = []


class Script(Actor[ScriptConfig]):
    """A replay source for tests: its messages go out one at a time through the replay driver
    (which moves the clock to each and waits for idle after it), then the engine shuts down."""

    config_type = ScriptConfig

    async def on_start(self) -> None:
        self._msgs = deque(json_decoder.decode(raw) for raw in self.config.messages)
        driver = ReplayDriver.of(self.ctx.runtime)
        driver.attach(self)
        self.ctx.spawn(driver.serve())

    @property
    def name(self) -> str:
        return self.ctx.name

    shutdown_reason = "replay finished"

    def head_ns(self) -> int | None:
        return self._msgs[0].ts_event if self._msgs else None

    def take(self, until_ns: int) -> list[Emit]:
        m = self._msgs.popleft()
        prefix = {Trade: "md", Quote: "md", Bar: "bar", Forecast: "forecast"}[type(m)]
        return [Emit(f"{prefix}.{m.symbol}", [m])]

    def finish(self) -> list[Emit]:
        return []


class RecorderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    buy_on_bar: int = 0  # buy one contract on this bar number (1-based); 0 never
    bad_symbol_on_bar: int = 0
    limit_on_bar: int = 0  # rest a buy limit 1 point below the bar close on this bar ...
    cancel_on_bar: int = 0  # ... and cancel it on this one


SEEN: dict[str, list[Any]] = {}


class Recorder(Strategy[RecorderParams]):
    """Records everything it is given (in the module-level SEEN, by strategy id)."""

    params_type = RecorderParams

    def on_start(self) -> None:
        self._log = SEEN.setdefault(self.ctx.strategy_id, [])
        self._bars = 0

    def on_bar(self, bar: Bar) -> None:
        self._bars += 1
        self._log.append(("bar", bar.ts_event, dict(self.ctx.positions)))
        if self._bars == self.params.buy_on_bar:
            self._log.append(("order", self.ctx.submit_order(bar.symbol, 1, 1)))
        if self._bars == self.params.bad_symbol_on_bar:
            self.ctx.submit_order("NOPE", 1, 1)
        if self._bars == self.params.limit_on_bar:
            self._limit = self.ctx.submit_order(bar.symbol, 1, 1, "limit", bar.close - 1.0)
            self._log.append(("pending", self.ctx.pending(bar.symbol)))
        if self._bars == self.params.cancel_on_bar:
            self.ctx.cancel_order(self._limit)
            self._log.append(("pending", self.ctx.pending(bar.symbol)))

    def on_forecast(self, forecast: Forecast) -> None:
        self._log.append(("forecast", forecast.forecast_id, forecast.version))

    def on_fill(self, fill: Fill) -> None:
        self._log.append(("fill", fill.price, fill.ts_event, self.ctx.position(fill.symbol)))

    def on_reject(self, reject: OrderReject) -> None:
        self._log.append(("reject", reject.reason))


class BoomParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    every: int = 3


class Boom(Strategy[BoomParams]):
    """Raises on every ``every``-th bar it sees; counts its own instances."""

    params_type = BoomParams
    instances = 0

    def on_start(self) -> None:
        type(self).instances += 1
        self._n = 0

    def on_bar(self, bar: Bar) -> None:
        self._n += 1
        if self._n % self.params.every == 0:
            raise RuntimeError(f"boom at bar {bar.ts_event}")
