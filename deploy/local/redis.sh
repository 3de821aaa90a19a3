#!/usr/bin/env bash
# Redis with AOF on, on its own port and data directory (Debian's redis-server).
#   redis.sh install   install Debian's redis-server when it is missing
#   redis.sh start     install if needed, start, wait for PING
#   redis.sh stop      stop the server this script started
#   redis.sh status
# Environment: REDIS_PORT (16379), RUN_DIR.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PORT="${REDIS_PORT:-16379}"
RDIR="$RUN_DIR/redis"
PIDFILE="$RDIR/redis.pid"
MARKER="127.0.0.1:${REDIS_PORT}"

install() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then return 0; fi
  log "installing Debian's redis-server"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}

start() {
  if pid_alive "$PIDFILE" "$MARKER"; then
    log "redis already running (pid $(cat "$PIDFILE")) on $MARKER"
    return 0
  fi
  install
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process this script did not start"
  mkdir -p "$RDIR/data"
  nohup redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RDIR/data" \
    --appendonly yes --appendfsync everysec --save "" --daemonize no --protected-mode yes \
    --logfile "$RDIR/redis.log" >/dev/null 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for ((i = 0; i < 100; i++)); do
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
      log "redis up on $MARKER (AOF on, data in $RDIR/data)"
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$RDIR/redis.log" >&2 || true
  die "redis did not answer PING"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "$MARKER" 20 ;;
  status) if pid_alive "$PIDFILE" "$MARKER"; then echo "redis running pid $(cat "$PIDFILE")"; else echo "redis stopped"; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
