"""Prometheus metrics: the runtime's shared series and the endpoint helper."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

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
OUTAGE_RETRIES = Counter(
    "exchange_outage_retries_total",
    "Failed reconnection attempts during a Kafka or Redis outage, by what was retried",
    ["service", "what"],
    registry=REGISTRY,
)
OUTAGES_GIVEN_UP = Counter(
    "exchange_outages_given_up_total",
    "Outages that lasted longer than the outage window (the process then exits)",
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
TXN_PHASE_SECONDS = Histogram(
    "exchange_transaction_phase_seconds",
    "Time of each part of a batch's Kafka transaction: commit (the produce "
    "acknowledgements and EndTxn) and, for an input committed to its consumer group "
    "rather than as a checkpoint record, offsets (AddOffsetsToTxn and TxnOffsetCommit)",
    ["service", "phase"],
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
PROOF_SECONDS = Histogram(
    "exchange_state_proof_seconds",
    "Time to hash a partition's whole state for a state proof (every K input offsets)",
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


class Health:
    """What ``/health`` reports: the service's main loop beats; a loop that has not beaten
    for ``stale_after_s`` (stuck, or never started) makes the service unhealthy (503)."""

    def __init__(self, stale_after_s: float = 30.0) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = 0.0
        self.detail: dict[str, Any] = {}

    def beat(self, **detail: Any) -> None:
        self.last_beat = time.monotonic()
        self.detail.update(detail)

    def report(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.last_beat if self.last_beat else None
        healthy = age is not None and age <= self.stale_after_s
        status = "ok" if healthy else ("starting" if age is None else "stalled")
        return healthy, {"status": status, "last_beat_s": age, **self.detail}


HEALTH = Health()


def _app(health: Health) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            healthy, body = health.report()
            start_response(
                "200 OK" if healthy else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps(body).encode()]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int, host: str = "127.0.0.1", health: Health = HEALTH) -> None:
    """Expose ``/metrics`` and ``/health`` on a background thread; port 0 disables it."""
    if port:
        server = make_server(host, port, _app(health), _Server, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()


# ---------------------------------------------------------------- business series
# The venue's catalog: services set the series they own; dashboards and alert rules
# (deploy/) query only names defined here. Money is shown in USDC as a float sample:
# telemetry, never state.

MARK_PRICE = Gauge(
    "exchange_mark_price_usd", "Mark price per market", ["market"], registry=REGISTRY
)
INDEX_PRICE = Gauge(
    "exchange_index_price_usd", "Oracle index price per market", ["market"], registry=REGISTRY
)
FUNDING_RATE = Gauge(
    "exchange_funding_rate_hourly",
    "Current hourly funding rate per market",
    ["market"],
    registry=REGISTRY,
)
OPEN_INTEREST = Gauge(
    "exchange_open_interest_coins",
    "Open interest per market (one side, in coins)",
    ["market"],
    registry=REGISTRY,
)
TRADES = Counter("exchange_trades_total", "Executions per market", ["market"], registry=REGISTRY)
TRADED_NOTIONAL = Counter(
    "exchange_traded_notional_usd_total",
    "Executed notional per market",
    ["market"],
    registry=REGISTRY,
)
ORDER_OUTCOMES = Counter(
    "exchange_order_outcomes_total",
    "Order outcomes by API status",
    ["market", "status"],
    registry=REGISTRY,
)
BOOK_ORDERS = Gauge(
    "exchange_book_resting_orders", "Resting orders per market", ["market"], registry=REGISTRY
)
INSURANCE_FUND = Gauge("exchange_insurance_fund_usd", "Insurance fund balance", registry=REGISTRY)
INSURANCE_FUND_DRAWDOWN = Gauge(
    "exchange_insurance_fund_drawdown_usd",
    "Insurance fund: its highest balance minus its balance",
    registry=REGISTRY,
)
INSURANCE_FUND_DRAWDOWN_RATIO = Gauge(
    "exchange_insurance_fund_drawdown_ratio",
    "Insurance fund: drawdown over its highest balance (0 to 1)",
    registry=REGISTRY,
)
OPEN_BAD_DEBT_CASES = Gauge(
    "exchange_open_bad_debt_cases",
    "Liquidation cases with unabsorbed negative equity (withdrawals wait while above 0)",
    ["partition"],
    registry=REGISTRY,
)
VAULT_EQUITY = Gauge(
    "exchange_backstop_vault_equity_usd", "Backstop vault equity at mark", registry=REGISTRY
)
VAULT_NAV_PER_SHARE = Gauge(
    "exchange_backstop_vault_nav_per_share",
    "Backstop vault NAV per LP share: equity at mark (micro-USDC) / shares; 1 at the first deposit",
    registry=REGISTRY,
)
VAULT_SHARES = Gauge(
    "exchange_backstop_vault_shares", "Backstop vault LP shares outstanding", registry=REGISTRY
)
ACCOUNTS_NEAR_LIQUIDATION = Gauge(
    "exchange_accounts_near_liquidation",
    "Accounts whose equity is within 20% above maintenance",
    registry=REGISTRY,
)
LIQUIDATIONS = Counter(
    "exchange_liquidations_total",
    "Liquidation steps by waterfall stage",
    ["stage"],
    registry=REGISTRY,
)
ADL_EVENTS = Counter(
    "exchange_adl_events_total", "Auto-deleveraging closes", ["market"], registry=REGISTRY
)
VAULT_HEADROOM = Gauge(
    "exchange_backstop_vault_headroom_usd",
    "Backstop vault: what one liquidator partition may still take over (its share of the "
    "vault's equity above the safety factor x maintenance, less its takeovers in flight)",
    ["partition"],
    registry=REGISTRY,
)
VAULT_TAKEOVERS_REFUSED = Counter(
    "exchange_backstop_vault_takeovers_refused_total",
    "Backstop takeovers the vault could not carry (the case went to auto-deleveraging)",
    ["market"],
    registry=REGISTRY,
)
ORACLE_STATUS = Gauge(
    "exchange_oracle_status",
    "1 for the market's current validity state (valid, stale, insufficient_sources, "
    "too_volatile, halted), 0 for the others",
    ["market", "status"],
    registry=REGISTRY,
)
ORACLE_SOURCE_AGE = Gauge(
    "exchange_oracle_source_age_seconds",
    "Age of each source's last price",
    ["market", "source"],
    registry=REGISTRY,
)
ORACLE_SOURCE_DEVIATION = Gauge(
    "exchange_oracle_source_deviation_ratio",
    "Each source's distance from the median, as a fraction of the median",
    ["market", "source"],
    registry=REGISTRY,
)
ORACLE_REJECTIONS = Counter(
    "exchange_oracle_rejections_total",
    "Source prices left out of the index, by reason",
    ["market", "source", "reason"],
    registry=REGISTRY,
)
ORACLE_BREAKER_TRIPS = Counter(
    "exchange_oracle_breaker_trips_total",
    "Circuit breaker trips",
    ["market"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "exchange_http_requests_total",
    "Gateway HTTP requests by route and status code",
    ["route", "code"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "exchange_http_request_seconds",
    "Gateway request latency by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ORACLE_PRODUCER_RESETS = Counter(
    "exchange_oracle_producer_resets_total",
    "Oracle Kafka producers closed and replaced after a fatal send error, by error",
    ["error"],
    registry=REGISTRY,
)
ORACLE_HOLD_STORE_ERRORS = Counter(
    "exchange_oracle_hold_store_errors_total",
    "Oracle hold store (Redis) operations that failed after their retries, by operation",
    ["op"],
    registry=REGISTRY,
)
