#!/usr/bin/env bash
# The whole local stack as processes: Kafka, Redis, topics, and the six services.
#   stack.sh up       start everything that is not running yet (safe to repeat)
#   stack.sh down     stop every process this script started, and only those
#   stack.sh status
# Logs: $RUN_DIR/logs/<service>.log; pid files: $RUN_DIR/pids/<service>.pid.
# Environment: KAFKA_PORT, REDIS_PORT, GATEWAY_PORT (18080), OPERATOR_PORT (18081),
# METRICS_BASE_PORT (19100;
# service i serves metrics on base + i, 0 turns metrics off), RUN_DIR (.run/local).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-19092}"
REDIS_PORT="${REDIS_PORT:-16379}"
GATEWAY_PORT="${GATEWAY_PORT:-18080}"
OPERATOR_PORT="${OPERATOR_PORT:-18081}"
METRICS_BASE_PORT="${METRICS_BASE_PORT:-19100}"
SERVICES=(risk matcher liquidator oracle marketdata gateway)
export KAFKA_PORT REDIS_PORT RUN_DIR

service_env() {
  local name=$1 index=$2
  cat <<VARS
EXCHANGE_KAFKA_BOOTSTRAP=127.0.0.1:${KAFKA_PORT}
EXCHANGE_REDIS_URL=redis://127.0.0.1:${REDIS_PORT}/0
EXCHANGE_GATEWAY_PORT=${GATEWAY_PORT}
EXCHANGE_OPERATOR_PORT=${OPERATOR_PORT}
EXCHANGE_METRICS_PORT=$(( METRICS_BASE_PORT ? METRICS_BASE_PORT + index : 0 ))
EXCHANGE_INSTANCE_ID=local-${name}
LOCAL_STACK_RUN_DIR=${RUN_DIR}
VARS
}

# Our service processes carry LOCAL_STACK_RUN_DIR=$RUN_DIR in their environment.
service_alive() {
  local name=$1 pidfile="$RUN_DIR/pids/$1.pid" pid
  pid_alive "$pidfile" "services.$name" || return 1
  pid=$(cat "$pidfile")
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "LOCAL_STACK_RUN_DIR=$RUN_DIR"
}

start_service() {
  local name=$1 index=$2
  if service_alive "$name"; then
    log "$name already running (pid $(cat "$RUN_DIR/pids/$name.pid"))"
    return 0
  fi
  mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids"
  (
    cd "$ROOT"
    # shellcheck disable=SC2046
    env $(service_env "$name" "$index") nohup "$PY" -m "services.$name" \
      >>"$RUN_DIR/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/pids/$name.pid"
  )
  log "$name started (pid $(cat "$RUN_DIR/pids/$name.pid"), log $RUN_DIR/logs/$name.log)"
}

stop_service() {
  local name=$1
  if service_alive "$name"; then
    stop_pid "$RUN_DIR/pids/$name.pid" "services.$name" 20
    log "$name stopped"
  else
    rm -f "$RUN_DIR/pids/$name.pid"
  fi
}

wait_gateway() {
  local i
  for ((i = 0; i < 150; i++)); do
    if "$PY" - "$GATEWAY_PORT" <<'PYCODE' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read()
PYCODE
    service_alive gateway || { tail -20 "$RUN_DIR/logs/gateway.log" >&2; die "gateway exited"; }
    sleep 0.2
  done
  die "gateway did not become healthy"
}

up() {
  "$ROOT/deploy/local/bootstrap.sh"
  "$ROOT/deploy/local/kafka.sh" start
  "$ROOT/deploy/local/redis.sh" start
  EXCHANGE_KAFKA_BOOTSTRAP="127.0.0.1:${KAFKA_PORT}" "$PY" -m libs.common.admin create-topics
  local i
  for i in "${!SERVICES[@]}"; do
    start_service "${SERVICES[$i]}" "$((i + 1))"
  done
  wait_gateway
  log "stack up: gateway http://127.0.0.1:${GATEWAY_PORT}, operator API http://127.0.0.1:${OPERATOR_PORT}, metrics on ports $((METRICS_BASE_PORT + 1))-$((METRICS_BASE_PORT + ${#SERVICES[@]}))"
}

down() {
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    stop_service "${SERVICES[$i]}"
  done
  "$ROOT/deploy/local/redis.sh" stop
  "$ROOT/deploy/local/kafka.sh" stop
  log "stack down"
}

status() {
  local name
  for name in "${SERVICES[@]}"; do
    if service_alive "$name"; then echo "$name running pid $(cat "$RUN_DIR/pids/$name.pid")"; else echo "$name stopped"; fi
  done
  "$ROOT/deploy/local/redis.sh" status
  "$ROOT/deploy/local/kafka.sh" status
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
