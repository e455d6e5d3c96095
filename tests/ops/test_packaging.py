"""``pip install .`` (not editable), then ``finllm run`` from another directory (issue 13 item 8).

The product must not need the repository at run time: models, configs and runtime data ship
as package data and are found through the installed packages, never through the working
directory or ``parents[2]`` of a module.  The source tree is copied first, so building the
wheel leaves nothing (``build/``, ``*.egg-info``) in the working tree; the developer data in
``tools/data`` is removed from the installed copy, so a runtime read of it fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_TOP_LEVEL_SKIP = {".git", ".venv", "runs", "build", "out", "tests", ".hypothesis"}
_ANYWHERE_SKIP = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == REPO
    return {
        n for n in names if n in _ANYWHERE_SKIP or n.endswith(".egg-info") or (top and n in _TOP_LEVEL_SKIP)
    }


# Absolute: the subprocesses run in another directory, and a relative interpreter path (python
# found through a relative PATH entry) would not resolve there.
_PY = str(Path(sys.executable).absolute())


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))}
    env["PYTHONPATH"] = str(site)  # the installed copy first; the repository is not on the path
    return env


@pytest.mark.slow
def test_a_non_editable_install_runs_the_main_job_from_another_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_ignore)
    site = tmp_path / "site"
    pip = subprocess.run(
        [_PY, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-4000:]
    for data in ("models/edge/manifest.json", "models/sentiment/weights.npz", "config/default.toml",
                 "config/data/news_emini_2013-09.jsonl", "adapters/text/data/universe.json",
                 "adapters/text/data/sources.json"):  # fmt: skip
        assert (site / data).is_file(), f"{data} is not package data"
    shutil.rmtree(site / "tools" / "data")  # developer sets: nothing at run time may read them

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _env(site)
    where = subprocess.run(
        [_PY, "-c",
         "import json, actors, adapters, config, engine, models, tools; ms = (actors, adapters, config, "
         "engine, models, tools); print(json.dumps({m.__name__: m.__file__ for m in ms}))"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    for name, file in json.loads(where.stdout).items():
        assert Path(file).resolve().is_relative_to(site.resolve()), f"{name} imported from {file}, not {site}"

    runs = tmp_path / "runs"
    run = subprocess.run(
        [_PY, "-m", "engine.cli", "run", "--runs", str(runs), "--profile", "edge-only",
         "--set", "actors[feed].config.limit=20000", "--set", "actors[feed].config.progress=false",
         "--strict"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-6000:])
    (out,) = runs.iterdir()
    forecasts = (out / "forecasts.jsonl").read_bytes().splitlines()
    assert len(forecasts) > 50 and all(json.loads(x)["type"] == "forecast" for x in forecasts[:10])
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"]["reason"] == "replay finished"
    assert {k: v["state"] for k, v in doc["tiers"].items()} == {"edge": "ok", "news": "ok"}
    # the packaged config was the one loaded, and its news tape was read (config-relative path)
    assert str(site / "config" / "default.toml") in run.stdout
    counters = doc["summary"]["metrics"]["counters"]
    assert sum(v for k, v in counters.items() if k.startswith("news_ingested_total")) > 0
    # a data file the installed copy lacks fails an actor (e.g. the universe: news goes idle, exit 0)
    assert not {k: v for k, v in counters.items() if k.startswith("actor_failures_total") and v}
    assert (out / "report.html").is_file() and not list(work.iterdir())  # nothing written to the cwd
