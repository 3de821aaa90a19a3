"""All settings in one pydantic-settings class, read from ``EXCHANGE_*`` variables.

Every variable is documented by its field; ``python -m libs.common.settings`` prints them.
"""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.markets import MarketRegistry, load_markets
from libs.common.topics import Topics


class Settings(BaseSettings):
    """Process settings. Tests override them by constructing ``Settings(**values)``."""

    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", frozen=True)

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL for hot state")
    namespace: str = Field(
        "", description="Prefix for topic names, consumer groups and Redis hash tags"
    )
    markets_file: Path | None = Field(
        None, description="Market table (default config/markets.toml)"
    )
    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This process's name in logs and metrics",
    )
    metrics_port: int = Field(0, description="Port of the Prometheus endpoint; 0 disables it")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds")
    log_level: str = Field("INFO", description="Logging level")
    batch_min: int = Field(1, description="Smallest batch the runtime reads per poll")
    batch_max: int = Field(4000, description="Largest batch the runtime reads per poll")
    batch_target_ms: float = Field(
        25.0, description="Batch latency the runtime aims for when it sizes batches"
    )
    session_timeout_ms: int = Field(
        6000, description="Consumer group session timeout: how fast a dead instance is noticed"
    )
    heartbeat_interval_ms: int = Field(1000, description="Consumer group heartbeat interval")
    max_poll_interval_ms: int = Field(60000, description="Longest gap between polls")
    txn_retry_backoff_ms: int = Field(
        2, description="Producer retry backoff, mostly paid between back-to-back transactions"
    )
    poll_timeout_ms: int = Field(50, description="How long an idle poll waits for records")
    proof_interval: int = Field(
        10_000,
        description="A stateful processor publishes a state proof every this many input "
        "offsets (0: never)",
    )
    outage_window_s: float = Field(
        300.0,
        description="How long a service waits out a Kafka or Redis outage (retrying with "
        "backoff) before it exits for its supervisor to restart it",
    )
    outage_backoff_first_ms: int = Field(
        200, description="First wait between two reconnection attempts during an outage"
    )
    outage_backoff_max_ms: int = Field(
        5_000, description="Longest wait between two reconnection attempts during an outage"
    )
    outage_attempt_timeout_s: float = Field(
        20.0, description="Longest one reconnection attempt (reopening a partition) may take"
    )
    kafka_commit_timeout_s: float = Field(
        60.0,
        description="Longest a processor's transaction commit may take before its partition "
        "is rebuilt (a commit stuck on a broker that restarted)",
    )
    kafka_request_timeout_ms: int = Field(
        40_000,
        description="How long a processor's producer waits on the broker before a batch "
        "fails (and its partition is rebuilt once the broker answers)",
    )
    gateway_host: str = Field("127.0.0.1", description="Gateway HTTP bind address")
    gateway_port: int = Field(18080, description="Gateway HTTP port")
    gateway_reply_timeout_ms: int = Field(
        5000, description="How long /exchange waits for an outcome on the bus"
    )
    fetch_max_wait_ms: int = Field(
        500,
        description="Longest a consumer's fetch waits at the broker for data to arrive",
    )
    gateway_redis_connections: int = Field(
        256,
        description="Redis connections one gateway process opens at most; a request "
        "waits for a free one instead of failing",
    )
    ip_weight_per_minute: int = Field(
        1200, description="Request weight one IP may spend per minute (HTTP 429 beyond)"
    )
    operator_port: int = Field(18081, description="Operator API port (token-protected)")
    signature_source: str = Field(
        "b", description='L1 signature source the venue expects: "a" (mainnet) or "b" (testnet)'
    )
    signature_chain: str = Field(
        "Testnet", description="hyperliquidChain expected in user-signed actions"
    )
    operator_token: str = Field(
        "local-operator-token", description="Bearer token of the operator API (deposits)"
    )
    risk_margin_call_levels: str = Field(
        "50,80", description="Maintenance usage levels (% of equity) that send margin calls"
    )
    risk_insurance_fee_share_ppm: int = Field(
        200_000, description="Share of every fee accrued to the insurance fund (ppm)"
    )
    risk_vault_fee_share_ppm: int = Field(
        300_000, description="Share of every fee accrued to the backstop vault (ppm)"
    )
    risk_liquidation_fee_ppm: int = Field(
        2_500, description="Fee on liquidation fills paid to the insurance fund (ppm)"
    )
    risk_vault_liquidation_fee_share_ppm: int = Field(
        500_000,
        description="Share of every liquidation fee paid to the backstop vault, the rest "
        "to the insurance fund (ppm)",
    )
    risk_vault_lockup_ms: int = Field(
        4 * 86_400_000,
        description="How long an LP's deposit into the backstop vault is locked (ms after "
        "its last deposit)",
    )
    liquidator_slice_threshold_usd: int = Field(
        100_000, description="Positions above this notional (USD) are liquidated in slices"
    )
    liquidator_slice_ppm: int = Field(200_000, description="Size of one slice (ppm of position)")
    liquidator_cooldown_ms: int = Field(1_000, description="Wait between two slices")
    liquidator_max_slippage_ppm: int = Field(
        50_000, description="Worst price of a liquidation order, away from the mark (ppm)"
    )
    liquidator_max_book_notional_per_interval_usd: int = Field(
        1_000_000, description="Notional one case may send into the book per interval (0: no cap)"
    )
    liquidator_book_interval_ms: int = Field(1_000, description="Interval of the book cap")
    liquidator_unwind_slice_ppm: int = Field(
        100_000, description="Vault unwind: largest slice (ppm of the position; 0: no unwind)"
    )
    liquidator_unwind_max_notional_per_interval_usd: int = Field(
        100_000, description="Vault unwind: notional sent into the book per interval"
    )
    liquidator_unwind_interval_ms: int = Field(10_000, description="Interval of the vault unwind")
    liquidator_unwind_max_distance_ppm: int = Field(
        5_000, description="Vault unwind: worst limit price, away from the mark (ppm)"
    )
    liquidator_vault_safety_ppm: int = Field(
        1_500_000,
        description="The backstop vault takes a case over only if its equity stays at or "
        "above this multiple of its maintenance afterwards (ppm: 1,500,000 = 1.5x)",
    )
    liquidator_vault_stress_ppm: int = Field(
        100_000,
        description="...and still after a move of this much (ppm) against every position "
        "it holds and takes over (0: no stress move)",
    )
    risk_insurance_floor_usd: int = Field(
        0, description="The insurance fund pays claims down to this balance, never below"
    )
    oracle_config_file: Path | None = Field(
        None, description="Oracle sources, weights and rules (default config/oracle.toml)"
    )
    oracle_interval_ms: int = Field(1000, description="Oracle tick interval")
    oracle_seed: int = Field(7, description="Seed of the simulated price source")
    oracle_volatility_bps: int = Field(
        10, description="Simulated source: standard deviation of one tick's move, in bps"
    )
    oracle_start_prices: str = Field(
        "BTC=100000,ETH=3500,SOL=150", description="Simulated starting prices, NAME=PRICE pairs"
    )

    @cached_property
    def markets(self) -> MarketRegistry:
        return load_markets(self.markets_file)

    @cached_property
    def topics(self) -> Topics:
        return Topics(self.namespace)

    def group_id(self, service: str) -> str:
        return f"{self.namespace}{service}"


def main() -> None:
    for name, field in Settings.model_fields.items():
        print(f"EXCHANGE_{name.upper():28} {field.description} (default: {field.default!r})")


if __name__ == "__main__":
    main()
