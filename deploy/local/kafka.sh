#!/usr/bin/env bash
# Apache Kafka 4.x, single node in KRaft mode (broker + controller) on 127.0.0.1.
#   kafka.sh fetch   download the broker from Maven Central into .cache/kafka (once)
#   kafka.sh start   fetch if needed, format storage once, start, wait for metadata
#   kafka.sh stop    stop the broker this script started
#   kafka.sh status
# Environment: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), RUN_DIR, KAFKA_HEAP.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
LIBS="$CACHE_DIR/kafka/libs"
KDIR="$RUN_DIR/kafka"
PIDFILE="$KDIR/kafka.pid"
CONFIG="$KDIR/server.properties"

fetch() {
  if [ -f "$LIBS/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka"
  log "fetching Kafka from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime
  ls "$LIBS"/kafka_2.13-*.jar >/dev/null || die "Kafka jar missing after fetch"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$KDIR/data"
  cat >"$CONFIG" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${KDIR}/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=2000
# The group coordinator batches its log appends; its 10 ms linger would be paid by
# every transactional offset commit (one per processor batch). Commit latency wins here.
group.coordinator.append.linger.ms=0
transaction.abort.timed.out.transaction.cleanup.interval.ms=10000
num.network.threads=2
num.io.threads=4
PROPS
  cat >"$KDIR/log4j2.yaml" <<'YAML'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
YAML
}

start() {
  if pid_alive "$PIDFILE" "$CONFIG"; then
    log "kafka already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  fetch
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_busy "$port" && die "port $port is taken by a process this script did not start"
  done
  write_config
  local cp="$LIBS/*" started
  started=$(date +%s%N)
  if [ ! -f "$KDIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
    java -cp "$cp" -Dlog4j2.configurationFile="$KDIR/log4j2.yaml" kafka.tools.StorageTool \
      format -t "$cluster_id" -c "$CONFIG" >"$KDIR/format.log" 2>&1 \
      || { cat "$KDIR/format.log" >&2; die "formatting KRaft storage failed"; }
  fi
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KDIR/log4j2.yaml" -cp "$cp" kafka.Kafka "$CONFIG" \
    >"$KDIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! "$PY" -m libs.common.admin wait-kafka --bootstrap "127.0.0.1:$KAFKA_PORT" --timeout 90 \
    || ! pid_alive "$PIDFILE" "$CONFIG"; then
    tail -20 "$KDIR/kafka.log" >&2
    die "kafka did not answer a metadata request"
  fi
  log "kafka up on 127.0.0.1:$KAFKA_PORT in $(( ($(date +%s%N) - started) / 1000000 )) ms"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "$CONFIG" 30 ;;
  status) if pid_alive "$PIDFILE" "$CONFIG"; then echo "kafka running pid $(cat "$PIDFILE")"; else echo "kafka stopped"; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
