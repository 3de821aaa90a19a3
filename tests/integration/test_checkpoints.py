"""The input position is committed as a record in each batch's transaction (a
checkpoint): what a new owner of a partition reads as C, and what it reads when a
deployment still has only the consumer group's offsets."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common import codec, metrics, topics
from libs.common.runtime import SnapshotStore
from libs.common.runtime import processor as processor_module
from libs.common.schemas import Checkpoint, Deposit
from libs.common.settings import Settings
from libs.common.topics import CHECKPOINT_KEY, partition_for
from tests.integration.test_runtime import risk_processor, running
from tests.support.bus import produce, read_topic, wait_for

pytestmark = pytest.mark.kafka

ALICE = "0x" + "c3" * 20


async def stored(settings: Settings, redis: aioredis.Redis, partition: int) -> int:
    return await SnapshotStore(redis, settings.namespace, "risk").stored_offset(partition)


async def last_checkpoint(settings: Settings, partition: int) -> int | None:
    proc = risk_processor(settings)
    await proc.checkpoint_reader.start()
    try:
        return await proc._last_checkpoint(partition)
    finally:
        await proc.checkpoint_reader.stop()
        await proc.redis.aclose()


async def group_offset(settings: Settings, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id("risk")
    )
    await consumer.start()
    try:
        return await consumer.committed(
            TopicPartition(settings.topics.name(topics.RISK_IN), partition)
        )
    finally:
        await consumer.stop()


async def test_each_batch_commits_its_position_as_a_checkpoint_not_to_the_group(
    settings: Settings, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = partition_for(ALICE, settings.topics.partitions(topics.RISK_IN))
    deposits = [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(40)]
    await produce(settings, topics.RISK_IN, deposits)
    monkeypatch.setattr(processor_module, "MIRROR_INTERVAL_S", 3600.0)
    async with running(settings):
        assert await wait_for(lambda: _is(stored(settings, redis_client, p), 40))
    assert await last_checkpoint(settings, p) == 40
    assert await group_offset(settings, p) is None  # no TxnOffsetCommit any more
    # the group gets a copy now and then, for the tools that read its lag
    monkeypatch.setattr(processor_module, "MIRROR_INTERVAL_S", 0.1)
    more = [(ALICE, Deposit(ts=50, account=ALICE, usd=1_000_000))]
    await produce(settings, topics.RISK_IN, more)
    async with running(settings):
        assert await wait_for(lambda: _is(stored(settings, redis_client, p), 41))
        assert await wait_for(lambda: _is(group_offset(settings, p), 41))
    assert await last_checkpoint(settings, p) == 41
    # a partition that never had a batch has no checkpoint
    others = [q for q in range(4) if q != p]
    assert [await last_checkpoint(settings, q) for q in others] == [None, None, None]


async def test_aborted_checkpoints_are_not_the_position(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """A former owner's transactions that were aborted (it was fenced, or died) leave
    checkpoints that do not count, however many of them there are."""
    p = partition_for(ALICE, settings.topics.partitions(topics.RISK_IN))
    deposits = [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(7)]
    await produce(settings, topics.RISK_IN, deposits)
    async with running(settings):
        assert await wait_for(lambda: _is(stored(settings, redis_client, p), 7))
    zombie = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        transactional_id=f"zombie-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
    )
    await zombie.start()
    try:
        for n in range(40):  # more than the first window looks back
            await zombie.begin_transaction()
            await zombie.send_and_wait(
                settings.topics.name(topics.RISK_CHECKPOINTS),
                codec.encode(Checkpoint(ts=n, offset=1_000 + n)),
                key=CHECKPOINT_KEY,
                partition=p,
            )
            await zombie.abort_transaction()
    finally:
        await zombie.stop()
    assert await last_checkpoint(settings, p) == 7
    # and a restart takes it from there: nothing replayed, nothing produced again
    replayed = metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get()
    more = [(ALICE, Deposit(ts=100, account=ALICE, usd=5_000_000))]
    await produce(settings, topics.RISK_IN, more)
    async with running(settings):
        assert await wait_for(lambda: _is(stored(settings, redis_client, p), 8))
        events = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=8, quiet_s=1.0)
    assert metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get() == replayed
    assert len(events) == 8
    assert await last_checkpoint(settings, p) == 8


async def test_a_deployment_with_only_group_offsets_resumes_from_them(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Upgraded in place: the group's committed offset (the old commit point) is C
    until the first checkpoint; what it covers is replayed silently, not produced."""
    p = partition_for(ALICE, settings.topics.partitions(topics.RISK_IN))
    deposits = [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(12)]
    await produce(settings, topics.RISK_IN, deposits)
    old = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id("risk"),
        enable_auto_commit=False,
    )
    await old.start()
    tp = TopicPartition(settings.topics.name(topics.RISK_IN), p)
    old.assign([tp])
    await old.commit({tp: 10})  # records 0-9 were handled by the old version
    await old.stop()
    replayed = metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get()
    async with running(settings):
        assert await wait_for(lambda: _is(stored(settings, redis_client, p), 12))
        events = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=2, quiet_s=1.0)
    assert metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get() - replayed == 10
    assert len(events) == 2  # only the two records past the old commit point
    assert events[-1].value.collateral == 12_000_000
    assert await last_checkpoint(settings, p) == 12


async def test_a_missing_checkpoint_topic_stops_the_processor_with_what_to_do(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.delete_topics([settings.topics.name(topics.RISK_CHECKPOINTS)])
    await admin.close()
    monkeypatch.setattr(processor_module, "CHECKPOINT_TOPIC_WAIT_S", 1.0)
    await produce(settings, topics.RISK_IN, [(ALICE, Deposit(ts=1, account=ALICE, usd=1))])
    proc = risk_processor(settings)
    await proc.start()
    try:
        with pytest.raises(RuntimeError, match=r"risk\.in\.checkpoints does not exist"):
            await asyncio.wait_for(proc.run(), 60)
    finally:
        await proc.stop()


async def _is(coro: object, expected: int) -> bool:
    return await coro == expected  # type: ignore[misc]
