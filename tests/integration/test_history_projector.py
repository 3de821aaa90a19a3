"""The gateway's history projector: idempotent writes, so it commits its consumer
offsets once a second instead of after every batch, and on the way out."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common import topics
from libs.common.schemas import AccountFill
from libs.common.settings import Settings
from services.gateway import history as history_module
from services.gateway.history import History, run_projector
from tests.support.bus import produce, wait_for

pytestmark = pytest.mark.kafka

ALICE = "0x" + "d4" * 20


def fill(n: int, account: str = ALICE) -> AccountFill:
    return AccountFill(
        ts=1_000 + n,
        account=account,
        market="BTC",
        oid=n + 1,
        is_buy=True,
        px=1_000_000,
        sz=100,
        fee=10,
        is_maker=False,
        tid=n + 1,
        closed_pnl=0,
        start_position=100 * n,
    )


async def committed(settings: Settings) -> int:
    """The projector group's committed offsets over account.events, summed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.namespace}gateway-history",
    )
    await consumer.start()
    try:
        name = settings.topics.name(topics.ACCOUNT_EVENTS)
        parts = range(settings.topics.partitions(topics.ACCOUNT_EVENTS))
        return sum([await consumer.committed(TopicPartition(name, p)) or 0 for p in parts])
    finally:
        await consumer.stop()


async def test_offsets_are_committed_a_second_apart_and_when_it_stops(
    settings: Settings, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "PROJECTOR_COMMIT_INTERVAL_S", 3600.0)
    history = History(redis_client, settings)
    key = history.user_key(ALICE, "fills")
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(history, stop))
    await produce(settings, topics.ACCOUNT_EVENTS, [(ALICE, fill(n)) for n in range(3)])
    assert await wait_for(lambda: _count(redis_client, key, 3))
    await produce(settings, topics.ACCOUNT_EVENTS, [(ALICE, fill(n)) for n in range(3, 10)])
    assert await wait_for(lambda: _count(redis_client, key, 10))
    # the first batch was committed at once (at most the first three events), the
    # next ones wait for the interval...
    assert 0 < await committed(settings) <= 3
    stop.set()
    await projector
    # ... or for the projector to stop
    assert await committed(settings) == 10
    # a restart re-projects nothing new, and projecting twice changes nothing
    await history.project([fill(n) for n in range(10)])
    assert await redis_client.zcard(key) == 10


async def _count(redis: aioredis.Redis, key: str, expected: int) -> bool:
    return int(await redis.zcard(key)) == expected
