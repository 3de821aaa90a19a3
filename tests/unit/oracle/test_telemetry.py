"""What operators see on /metrics after the oracle publishes: per source age, deviation
and rejections; per market validity (one-hot), index price and breaker trips."""

from __future__ import annotations

from libs.common.metrics import REGISTRY
from services.oracle.aggregator import STATUSES
from services.oracle.telemetry import Telemetry
from tests.unit.oracle.reference import MARKETS, aggregator, everyone, feed, last


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_published_updates_set_the_oracle_series() -> None:
    telemetry = Telemetry(MARKETS)
    before = {
        reason: sample(
            "exchange_oracle_rejections_total", market="BTC", source="kraken", reason=reason
        )
        for reason in ("outlier", "stale")
    }
    trips = sample("exchange_oracle_breaker_trips_total", market="BTC")
    agg = aggregator()
    prices = everyone("100000")
    prices["kraken"] = "150000"
    for update in feed(agg, 0, prices) + feed(agg, 1000, prices):
        telemetry.record(update)

    assert sample("exchange_index_price_usd", market="BTC") == 100000.0
    assert sample("exchange_oracle_source_deviation_ratio", market="BTC", source="kraken") == 0.5
    assert sample("exchange_oracle_source_deviation_ratio", market="BTC", source="okx") == 0.0
    assert sample("exchange_oracle_source_age_seconds", market="BTC", source="okx") == 0.0
    outliers = sample(
        "exchange_oracle_rejections_total", market="BTC", source="kraken", reason="outlier"
    )
    assert outliers - before["outlier"] == 2  # one per published index that left it out
    states = {s: sample("exchange_oracle_status", market="BTC", status=s) for s in STATUSES}
    assert states == {s: float(s == "valid") for s in STATUSES}

    # Kraken (last heard at 1 s) goes quiet; at 7 s it is stale; then everyone jumps 20%.
    quiet = everyone("100000")
    del quiet["kraken"]
    update = last(feed(agg, 7000, quiet))
    telemetry.record(update)
    assert sample("exchange_oracle_source_age_seconds", market="BTC", source="kraken") == 6.0
    stale = sample(
        "exchange_oracle_rejections_total", market="BTC", source="kraken", reason="stale"
    )
    assert stale - before["stale"] == 1
    telemetry.record(last(feed(agg, 8000, everyone("120000"))))
    assert sample("exchange_oracle_breaker_trips_total", market="BTC") - trips == 1
    assert sample("exchange_oracle_status", market="BTC", status="too_volatile") == 1.0
    assert sample("exchange_oracle_status", market="BTC", status="valid") == 0.0
    assert sample("exchange_index_price_usd", market="BTC") == 100000.0  # held
