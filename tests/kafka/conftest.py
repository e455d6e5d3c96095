"""Kafka test fixtures: one real Tansu broker for the session (started here, stopped by PID)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.tansu import TansuBroker, TansuConfig


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A real Kafka-protocol broker on 127.0.0.1 (memory storage), shared by the session."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = TansuBroker(TansuConfig(log_path=str(log))).start()
    try:
        yield broker
    finally:
        code = broker.stop()
        assert code is not None


@pytest.fixture
def fresh_tansu(tmp_path: Path) -> Iterator[Callable[[int], TansuBroker]]:
    """Make brokers of the test's own: ``fresh_tansu(advertised_port)`` (0: its own port).

    Tests that put a proxy in front of the broker advertise the proxy's port, so that
    clients reconnect through the proxy after metadata, never around it.
    """
    brokers: list[TansuBroker] = []

    def make(advertised_port: int = 0) -> TansuBroker:
        b = TansuBroker(
            TansuConfig(advertised_port=advertised_port, log_path=str(tmp_path / f"tansu{len(brokers)}.log"))
        )
        brokers.append(b.start())
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture(scope="session")
def kcat() -> str:
    """The kcat binary.  make test installs it with: apt-get install -y kcat (Debian package)."""
    exe = shutil.which("kcat")
    if exe is None and shutil.which("apt-get"):
        # Never skip: try the Debian package (refreshing the lists once), then fail loudly.
        for cmd in (
            ["apt-get", "install", "-y", "-q", "kcat"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "kcat"],
        ):
            subprocess.run(cmd, capture_output=True, check=False, timeout=300)
            exe = shutil.which("kcat")
            if exe:
                break
    assert exe, "kcat not found: install it with `apt-get install -y kcat`"
    return exe
