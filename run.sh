#!/usr/bin/env bash
# layerscope's two entry points on a fresh machine (offline is fine: torch installs from the local
# wheel cache, everything else from the package index or pip's cache).
#   ./run.sh demo   # set up .venv with layerscope[demo], then run the demo (prints where the report is)
#   ./run.sh test   # set up .venv with layerscope[test], then run the test suite
#   ./run.sh setup [EXTRA]   # only the set-up (EXTRA: demo, test, ...; default demo)
# torch's version for this CPU build is pinned in ONE place: constraints.txt (pip -c).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LAYERSCOPE_VENV:-.venv}"
PY="$VENV/bin/python"

say() { printf '[run.sh] %s\n' "$*"; }

setup() {
  local extra="$1"
  local stamp="$VENV/.layerscope-installed-$extra"
  local want
  want="$(cat pyproject.toml constraints.txt run.sh | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "$VENV already has layerscope[$extra] installed (delete $stamp to reinstall)"
    return
  fi
  local t0=$SECONDS
  if [ ! -x "$PY" ]; then
    say "step 1/4: creating the virtual environment $VENV"
    python3 -m venv "$VENV"
  else
    say "step 1/4: using the existing virtual environment $VENV"
  fi
  say "step 2/4: upgrading pip"
  "$PY" -m pip install -q --upgrade pip
  # torch first, at the version constraints.txt pins: an unpinned torch would pull a multi-GB CUDA build
  say "step 3/4: installing torch ($(grep -m1 '^torch' constraints.txt), CPU build; about 200 MB unless cached)"
  "$PY" -m pip install --progress-bar on -c constraints.txt torch
  say "step 4/4: installing layerscope[$extra] and its dependencies (editable)"
  "$PY" -m pip install --progress-bar on -c constraints.txt -e ".[$extra]"
  echo "$want" > "$stamp"
  say "set-up done in $((SECONDS - t0)) s"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    setup demo
    say "running: layerscope demo $*"
    exec "$PY" -m layerscope demo "$@"
    ;;
  test)
    setup test
    say "running: pytest $*"
    exec "$PY" -m pytest -q "$@"
    ;;
  setup)
    setup "${1:-demo}"
    ;;
  *)
    echo "usage: ./run.sh demo|test|setup [args...]" >&2
    exit 2
    ;;
esac
