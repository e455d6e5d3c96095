"""Ops HTTP trust (adapters/ops_http.py): loopback by default, bearer token on sensitive paths and
actions (constant-time compare), optional TLS and mutual TLS; the control plane's drain action."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from actors.control_plane import ControlPlane, ControlPlaneConfig, PartitionAction
from adapters.ops_http import OpsHttpConfig, OpsHttpServer
from engine.config import loads_config
from engine.kernel import Engine
from engine.testing import Probe
from tools.tlsproxy import TestPki, generate_test_pki

TOKEN = "s3cret-token-for-tests"


async def _request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _server(cfg: OpsHttpConfig, **kw: object) -> OpsHttpServer:
    return OpsHttpServer(cfg, metrics_text=lambda: "m 1\n", stats=lambda: {"secret": 42}, **kw)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_loopback_by_default_and_no_open_bind_without_a_token() -> None:
    assert OpsHttpConfig().host == "127.0.0.1"
    srv = _server(OpsHttpConfig(host="0.0.0.0"))
    with pytest.raises(ValueError, match="without a bearer token"):
        await srv.start()
    # Without a token on loopback: everything readable as before, actions off (403).
    calls: list[str] = []
    srv = _server(OpsHttpConfig(), actions={"/drain": lambda: (calls.append("x"), (200, "ok"))[1]})
    port = await srv.start()
    try:
        assert (await _request(port, "/stats"))[0] == 200
        status, body = await _request(port, "/drain", method="POST", token="anything")
        assert status == 403 and b"no bearer token" in body and not calls
    finally:
        await srv.stop()


@pytest.mark.asyncio
async def test_sensitive_paths_and_actions_need_the_token_probes_stay_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FL_OPS_TOKEN", TOKEN)
    calls: list[str] = []

    def act() -> tuple[int, str]:
        calls.append("drain")
        return 200, "drained"

    srv = _server(OpsHttpConfig(token_env="FL_OPS_TOKEN"), actions={"/drain": act})
    port = await srv.start()
    try:
        assert (await _request(port, "/healthz"))[0] == 200
        assert (await _request(port, "/readyz"))[0] == 200
        for path in ("/stats", "/metrics"):
            assert (await _request(port, path))[0] == 401
            assert (await _request(port, path, token=TOKEN[:-1] + "X"))[0] == 401
            assert (await _request(port, path, token=TOKEN + "extra"))[0] == 401
        status, body = await _request(port, "/stats", token=TOKEN)
        assert status == 200 and b'"secret":42' in body
        assert (await _request(port, "/drain", method="POST"))[0] == 401
        assert (await _request(port, "/drain", method="POST", token="nope"))[0] == 401
        assert not calls
        status, body = await _request(port, "/drain", method="POST", token=TOKEN)
        assert status == 200 and body == b"drained\n" and calls == ["drain"]
        assert (await _request(port, "/nothing", method="POST", token=TOKEN))[0] == 405
        assert srv.denied == 8
    finally:
        await srv.stop()


def test_the_token_file_must_hold_a_token(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    srv = _server(OpsHttpConfig(token_file=str(empty)))
    with pytest.raises(ValueError, match="is empty"):
        asyncio.run(srv.start())
    with pytest.raises(ValueError, match="go together"):
        OpsHttpConfig(tls_cert="a.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return generate_test_pki(tmp_path_factory.mktemp("ops-pki"))


def _client_tls(pki: TestPki, cert: str = "", key: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_cert)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


@pytest.mark.asyncio
async def test_tls_and_mutual_tls(pki: TestPki) -> None:
    srv = _server(OpsHttpConfig(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca_cert))
    port = await srv.start()
    assert srv.url.startswith("https://")
    try:
        status, _ = await _request(port, "/healthz", tls=_client_tls(pki, pki.client_cert, pki.client_key))
        assert status == 200
        for ctx in (_client_tls(pki), _client_tls(pki, pki.rogue_cert, pki.rogue_key)):
            with pytest.raises((ssl.SSLError, ConnectionError, IndexError, ValueError)):
                await _request(port, "/healthz", tls=ctx)
        # A plaintext client gets no answer either.
        with pytest.raises((ConnectionError, IndexError, ValueError)):
            await _request(port, "/healthz")
    finally:
        await srv.stop()


@pytest.mark.asyncio
async def test_an_operator_drain_releases_and_holds_until_undrained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FL_OPS_TOKEN", TOKEN)
    engine = Engine(loads_config('[engine]\nnode_id = "n1"\n', path="<drain>"))
    cfg = ControlPlaneConfig(
        node_id="n1",
        heartbeat_interval_ms=60_000,
        recover_limit=1,
        http=OpsHttpConfig(token_env="FL_OPS_TOKEN"),
    )
    engine.add_actor("control", ControlPlane, cfg, subscribe=["control.heartbeat"])
    probe = Probe(engine.bus, "control.partitions")
    task = asyncio.get_running_loop().create_task(engine.run(install_signals=False))
    try:
        for _ in range(200):
            actor = engine.cells["control"].actor
            if isinstance(actor, ControlPlane) and actor.server is not None and actor.server.port:
                break
            await asyncio.sleep(0.01)
        assert isinstance(actor, ControlPlane) and actor.server is not None
        port = actor.server.port
        assert (await _request(port, "/drain", method="POST"))[0] == 401
        assert not actor.drained
        status, body = await _request(port, "/drain", method="POST", token=TOKEN)
        assert status == 200 and b"n1 drained" in body and actor.drained
        assert actor.self_state.released
        # Good intervals do not bring the partitions back while drained ...
        for i in range(3):
            actor.heartbeat_once(i, latency_us=0.0, lag_us=0.0, late_intervals=0.0)
        assert actor.self_state.released
        # ... and do once undrained.
        assert (await _request(port, "/undrain", method="POST", token=TOKEN))[0] == 200
        actor.heartbeat_once(10, latency_us=0.0, lag_us=0.0, late_intervals=0.0)
        assert not actor.self_state.released
        actions = [m.action for m in probe.drain() if isinstance(m, PartitionAction)]
        assert actions == ["release", "rejoin"]
    finally:
        engine.request_shutdown("test done")
        summary = await asyncio.wait_for(task, 20)
    assert summary.exit_code == 0


def test_the_node_reads_its_ops_trust_settings_from_the_environment() -> None:
    from adapters.ops_http import config_from_env

    assert config_from_env("127.0.0.1", 0, {}) == OpsHttpConfig(host="127.0.0.1", port=0)
    env = {
        "FINLLM_OPS_TOKEN": TOKEN,
        "FINLLM_OPS_TLS_CERT": "s.pem",
        "FINLLM_OPS_TLS_KEY": "s.key",
        "FINLLM_OPS_TLS_CLIENT_CA": "ca.pem",
    }
    cfg = config_from_env("10.0.0.5", 9308, env)
    assert cfg.token_env == "FINLLM_OPS_TOKEN" and not cfg.token_file and not cfg.allow_open
    assert (cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca) == ("s.pem", "s.key", "ca.pem")
    cfg = config_from_env("0.0.0.0", 1, {"FINLLM_OPS_TOKEN_FILE": "/run/token", "FINLLM_OPS_ALLOW_OPEN": "1"})
    assert cfg.token_file == "/run/token" and cfg.allow_open and not cfg.token_env
