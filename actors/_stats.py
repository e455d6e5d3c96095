"""Read access to every actor's mailbox statistics, shared by the controllers that need it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from engine.mailbox import MailboxStatistics

StatsSource = Callable[[], Mapping[str, MailboxStatistics]]
"""Returns every actor's mailbox statistics, keyed by actor name."""


class StatsReader:
    """Mixin for actors that watch the whole node's mailboxes.

    By default they read the engine's ``ctx.mailbox_statistics``; tools and tests
    substitute another source with :meth:`with_stats_source`.
    """

    stats_source: ClassVar[StatsSource | None] = None
    ctx: Any

    @classmethod
    def with_stats_source(cls, source: StatsSource) -> Any:
        """A subclass reading mailbox statistics from ``source`` (tools and tests)."""
        return type(cls.__name__, (cls,), {"stats_source": staticmethod(source)})

    def _find_stats_source(self) -> StatsSource:
        return type(self).stats_source or self.ctx.mailbox_statistics
