"""tools/faultproxy.py against a local echo server: each fault does what it says."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tools.faultproxy import FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    p = await FaultProxy("127.0.0.1", port).start()
    yield p
    await p.stop()
    server.close()
    await server.wait_closed()


async def _roundtrip(r: asyncio.StreamReader, w: asyncio.StreamWriter, payload: bytes) -> bytes:
    w.write(payload)
    await w.drain()
    return await asyncio.wait_for(r.readexactly(len(payload)), 5)


@pytest.mark.asyncio
async def test_latency_and_stall_delay_but_keep_the_bytes(proxy: FaultProxy) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(r, w, b"ping") == b"ping"
    proxy.latency_s = 0.05
    t0 = time.perf_counter()
    assert await _roundtrip(r, w, b"slow") == b"slow"
    assert time.perf_counter() - t0 >= 0.09, "latency applies each way"
    proxy.latency_s = 0.0
    stall = asyncio.create_task(proxy.stall(0.3))
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    assert await _roundtrip(r, w, b"held") == b"held"
    assert time.perf_counter() - t0 >= 0.25
    await stall
    w.close()


@pytest.mark.asyncio
async def test_reset_and_refuse(proxy: FaultProxy) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(r, w, b"a") == b"a"
    assert proxy.reset_all() == 1
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(r, w, b"b")
    w.close()
    proxy.refuse = True
    r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(r2, w2, b"c")
    w2.close()
    proxy.refuse = False
    r3, w3 = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(r3, w3, b"d") == b"d"
    w3.close()
    assert proxy.stats.resets == 1 and proxy.stats.refused == 1 and proxy.stats.accepted == 2


@pytest.mark.asyncio
async def test_api_versions_downgrade_answers_v3_and_passes_the_retry(proxy: FaultProxy) -> None:
    proxy.api_versions_max = 2
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)

    def frame(version: int, corr: int) -> bytes:
        body = struct.pack(">hhi", 18, version, corr) + struct.pack(">h", 4) + b"kcat"
        return len(body).to_bytes(4, "big") + body

    w.write(frame(3, 7))
    await w.drain()
    size = int.from_bytes(await r.readexactly(4), "big")
    corr, error, n, key, lo, hi = struct.unpack(">ihihhh", await r.readexactly(size))
    assert (corr, error, n, key, lo, hi) == (7, 35, 1, 18, 0, 2), "UNSUPPORTED_VERSION, retry at <= 2"
    retry = frame(2, 8)
    assert await _roundtrip(r, w, retry) == retry, "the v2 retry reaches the broker untouched"
    w.close()
