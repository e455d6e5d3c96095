"""JsonlSink: writes every message it receives to a JSON-lines file, in arrival order.

Subscribe it to the topics to record (``fill.>``, ``deadletter``, ``forecast.>``...).
One message per line, msgspec's JSON encoding (with the ``type`` tag, bytes as
base64).  Lines are buffered and written per batch; the file is flushed and
closed on stop.  ``types`` keeps only messages whose tag is listed (empty: all).
The file holds exactly what the messages hold: in replay that is simulated time
only, so two runs of the same replay write byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import msgspec

from engine.actor import Actor

__all__ = ["JsonlSink", "JsonlSinkConfig"]


class JsonlSinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``path`` the output file (parents created; truncated at start unless ``append``);
    ``types`` message tags to keep (empty: all); ``flush_every`` lines between flushes."""

    path: str
    types: tuple[str, ...] = ()
    append: bool = False
    flush_every: int = 10_000


class JsonlSink(Actor[JsonlSinkConfig]):
    """See the module docstring."""

    config_type = JsonlSinkConfig
    batch_size = 4096

    async def on_start(self) -> None:
        cfg = self.config
        path = Path(cfg.path)
        self._file: IO[bytes] = _open(path, "ab" if cfg.append or self._restarted() else "wb")
        self._enc = msgspec.json.Encoder()
        self._types = frozenset(cfg.types)
        self._lines = self.ctx.metrics.counter("sink_lines_total", sink=self.ctx.name)
        self._skipped = self.ctx.metrics.counter("sink_skipped_total", sink=self.ctx.name)
        self._since_flush = 0

    def _restarted(self) -> bool:
        # A restarted incarnation must not truncate what the previous one wrote.
        return self.ctx.metrics.counter("sink_lines_total", sink=self.ctx.name).value > 0

    def on_batch(self, msgs: list[Any]) -> None:
        if self._types:
            keep = [m for m in msgs if type(m).__struct_config__.tag in self._types]
            self._skipped.inc(len(msgs) - len(keep))
            msgs = keep
        if not msgs:
            return
        self._file.write(self._enc.encode_lines(msgs))
        self._lines.inc(len(msgs))
        self._since_flush += len(msgs)
        if self._since_flush >= self.config.flush_every:
            self._file.flush()
            self._since_flush = 0

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    async def on_stop(self) -> None:
        self._file.flush()
        self._file.close()


def _open(path: Path, mode: str) -> IO[bytes]:
    # Opening happens once per incarnation, before any message: not on the hot path.
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open(mode)
