#!/usr/bin/env bash
# Creates .venv and installs the project with pinned dependencies, only when needed, then
# compiles the hot modules with mypyc (libs/common/native.py) when their sources changed.
# EXCHANGE_NATIVE=0 skips the compilation (everything then runs as plain Python).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$ROOT/.venv"
STAMP="$VENV/.installed"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)

if ! { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; }; then
  PYTHON="${PYTHON:-python3}"
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))"
  log "installing Python packages into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/requirements.lock" \
    -e "$ROOT[dev]"
  echo "$want" >"$STAMP"
fi

if [ "${EXCHANGE_NATIVE:-1}" != "0" ]; then
  (cd "$ROOT" && "$VENV/bin/python" -m libs.common.compile) \
    || die "compiling the hot modules failed (a C compiler and the Python headers are needed; EXCHANGE_NATIVE=0 runs without)"
fi
