"""Source adapters: every input of the pipeline as raw records.

A source reads and decodes; it does not validate, number, aggregate, or touch a
clock.  Market sources hand :class:`MarketRecords` to the market-data feed, news
sources hand :class:`~adapters.text.news_io.NewsLine` records to the narrative
actor.  In replay the kernel's driver (:mod:`engine.replay`) pulls from every
source in time order and alone moves the simulated clock; live, a Kafka consumer
delivers the same records.

* :mod:`adapters.sources.records` -- :class:`MarketRecords`, record positions, and
  :class:`MarketSource`, what a replayable market source offers.
* :mod:`adapters.sources.tape` -- :class:`TapeSource`, a dataset or file tape.
* :mod:`adapters.sources.news` -- :class:`NewsFileSource`, a JSON-lines news file.
"""

from __future__ import annotations

from adapters.sources.news import NewsFileSource
from adapters.sources.records import (
    MarketRecords,
    MarketSource,
    position,
    records_from_messages,
    split_position,
)
from adapters.sources.tape import TapeSource, open_tape

__all__ = [
    "MarketRecords",
    "MarketSource",
    "NewsFileSource",
    "TapeSource",
    "open_tape",
    "position",
    "records_from_messages",
    "split_position",
]
