"""``${config_dir}``: a config names its data files relative to itself (issue 13 item 8)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from engine.config import load_config, loads_config
from engine.errors import ConfigError

PIPELINE = textwrap.dedent(
    """
    [engine]
    clock = "sim"

    [[actors]]
    name = "sink"
    class = "tests.engine.pipeline_parts:Tagged"
    [actors.config]
    tag = "${config_dir}/data/x.jsonl"
    """
)


def test_config_dir_is_the_directory_of_the_loaded_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "conf" / "p.toml"
    cfg.parent.mkdir()
    cfg.write_text(PIPELINE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # a relative path from another working directory still gives the file's own (absolute) directory
    loaded = load_config(os.path.relpath(cfg, elsewhere))
    assert loaded.actors[0].config["tag"] == f"{cfg.parent.resolve()}/data/x.jsonl"


def test_the_command_may_redefine_it_and_text_without_a_file_has_none(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(PIPELINE)
    assert load_config(cfg, variables={"config_dir": "/x"}).actors[0].config["tag"] == "/x/data/x.jsonl"
    with pytest.raises(ConfigError, match=r"unknown variable \$\{config_dir\}"):
        loads_config(PIPELINE, path="<string>")


def test_the_shipped_main_job_finds_its_news_tape_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import DEFAULT_CONFIG

    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEFAULT_CONFIG, variables={"out": str(tmp_path)})
    (narrative,) = [a for a in cfg.actors if a.name == "narrative"]
    news = Path(narrative.config["replay_file"])
    assert news.is_absolute() and news.is_file() and news.parent == DEFAULT_CONFIG.parent / "data"
