"""A test-only actor that drives the cloud pipeline inside the real engine.

On start it publishes a verified news item and a low-confidence edge forecast
(``forecast.ES``); each refinement (version >= 2) it sees triggers the next
forecast, ``n`` in all; then it asks the engine to shut down (or after ``timeout_s``).
One forecast at a time, so no refinement arrives after its basis moved on.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.actor import Actor
from engine.messages import Forecast, VerifiedNews

S = 1_000_000_000


class DriverConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    n: int = 2
    timeout_s: float = 20.0


class Driver(Actor[DriverConfig]):
    config_type = DriverConfig

    async def on_start(self) -> None:
        self.refined: set[str] = set()
        now = self.ctx.clock.now_ns()
        # news from a second ago: inside the proxy's news window for the forecasts that follow
        self.ctx.publish(
            "news.verified",
            VerifiedNews(
                id="n-1", ts_event=now - S, source="reuters", headline="ISM index beats", symbols=("ES",)
            ),
        )
        self._publish(0)
        self.ctx.call_later(
            int(self.config.timeout_s * S), lambda: self.ctx.request_shutdown("driver timeout")
        )

    def _publish(self, i: int) -> None:
        fc = Forecast(
            forecast_id=f"ES-{i}", symbol="ES", horizon="1m", basis_seq=i, ts_event=self.ctx.clock.now_ns(),
            quantile_levels=(0.1, 0.5, 0.9), quantiles=(-0.001, 0.0, 0.001), volatility=0.0008,
            confidence=0.1, model_id="edge-test", model_version="1",
        )  # fmt: skip
        self.ctx.publish("forecast.ES", fc)

    def on_message(self, msg: Any) -> None:
        if isinstance(msg, Forecast) and msg.version >= 2 and msg.forecast_id not in self.refined:
            self.refined.add(msg.forecast_id)
            if len(self.refined) >= self.config.n:
                self.ctx.request_shutdown("all refined")
            else:
                self._publish(len(self.refined))
