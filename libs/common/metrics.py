"""Prometheus metrics: the runtime's shared series and the endpoint helper."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

MESSAGES_IN = Counter(
    "exchange_messages_in_total",
    "Input records applied live",
    ["service", "topic"],
    registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    "exchange_messages_out_total", "Records produced", ["service", "topic"], registry=REGISTRY
)
REPLAYED = Counter(
    "exchange_replayed_messages_total",
    "Input records re-applied silently during recovery",
    ["service", "topic"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "exchange_dead_letters_total",
    "Input records sent to the dead-letter topic",
    ["service", "topic", "reason"],
    registry=REGISTRY,
)
TXN_ABORTS = Counter(
    "exchange_transaction_aborts_total",
    "Kafka transactions aborted",
    ["service"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "exchange_batch_seconds",
    "Time to apply, produce and commit one batch",
    ["service"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_SIZE = Gauge(
    "exchange_batch_size_records", "Current adaptive batch size", ["service"], registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "exchange_consumer_lag_records",
    "High watermark minus position, per input partition",
    ["service", "topic", "partition"],
    registry=REGISTRY,
)
SNAPSHOT_SECONDS = Histogram(
    "exchange_snapshot_write_seconds",
    "Time to write changed state and offset to Redis",
    ["service"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PARTITIONS_OWNED = Gauge(
    "exchange_partitions_owned",
    "Input partitions this process owns",
    ["service"],
    registry=REGISTRY,
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` on a background thread; port 0 means disabled."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
