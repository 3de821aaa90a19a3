#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# pytest starts one Kafka broker and one Redis server for the whole run on free
# loopback ports (tests/conftest.py) and stops them at the end.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$ROOT/deploy/local/bootstrap.sh"
"$ROOT/deploy/local/kafka.sh" fetch
"$ROOT/deploy/local/redis.sh" install
"$ROOT/deploy/local/prometheus.sh" install
"$ROOT/deploy/local/browser.sh" install
cd "$ROOT"
started=$(date +%s)
set +e
"$PY" -m pytest "$@"
status=$?
set -e
log "test suite took $(( $(date +%s) - started )) s (exit $status)"
exit $status
