"""`finllm node`: the shipped pipeline (config/default.toml as installed, its node profile) with
command-line overrides against a real broker; bad flags and config errors (exit 2, a message, never
a traceback); and a node whose actor crash-loops and whose tier failed, told by its probes and its
log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from adapters.tansu import TansuBroker, free_port
from tests.kafka.kafkatest import (
    DEFAULT_CONFIG,
    REPO,
    BarTape,
    ForecastReader,
    NodeProcess,
    create_topics,
    expected_forecasts,
    http_get,
    produce_messages,
)
from tools.commands import node


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_finllm_node_runs_the_shipped_pipeline(tansu: TansuBroker, tmp_path: Path) -> None:
    # No --config: the packaged default.toml under [profiles.node] (then edge-only: no LLM server).
    # It reads "md" and "news" and writes "forecasts" / "deadletter" / "heartbeats".
    await create_topics(
        tansu.bootstrap, {"md": 6, "news": 1, "forecasts": 6, "deadletter": 1, "heartbeats": 1}
    )
    group = f"cli-{uuid.uuid4().hex[:6]}"
    http = f"127.0.0.1:{free_port()}"
    extra = ["--bootstrap", tansu.bootstrap, "--group", group, "--node-id", "edge-cli", "--http", http]
    extra += ["--profile", "edge-only"]
    node = NodeProcess(None, tmp_path / "node.log", "edge-cli", extra)
    try:
        sent = await produce_messages(tansu.bootstrap, "md", BarTape(["ES", "NQ"], bars=25, per_bar=3).trades)
        expected = expected_forecasts(sent)
        async with ForecastReader(tansu.bootstrap, "forecasts") as reader:
            seen = await reader.until(expected, timeout_s=60)
        assert expected <= seen.covered, node.log_text()[-2000:]
        assert seen.origins == {"edge-cli": seen.records}, "--node-id names the writer of every forecast"
        code, body = await http_get(http, "/stats")
        doc = json.loads(body)
        assert code == 200 and doc["node_id"] == "edge-cli"
        assert {"feed", "edge", "narrative", "sanity", "degradation", "control"} <= set(doc["actors"])
        assert (await http_get(http, "/healthz"))[0] == 200
    finally:
        node.terminate()
        rc = await node.wait(60)
    assert rc == 0, node.log_text()[-2000:]
    text = node.log_text()
    assert "stopped: signal SIGTERM" in text and "partitions_assigned" in text


# --- bad flags and config: exit 2 with a message -----------------------------------------------


EDGE_NODE = str(DEFAULT_CONFIG)


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ("nonsense", "expected HOST:PORT (e.g. 127.0.0.1:9308), got 'nonsense'"),
        ("127.0.0.1:99999", "port must be in 0..65535"),
        ("127.0.0.1:", "port must be a number"),
    ],
)
def test_a_bad_http_address_is_a_usage_error(
    http: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        node.main(["--config", EDGE_NODE, "--http", http])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --http" in err and message in err


def test_an_open_bind_without_a_token_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TOKEN", "TOKEN_FILE", "ALLOW_OPEN", "TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"):
        monkeypatch.delenv(f"FINLLM_OPS_{name}", raising=False)
    rec = tmp_path / "rec"
    assert node.main(["--config", EDGE_NODE, "--http", "0.0.0.0:0", "--record", str(rec)]) == 2
    err = capsys.readouterr().err
    assert "finllm node: ops http: refusing to bind '0.0.0.0' (not loopback) without a bearer token" in err
    assert not rec.exists(), "nothing was started or written"
    monkeypatch.setenv("FINLLM_OPS_TOKEN_FILE", str(tmp_path / "missing-token"))
    assert node.main(["--config", EDGE_NODE, "--http", "0.0.0.0:0"]) == 2
    assert "cannot read token file" in capsys.readouterr().err


def test_the_signed_profile_without_keys_is_a_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINLLM_NODE_KEYS", raising=False)
    assert node.main(["--config", EDGE_NODE, "--profile", "signed"]) == 2
    err = capsys.readouterr().err
    want = "actors[heartbeats].config: environment variable FINLLM_NODE_KEYS holding the node keys is empty"
    assert want in err


def test_a_config_typo_in_app_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text(Path(EDGE_NODE).read_text().replace('"app.http" = "127.0.0.1:9308"', '"app.htpp" = "x"'))
    assert node.main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"finllm node: config error: {bad}: app.htpp: unknown key" in err
    bad.write_text(Path(EDGE_NODE).read_text().replace("127.0.0.1:9308", "127.0.0.1:99999"))
    assert node.main(["--config", str(bad)]) == 2
    assert f"{bad}: app.http: port must be in 0..65535" in capsys.readouterr().err


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text("[engine]\nshutdown_deadline_s = -1\n")
    for args, message in (
        (["--config", EDGE_NODE, "--http", "nonsense"], "argument --http: expected HOST:PORT"),
        (["--config", str(bad)], f"{bad}: engine.shutdown_deadline_s: Expected `float` > 0.0"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "engine.cli", "node", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# --- a sick node says so ----------------------------------------------------------------------


SICK_NODE = """
[engine]
node_id = "sick-1"
log_format = "json"
shutdown_deadline_s = 2.0
park_after = 3
root_max_restarts = 100
[engine.health]
interval_s = 0.1

[app]
http = "{http}"

[[actors]]
name = "crashy"
class = "tests.engine.pipeline_parts:AlwaysFails"

[[actors]]
name = "cloud"
class = "tests.engine.pipeline_parts:TierDown"
"""


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_node_with_a_crash_loop_and_a_failed_tier_says_so(tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "sick.toml"
    cfg.write_text(SICK_NODE.format(http=http))
    proc = NodeProcess(cfg, tmp_path / "node.log", "sick-1")
    try:
        deadline = time.monotonic() + 30
        ready: tuple[int, bytes] = (0, b"")
        while time.monotonic() < deadline:
            try:
                ready = await http_get(http, "/readyz")
            except OSError:  # not listening yet
                ready = (0, b"")
            if ready[0] == 503 and b"parked" in ready[1] and b"tier cloud" in ready[1]:
                break
            await asyncio.sleep(0.1)
        body = ready[1].decode()
        assert ready[0] == 503, proc.log_text()[-3000:]
        assert body.startswith("sick-1 not ready: 3 problem(s)")
        assert "- actor crashy parked after 3 failures (crash loop): RuntimeError: cannot start" in body
        assert "- tier cloud: failed - did not start: no LLM server at 127.0.0.1:1" in body
        assert "- mode DEGRADED" in body  # parking an actor degrades the node
        code, live = await http_get(http, "/healthz")
        assert code == 503 and b"actor crashy parked" in live
        code, stats = await http_get(http, "/stats")
        doc = json.loads(stats)
        assert doc["ready"] is False and doc["actors"]["crashy"]["state"] == "parked"
        assert doc["actors"]["crashy"]["last_error"] == "RuntimeError: cannot start"
        code, metrics = await http_get(http, "/metrics")
        assert b'finllm_tier_state{tier="cloud",state="failed"} 1' in metrics
        assert b'finllm_actor_parked{actor="crashy"} 1.0' in metrics
    finally:
        proc.terminate()
        rc = await proc.wait()
    assert rc == 0, proc.log_text()[-3000:]
    events = [json.loads(line) for line in proc.log_text().splitlines() if line.startswith("{")]
    warned = [(e["event"], e.get("tier") or e.get("actor")) for e in events if e.get("level") == "warning"]
    # one WARNING per FAILED tier and per parked actor, not one per assessment
    assert warned.count(("tier_failed", "cloud")) == 1 and warned.count(("actor_parked", "crashy")) == 1
    assert any(e["event"] == "ops_http_listening" for e in events)
