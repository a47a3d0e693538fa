#!/usr/bin/env bash
# layerscope's two entry points on a fresh machine (offline is fine: torch 2.13.0 installs from
# the local wheel cache, everything else from the package index or pip's cache).
#   ./run.sh demo   # set up, then run the demo on the bundled data (prints where the report is)
#   ./run.sh test   # set up, then run the test suite
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LAYERSCOPE_VENV:-.venv}"
PY="$VENV/bin/python"

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.layerscope-installed"
  local want
  want="$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$PY" -m pip install -q --upgrade pip
    # Pin torch first: an unpinned torch would pull a multi-GB CUDA build.
    "$PY" -m pip install -q "torch==2.13.0"
    "$PY" -m pip install -q -e ".[test]" "torch==2.13.0"
    echo "$want" > "$stamp"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    setup
    exec "$VENV/bin/layerscope" demo "$@"
    ;;
  test)
    setup
    exec "$PY" -m pytest -q "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./run.sh demo|test|setup [args...]" >&2
    exit 2
    ;;
esac
