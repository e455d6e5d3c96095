"""A tiny operations HTTP server on asyncio streams: health, readiness, metrics, stats.

No framework: HTTP/1.1 GET/HEAD (and POST for actions), one request per connection
(``Connection: close``), bounded request size and read time.  Routes:

``/healthz``  200 while the node is alive, else 503 listing the reasons.
``/readyz``   200 once the node does its job, else 503 listing the reasons.
``/metrics``  the Prometheus text exposition (``text/plain; version=0.0.4``).
``/stats``    a JSON document (mailbox statistics, mode, metrics summary) for ``finllm top``.

``POST <path>``  an *action* the owner supplies (e.g. the control plane's ``/drain``):
always behind the bearer token; without a configured token actions answer 403.

Trust: the server binds loopback by default.  With a token (``token_env`` or
``token_file``), the ``protected`` paths (``/stats`` and ``/metrics`` by default: they reveal
the node's internals) and every action need ``Authorization: Bearer <token>``, compared in
constant time; a missing or wrong token answers 401 and is counted (:attr:`OpsHttpServer.denied`).
The probes stay open: orchestrators call them without credentials.  Binding a non-loopback
address without a token is refused at start (``allow_open`` overrides).  ``tls_cert`` +
``tls_key`` serve HTTPS; ``tls_client_ca`` also requires client certificates signed by it.

Each probe is a callable supplied by the owner; a probe that raises answers
500 with the error, so a broken probe is visible, never a hung socket.
:func:`health_checks` makes both probes from an engine's
:class:`~engine.health.NodeHealth` (``Engine.health``), so they tell what the
engine knows: parked or crash-looping actors, failed tiers, stalled partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from engine.config import BindPort, PositiveFloat, PositiveInt
from engine.health import NodeHealth

__all__ = [
    "ENV_PREFIX",
    "Action",
    "Check",
    "OpsHttpConfig",
    "OpsHttpServer",
    "check",
    "config_from_env",
    "health_checks",
]

Check = Callable[[], tuple[bool, str]]
"""A probe: (ok, reason)."""

Action = Callable[[], tuple[int, str]]
"""A ``POST`` action: (HTTP status, text answer)."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
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
    token_env: str = ""
    """Environment variable holding the bearer token (module doc); empty: see ``token_file``."""
    token_file: str = ""
    """File holding the bearer token (first line); empty with ``token_env`` empty: no token."""
    protected: tuple[str, ...] = ("/stats", "/metrics")
    """GET paths that need the token when one is configured."""
    allow_open: bool = False
    """Allow a non-loopback bind without a token (only behind another authenticating layer)."""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    """CA bundle whose client certificates are required (mutual TLS); empty: no client certs."""

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("ops http: tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("ops http: tls_client_ca needs tls_cert and tls_key")


ENV_PREFIX = "FINLLM_OPS_"
"""``finllm node`` reads its ops HTTP trust settings from the environment (:func:`config_from_env`)."""


def config_from_env(host: str, port: int, environ: Mapping[str, str] | None = None) -> OpsHttpConfig:
    """The node's ops HTTP config: ``host``/``port`` from ``--http``, trust from the environment.

    ``FINLLM_OPS_TOKEN`` (the token itself; read from the environment at start, never logged),
    or ``FINLLM_OPS_TOKEN_FILE``; ``FINLLM_OPS_TLS_CERT`` + ``FINLLM_OPS_TLS_KEY`` (HTTPS) and
    ``FINLLM_OPS_TLS_CLIENT_CA`` (mutual TLS); ``FINLLM_OPS_ALLOW_OPEN=1`` allows a non-loopback
    bind without a token.  Nothing set: loopback-only binds, GET open, actions off.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return env.get(ENV_PREFIX + name, "").strip()

    return OpsHttpConfig(
        host=host,
        port=port,
        token_env=ENV_PREFIX + "TOKEN" if get("TOKEN") else "",
        token_file="" if get("TOKEN") else get("TOKEN_FILE"),
        allow_open=get("ALLOW_OPEN") in {"1", "true", "yes"},
        tls_cert=get("TLS_CERT"),
        tls_key=get("TLS_KEY"),
        tls_client_ca=get("TLS_CLIENT_CA"),
    )


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
        actions: Mapping[str, Action] | None = None,
    ) -> None:
        self.config = config
        self._metrics_text = metrics_text
        self._stats = stats
        self._healthy = healthy
        self._ready = ready
        self._actions = dict(actions or {})
        self._server: asyncio.Server | None = None
        self._token = b""
        self.port = 0
        self.requests = 0
        self.errors = 0
        self.denied = 0
        """Requests refused for a missing or wrong token (401) or an action without a token (403)."""

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    async def start(self) -> int:
        """Listen; returns the bound port.  Raises ValueError for a token that cannot be read or
        an open bind without a token (module doc; :func:`check` says so before starting)."""
        cfg = self.config
        self._token, tls = _prepare(cfg)
        self._server = await asyncio.start_server(
            self._handle, cfg.host, cfg.port, limit=cfg.max_request_bytes, ssl=tls
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
            path = target.split("?", 1)[0]
            if method == "POST" and path in self._actions:
                code, answer = self._act(path, head)
                await self._send(writer, code, answer, extra=_challenge(code))
                return
            if method not in ("GET", "HEAD"):
                await self._send(writer, 405, "only GET and HEAD\n", extra={"Allow": "GET, HEAD"})
                return
            if path in self.config.protected and self._token and not self._authorized(head):
                self.denied += 1
                await self._send(writer, 401, "bearer token required\n", extra=_challenge(401))
                return
            status, ctype, body = self._route(path)
            await self._send(writer, status, body, ctype=ctype, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            self.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _authorized(self, head: bytes) -> bool:
        given = b""
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if sep and name.strip().lower() == b"authorization":
                scheme, _, cred = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    given = cred.strip()
                break
        # Constant time: the comparison must not tell how much of a guess was right.
        return bool(self._token) and hmac.compare_digest(given, self._token)

    def _act(self, path: str, head: bytes) -> tuple[int, str]:
        if not self._token:
            self.denied += 1
            return 403, "actions are off: no bearer token is configured\n"
        if not self._authorized(head):
            self.denied += 1
            return 401, "bearer token required\n"
        try:
            status, text = self._actions[path]()
        except Exception as exc:  # a broken action must answer, not hang the client
            self.errors += 1
            return 500, f"{path} failed: {type(exc).__name__}: {exc}\n"
        return status, text if text.endswith("\n") else text + "\n"

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


def _challenge(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": 'Bearer realm="finllm-ops"'} if status == 401 else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def _load_token(cfg: OpsHttpConfig) -> bytes:
    """The bearer token ``cfg`` names (from its environment variable or file), or b"" for none;
    ValueError when it names one that is empty or unreadable."""
    if cfg.token_env:
        token = os.environ.get(cfg.token_env, "").strip()
        if not token:
            raise ValueError(f"ops http: environment variable {cfg.token_env} (the token) is empty")
        return token.encode()
    if cfg.token_file:
        try:
            lines = Path(cfg.token_file).read_text("utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"ops http: cannot read token file {cfg.token_file}: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ValueError(f"ops http: token file {cfg.token_file} is empty")
        return token.encode()
    return b""


def _ssl_context(cfg: OpsHttpConfig) -> ssl.SSLContext | None:
    """The server's TLS context (mutual TLS with ``tls_client_ca``), or None for plain HTTP."""
    if not cfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    if cfg.tls_client_ca:
        ctx.load_verify_locations(cfg.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check(cfg: OpsHttpConfig) -> bytes:
    """Everything that can be wrong with ``cfg`` before binding: an unreadable token, an open
    (non-loopback) bind without one, TLS files that do not load.  Returns the token; raises
    ValueError naming the problem (``finllm node`` exits 2 with it)."""
    return _prepare(cfg)[0]


def _prepare(cfg: OpsHttpConfig) -> tuple[bytes, ssl.SSLContext | None]:
    """:func:`check`'s work, also handing back the TLS context the server listens with."""
    token = _load_token(cfg)
    if not token and not cfg.allow_open and not _is_loopback(cfg.host):
        raise ValueError(
            f"ops http: refusing to bind {cfg.host!r} (not loopback) without a bearer token; "
            "set token_env or token_file (or allow_open = true behind an authenticating proxy)"
        )
    try:
        tls = _ssl_context(cfg)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ops http: cannot load the TLS files: {exc}") from None
    return token, tls
