"""Fixtures of the narrative tests: the universe, analyzers with and without MiniLM, items."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.text.checker import Analyzer, AnalyzerConfig, Decision, SanityConfig, SanityCore
from adapters.text.entities import EntityLinker, Universe
from engine.messages import NewsItem

DATA = Path(__file__).resolve().parents[2] / "tools" / "data"
T0 = 1_378_094_400 * 10**9  # 2013-09-02 04:00 UTC
S = 10**9


@pytest.fixture(scope="session")
def universe() -> Universe:
    return Universe.load()


@pytest.fixture(scope="session")
def linker(universe: Universe) -> EntityLinker:
    return EntityLinker(universe)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from adapters.text.embed import Embedder

    return Embedder()


@pytest.fixture
def lexicon_analyzer(universe: Universe) -> Analyzer:
    """A fresh analyzer without embeddings (its dedup window is per test)."""
    return Analyzer(AnalyzerConfig(embed=False, sentiment="lexicon"), universe=universe)


@pytest.fixture
def make_core() -> Callable[..., SanityCore]:
    def make(**kw: object) -> SanityCore:
        return SanityCore(SanityConfig(**kw))  # type: ignore[arg-type]

    return make


_n = 0


def news(
    headline: str,
    *,
    source: str = "reuters",
    t: float = 0.0,
    body: str = "",
    symbols: tuple[str, ...] = (),
    id: str | None = None,
) -> NewsItem:
    """A news item ``t`` seconds after T0."""
    global _n
    _n += 1
    return NewsItem(
        id=id or f"n{_n}",
        ts_event=T0 + int(t * S),
        source=source,
        headline=headline,
        body=body,
        symbols=symbols,
    )


def run_items(an: Analyzer, core: SanityCore, items: list[NewsItem]) -> dict[str, Decision]:
    """Analyse and check ``items`` in order, then flush: the final decision of each item, by id."""
    out: dict[str, Decision] = {}
    for it in items:
        for d in core.submit(an.analyse(it)):
            out[d.verdict.id] = d
    for d in core.flush():
        out[d.verdict.id] = d
    return out
