"""The composition root: one loader with typed overrides, profiles and variables.

What was seen: ``finllm run`` replaced ``${out}`` in the file's text, ``finllm replay``
rewrote actors found by class path and inserted an untyped one, and ``finllm node`` patched
any table named ``kafka``/``origin``/``consumer``.  Now every command maps its flags to the
loader's overrides, profiles and variables, and every mistake names the file and key path.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine.compose import Override, compose, get_path, parse_path, parse_value
from engine.config import load_config, loads_config
from engine.errors import ConfigError
from engine.kernel import Engine

PIPELINE = textwrap.dedent(
    """
    [variables]
    model = "m-1"

    [engine]
    clock = "sim"

    [[actors]]
    name = "feed"
    class = "tests.engine.pipeline_parts:Counter"
    [actors.config]
    n = 10

    [[actors]]
    name = "sink"
    class = "tests.engine.pipeline_parts:Tagged"
    subscribe = ["md.>"]
    [actors.mailbox]
    capacity = 64
    policy = "block"
    [actors.config]
    tag = "${model}"
    items = [{ id = "a", qty = 1 }, { id = "b", qty = 2 }]

    [profiles.small]
    "actors[feed].config.n" = 3
    "engine.seed" = 7

    [profiles.big]
    actors = [{ name = "only", class = "tests.engine.pipeline_parts:Collect" }]

    [profiles.nested]
    engine.seed = 11
    """
)


def _raw() -> dict[str, Any]:
    import tomllib

    return tomllib.loads(PIPELINE)


def _compose(**kw: Any) -> dict[str, Any]:
    doc, _ = compose(_raw(), source="p.toml", **kw)
    return doc


def _err(**kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _compose(**kw)
    return info.value


# --- values and paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("1e9", 1e9),
        ("true", True),
        ('"with space"', "with space"),
        ("emini", "emini"),  # a bare word is a string
        ("127.0.0.1:9092", "127.0.0.1:9092"),
        ("/data/ticks.csv", "/data/ticks.csv"),
        ("[1, 2]", [1, 2]),
        ('{ kind = "tick", size = 1 }', {"kind": "tick", "size": 1}),
    ],
)
def test_values_are_toml(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_a_value_that_is_neither_toml_nor_a_word_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"x\.y: 'a b' is not a TOML value"):
        Override.parse("x.y=a b")
    with pytest.raises(ConfigError, match="expects PATH=VALUE"):
        Override.parse("engine.seed")


def test_paths_split_into_keys_and_selectors() -> None:
    assert parse_path("actors[feed].config.dataset") == ["actors", ("feed",), "config", "dataset"]
    assert parse_path("a[x][0].b-c") == ["a", ("x",), ("0",), "b-c"]
    assert parse_path("symbols[ES.U3].qty") == ["symbols", ("ES.U3",), "qty"]
    with pytest.raises(ConfigError, match="bad key path"):
        parse_path("actors[feed]..x")


# --- overrides --------------------------------------------------------------------------------


def test_overrides_address_arrays_of_tables_by_name_id_or_index() -> None:
    doc = _compose(
        sets=[
            "actors[feed].config.n=5",
            "actors[sink].config.items[b].qty=20",
            "actors[1].mailbox.capacity=128",
            "actors[sink].config.items[0].qty=10",
            "engine.health.interval_s=0.5",  # a missing table on the way is created
        ]
    )
    assert doc["actors"][0]["config"]["n"] == 5
    assert doc["actors"][1]["config"]["items"] == [{"id": "a", "qty": 10}, {"id": "b", "qty": 20}]
    assert doc["actors"][1]["mailbox"]["capacity"] == 128
    assert doc["engine"]["health"] == {"interval_s": 0.5}


def test_the_file_is_not_modified() -> None:
    raw = _raw()
    compose(raw, sets=["actors[feed].config.n=5"], variables={"model": "x"})
    assert raw == _raw()


@pytest.mark.parametrize(
    ("setting", "key", "problem"),
    [
        ("actors[fed].config.n=1", "actors[fed].config.n", "no element named 'fed' in actors"),
        ("actors[7].name=x", "actors[7].name", "has 2 element(s); no index 7"),
        ("engine[x].seed=1", "engine[x].seed", "engine is not an array of tables"),
        ("actors[feed].name.x=1", "actors[feed].name.x", "is a str, not a table"),
        ("supervisors[s].parent=x", "supervisors[s].parent", "supervisors is not in the file"),
    ],
)
def test_an_unknown_path_names_the_file_and_key(setting: str, key: str, problem: str) -> None:
    e = _err(sets=[setting])
    assert (e.path, e.key) == ("p.toml", key) and problem in e.problem, e


def test_overrides_are_typed_when_the_config_is() -> None:
    e = _load_err(sets=["engine.shutdown_deadline_s=-1"])
    assert e.key == "engine.shutdown_deadline_s" and "> 0.0" in e.problem
    e = _load_err(sets=["engine.loop=fast"])
    assert e.key == "engine.loop" and "expected one of ['uvloop', 'asyncio']" in e.problem
    e = _load_err(sets=["actors[feed].mailbox.polcy=block"])
    assert e.key == "actors[feed].mailbox.polcy" and "unknown key" in e.problem


def test_an_actor_config_key_set_on_the_command_line_is_typed_at_load() -> None:
    # The actor's class is imported and its config converted at load: a misspelt --set fails
    # now, naming the override, not later inside the engine.
    e = _load_err(sets=["actors[feed].config.nn=3"])
    assert (e.path, e.key) == ("p.toml", "actors[feed].config.nn")
    assert "unknown key" in e.problem and "(set by --set actors[feed].config.nn)" in e.problem
    e = _load_err(sets=["actors[feed].config.n=many"])
    assert e.key == "actors[feed].config.n" and "Expected `int`" in e.problem


def _load_err(**kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads_config(PIPELINE, path="p.toml", **kw)
    return info.value


# --- profiles ---------------------------------------------------------------------------------


def test_profiles_apply_in_order_and_sets_win() -> None:
    cfg = loads_config(PIPELINE, path="p.toml", profiles=["small"], sets=["engine.seed=9"])
    assert cfg.actors[0].config["n"] == 3 and cfg.engine.seed == 9
    cfg = loads_config(PIPELINE, path="p.toml", profiles=["small", "nested"])
    assert cfg.engine.seed == 11  # a table inside a profile flattens to its leaves
    cfg = loads_config(PIPELINE, path="p.toml", profiles=["big"])
    assert [a.name for a in cfg.actors] == ["only"]  # a list value replaces the list


def test_an_unknown_profile_lists_the_defined_ones() -> None:
    e = _err(profiles=["smal"])
    assert e.key == "profiles.smal" and "defined: ['big', 'nested', 'small']" in e.problem


def test_profiles_and_variables_tables_do_not_reach_the_typed_config() -> None:
    cfg = loads_config(PIPELINE, path="p.toml")
    assert cfg.actors[1].config["tag"] == "m-1" and cfg.warnings == []


# --- variables --------------------------------------------------------------------------------


def test_variables_come_from_the_command_else_the_file() -> None:
    assert _compose()["actors"][1]["config"]["tag"] == "m-1"
    assert _compose(variables={"model": "m-2"})["actors"][1]["config"]["tag"] == "m-2"


def test_an_unknown_variable_names_where_it_appears() -> None:
    e = _err(sets=['actors[sink].config.path="${out}/x.jsonl"'])
    assert e.key == "actors[sink].config.path"
    assert e.problem == "unknown variable ${out} (defined: model)"
    doc = _compose(sets=['actors[sink].config.path="${out}/x.jsonl"'], variables={"out": "/r"})
    assert doc["actors"][1]["config"]["path"] == "/r/x.jsonl"  # overrides may use variables


def test_a_literal_dollar_brace_and_bad_references() -> None:
    doc = _compose(sets=['actors[sink].config.tag="cost $${model} in $"'])
    assert doc["actors"][1]["config"]["tag"] == "cost ${model} in $"
    e = _err(sets=['actors[sink].config.tag="${model"'])
    assert e.key == "actors[sink].config.tag" and "bad variable reference" in e.problem


def test_a_variable_the_command_requires_must_be_used() -> None:
    e = _err(variables={"bootstrap": "h:1"}, require_variables=["bootstrap"])
    assert e.key == "variables" and "${bootstrap} is given on the command line" in e.problem
    _compose(variables={"model": "x"}, require_variables=["model"])


def test_get_path_reads_what_the_file_sets() -> None:
    raw = _raw()
    assert get_path(raw, "actors[sink].mailbox.capacity") == 64
    with pytest.raises(ConfigError, match="not set in the file"):
        get_path(raw, "actors[sink].mailbox.lanes")


def test_load_config_and_engine_from_file_take_the_same_inputs(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text(PIPELINE)
    cfg = load_config(p, profiles=["small"], sets=["actors[sink].config.tag=t"], variables={"model": "q"})
    assert cfg.actors[0].config["n"] == 3 and cfg.actors[1].config["tag"] == "t"
    engine = Engine.from_file(p, profiles=["small"], variables={"model": "q"})
    assert engine.config.actors[1].config["tag"] == "q" and engine.config.source == str(p)
