"""The oracle service: publishes index prices to the matchers and to oracle.prices."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer

from libs.common import codec, metrics, topics
from libs.common.runtime.launcher import launch
from libs.common.schemas import IndexTick, OraclePrice
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.oracle.simulated import RandomWalkSource, parse_start_prices

SERVICE = "oracle"
log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    markets = settings.markets
    start = {
        k: v
        for k, v in parse_start_prices(settings.oracle_start_prices).items()
        if k in markets.names
    }
    source = RandomWalkSource(start, settings.oracle_volatility_bps, settings.oracle_seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
    )
    await producer.start()
    t = settings.topics
    try:
        while not stop.is_set():
            now = int(time.time() * 1000)
            for name, price in sorted(source.step().items()):
                spec = markets.by_name(name)
                px = spec.round_price(price)
                tick = IndexTick(ts=now, market=name, px=px)
                await producer.send(
                    t.name(topics.MATCHER_IN),
                    codec.encode(tick),
                    key=name.encode(),
                    partition=partition_for(name, t.partitions(topics.MATCHER_IN)),
                )
                audit = OraclePrice(ts=now, market=name, px=px, status="valid")
                await producer.send(
                    t.name(topics.ORACLE_PRICES),
                    codec.encode(audit),
                    key=name.encode(),
                    partition=partition_for(name, t.partitions(topics.ORACLE_PRICES)),
                )
                metrics.MESSAGES_OUT.labels(SERVICE, topics.MATCHER_IN).inc()
            await producer.flush()
            try:
                await asyncio.wait_for(stop.wait(), settings.oracle_interval_ms / 1000)
            except TimeoutError:
                pass
    finally:
        await producer.stop()


def main() -> None:
    launch(SERVICE, run)
