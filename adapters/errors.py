"""Errors of the top-level adapters (:mod:`adapters.kafka` and friends).

Sub-packages with errors of their own (``adapters.llm``, ``adapters.text``,
``adapters.inference``) keep them in their own ``errors.py``.
"""

from __future__ import annotations

__all__ = ["AdapterError", "ProducerStopped", "RecordRejected"]


class AdapterError(Exception):
    """Base of the errors raised by the top-level adapters."""


class RecordRejected(AdapterError):
    """Raised by :class:`adapters.kafka.RecordCodec` and the ``check_*`` validators for one bad record.

    ``code`` is a short stable word (``too_large``, ``too_deep``, ``invalid_utf8``,
    ``decode_error``, ``invalid_value``, ``tombstone``...) that metrics and tests can rely
    on; ``detail`` says what exactly was wrong, for humans.  ``reason`` is both, as the
    dead letter carries it.  The caller should dead-letter the record with ``reason`` and
    go on with the next one: one bad record costs only itself.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """``"<code>: <detail>"`` (or just the code when there is no detail)."""
        return f"{self.code}: {self.detail}" if self.detail else self.code


class ProducerStopped(AdapterError):
    """Raised by :func:`adapters.kafka.send_settled` and :func:`adapters.kafka.delivered` when a
    producer's background sender has ended.

    aiokafka then sends nothing more, and a batch it had in flight is neither delivered nor
    failed: waiting on its future would wait for ever, and retrying on the same producer
    never succeeds.  The caller should let its actor fail, so that the supervisor restarts
    it with a new producer (and the source re-delivers what was never acknowledged).
    """
