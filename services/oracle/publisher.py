"""Publishing: each index update goes to its market's matcher.in partition (as an
``IndexTick``) and to the public oracle.prices topic (as an ``OraclePrice``); operator
overrides go to oracle.prices as ``OracleOverride`` audit events, just before the index
they caused.

Sends are pipelined (the idempotent producer keeps per-partition order); a bounded
number of deliveries may be outstanding, and a failed delivery is logged, not retried:
the next cadence tick supersedes a lost one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from libs.common import codec, metrics, topics
from libs.common.schemas import OracleOverride
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.oracle.aggregator import IndexUpdate
from services.oracle.telemetry import Telemetry

SERVICE = "oracle"
log = logging.getLogger(__name__)


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """The oracle's producer: idempotent, acks from all replicas, no linger (latency)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
    )


class Publisher:
    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        telemetry: Telemetry | None = None,
        max_pending: int = 2000,
    ) -> None:
        t = settings.topics
        self.producer = producer
        self.telemetry = telemetry or Telemetry(settings.markets)
        self.matcher_topic = t.name(topics.MATCHER_IN)
        self.matcher_partitions = t.partitions(topics.MATCHER_IN)
        self.prices_topic = t.name(topics.ORACLE_PRICES)
        self.prices_partitions = t.partitions(topics.ORACLE_PRICES)
        self.max_pending = max_pending
        self._pending: deque[Any] = deque()
        self._out_matcher = metrics.MESSAGES_OUT.labels(SERVICE, topics.MATCHER_IN)
        self._out_prices = metrics.MESSAGES_OUT.labels(SERVICE, topics.ORACLE_PRICES)
        self.failures = 0

    async def publish(self, items: Sequence[IndexUpdate | OracleOverride]) -> None:
        for item in items:
            if isinstance(item, OracleOverride):
                await self._send_price(item.market, codec.encode(item))
                continue
            # Before the first valid price there is nothing for a matcher to act on.
            if item.px:
                self._pending.append(
                    await self.producer.send(
                        self.matcher_topic,
                        codec.encode(item.index_tick()),
                        key=item.market.encode(),
                        partition=partition_for(item.market, self.matcher_partitions),
                    )
                )
                self._out_matcher.inc()
            await self._send_price(item.market, codec.encode(item.oracle_price()))
            self.telemetry.record(item)
        await self._reap()

    async def _send_price(self, market: str, value: bytes) -> None:
        self._pending.append(
            await self.producer.send(
                self.prices_topic,
                value,
                key=market.encode(),
                partition=partition_for(market, self.prices_partitions),
            )
        )
        self._out_prices.inc()

    async def _reap(self, limit: int | None = None) -> None:
        """Drop delivered sends, log failed ones, and wait while more than ``limit``
        (default ``max_pending``) are in flight."""
        bound = self.max_pending if limit is None else limit
        while self._pending and (self._pending[0].done() or len(self._pending) > bound):
            future = self._pending.popleft()
            try:
                await future
            except Exception as exc:
                self.failures += 1
                log.error("index publication failed", extra={"error": repr(exc)})

    async def flush(self) -> None:
        """Wait until every publication so far is delivered (or has failed)."""
        await self.producer.flush()
        await self._reap(limit=0)
