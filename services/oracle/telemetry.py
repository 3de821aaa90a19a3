"""The oracle's Prometheus series, set from each published index update.

Per source and market: age of the last price, deviation from the median of the fresh
prices, and one rejection per published index that left the source out (by reason).
Per market: the validity state (one-hot), the index price and breaker trips. Prices are
shown in USDC as float samples: telemetry, never state.
"""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import Counter, Gauge

from libs.common import metrics
from libs.common.markets import MarketRegistry
from services.oracle.aggregator import STATUSES, IndexUpdate


class Telemetry:
    """Label children cached per market and source, so recording stays cheap."""

    def __init__(self, markets: MarketRegistry) -> None:
        self._scale = {m.name: Decimal(1).scaleb(-m.px_decimals) for m in markets}
        self._status: dict[str, list[tuple[str, Gauge]]] = {}
        self._age: dict[tuple[str, str], Gauge] = {}
        self._deviation: dict[tuple[str, str], Gauge] = {}
        self._rejections: dict[tuple[str, str, str], Counter] = {}

    def record(self, update: IndexUpdate) -> None:
        market = update.market
        gauges = self._status.get(market)
        if gauges is None:
            gauges = [(s, metrics.ORACLE_STATUS.labels(market, s)) for s in STATUSES]
            self._status[market] = gauges
        for status, gauge in gauges:
            gauge.set(1 if status == update.status else 0)
        if update.px:
            scale = self._scale.get(market, Decimal(1))
            metrics.INDEX_PRICE.labels(market).set(float(update.px * scale))
        median = update.median
        for verdict in update.verdicts:
            key = (market, verdict.source)
            if verdict.age_ms >= 0:
                age = self._age.get(key)
                if age is None:
                    age = self._age[key] = metrics.ORACLE_SOURCE_AGE.labels(*key)
                age.set(verdict.age_ms / 1000)
            if median and verdict.px:
                deviation = self._deviation.get(key)
                if deviation is None:
                    deviation = metrics.ORACLE_SOURCE_DEVIATION.labels(*key)
                    self._deviation[key] = deviation
                deviation.set(float((verdict.px - median) / median))
            if verdict.rejected:
                rkey = (market, verdict.source, verdict.rejected)
                counter = self._rejections.get(rkey)
                if counter is None:
                    counter = self._rejections[rkey] = metrics.ORACLE_REJECTIONS.labels(*rkey)
                counter.inc()
        if update.breaker_tripped:
            metrics.ORACLE_BREAKER_TRIPS.labels(market).inc()
