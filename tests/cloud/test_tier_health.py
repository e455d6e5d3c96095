"""Loud failures: the local LLM server proves it can answer, and a tier that fails says so.

The dying servers here are small fault-injection children (allowed: they stand in for a
llama.cpp build that crashes, which we cannot produce on demand); the `finllm run` case starts
the real llama.cpp server on a file that is not a model, a real failure of the real part.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.llm.local_server import LocalLlamaServer, LocalServerError, describe_exit
from engine.health import TierHealth, TierState
from tests.cloud.conftest import FaultFactory
from tests.cloud.test_cloud_reasoner import cfg_for, edge, news
from tools.commands import run as runcmd

S = 1_000_000_000

# A child that answers GET /v1/models like llama.cpp does and then dies the way a native build
# on an AMX-advertising VM did: SIGSEGV inside the first completion.
_CRASHING_SERVER = r"""
import http.server, os, signal, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b'{"object":"list","data":[{"id":"m"}]}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        print("ggml: entering the first matrix multiply", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
print("fake llama.cpp listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class _Scripted(LocalLlamaServer):
    """The real helper around a scripted child instead of llama_cpp.server."""

    def __init__(self, script: Path, **kw: Any) -> None:
        super().__init__(model_path=script, **kw)
        self.script = script

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.port)]


def test_describe_exit_names_signals_and_codes() -> None:
    assert describe_exit(-signal.SIGSEGV) == "SIGSEGV"
    assert describe_exit(-signal.SIGKILL) == "SIGKILL"
    assert describe_exit(3) == "exit code 3"


def test_server_that_dies_on_first_completion_is_not_declared_up(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(_CRASHING_SERVER)
    server = _Scripted(script, startup_timeout_s=30.0)
    with pytest.raises(LocalServerError) as err:
        server.start_sync()
    text = str(err.value)
    assert "SIGSEGV" in text and "first completion" in text
    assert "entering the first matrix multiply" in text  # the tail of the child's output
    assert "make bootstrap-llama" in text  # what to do
    assert server.proc is None  # and nothing is left running


@pytest.mark.asyncio
async def test_async_start_reports_the_same(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(_CRASHING_SERVER)
    with pytest.raises(LocalServerError, match="SIGSEGV"):
        await _Scripted(script, startup_timeout_s=30.0).start()


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = _Scripted(tmp_path / "unused.py", port=port)
        with pytest.raises(LocalServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start_sync()


def test_tier_states_follow_the_counts() -> None:
    h = TierHealth()
    h.tier("idle").configured()
    ok = h.tier("ok")
    ok.attempt(2)
    ok.success(2)
    deg = h.tier("deg")
    deg.attempt(2)
    deg.success()
    deg.failure("timeout")
    bad = h.tier("bad")
    bad.attempt(3)
    bad.failure("server exited with SIGSEGV", n=3)
    snap = h.snapshot()
    assert {k: v.state for k, v in snap.items()} == {
        "bad": TierState.FAILED,
        "deg": TierState.DEGRADED,
        "idle": TierState.IDLE,
        "ok": TierState.OK,
    }
    assert (
        snap["bad"].describe()
        == "bad: failed - 3 attempts, 3 failed (first error: server exited with SIGSEGV)"
    )
    assert [t.tier for t in h.failed()] == ["bad"]


@pytest.mark.asyncio
async def test_cloud_tier_reports_every_failed_escalation(rig_factory: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on: every call is refused
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    rig = await rig_factory(cfg_for(f"http://127.0.0.1:{dead}/v1", deadline_s=2.0))
    tier = rig.metrics.tiers.tier("cloud")
    for i in range(3):  # one at a time: a second escalation of the same key waits for the first
        fc = edge(i, confidence=0.05)
        rig.publish("news.verified", news(f"n-{i}", fc.ts_event - S))
        rig.publish("forecast.ES", fc)
        await rig.until(lambda i=i: tier.status().failures > i, 20.0)
    st = rig.metrics.tiers.snapshot()["cloud"]
    assert st.state is TierState.FAILED and st.attempts == st.failures >= 3 and st.successes == 0
    assert "ConnectFailed" in st.first_error


@pytest.mark.asyncio
async def test_cloud_tier_ok_when_answers_arrive(fault_server: FaultFactory, rig_factory: Any) -> None:
    from tests.cloud.test_cloud_reasoner import answer_citing

    srv = await fault_server(answer_fn=answer_citing())
    rig = await rig_factory(cfg_for(srv.url))
    fc = edge(1, confidence=0.05)
    rig.publish("news.verified", news("n-1", fc.ts_event - S))
    rig.publish("forecast.ES", fc)
    await rig.until(lambda: rig.metrics.tiers.tier("cloud").status().successes == 1)
    assert rig.metrics.tiers.snapshot()["cloud"].state is TierState.OK


_RUN_WITH_BROKEN_CLOUD = """
[engine]
clock = "live"
shutdown_deadline_s = 10.0
log_level = "error"

[[actors]]
name = "source"
class = "tools.overload:SyntheticSource"
[actors.config]
phases = [[1.0, 300.0]]
symbols = 2

[[actors]]
name = "forecaster"
class = "tools.overload:StandInForecaster"
subscribe = ["md.>"]
[actors.config]
full_cost_us = 50.0
small_cost_us = 10.0

[[actors]]
name = "cloud"
class = "actors.cloud_reasoner:CloudReasonerProxy"
subscribe = ["forecast.*"]
critical = false
[actors.config]
autostart_local = true
local_model_path = "{model}"
tiers = ["stand-in", "edge"]

[[actors]]
name = "forecasts"
class = "actors.sinks:JsonlSink"
subscribe = ["forecast.>"]
[actors.config]
path = "${{out}}/forecasts.jsonl"
"""


@pytest.mark.integration
def test_finllm_run_says_loudly_that_the_cloud_tier_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    cfg = tmp_path / "p.toml"
    cfg.write_text(_RUN_WITH_BROKEN_CLOUD.format(model=not_a_model))
    rc = runcmd.main(["--config", str(cfg), "--runs", str(tmp_path / "runs"), "--strict"])
    captured = capsys.readouterr()
    assert rc == 3, captured.err
    assert (
        "WARNING finllm run: tier cloud: failed - did not start: llama.cpp server exited with" in captured.err
    )
    (out,) = (tmp_path / "runs").iterdir()
    # the rest of the run is not lost: the forecaster's output is all there
    assert (out / "forecasts.jsonl").read_bytes().count(b"\n") > 100
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["tiers"]["cloud"]["state"] == "failed"
    assert "llama.cpp server exited with" in doc["tiers"]["cloud"]["start_error"]
    page = (out / "report.html").read_text()
    assert 'class="warning">WARNING: tier cloud: failed' in page
    assert "tier[cloud]" in captured.out
