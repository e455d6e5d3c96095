"""JsonlSink: writes every message it receives to a JSON-lines file, in arrival order;
RecordingTap: what a recording needs besides a node's inputs.

Subscribe it to the topics to record (``fill.>``, ``deadletter``, ``forecast.>``...).
One message per line, msgspec's JSON encoding (with the ``type`` tag, bytes as
base64).  Lines are buffered and written per batch; the file is flushed and
closed on stop.  ``types`` keeps only messages whose tag is listed (empty: all).
The file holds exactly what the messages hold: in replay that is simulated time
only, so two runs of the same replay write byte-identical files.

:class:`RecordingTap` (``finllm node --record DIR``) writes ``DIR/outputs.jsonl``
(:mod:`adapters.sources.recording`): every message a replay of the node's inputs cannot
re-derive -- cloud refinements and their traces (asynchronous, timed by the wall clock,
answered by a model) and mode changes -- each with the number of forecasts and traces
published before it.  Subscribe it to ``forecast.>``, ``trace.>`` and ``control.mode``
(``block``, like the forecasts and traces sinks: it sees them in the same order).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import msgspec

from engine.actor import Actor
from engine.messages import Forecast, ModeChange, ReasoningTrace

__all__ = ["JsonlSink", "JsonlSinkConfig", "RecordingTap", "RecordingTapConfig"]


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


class RecordingTapConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``path``: the outputs file (``DIR/outputs.jsonl``); ``tiers``: the forecast and trace
    tiers that are recorded as outputs (the ones a replay cannot re-derive)."""

    path: str
    tiers: tuple[str, ...] = ("cloud",)


class RecordingTap(Actor[RecordingTapConfig]):
    """See the module docstring."""

    config_type = RecordingTapConfig
    batch_size = 4096

    async def on_start(self) -> None:
        path = Path(self.config.path)
        restarted = self.ctx.metrics.counter("recording_outputs_total", sink=self.ctx.name).value > 0
        self._file: IO[bytes] = _open(path, "ab" if restarted else "wb")
        self._enc = msgspec.json.Encoder()
        self._tiers = frozenset(self.config.tiers)
        self._n = self.ctx.metrics.counter("recording_outputs_total", sink=self.ctx.name)
        self.forecasts = 0
        self.traces = 0

    def on_batch(self, msgs: list[Any]) -> None:
        lines: list[bytes] = []
        for m in msgs:
            t = type(m)
            if t is Forecast:
                if m.tier in self._tiers:
                    lines.append(self._line(f"forecast.{m.symbol}", m))
                self.forecasts += 1
            elif t is ReasoningTrace:
                if m.tier in self._tiers:
                    lines.append(self._line(f"trace.{m.symbol}", m))
                self.traces += 1
            elif t is ModeChange:
                lines.append(self._line("control.mode", m))
        if lines:
            self._file.write(b"".join(lines))
            self._file.flush()
            self._n.inc(len(lines))

    def _line(self, topic: str, msg: Any) -> bytes:
        head = b'{"after":[%d,%d],"topic":' % (self.forecasts, self.traces)
        return head + self._enc.encode(topic) + b',"msg":' + self._enc.encode(msg) + b"}\n"

    def on_message(self, msg: Any) -> None:
        self.on_batch([msg])

    async def on_stop(self) -> None:
        self._file.flush()
        self._file.close()
