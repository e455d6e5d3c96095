"""A TLS / mutual-TLS terminating proxy in front of a plaintext broker, and a throwaway test PKI.

The Tansu build we ship refuses ``--cert`` together with ``--key`` (DESIGN.md), so the
client's TLS path is exercised through this proxy: clients speak TLS (and must present a
certificate signed by our CA when ``require_client_cert``), the proxy speaks plain TCP
to the broker.  Make the broker advertise the proxy's port so clients stay on TLS.

:func:`generate_test_pki` writes a CA, a server certificate for 127.0.0.1/localhost and a
client certificate with the ``openssl`` command-line tool; keys are unencrypted and meant
for tests only.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import msgspec

from tools.faultproxy import FaultProxy

__all__ = ["TestPki", "TlsProxy", "generate_test_pki", "server_context"]


class TestPki(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of a generated PKI (PEM files)."""

    __test__ = False  # not a pytest test class, despite the name

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    rogue_cert: str
    """A client certificate signed by a different CA: must be refused."""
    rogue_key: str


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("the openssl command-line tool is required to generate test certificates")
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True)


def _issue(d: Path, name: str, cn: str, ca: str, ext: str) -> None:
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-subj",
        f"/CN={cn}",
        "-out",
        f"{name}.csr",
        cwd=d,
    )
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.pem",
        cwd=d,
    )


def generate_test_pki(directory: str | Path) -> TestPki:
    """Create a CA, a server cert (SAN 127.0.0.1, localhost), a client cert and a rogue client cert."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "rogue-ca"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=finllm {ca}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )
    _issue(
        d,
        "server",
        "localhost",
        "ca",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    _issue(d, "client", "finllm-edge", "ca", "extendedKeyUsage=clientAuth\n")
    _issue(d, "rogue", "intruder", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return TestPki(
        ca_cert=str(d / "ca.pem"),
        ca_key=str(d / "ca.key"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client.key"),
        rogue_cert=str(d / "rogue.pem"),
        rogue_key=str(d / "rogue.key"),
    )


def server_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """A server context; with ``client_ca`` a client certificate signed by it is required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TlsProxy(FaultProxy):
    """A :class:`~tools.faultproxy.FaultProxy` that terminates TLS (mutual TLS with ``client_ca``)."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        cert: str,
        key: str,
        client_ca: str | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        super().__init__(
            target_host,
            target_port,
            listen_host=listen_host,
            listen_port=listen_port,
            ssl=server_context(cert, key, client_ca),
        )
