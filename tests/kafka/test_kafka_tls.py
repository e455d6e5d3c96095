"""TLS and mutual TLS: the node talks to the broker through tools/tlsproxy.py (client certs required)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from adapters.kafka import KafkaConfig, TlsConfig, admin_kwargs, ssl_context
from adapters.tansu import TansuBroker, free_port
from tests.kafka.kafkatest import (
    ForecastReader,
    Topics,
    committed_and_end,
    engine_running,
    node_toml,
    standard_topics,
    stop_bounded,
)
from tools.tlsproxy import TestPki, TlsProxy, generate_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return generate_test_pki(tmp_path_factory.mktemp("pki"))


def _tls_toml(pki: TestPki) -> str:
    return (
        'security_protocol = "SSL"\n'
        "[actors.config.kafka.tls]\n"
        f'cafile = "{pki.ca_cert}"\ncertfile = "{pki.client_cert}"\nkeyfile = "{pki.client_key}"\n'
    )


async def _mtls_proxy(fresh_tansu: Callable[[int], TansuBroker], pki: TestPki) -> TlsProxy:
    """A fresh broker behind a TLS proxy that requires client certificates from our CA.

    The broker advertises the proxy's port, so clients only ever talk TLS.
    """
    port = free_port()
    broker = fresh_tansu(port)
    return await TlsProxy(
        "127.0.0.1",
        broker.port,
        cert=pki.server_cert,
        key=pki.server_key,
        client_ca=pki.ca_cert,
        listen_port=port,
    ).start()


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_node_round_trip_over_mutual_tls(
    fresh_tansu: Callable[[int], TansuBroker], pki: TestPki
) -> None:
    proxy = await _mtls_proxy(fresh_tansu, pki)
    try:
        conn = KafkaConfig(
            bootstrap_servers=proxy.address,
            security_protocol="SSL",
            tls=TlsConfig(cafile=pki.ca_cert, certfile=pki.client_cert, keyfile=pki.client_key),
        )
        client = {"security_protocol": "SSL", "ssl_context": ssl_context(conn.tls)}
        t = Topics.fresh()
        await standard_topics(proxy.address, t, **client)
        expected = await _produce_tls(proxy.address, t.md, client)
        async with (
            engine_running(node_toml(proxy.address, t, kafka_extra=_tls_toml(pki))),
            ForecastReader(proxy.address, t.forecasts, **client) as reader,
        ):
            seen = await reader.until(expected, timeout_s=30)
        assert expected <= seen.covered
        assert proxy.stats.accepted >= 3 and proxy.stats.bytes_down > 0
        committed, ends = await committed_and_end(proxy.address, t.group, t.md, 6, **client)
        assert sum(ends.values()) == len(expected)
        assert committed == ends
        assert admin_kwargs(conn)["security_protocol"] == "SSL"
    finally:
        await proxy.stop()


async def _produce_tls(bootstrap: str, topic: str, client: dict[str, object]) -> set[tuple[str, int]]:
    # produce_trades speaks plaintext; over TLS, produce by hand with the same records.
    from engine.messages import msgpack_encoder
    from tests.kafka.kafkatest import position, trade

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client)
    futs = []
    try:
        await p.start()
        for seq in range(1, 101):
            for sym in ("ES", "NQ", "CL"):
                futs.append(
                    (sym, await p.send(topic, msgpack_encoder.encode(trade(sym, seq)), key=sym.encode()))
                )
        await p.flush()
        return {(sym, position(await fut)) for sym, fut in futs}
    finally:
        await stop_bounded(p)


@pytest.mark.asyncio(loop_factories=["uvloop"])
@pytest.mark.parametrize("who", ["no-client-cert", "rogue-client-cert", "plaintext"])
async def test_clients_without_a_trusted_certificate_are_refused(
    fresh_tansu: Callable[[int], TansuBroker], pki: TestPki, who: str, tmp_path: Path
) -> None:
    proxy = await _mtls_proxy(fresh_tansu, pki)
    try:
        if who == "plaintext":
            kw: dict[str, object] = {}
        else:
            tls = TlsConfig(
                cafile=pki.ca_cert,
                certfile=pki.rogue_cert if who == "rogue-client-cert" else "",
                keyfile=pki.rogue_key if who == "rogue-client-cert" else "",
            )
            kw = {"security_protocol": "SSL", "ssl_context": ssl_context(tls)}
        p = AIOKafkaProducer(bootstrap_servers=proxy.address, request_timeout_ms=3000, **kw)
        with pytest.raises(KafkaConnectionError):
            await p.start()
        await stop_bounded(p)
    finally:
        await proxy.stop()
