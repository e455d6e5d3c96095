"""A tiny operations HTTP server on asyncio streams: health, readiness, metrics, stats.

No framework: HTTP/1.1 GET/HEAD, one request per connection (``Connection:
close``), bounded request size and read time.  Routes:

``/healthz``  200 while the node is alive, else 503 listing the reasons.
``/readyz``   200 once the node does its job, else 503 listing the reasons.
``/metrics``  the Prometheus text exposition (``text/plain; version=0.0.4``).
``/stats``    a JSON document (mailbox statistics, mode, metrics summary) for ``finllm top``.

Each probe is a callable supplied by the owner; a probe that raises answers
500 with the error, so a broken probe is visible, never a hung socket.
:func:`health_checks` makes both probes from an engine's
:class:`~engine.health.NodeHealth` (``Engine.health``), so they tell what the
engine knows: parked or crash-looping actors, failed tiers, stalled partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec

from engine.config import BindPort, PositiveFloat, PositiveInt
from engine.health import NodeHealth

__all__ = ["Check", "OpsHttpConfig", "OpsHttpServer", "health_checks"]

Check = Callable[[], tuple[bool, str]]
"""A probe: (ok, reason)."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class OpsHttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where to listen.  ``port = 0`` picks a free port (see :attr:`OpsHttpServer.port`)."""

    host: str = "127.0.0.1"
    port: BindPort = 0
    max_request_bytes: PositiveInt = 8192
    read_timeout_s: PositiveFloat = 5.0


def _always_ok() -> tuple[bool, str]:
    return True, "ok"


def health_checks(health: Callable[[], NodeHealth], prefix: str = "") -> tuple[Check, Check]:
    """(liveness, readiness) probes answering from ``health()``; each reason on a line of its own.

    ``prefix`` starts every answer (e.g. the node id), so a probe names the node it came from.
    """
    lead = f"{prefix} " if prefix else ""

    def live() -> tuple[bool, str]:
        h = health()
        return h.live, lead + h.describe("live")

    def ready() -> tuple[bool, str]:
        h = health()
        return h.ready, lead + h.describe("ready")

    return live, ready


class OpsHttpServer:
    """Serves the four routes from the callables given; :meth:`start` then :meth:`stop`."""

    def __init__(
        self,
        config: OpsHttpConfig,
        *,
        metrics_text: Callable[[], str],
        stats: Callable[[], Any],
        healthy: Check = _always_ok,
        ready: Check = _always_ok,
    ) -> None:
        self.config = config
        self._metrics_text = metrics_text
        self._stats = stats
        self._healthy = healthy
        self._ready = ready
        self._server: asyncio.Server | None = None
        self.port = 0
        self.requests = 0
        self.errors = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(
            self._handle, self.config.host, self.config.port, limit=self.config.max_request_bytes
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | int:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.config.read_timeout_s)
        except TimeoutError:
            return 408
        except asyncio.LimitOverrunError:
            return 413
        except asyncio.IncompleteReadError:
            return 400

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            head = await self._read_head(reader)
            if isinstance(head, int):
                await self._send(writer, head, f"{_REASONS[head]}\n")
                return
            if len(head) > self.config.max_request_bytes:
                await self._send(writer, 413, "request too large\n")
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await self._send(writer, 400, "malformed request line\n")
                return
            method, target, _ = parts
            if method not in ("GET", "HEAD"):
                await self._send(writer, 405, "only GET and HEAD\n", extra={"Allow": "GET, HEAD"})
                return
            path = target.split("?", 1)[0]
            status, ctype, body = self._route(path)
            await self._send(writer, status, body, ctype=ctype, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            self.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _route(self, path: str) -> tuple[int, str, str | bytes]:
        text = "text/plain; charset=utf-8"
        try:
            if path == "/healthz":
                ok, why = self._healthy()
                return (200 if ok else 503), text, f"{why}\n"
            if path == "/readyz":
                ok, why = self._ready()
                return (200 if ok else 503), text, f"{why}\n"
            if path == "/metrics":
                return 200, "text/plain; version=0.0.4; charset=utf-8", self._metrics_text()
            if path == "/stats":
                return 200, "application/json", msgspec.json.encode(self._stats())
        except Exception as exc:  # a broken probe must answer, not hang the client
            self.errors += 1
            return 500, text, f"{path} failed: {type(exc).__name__}: {exc}\n"
        return 404, text, "not found; try /healthz /readyz /metrics /stats\n"

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: str | bytes,
        *,
        ctype: str = "text/plain; charset=utf-8",
        head_only: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = body.encode() if isinstance(body, str) else body
        headers = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(payload)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{k}: {v}" for k, v in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(payload)
        await writer.drain()
