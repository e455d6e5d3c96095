"""A minimal HTTP/1.1 client on asyncio streams, enough for OpenAI-compatible servers.

Why our own: the venv has no async HTTP client, and we need exact control over
one thing that matters here: cancelling a request closes its TCP connection at
once, so the server sees the disconnect and stops generating tokens.

Keep-alive connections are pooled per endpoint.  A connection goes back to the
pool only when its response was read to the end; any error or cancellation
closes it.  Bodies are ``Content-Length`` or ``chunked``; Server-Sent Events
(``text/event-stream``) are exposed as an async iterator of ``data:`` payloads.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import urlsplit

from adapters.llm.errors import ConnectFailed, MalformedResponse

__all__ = ["HttpPool", "HttpResponse", "client_tls_context", "parse_url"]

_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024


def parse_url(url: str) -> tuple[str, int, bool, str]:
    """``http(s)://host:port/prefix`` -> (host, port, tls, path prefix without trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"endpoint url must be http(s)://host[:port][/prefix], got {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    return parts.hostname, port, tls, parts.path.rstrip("/")


def client_tls_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> _ssl.SSLContext:
    """A client TLS context: the system trust store (or ``ca_file`` only), and with
    ``cert_file``/``key_file`` a client certificate for servers that require one (mutual TLS).
    Raises OSError / ssl.SSLError for files that cannot be read or do not match."""
    ctx = _ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = _ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        # abort() rather than close(): no flushing, the peer sees the disconnect now.
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    @property
    def usable(self) -> bool:
        return not self.writer.transport.is_closing() and not self.reader.at_eof()


class HttpResponse:
    """One response; read it with :meth:`read` or :meth:`sse`, then it releases its connection."""

    __slots__ = ("_chunked", "_conn", "_done", "_keep_alive", "_left", "_pool", "headers", "status")

    def __init__(self, pool: HttpPool, conn: _Conn, status: int, headers: dict[str, str]) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self.status = status
        self.headers = headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left: int | None = int(length) if length is not None else None
        self._keep_alive = headers.get("connection", "").lower() != "close" and (
            self._chunked or self._left is not None
        )
        self._done = False

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._conn is None:
            raise MalformedResponse("response body already consumed")
        reader = self._conn.reader
        try:
            if self._chunked:
                while True:
                    size_line = await reader.readline()
                    if not size_line.endswith(b"\n"):
                        raise MalformedResponse("connection closed inside a chunked body")
                    try:
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError as exc:
                        raise MalformedResponse(f"bad chunk size line {size_line[:40]!r}") from exc
                    if size == 0:
                        # trailers end with an empty line
                        while (await reader.readline()) not in {b"\r\n", b"\n", b""}:
                            pass
                        break
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif self._left is not None:
                while self._left > 0:
                    data = await reader.read(min(self._left, 65536))
                    if not data:
                        raise MalformedResponse("connection closed before Content-Length was read")
                    self._left -= len(data)
                    yield data
            else:
                while data := await reader.read(65536):
                    yield data
        except asyncio.IncompleteReadError as exc:
            raise MalformedResponse("connection closed inside a chunk") from exc
        except (ConnectionError, OSError) as exc:
            raise ConnectFailed(f"connection broke while reading: {exc!r}") from exc
        self._done = True

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool afterwards."""
        parts: list[bytes] = []
        total = 0
        try:
            async for chunk in self._chunks():
                total += len(chunk)
                if total > _MAX_BODY_BYTES:
                    raise MalformedResponse(f"body larger than {_MAX_BODY_BYTES} bytes")
                parts.append(chunk)
        finally:
            self.release()
        return b"".join(parts)

    async def sse(self) -> AsyncGenerator[bytes, None]:
        """The ``data:`` payloads of an event stream, in order, up to and excluding ``[DONE]``."""
        buf = b""
        finished = False
        try:
            async for chunk in self._chunks():
                if finished:
                    continue  # read past [DONE] to the end of the body so the connection is reusable
                buf += chunk
                while not finished:
                    cut = buf.find(b"\n")
                    if cut < 0:
                        break
                    line, buf = buf[:cut].rstrip(b"\r"), buf[cut + 1 :]
                    if line.startswith(b"data:"):
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            finished = True
                        else:
                            yield payload
                if len(buf) > _MAX_HEADER_BYTES:
                    raise MalformedResponse("event-stream line too long")
        finally:
            self.release()

    def release(self) -> None:
        """Give the connection back (or close it when the body was not read to the end)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._pool._put(conn)
        else:
            conn.close()


class HttpPool:
    """Keep-alive connections to one ``host:port``; at most ``max_idle`` kept idle."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        max_idle: int = 16,
        ssl_context: _ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` for ``https`` URLs (e.g. :func:`client_tls_context` with a client
        certificate); default: the system trust store."""
        self.host, self.port, self.tls, self.prefix = parse_url(url)
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        if ssl_context is not None and not self.tls:
            raise ValueError(f"TLS settings given for a plain http url {url!r}")
        self._ssl: _ssl.SSLContext | None = (
            (ssl_context or _ssl.create_default_context()) if self.tls else None
        )
        self.connections_opened = 0

    async def _get(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        self.connections_opened += 1
        return _Conn(reader, writer)

    def _put(self, conn: _Conn) -> None:
        if len(self._idle) < self.max_idle and conn.usable:
            self._idle.append(conn)
        else:
            conn.close()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request and read the status line and headers.

        The caller must consume the body (:meth:`HttpResponse.read` / :meth:`HttpResponse.sse`)
        or call :meth:`HttpResponse.release`.  Cancellation closes the connection.
        """
        # A pooled connection may have been closed by the server while idle; one fresh retry.
        for fresh in (False, True):
            conn = await self._get() if not fresh else await self._fresh()
            try:
                return await self._exchange(conn, method, path, body, headers or {})
            except _StaleConnection:
                conn.close()
                if fresh:
                    raise ConnectFailed("server closed the connection before answering") from None
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    async def _fresh(self) -> _Conn:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        return await self._get()

    async def _exchange(
        self, conn: _Conn, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> HttpResponse:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            conn.writer.write(head + body)
            await conn.writer.drain()
            status_line = await conn.reader.readline()
        except (ConnectionError, OSError) as exc:
            raise _StaleConnection from exc
        if not status_line:
            raise _StaleConnection
        try:
            version, code, *_ = status_line.decode("latin-1").split(" ", 2)
            status = int(code)
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
        except ValueError as exc:
            raise MalformedResponse(f"bad status line {status_line[:60]!r}") from exc
        hdrs: dict[str, str] = {}
        size = 0
        while True:
            try:
                line = await conn.reader.readline()
            except (ConnectionError, OSError) as exc:
                raise ConnectFailed(f"connection broke in headers: {exc!r}") from exc
            size += len(line)
            if size > _MAX_HEADER_BYTES:
                raise MalformedResponse("response headers too large")
            if line in {b"\r\n", b"\n"}:
                break
            if not line:
                raise MalformedResponse("connection closed inside the headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise MalformedResponse(f"bad header line {line[:60]!r}")
            hdrs[name.strip().lower()] = value.strip()
        return HttpResponse(self, conn, status, hdrs)

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class _StaleConnection(Exception):
    """The connection died before a status line arrived: safe to resend once."""
