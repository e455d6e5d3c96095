from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import load_config, loads_config
from engine.errors import ConfigError
from engine.kernel import Engine
from engine.messages import ModeChange, Trade
from engine.testing import Probe
from tests.engine.pipeline_parts import Collect

PIPELINE = """
[engine]
clock = "sim"
[[actors]]
name = "src"
class = "tests.engine.pipeline_parts:Counter"
config = {n = 1000, chunk = 64}
[[actors]]
name = "double"
class = "tests.engine.pipeline_parts.Doubler"
subscribe = ["md.*"]
mailbox = {capacity = 128, policy = "block"}
[[actors]]
name = "sink"
class = "tests.engine.pipeline_parts:Collect"
subscribe = ["x2.>"]
mailbox = {capacity = 128, policy = "block"}
"""


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    Collect.got = []
    yield
    Collect.got = []


@pytest.mark.asyncio
async def test_pipeline_from_toml_runs_to_completion_without_shedding() -> None:
    engine = Engine(loads_config(PIPELINE, path="p.toml"))
    summary = await engine.run(install_signals=False)
    assert summary.exit_code == 0 and summary.reason == "source finished"
    assert [t.seq for t in Collect.got] == list(range(1, 1001))
    assert all(isinstance(t, Trade) and t.price == 200.0 for t in Collect.got)
    for stats in summary.mailboxes.values():
        assert stats.shed == 0 and stats.depth == 0
    assert summary.mailboxes["sink"].delivered == 1000
    # the configured mailboxes are the ones in use (capacity and policy from the file)
    assert (summary.mailboxes["sink"].capacity, summary.mailboxes["sink"].policy) == (128, "block")
    assert summary.mailboxes["sink"].peak_depth <= 128
    assert summary.metrics["counters"]["messages_processed_total{actor=double}"] == 1000
    assert engine.clock.now_ns() == 1_000_000


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        engine = Engine(loads_config(textwrap.dedent(text), path="bad.toml"))
        engine.build()
    return info.value


def test_unknown_key_names_file_and_path() -> None:
    e = _err('[[actors]]\nname = "a"\nclass = "x:Y"\n[actors.mailbox]\ncapacityy = 3\n')
    assert e.path == "bad.toml"
    assert e.key == "actors[a].mailbox.capacityy"
    assert "unknown key" in str(e)


def test_wrong_type_names_the_expected_type() -> None:
    e = _err('[engine]\nshutdown_deadline_s = "soon"\n')
    assert e.key == "engine.shutdown_deadline_s"
    assert "Expected `float`" in e.problem


def test_bad_enum_value() -> None:
    e = _err('[engine]\nloop = "trio"\n')
    assert e.key == "engine.loop" and "uvloop" in e.problem


def test_actor_config_errors_name_the_actor_table() -> None:
    e = _err(
        """
        [[actors]]
        name = "src"
        class = "tests.engine.pipeline_parts:Counter"
        config = {n = "many"}
        """
    )
    assert e.key == "actors[src].config.n" and "Expected `int`" in e.problem
    e = _err(
        """
        [[actors]]
        name = "src"
        class = "tests.engine.pipeline_parts:Counter"
        config = {m = 1}
        """
    )
    assert e.key == "actors[src].config.m"


def test_unimportable_class_and_non_actor() -> None:
    e = _err('[[actors]]\nname = "a"\nclass = "no.such.module:Thing"\n')
    assert e.key == "actors[a].class" and "cannot import" in e.problem
    e = _err('[[actors]]\nname = "a"\nclass = "engine.messages:Trade"\n')
    assert "not an engine.actor.Actor" in e.problem


def test_semantic_checks() -> None:
    assert "duplicate" in str(_err('[[actors]]\nname="a"\nclass="m:A"\n[[actors]]\nname="a"\nclass="m:B"\n'))
    assert _err('[[actors]]\nname="a"\nclass="m:A"\nsupervisor="nope"\n').key == "actors[a].supervisor"
    assert (
        _err('[[actors]]\nname="a"\nclass="m:A"\nmailbox={policy="conflate"}\n').key
        == "actors[a].mailbox.key"
    )


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in str(_err("[engine\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.asyncio
async def test_escalation_of_a_critical_actor_ends_the_run_with_an_error() -> None:
    cfg = loads_config(
        """
        [engine]
        root_max_restarts = 1
        [[actors]]
        name = "bad"
        class = "tests.engine.pipeline_parts:AlwaysFails"
        """
    )
    summary = await Engine(cfg).run(install_signals=False)
    assert summary.exit_code == 1 and summary.reason.startswith("escalation")


@pytest.mark.asyncio
async def test_non_critical_actor_failure_degrades_instead_of_dying() -> None:
    cfg = loads_config(
        """
        [engine]
        clock = "sim"
        root_max_restarts = 1
        [[actors]]
        name = "optional"
        class = "tests.engine.pipeline_parts:AlwaysFails"
        critical = false
        [[actors]]
        name = "src"
        class = "tests.engine.pipeline_parts:Counter"
        config = {n = 10, chunk = 5, finish = false}
        """
    )
    engine = Engine(cfg)
    engine.build()
    probe = Probe(engine.bus, "control.mode")
    task = asyncio.ensure_future(engine.run(install_signals=False))
    mode = await asyncio.wait_for(probe.next(), 5)
    engine.request_shutdown("test over")
    summary = await task
    assert summary.exit_code == 0 and summary.abandoned == ["optional"]
    assert isinstance(mode, ModeChange) and mode.mode == "DEGRADED" and "optional" in mode.reason
    assert engine.runtime.mode == "DEGRADED"


@pytest.mark.asyncio
async def test_request_response_through_the_bus() -> None:
    cfg = loads_config(
        """
        [[actors]]
        name = "svc"
        class = "tests.engine.pipeline_parts:Collect"
        serve = ["svc.count"]
        """
    )
    engine = Engine(cfg)
    engine.build()
    task = asyncio.ensure_future(engine.run(install_signals=False))
    assert await engine.bus.request("svc.count", "a", timeout_s=2) == 1
    assert await engine.bus.request("svc.count", "b", timeout_s=2) == 2
    engine.request_shutdown("test over")
    summary = await task
    assert summary.reason == "test over" and summary.drained


SIGTERM_APP = """
import sys
from engine.config import loads_config
from engine.kernel import run_engine
cfg = loads_config('''
[engine]
loop = "LOOP"
shutdown_deadline_s = 5
[[actors]]
name = "slow"
class = "tests.engine.pipeline_parts:Slow"
subscribe = ["work"]
[[actors]]
name = "src"
class = "tests.engine.pipeline_parts:Counter"
config = {n = 50, chunk = 50, finish = false}
''')
print("ready", flush=True)
s = run_engine(cfg)
print("exit", s.exit_code, s.reason, s.drained, flush=True)
sys.exit(s.exit_code)
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_triggers_a_graceful_drained_shutdown(loop: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_APP.replace("LOOP", loop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    import time

    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "exit 0 signal SIGTERM True" in out


@pytest.mark.asyncio
async def test_sources_can_wait_until_every_actor_has_started() -> None:
    from tests.engine.pipeline_parts import SlowStart

    SlowStart.started_at = 0.0
    cfg = loads_config(
        """
        [[actors]]
        name = "slow"
        class = "tests.engine.pipeline_parts:SlowStart"
        """
    )
    engine = Engine(cfg)
    engine.build()
    task = asyncio.ensure_future(engine.run(install_signals=False))
    await asyncio.wait_for(engine.runtime.wait_started(), 5)
    assert SlowStart.started_at > 0.0
    assert asyncio.get_running_loop().time() >= SlowStart.started_at
    engine.request_shutdown("test over")
    await task


DRAIN = """
[engine]
clock = "sim"
[[actors]]
name = "src"
class = "tests.engine.pipeline_parts:Counter"
config = {n = 50, chunk = 10}
[[actors]]
name = "holder"
class = "tests.engine.pipeline_parts:Holder"
subscribe = ["md.*"]
[[actors]]
name = "broken"
class = "tests.engine.pipeline_parts:FailingDrain"
[[actors]]
name = "sink"
class = "tests.engine.pipeline_parts:Collect"
subscribe = ["x2.>"]
"""


@pytest.mark.asyncio
async def test_what_an_actor_holds_at_stop_reaches_an_actor_started_after_it() -> None:
    """The sink starts after the holder, so it stops first (reverse start order); the holder's
    on_drain runs while every actor still runs, so nothing it hands on is shed as closed.  A
    failing on_drain is logged and counted and the shutdown goes on."""
    from tests.engine.pipeline_parts import Holder

    Holder.held = []
    engine = Engine(loads_config(DRAIN, path="drain.toml"))
    summary = await engine.run(install_signals=False)
    assert summary.exit_code == 0
    assert [t.seq for t in Collect.got] == list(range(1, 51))
    assert all(s.shed == 0 for s in summary.mailboxes.values())
    assert summary.metrics["counters"]["on_drain_failures_total{actor=broken}"] == 1
    assert summary.drained is False  # a hook failed: the summary says the drain was not clean
