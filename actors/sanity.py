"""SanityChecker: analysed news in, verified evidence out, manipulation kept out.

Subscribes to ``news.analysed`` (from :mod:`actors.narrative`) and to bars
(``bar.>``) for market consistency and source-credibility feedback.  Wraps
:class:`adapters.text.checker.SanityCore`:

* accepted items go to ``news.verified`` as :class:`~engine.messages.VerifiedNews`
  (and their verdict to ``news.verdict``, for audit);
* quarantined and rejected items go to ``news.quarantine`` as
  :class:`~engine.messages.NewsVerdict` with their reasons; they never reach
  ``news.verified``, so no reasoner or strategy sees them;
* an accepted near-copy of an item the models already have (the same text from another
  independent newsroom: it corroborated, it is not carried twice) goes to ``news.verdict`` only;
* a credible denial or correction of accepted items goes out on ``news.retracted`` as
  :class:`~engine.messages.NewsRetracted` (the reasoners drop the withdrawn items' influence).

Counted: ``news_verdicts_total{verdict}``, ``news_hold_total{outcome=held|released|expired}``,
``news_retracted_total`` (items withdrawn), ``news_corroborating_copies_total``.

Items held for corroboration are decided when their claim is corroborated or
when their window ends: a one-shot timer on the engine clock at the earliest
expiry decides them, and so does every arriving message.  On stop, held items are
quarantined as uncorroborated (never dropped silently).

Modes: the checker works the same in every mode.  It is the gate that keeps
manipulated or uncorroborated news away from the reasoners and strategies, so
shedding its checks under load would trade safety for CPU; and it is cheap (no
model: rules, token sets and heaps, per item and per bar), so the node gains
little by degrading it.  What the news tier sheds under load it sheds upstream,
in the narrative ingest (no embeddings from DEGRADED on: claims then match by
tokens alone here).

=========  ====================================================================
mode       sanity checker
=========  ====================================================================
NORMAL     every check; items held for corroboration up to their window
CONSERVE   the same
DEGRADED   the same
SURVIVAL   the same
=========  ====================================================================
"""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.text.checker import AnalysedNews, Decision, SanityConfig, SanityCore
from engine.actor import Actor
from engine.messages import Bar

__all__ = ["SanityChecker", "SanityCheckerConfig"]


class SanityCheckerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``checker``: the verdict rules; topics for accepted, quarantined/rejected and audit verdicts."""

    checker: SanityConfig = SanityConfig()
    verified_topic: str = "news.verified"
    quarantine_topic: str = "news.quarantine"
    verdict_topic: str = "news.verdict"
    retracted_topic: str = "news.retracted"


class SanityChecker(Actor[SanityCheckerConfig]):
    config_type = SanityCheckerConfig
    batch_size = 256

    async def on_start(self) -> None:
        self.core = SanityCore(self.config.checker)
        self._tier = self.ctx.tier("news")
        self._tier.configured()
        m = self.ctx.metrics
        name = self.ctx.name
        self._counters = {
            v: m.counter("news_verdicts_total", actor=name, verdict=v)
            for v in ("accepted", "quarantined", "rejected")
        }
        self._held = m.gauge("news_held", actor=name)
        self._flow = {
            k: m.counter("news_hold_total", actor=name, outcome=k) for k in ("held", "released", "expired")
        }
        self._n_retracted = m.counter("news_retracted_total", actor=name)
        self._n_copies = m.counter("news_corroborating_copies_total", actor=name)
        self._seen = dict.fromkeys(("held", "released", "expired", "retracted", "corroborating_copies"), 0)
        self._armed_at: int | None = None

    def _arm(self) -> None:
        # One-shot timer at the earliest expiry of a held item, never a periodic
        # tick: a simulated clock that jumps over years (a replay's start) would
        # fire a periodic timer once per missed interval.
        due = self.core.next_expiry_ns()
        if due is None or (self._armed_at is not None and self._armed_at <= due):
            return
        self._armed_at = due
        self.ctx.call_later(max(0, due - self.ctx.clock.now_ns()), self._tick)

    def on_batch(self, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, AnalysedNews):
                self._tier.attempt()
                self._emit(self.core.submit(m, max(self.ctx.clock.now_ns(), m.item.ts_event)))
            elif isinstance(m, Bar):
                self.core.observe_bar(m.symbol, m.ts_event, m.close, m.volume)
            else:
                self.ctx.dead_letter(f"unexpected message type {type(m).__name__}", raw=repr(m).encode())
        self._emit(self.core.advance(self.ctx.clock.now_ns()))

    def _tick(self) -> None:
        self._armed_at = None
        self._emit(self.core.advance(self.ctx.clock.now_ns()))

    async def on_drain(self) -> None:
        # The engine stops: the held items' final verdicts go out while their readers (the
        # quarantine sink, the edge, the cloud tier) still run.
        await self.on_stop()

    async def on_stop(self) -> None:
        core = getattr(self, "core", None)
        if core is not None:
            self._emit(core.flush())

    def _emit(self, decisions: list[Decision]) -> None:
        cfg = self.config
        for d in decisions:
            v = d.verdict
            self._counters[v.verdict].inc()
            self._tier.success()
            if v.verdict == "accepted":
                if d.verified is not None:
                    self.ctx.publish(cfg.verified_topic, d.verified)
                self.ctx.publish(cfg.verdict_topic, v)
                if d.retraction is not None:
                    self.ctx.publish(cfg.retracted_topic, d.retraction)
            else:
                self.ctx.publish(cfg.quarantine_topic, v)
        counts = self.core.counts
        for k, c in self._flow.items():
            c.inc(counts[k] - self._seen[k])
            self._seen[k] = counts[k]
        self._n_retracted.inc(counts["retracted"] - self._seen["retracted"])
        self._seen["retracted"] = counts["retracted"]
        self._n_copies.inc(counts["corroborating_copies"] - self._seen["corroborating_copies"])
        self._seen["corroborating_copies"] = counts["corroborating_copies"]
        self._held.set(self.core.held)
        self._arm()
