"""NarrativeIngest: news items in, analysed items out to the SanityChecker.

Consumes :class:`~engine.messages.NewsItem` from its subscriptions (``news.raw``,
fed by Kafka or any source) and, when ``replay_file`` is set, from a JSON-lines
replay file (DESIGN.md schema).  Each batch is analysed by
:class:`adapters.text.checker.Analyzer` (normalization, injection scan,
dedup, entity linking, sentiment, MiniLM embedding) in the executor, off the
event loop, and published as :class:`~adapters.text.checker.AnalysedNews` on
``out_topic`` (default ``news.analysed``).

Bad input never stops it (DESIGN.md "Bad input"): a file line over the
configured byte limit, nested too deep, not UTF-8 or not a valid item, an
item from the bus over the same bounds, a message of another type, and an item
whose analysis raises are each dead-lettered on their own, with the reason,
the line number where there is one (``detail``) and at most
``limits.excerpt_bytes`` of the raw bytes; the rest of the batch goes on.

Replay: the file is a source (:class:`adapters.sources.NewsFileSource`) attached
to the engine's replay driver (:mod:`engine.replay`), which merges it by time
with every other replayed source (the market data feed's tape), alone moves the
simulated clock, and hands each item to this actor's mailbox when the clock
reaches its ``ts_event`` (``ts_recv`` is that moment), waiting for the
pipeline to go idle after each handover: nothing downstream sheds, and the run
is deterministic.  ``pace``: ``clock`` (or its old synonym ``advance``) merges
by time; ``none`` hands every line over at once, before any later record of
another source.  This actor never moves the clock.

Load: the analysis (MiniLM over headlines and, with the learned detector, over every
passage of every item) runs in the executor, one call per mailbox batch (up to
``batch_size`` items in one ``encode``), so the loop -- and the market path on it -- never
waits for it; a backlog is worked off in batches, never item by item.  Counted:
``news_batches_total`` and ``news_batched_items_total`` (their ratio is the batch size the
load produced); from DEGRADED on embeddings are shed (below).

Modes (``ctx.mode``, read once per batch):

=========  ====================================================================
mode       narrative ingest
=========  ====================================================================
NORMAL     the whole analysis, MiniLM embedding included (and the embedding
           sentiment classifier when configured)
CONSERVE   the same
DEGRADED   no embeddings (from ``skip_embeddings_from`` on): the MiniLM pass,
           the ingest's dominant CPU cost, is skipped; items go out with an
           empty embedding and the lexicon sentiment (Loughran-McDonald and
           VADER), and the sanity checker matches their claims by tokens alone.
           The learned injection/pump detector needs the embeddings: the rules
           alone judge injection and pump text then.  Every other check
           (normalization, injection scan, dedup, linking) still runs.  Counted per item:
           ``news_embeddings_skipped_total``
SURVIVAL   as DEGRADED
=========  ====================================================================
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import msgspec

from adapters.sources import NewsFileSource
from adapters.text.checker import AnalysedNews, Analyzer, AnalyzerConfig
from adapters.text.errors import NewsParseError
from adapters.text.news_io import NewsLimits, excerpt, validate_item
from engine.actor import Actor
from engine.clock import SimClock
from engine.messages import Mode, NewsItem
from engine.replay import Emit, ReplayDriver

__all__ = ["NarrativeIngest", "NarrativeIngestConfig"]


class NarrativeIngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``analyzer``: ingest settings; ``replay_file``: optional JSONL of news items;
    ``pace``: ``clock`` | ``advance`` | ``none`` (see module docstring);
    ``shutdown_at_end``: ask the engine to stop when the replay is done;
    ``limits``: per-line and per-item bounds (bytes, nesting, symbols);
    ``skip_embeddings_from``: the least severe mode that skips embeddings (module docstring)."""

    analyzer: AnalyzerConfig = AnalyzerConfig()
    limits: NewsLimits = NewsLimits()
    replay_file: str = ""
    pace: Literal["clock", "advance", "none"] = "clock"
    out_topic: str = "news.analysed"
    shutdown_at_end: bool = False
    skip_embeddings_from: Mode = Mode.DEGRADED


class NarrativeIngest(Actor[NarrativeIngestConfig]):
    config_type = NarrativeIngestConfig
    batch_size = 64

    async def on_start(self) -> None:
        # Loading MiniLM takes seconds of CPU: never on the loop.
        self.analyzer: Analyzer = await self.ctx.run_in_executor(Analyzer.with_models, self.config.analyzer)
        self._plain = _without_embeddings(self.analyzer)
        m = self.ctx.metrics
        self._n_in = m.counter("news_ingested_total", actor=self.ctx.name)
        self._n_bad = m.counter("news_invalid_total", actor=self.ctx.name)
        self._n_no_embed = m.counter("news_embeddings_skipped_total", actor=self.ctx.name)
        self._n_batches = m.counter("news_batches_total", actor=self.ctx.name)
        self._n_batched = m.counter("news_batched_items_total", actor=self.ctx.name)
        self._input: _NewsInput | None = None
        if self.config.replay_file:
            self._driver = ReplayDriver.of(self.ctx.runtime)
            # Kept by the driver: a restarted incarnation resumes after the last line handed over.
            source = self._driver.source(
                f"{self.ctx.name}:news",
                lambda: NewsFileSource(
                    self.config.replay_file,
                    self.config.limits,
                    name=self.ctx.name,
                    untimed=self.config.pace == "none",
                ),
            )
            self._input = _NewsInput(self, source)
            self._driver.attach(self._input)
            self.ctx.spawn(self._driver.serve(), name=f"{self.ctx.name}:replay")

    async def on_stop(self) -> None:
        inp = getattr(self, "_input", None)
        if inp is not None:
            self._driver.detach(inp)

    async def on_batch(self, msgs: list[Any]) -> None:
        items: list[NewsItem] = []
        for m in msgs:
            if not isinstance(m, NewsItem):
                self._reject(f"unexpected message type {type(m).__name__}", _encode(m))
                continue
            try:
                validate_item(m, self.config.limits)
            except NewsParseError as exc:
                self._reject(f"invalid news item {m.id!r}: {exc}", _encode(m), m.ts_event, code=exc.code)
                continue
            items.append(m)
        await self._ingest(items)

    def _analyzer(self, n: int) -> Analyzer:
        """The analyzer for a batch of ``n`` items in the current mode (module docstring)."""
        skip = Mode.parse(self.ctx.mode).level >= self.config.skip_embeddings_from.level
        if skip and self.analyzer.embedder is not None:
            self._n_no_embed.inc(n)
            return self._plain
        return self.analyzer

    async def _ingest(self, items: list[NewsItem]) -> None:
        if not items:
            return
        analyzer = self._analyzer(len(items))
        self._n_batches.inc()
        self._n_batched.inc(len(items))
        try:
            outcomes = await self.ctx.run_in_executor(analyzer.analyse_each, items)
        except Exception as exc:  # analyse_each isolates records; this is the last line of defence
            for it in items:
                self._reject(f"analysis failed: {type(exc).__name__}: {exc}", _encode(it), it.ts_event)
            return
        for a in outcomes:
            if isinstance(a, AnalysedNews):
                self._n_in.inc()
                self.ctx.publish(self.config.out_topic, a)
            else:
                it = a.item
                self._reject(f"analysis failed for item {it.id!r}: {a.error}", _encode(it), it.ts_event)

    def _reject(self, reason: str, raw: bytes, ts_event: int | None = None, **detail: Any) -> None:
        self._n_bad.inc()
        self.ctx.dead_letter(reason, raw=excerpt(raw, self.config.limits), ts_event=ts_event, **detail)


class _NewsInput:
    """The news file as an input of the replay driver: its items go to the actor's own mailbox.

    Through the mailbox, so the analysis runs inside a handler and the bus counts the
    actor busy until the item is published (the driver waits for that: determinism).
    """

    def __init__(self, actor: NarrativeIngest, source: NewsFileSource) -> None:
        self.name = actor.ctx.name
        self.shutdown_reason = "news replay finished" if actor.config.shutdown_at_end else None
        self._actor = actor
        self._source = source
        # The driver waits for idle before each take: one take must fit the empty mailbox.
        self._limit = max(1, min(actor.batch_size, actor.ctx.self_ref.mailbox.capacity))

    def head_ns(self) -> int | None:
        return self._source.head_ns()

    def take(self, until_ns: int) -> list[Emit]:
        actor = self._actor
        ctx = actor.ctx
        now = ctx.clock.now_ns()
        sim = isinstance(ctx.clock, SimClock)
        items: list[NewsItem] = []
        # One moment at a time: each item is handed over (and analysed) at its own time.
        head = self._source.head_ns()
        until = until_ns if head is None else min(until_ns, head)
        for lineno, raw, parsed in self._source.take(until, self._limit):
            if isinstance(parsed, NewsParseError):
                actor._reject(
                    f"invalid news line {lineno}: {parsed}",
                    raw,
                    line=lineno,
                    code=parsed.code,
                    file=self._source.path,
                )
                continue
            # Received when the driver hands it over: at its own time, on a simulated clock.
            recv = max(now, parsed.ts_event) if sim else now
            items.append(msgspec.structs.replace(parsed, ts_recv=recv))
        return [Emit(ctx.self_ref, items)] if items else []

    def finish(self) -> list[Emit]:
        self._source.close()
        return []


def _without_embeddings(analyzer: Analyzer) -> Analyzer:
    """A view of ``analyzer`` that skips the MiniLM pass.

    A shallow copy: it shares the dedup window, linker and scorers with the original, so the
    items analysed without embeddings are still deduplicated against all the others.
    """
    plain = copy.copy(analyzer)
    plain.embedder = None
    plain.classifier = None  # it classifies embeddings: without them, the lexicon sentiment
    return plain


def _encode(m: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(m)
    except (TypeError, msgspec.EncodeError):
        return repr(m).encode()
