"""An asyncio TCP proxy that injects network faults: latency, connection resets, stalls, refusals.

Put it between a client and a broker, and make the broker advertise the proxy's
address (Tansu: ``TansuConfig(advertised_port=proxy.port)``), or Kafka clients will
follow the metadata straight to the broker and around the faults::

    proxy = FaultProxy("127.0.0.1", broker_port, listen_port=proxy_port)
    await proxy.start()
    proxy.latency_s = 0.02        # every chunk, each direction
    proxy.reset_all()             # RST every live connection now
    await proxy.stall(2.0)        # hold all traffic for 2 s, connections stay open
    proxy.refuse = True           # new connections are reset at once (broker "down")

Standalone: ``python -m tools.faultproxy --target 127.0.0.1:9092 --listen 127.0.0.1:19092
--latency-ms 5 --reset-every-s 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import struct
import sys

__all__ = ["FaultProxy", "ProxyStats", "main"]

_CHUNK = 65536


class ProxyStats:
    """Counters since start: connections accepted, reset by us, refused, bytes each way."""

    __slots__ = ("accepted", "bytes_down", "bytes_up", "refused", "resets")

    def __init__(self) -> None:
        self.accepted = 0
        self.resets = 0
        self.refused = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0: close sends RST, as a crashed peer or a middlebox would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    __slots__ = ("client", "server", "tasks")

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        _abort(self.client)
        _abort(self.server)


class FaultProxy:
    """Forwards ``listen`` -> ``target`` with injectable faults (see the module docstring).

    ``ssl`` (a server-side context) terminates TLS on the listening side; the target is
    always reached in plain TCP.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.ssl = ssl
        self.latency_s = 0.0
        """Delay added to every forwarded chunk, in seconds, each direction."""
        self.refuse = False
        """When true, new connections are reset as soon as they are accepted."""
        self.api_versions_max: int | None = None
        """When set, ApiVersions requests above this version are answered by the proxy with
        UNSUPPORTED_VERSION (KIP-511), so the client retries at this version.  A workaround for
        librdkafka 2.0 (Debian's kcat), which misreads Tansu's ApiVersions v3 tagged fields."""
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.listen_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.listen_port, ssl=self.ssl, reuse_address=True
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        tasks = [t for link in list(self._links) for t in link.tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def reset_all(self) -> int:
        """Reset (RST) every live connection now; returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        self.stats.resets += len(links)
        return len(links)

    def pause(self) -> None:
        """Stop forwarding (connections stay open, data waits) until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def stall(self, seconds: float) -> None:
        """Hold all traffic for ``seconds``, then let it flow again."""
        self.pause()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.resume()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            self.stats.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.stats.refused += 1
            _abort(writer)
            return
        self.stats.accepted += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        loop = asyncio.get_running_loop()
        link.tasks = [
            loop.create_task(self._pump_up(reader, up_writer, writer)),
            loop.create_task(self._pump(up_reader, writer, up=False)),
        ]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in link.tasks:
                t.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump_up(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        """Client -> broker; with ``api_versions_max`` set, inspect frames until the handshake is done."""
        limit = self.api_versions_max
        try:
            while limit is not None:
                head = await reader.readexactly(4)
                size = int.from_bytes(head, "big", signed=True)
                body = await reader.readexactly(size)
                api_key, api_version = struct.unpack_from(">hh", body)
                if api_key == 18 and api_version > limit:
                    corr = body[4:8]
                    # v0 response body: correlation id, error 35 UNSUPPORTED_VERSION, [(18, 0, limit)].
                    payload = corr + struct.pack(">hihhh", 35, 1, 18, 0, limit)
                    client.write(len(payload).to_bytes(4, "big") + payload)
                    await client.drain()
                    continue
                writer.write(head + body)
                await writer.drain()
                self.stats.bytes_up += 4 + size
                if api_key != 18:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        await self._pump(reader, writer, up=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        stats = self.stats
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    return
                if not self._flowing.is_set():
                    await self._flowing.wait()
                if self.latency_s > 0.0:
                    await asyncio.sleep(self.latency_s)
                writer.write(data)
                await writer.drain()
                if up:
                    stats.bytes_up += len(data)
                else:
                    stats.bytes_down += len(data)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            return


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(args: argparse.Namespace) -> None:
    th, tp = _hostport(args.target)
    lh, lp = _hostport(args.listen)
    proxy = await FaultProxy(th, tp, listen_host=lh, listen_port=lp).start()
    proxy.latency_s = args.latency_ms / 1000.0
    print(f"faultproxy {proxy.address} -> {th}:{tp}", file=sys.stderr, flush=True)
    try:
        while True:
            if args.reset_every_s > 0:
                await asyncio.sleep(args.reset_every_s)
                n = proxy.reset_all()
                print(f"reset {n} connections", file=sys.stderr, flush=True)
            else:
                await asyncio.sleep(3600)
    finally:
        await proxy.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.faultproxy", description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="host:port to forward to")
    p.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--reset-every-s", type=float, default=0.0)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
