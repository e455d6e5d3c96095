"""A live node's recording: what it consumed, in the order it handed it over, read back as a source.

``finllm node --record DIR`` writes (the node's Kafka source and a recorder tap, see
:mod:`actors.kafka_io` and :mod:`actors.sinks`):

``DIR/inputs.jsonl``
    A header line ``{"recording": 1, "topics": [...], "node_id": ...}`` (the source's topic
    list: a topic's place in it is part of every position), then one line per consumed
    record, in the order the node handed records over::

        {"topic", "partition", "offset", "key" (base64 or null), "ts" (broker timestamp, ms),
         "ts_type", "value" (base64 or null), "recv" (ns, the node's clock at handover),
         "step" (handover step: records of one step went over together)}

    A line ``{"reset": [streams], "recv", "step"}`` marks partitions given to the node (a
    rebalance: the feed forgot those streams' symbols there, live and in the replay); a line
    ``{"restart": n}`` an in-process restart of the source (the replay of such a recording is not
    exact: the live pipeline lost its state there).
``DIR/outputs.jsonl``
    What the replay cannot re-derive, with where it happened: cloud refinements and their
    traces (the cloud tier is asynchronous and answers by wall clock) and mode changes.
    Each line ``{"after": [n_forecasts, n_traces], "topic", "msg"}``: ``msg`` (a message,
    JSON) was published on ``topic`` after the node had published ``n_forecasts``
    forecasts and ``n_traces`` traces.
``DIR/forecasts.jsonl``, ``DIR/traces.jsonl``
    What the node produced, in replay's output format (:class:`actors.sinks.JsonlSink`).
``DIR/recording.json``
    How the node was started (config file, profiles, overrides, variables), so that
    ``finllm replay --recording DIR`` runs the same pipeline.

:class:`Arrivals` is how any live market source hands decoded records to the feed: the
messages (their ``seq`` is their position) and the moment of handover.  Replaying a
recording hands over the same :class:`Arrivals`, so the replay driver moves the simulated
clock along the node's recorded clock.

:class:`RecordingReader` reads a recording back: :meth:`RecordingReader.inputs` in
handover order and :meth:`RecordingReader.outputs`.  It only reads; the recording's
replay input (:class:`actors.kafka_io.RecordingSource`) decodes and validates each record
exactly as the live source did.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from engine.messages import Bar, Message, Quote, Trade, json_decoder

__all__ = [
    "INPUTS",
    "MANIFEST",
    "OUTPUTS",
    "Arrivals",
    "InputLog",
    "RecordedInput",
    "RecordedOutput",
    "RecordedReset",
    "RecordingError",
    "RecordingReader",
]

FORMAT = 1
INPUTS = "inputs.jsonl"
OUTPUTS = "outputs.jsonl"
MANIFEST = "recording.json"


class Arrivals(msgspec.Struct, frozen=True, gc=False):
    """Decoded market records a live source hands to the feed at ``ts_event`` (ns, its clock).

    ``msgs``: trades, quotes and bars in source order, each ``seq`` the record's position.
    ``reset``: input streams (:func:`adapters.kafka.stream_id`) this source was just given: the
    feed first forgets the symbols it last saw on them (their records are read again from the
    last commit; a previous owner's state, or this node's own from an earlier turn, is stale).
    """

    ts_event: int
    msgs: list[Trade | Quote | Bar]
    reset: tuple[int, ...] = ()


class RecordingError(Exception):
    """A recording that cannot be read (missing, wrong format, corrupt line)."""


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode("ascii")


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


class InputLog:
    """Appends consumed records to ``DIR/inputs.jsonl`` (the live source's side)."""

    def __init__(self, directory: str | Path, topics: list[str], node_id: str) -> None:
        path = Path(directory) / INPUTS
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self.step = 0
        if fresh:
            self._line({"recording": FORMAT, "topics": topics, "node_id": node_id})
        else:
            self._line({"restart": 1})

    def _line(self, obj: dict[str, Any]) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def record(self, r: Any, recv_ns: int) -> None:
        """One consumed record (an aiokafka ``ConsumerRecord``) handed over at ``recv_ns``."""
        self._line(
            {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "key": _b64(r.key),
                "ts": r.timestamp,
                "ts_type": r.timestamp_type,
                "value": _b64(r.value),
                "recv": recv_ns,
                "step": self.step,
            }
        )

    def reset(self, streams: tuple[int, ...], recv_ns: int) -> None:
        """The source was given ``streams`` (a rebalance) at ``recv_ns``: a step of its own."""
        self.next_step()
        self._line({"reset": list(streams), "recv": recv_ns, "step": self.step})
        self.next_step()

    def next_step(self) -> None:
        """The records logged from now on go over in a new handover step."""
        self.step += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        self._file.close()


@dataclass(frozen=True, slots=True)
class RecordedInput:
    """One recorded record; ``timestamp``, ``key`` and ``value`` as aiokafka gives them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: int
    timestamp_type: int
    value: bytes | None
    recv: int
    step: int


@dataclass(frozen=True, slots=True)
class RecordedReset:
    """The live source was given these input streams (a rebalance) at ``recv``."""

    streams: tuple[int, ...]
    recv: int
    step: int


@dataclass(frozen=True, slots=True)
class RecordedOutput:
    """A message the node published that the replay cannot re-derive, and where it happened."""

    n_forecasts: int
    n_traces: int
    topic: str
    msg: Message


class RecordingReader:
    """Reads ``DIR/inputs.jsonl`` and ``DIR/outputs.jsonl`` back (see the module docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        path = self.dir / INPUTS
        if not path.is_file():
            raise RecordingError(f"{self.dir}: no {INPUTS} (not a recording of finllm node --record)")
        with path.open(encoding="utf-8") as f:
            first = f.readline()
        try:
            head = json.loads(first)
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path}:1: not a recording header: {exc}") from None
        if not isinstance(head, dict) or head.get("recording") != FORMAT:
            raise RecordingError(f"{path}:1: expected a recording header with format {FORMAT}")
        self.topics: list[str] = list(head.get("topics") or [])
        self.node_id: str = str(head.get("node_id", ""))
        self.restarts = 0

    def inputs(self) -> Iterator[RecordedInput | RecordedReset]:
        """The recorded records and resets in handover order (restart marks are counted in
        ``restarts``)."""
        path = self.dir / INPUTS
        with path.open(encoding="utf-8") as f:
            f.readline()
            for n, line in enumerate(f, start=2):
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    if not line.endswith("\n"):
                        return  # the last line of a node killed mid-write
                    raise RecordingError(f"{path}:{n}: corrupt line") from None
                if "restart" in d:
                    self.restarts += 1
                    continue
                if "reset" in d:
                    yield RecordedReset(tuple(int(x) for x in d["reset"]), int(d["recv"]), int(d["step"]))
                    continue
                yield RecordedInput(
                    topic=d["topic"],
                    partition=int(d["partition"]),
                    offset=int(d["offset"]),
                    key=_unb64(d.get("key")),
                    timestamp=int(d.get("ts", -1)),
                    timestamp_type=int(d.get("ts_type", 0)),
                    value=_unb64(d.get("value")),
                    recv=int(d["recv"]),
                    step=int(d["step"]),
                )

    def outputs(self) -> list[RecordedOutput]:
        """The recorded outputs, in the order they were published."""
        path = self.dir / OUTPUTS
        if not path.is_file():
            return []
        out: list[RecordedOutput] = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.endswith("\n"):
                    break
                try:
                    d = json.loads(line)
                    msg = json_decoder.decode(json.dumps(d["msg"]))
                except (json.JSONDecodeError, msgspec.DecodeError, KeyError) as exc:
                    raise RecordingError(f"{path}:{n}: corrupt line: {exc}") from None
                nf, nt = d["after"]
                out.append(RecordedOutput(int(nf), int(nt), str(d["topic"]), msg))
        return out
