#!/usr/bin/env bash
# Prove `make test` from a fresh clone with nothing cached, timing each phase.
#
#   tools/fresh_clone_check.sh [REPO] [WORKDIR]
#
# Clones REPO (default: this checkout) at HEAD into WORKDIR (default: a new temp dir), points
# pip at an empty cache, then times the bootstrap (with the portable llama.cpp build as its own
# phase), the lint step and the test suite.  Prints one "phase seconds" line each and the
# suite's last line; exits with the first failing phase's status.
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
work="${2:-$(mktemp -d /tmp/finllm-fresh.XXXXXX)}"
export PIP_CACHE_DIR="$work/pip-cache"   # empty: nothing from earlier installs
mkdir -p "$PIP_CACHE_DIR"
git clone -q "$repo" "$work/clone"
cd "$work/clone"
echo "commit $(git rev-parse --short HEAD) in $work/clone, pip cache $PIP_CACHE_DIR (empty)"
phase() {
    local name="$1"; shift
    local t0=$SECONDS
    if "$@" >"$work/$name.log" 2>&1; then
        echo "$name $((SECONDS - t0)) s"
    else
        local rc=$?
        echo "$name FAILED (exit $rc) after $((SECONDS - t0)) s; tail of $work/$name.log:"
        tail -30 "$work/$name.log"
        exit "$rc"
    fi
}
phase llama-build make bootstrap-llama
phase bootstrap make bootstrap
phase lint make lint
phase tests make test
tail -1 "$work/tests.log"
