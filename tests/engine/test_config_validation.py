"""Every config table is typed and range-checked; errors name the file and the key path.

What was seen: a typo in ``[app]`` (``htpp``) silently switched ops HTTP off, an
out-of-range port bound a random one, and zero or negative capacities and timeouts
were accepted.  Each is a :class:`ConfigError` now, and every shipped config still loads.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from actors.control_plane import ControlPlaneConfig
from adapters.ops_http import OpsHttpConfig
from engine.config import convert, load_config, loads_config, parse_host_port
from engine.errors import ConfigError
from engine.kernel import Engine

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Engine(loads_config(textwrap.dedent(text), path="node.toml")).build()
    return info.value


def test_a_typo_in_app_names_the_file_and_the_key() -> None:
    e = _err('[app]\nhtpp = "127.0.0.1:9308"\n')
    assert (e.path, e.key) == ("node.toml", "app.htpp")
    assert "unknown key" in e.problem
    assert str(e).startswith("node.toml: app.htpp: unknown key")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("127.0.0.1:99999", "port must be in 0..65535 (0: pick a free port), got 99999"),
        ("127.0.0.1:-1", "port must be a number"),
        ("nonsense", "expected HOST:PORT"),
        ("127.0.0.1:http", "port must be a number, got 'http'"),
        ("::1:9308", "an IPv6 host goes in brackets"),
        ("[]:9308", "empty IPv6 address"),
        ("my host:80", "expected HOST:PORT"),
    ],
)
def test_bad_ops_addresses_are_refused(value: str, problem: str) -> None:
    e = _err(f'[app]\nhttp = "{value}"\n')
    assert e.key == "app.http" and problem in e.problem, e.problem


def test_addresses_that_mean_something() -> None:
    assert parse_host_port("127.0.0.1:9308") == ("127.0.0.1", 9308)
    assert parse_host_port(" localhost:1 ") == ("localhost", 1)
    assert parse_host_port("[::1]:65535") == ("::1", 65535)
    assert parse_host_port(":9308") == ("127.0.0.1", 9308)  # no host: loopback, never every interface
    assert parse_host_port("0.0.0.0:0") == ("0.0.0.0", 0)  # 0: pick a free port (listening only)
    with pytest.raises(ValueError, match=r"port must be in 1\.\.65535, got 0"):
        parse_host_port("broker:0", allow_zero=False)
    assert loads_config('[app]\nhttp = "127.0.0.1:0"\n').app.http == "127.0.0.1:0"
    assert loads_config("[app]\n").app.http == ""  # off


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[engine]\nshutdown_deadline_s = -1.0\n", "engine.shutdown_deadline_s", "Expected `float` > 0.0"),
        ("[engine]\nlag_interval_ms = 0\n", "engine.lag_interval_ms", "> 0.0"),
        ("[engine]\nroot_max_restarts = -1\n", "engine.root_max_restarts", "Expected `int` >= 0"),
        ("[engine]\npark_after = -3\n", "engine.park_after", ">= 0"),
        ("[engine]\npark_window_s = 0\n", "engine.park_window_s", "> 0.0"),
        ("[engine.health]\ninterval_s = 0\n", "engine.health.interval_s", "> 0.0"),
        ("[engine.health]\nunready_restarts = -1\n", "engine.health.unready_restarts", ">= 0"),
        ("[engine.health]\nmax_consumer_lag = -5\n", "engine.health.max_consumer_lag", ">= 0"),
        ("[engine.health]\nrestart_windw_s = 5\n", "engine.health.restart_windw_s", "unknown key"),
        (
            '[[supervisors]]\nname = "s"\nperiod_s = 0\n',
            "supervisors[s].period_s",
            "> 0.0",
        ),
        (
            '[[supervisors]]\nname = "s"\nbackoff_initial_s = 2.0\nbackoff_max_s = 1.0\n',
            "supervisors[s].backoff_max_s",
            "expected a value >= backoff_initial_s",
        ),
        ('[[supervisors]]\nname = "s"\npark_after = -1\n', "supervisors[s].park_after", ">= 0"),
        (
            '[[actors]]\nname = "a"\nclass = "m:A"\nmailbox = {capacity = 0}\n',
            "actors[a].mailbox.capacity",
            "Expected `int` >= 1",
        ),
        (
            '[[actors]]\nname = "a"\nclass = "m:A"\nmailbox = {capacity = -10}\n',
            "actors[a].mailbox.capacity",
            ">= 1",
        ),
        ('[[actors]]\nname = "a"\nclass = "m:A"\nmailbox = {lanes = 0}\n', "actors[a].mailbox.lanes", ">= 1"),
        (
            '[[actors]]\nname = "a"\nclass = "m:A"\nshutdown_timeout_s = -1.0\n',
            "actors[a].shutdown_timeout_s",
            "> 0.0",
        ),
    ],
)
def test_values_out_of_range_name_the_key(text: str, key: str, problem: str) -> None:
    e = _err(text)
    assert e.path == "node.toml" and e.key == key and problem in e.problem, (e.key, e.problem)


def test_actor_config_ranges_use_the_same_types() -> None:
    e = _err(
        """
        [[actors]]
        name = "control"
        class = "actors.control_plane:ControlPlane"
        [actors.config.http]
        port = 99999
        """
    )
    assert e.key == "actors[control].config.http.port" and "<= 65535" in e.problem
    with pytest.raises(ConfigError, match=r"x\.toml: http\.read_timeout_s: Expected `float` > 0\.0"):
        convert({"http": {"read_timeout_s": 0}}, ControlPlaneConfig, path="x.toml")
    assert convert({"port": 0}, OpsHttpConfig).port == 0  # listening: 0 picks a free port


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_builds(path: Path, tmp_path: Path) -> None:
    # ${out} is the one variable a command must give (finllm run / replay: the output directory)
    cfg = load_config(path, variables={"out": str(tmp_path)})
    assert cfg.source == str(path)
    assert cfg.warnings == [], "shipped configs say what bounds every block mailbox"
    Engine(cfg).build()  # resolves every actor class and converts every actor's config table
