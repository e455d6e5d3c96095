"""A fault-injecting OpenAI-compatible server, for tests and benchmarks only.

It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` requests, chunked
SSE responses) to serve ``GET /v1/models`` and ``POST /v1/chat/completions``, and
misbehaves on purpose: added latency (fixed, lognormal or a heavy Pareto tail),
latency that grows with concurrency past a ``capacity``, 5xx answers, malformed
JSON bodies, answers that break the schema, hangs, and slow token streams.
``script`` gives an exact per-request sequence of behaviours for unit tests;
after it runs out, the rates apply (seeded, so runs repeat).

It notices a client that hangs up mid-request (counted in ``stats.disconnects``)
and stops working on that request, like a real server that frees its slot.

Run standalone::

    python -m tools.fault_llm_server --port 8099 --latency-s 0.02 --tail-prob 0.05 --tail-s 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

__all__ = ["Behaviour", "FaultConfig", "FaultServer", "FaultStats", "main"]

Behaviour = Literal["ok", "5xx", "429", "malformed", "invalid", "hang", "slow", "close"]

_DEFAULT_ANSWER = '{"ok": true}'


class FaultConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What to inject; rates are probabilities per request, times are seconds."""

    latency_s: float = 0.0
    latency_dist: Literal["fixed", "lognormal", "pareto"] = "fixed"
    lognormal_sigma: float = 0.5
    pareto_alpha: float = 1.5
    tail_prob: float = 0.0
    """With this probability add ``tail_s`` (times a Pareto draw when ``latency_dist="pareto"``)."""
    tail_s: float = 0.0
    capacity: int = 0
    """When > 0, latency is multiplied by ``max(1, active / capacity)``: a server that queues."""
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    invalid_rate: float = 0.0
    hang_rate: float = 0.0
    stream_chunk_delay_s: float = 0.0
    """Delay between streamed pieces for ``slow`` requests and for every stream when > 0."""
    stream_chunk_chars: int = 4
    script: tuple[Behaviour, ...] = ()
    answer: str = _DEFAULT_ANSWER
    model: str = "fault-model"
    seed: int = 0


class FaultStats(msgspec.Struct, kw_only=True):
    requests: int = 0
    completed: int = 0
    disconnects: int = 0
    active: int = 0
    max_active: int = 0
    behaviours: dict[str, int] = {}
    connections: int = 0


class FaultServer:
    """``async with FaultServer(cfg) as srv: srv.url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        answer_fn: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.config = config or FaultConfig()
        self.host = host
        self.port = port
        self.answer_fn = answer_fn
        self.stats = FaultStats()
        self.bodies: list[dict[str, Any]] = []
        """The decoded request bodies, in arrival order (the last 1000)."""
        self._rng = random.Random(self.config.seed)
        self._script = list(self.config.script)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def reconfigure(self, config: FaultConfig) -> None:
        """Swap the fault plan (script and rates) without restarting."""
        self.config = config
        self._script = list(config.script)
        self._rng = random.Random(config.seed)

    async def start(self) -> FaultServer:
        self._server = await asyncio.start_server(self._on_conn, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- per connection ---------------------------------------------------------

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.connections += 1
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    break
                method, path, body = req
                keep = await self._serve(method, path, body, reader, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # stop() cancels handlers; the streams callback would log a cancelled task as an error
            pass
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    def _choose(self) -> Behaviour:
        if self._script:
            return self._script.pop(0)
        c, r = self.config, self._rng.random()
        for rate, name in (
            (c.error_rate, "5xx"),
            (c.malformed_rate, "malformed"),
            (c.invalid_rate, "invalid"),
            (c.hang_rate, "hang"),
        ):
            if r < rate:
                return name  # type: ignore[return-value]
            r -= rate
        return "ok"

    def _latency(self) -> float:
        c = self.config
        base = c.latency_s
        if c.latency_dist == "lognormal" and base > 0:
            base = base * math.exp(self._rng.gauss(0.0, c.lognormal_sigma))
        if c.tail_prob and self._rng.random() < c.tail_prob:
            tail = c.tail_s
            if c.latency_dist == "pareto":
                tail *= self._rng.paretovariate(c.pareto_alpha)
            base += tail
        if c.capacity > 0:
            base *= max(1.0, self.stats.active / c.capacity)
        return base

    async def _serve(
        self, method: str, path: str, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "GET" and path.rstrip("/").endswith("/v1/models"):
            payload = msgspec.json.encode(
                {"object": "list", "data": [{"id": self.config.model, "object": "model"}]}
            )
            writer.write(_head(200, "application/json", len(payload)) + payload)
            await writer.drain()
            return True
        if method != "POST" or not path.rstrip("/").endswith("/v1/chat/completions"):
            payload = b'{"error": "not found"}'
            writer.write(_head(404, "application/json", len(payload)) + payload)
            await writer.drain()
            return True
        try:
            request = msgspec.json.decode(body)
        except msgspec.DecodeError:
            payload = b'{"error": "bad json"}'
            writer.write(_head(400, "application/json", len(payload)) + payload)
            await writer.drain()
            return True
        self.bodies.append(request)
        del self.bodies[:-1000]
        st = self.stats
        st.requests += 1
        behaviour = self._choose()
        st.behaviours[behaviour] = st.behaviours.get(behaviour, 0) + 1
        st.active += 1
        st.max_active = max(st.max_active, st.active)
        try:
            delay = self._latency()
            if behaviour == "hang":
                delay = 3600.0
            if not await _sleep_unless_hangup(delay, reader):
                st.disconnects += 1
                return False
            if behaviour == "close":
                return False
            if behaviour in {"5xx", "429"}:
                status = 503 if behaviour == "5xx" else 429
                payload = b'{"error": {"message": "injected fault"}}'
                writer.write(_head(status, "application/json", len(payload)) + payload)
                await writer.drain()
                return True
            content = self.answer_fn(request) if self.answer_fn else self.config.answer
            if behaviour == "invalid":
                content = '{"unexpected": "shape"'
            stream = bool(request.get("stream"))
            if behaviour == "malformed":
                payload = b'{"choices": [{"message": {"content": "trunc'
                if stream:
                    writer.write(_sse_head() + _chunk(b"data: {not json\n\n") + b"0\r\n\r\n")
                else:
                    writer.write(_head(200, "application/json", len(payload)) + payload)
                await writer.drain()
                return True
            if stream:
                gap = self.config.stream_chunk_delay_s
                if behaviour == "slow" and gap == 0:
                    gap = 0.2
                ok = await self._stream(content, gap, reader, writer)
                if not ok:
                    st.disconnects += 1
                    return False
            else:
                payload = msgspec.json.encode(
                    {
                        "id": f"cmpl-{st.requests}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": self.config.model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": max(1, len(body) // 4),
                            "completion_tokens": max(1, len(content) // 4),
                            "total_tokens": max(1, len(body) // 4) + max(1, len(content) // 4),
                        },
                    }
                )
                writer.write(_head(200, "application/json", len(payload)) + payload)
                await writer.drain()
            st.completed += 1
            return True
        finally:
            st.active -= 1

    async def _stream(
        self, content: str, gap: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(_sse_head())
        step = max(1, self.config.stream_chunk_chars)
        for i in range(0, len(content), step):
            event = {
                "object": "chat.completion.chunk",
                "model": self.config.model,
                "choices": [{"index": 0, "delta": {"content": content[i : i + step]}, "finish_reason": None}],
            }
            writer.write(_chunk(b"data: " + msgspec.json.encode(event) + b"\n\n"))
            try:
                await writer.drain()
            except ConnectionError:
                return False
            if gap > 0 and not await _sleep_unless_hangup(gap, reader):
                return False
        end = {
            "object": "chat.completion.chunk",
            "model": self.config.model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        writer.write(_chunk(b"data: " + msgspec.json.encode(end) + b"\n\n"))
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            return False
        return True


async def _sleep_unless_hangup(delay: float, reader: asyncio.StreamReader) -> bool:
    """Sleep ``delay`` seconds; False as soon as the client hangs up."""
    if delay <= 0:
        return True
    eof = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({eof}, timeout=delay)
        if done:
            return bool(eof.result())  # b"" means the client closed (pipelined bytes count as alive)
        return True
    except ConnectionError:
        return False
    finally:
        if not eof.done():
            eof.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await eof


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    length = 0
    while True:
        h = await reader.readline()
        if h in {b"\r\n", b"\n", b""}:
            break
        name, _, value = h.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _head(status: int, ctype: str, length: int) -> bytes:
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        429: "Too Many Requests",
        503: "Service Unavailable",
    }
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _sse_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fault_llm_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    for f in FaultConfig.__struct_fields__:
        if f in {"script", "latency_dist"}:
            continue
        default = getattr(FaultConfig(), f)
        ap.add_argument("--" + f.replace("_", "-"), type=type(default), default=default)
    ap.add_argument("--latency-dist", choices=["fixed", "lognormal", "pareto"], default="fixed")
    args = ap.parse_args(argv)
    cfg = FaultConfig(**{f: getattr(args, f) for f in FaultConfig.__struct_fields__ if f != "script"})

    async def serve() -> None:
        async with FaultServer(cfg, host=args.host, port=args.port) as srv:
            print(f"listening on {srv.url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
