"""The processor runtime against real Kafka and Redis, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from libs.common import metrics, topics
from libs.common.admin import ensure_topics
from libs.common.runtime import Processor, SnapshotStore
from libs.common.schemas import BalanceUpdate, DeadLetter, Deposit
from libs.common.settings import Settings
from libs.common.state import AccountState
from libs.localstack import LocalStack
from services.risk.engine import RiskCore
from tests.conftest import make_settings
from tests.support.bus import produce, read_topic, set_topic_config, wait_for

pytestmark = pytest.mark.kafka

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def risk_processor(settings: Settings) -> Processor:
    markets = settings.markets
    return Processor(
        service="risk",
        input_topic=topics.RISK_IN,
        core_factory=lambda p: RiskCore(markets, p),
        settings=settings,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Processor]:
    proc = risk_processor(settings)
    await proc.start()
    task = asyncio.create_task(proc.run())
    try:
        yield proc
    finally:
        proc.request_stop()
        await task
        await proc.stop()


async def snapshot_offsets(settings: Settings, redis: aioredis.Redis) -> dict[int, int]:
    store = SnapshotStore(redis, settings.namespace, "risk")
    return {
        p: await store.stored_offset(p) for p in range(settings.topics.partitions(topics.RISK_IN))
    }


async def collateral(settings: Settings, redis: aioredis.Redis, account: str) -> int:
    from libs.common.topics import partition_for

    store = SnapshotStore(redis, settings.namespace, "risk")
    p = partition_for(account, settings.topics.partitions(topics.RISK_IN))
    raw = await redis.hget(store.state_key(p), "a:" + account)
    if raw is None:
        return 0
    import msgspec

    try:
        return msgspec.msgpack.decode(raw, type=AccountState).collateral
    except msgspec.ValidationError:
        return -1  # not (yet) state this version can read


async def test_each_input_yields_one_output_and_state_lands_in_redis(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    deposits = [
        (ALICE if i % 2 else BOB, Deposit(ts=i, account=ALICE if i % 2 else BOB, usd=1_000_000 + i))
        for i in range(200)
    ]
    await produce(settings, topics.RISK_IN, deposits)
    async with running(settings):
        outputs = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=200, quiet_s=1.0)
        alice_total = sum(1_000_000 + i for i in range(200) if i % 2)
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), alice_total))
    assert len(outputs) == 200
    assert len({r.id for r in outputs}) == 200
    assert all(isinstance(r.value, BalanceUpdate) for r in outputs)
    # the last BalanceUpdate for Alice shows her whole balance
    last = [r.value for r in outputs if r.value.account == ALICE][-1]
    assert last.collateral == alice_total == 100_000_000 + sum(i for i in range(200) if i % 2)


async def _eq(coro: object, expected: int) -> bool:
    return await coro == expected  # type: ignore[misc]


async def test_malformed_input_goes_to_dead_letters_without_stalling(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    items: list[tuple[str, object]] = [
        (ALICE, Deposit(ts=1, account=ALICE, usd=5_000_000)),
        (ALICE, b"\xc1 not msgpack"),
        (ALICE, b"\x81\xa4type\xa7unknown"),
        (ALICE, Deposit(ts=2, account=ALICE, usd=7_000_000)),
    ]
    await produce(settings, topics.RISK_IN, items)  # type: ignore[arg-type]
    before = metrics.DEAD_LETTERS.labels("risk", topics.RISK_IN, "decode")._value.get()
    async with running(settings):
        letters = await read_topic(settings, topics.DEAD_LETTERS, expect=2, quiet_s=0.5)
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 12_000_000))
    assert [r.value.payload for r in letters] == [b"\xc1 not msgpack", b"\x81\xa4type\xa7unknown"]
    assert all(
        isinstance(r.value, DeadLetter) and r.value.error.startswith("decode") for r in letters
    )
    assert metrics.DEAD_LETTERS.labels("risk", topics.RISK_IN, "decode")._value.get() - before == 2


async def test_restart_replays_from_redis_offset_without_producing(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Redis behind Kafka (a crash between commit and Redis write) is caught up silently."""
    first = [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(50)]
    await produce(settings, topics.RISK_IN, first)
    async with running(settings):
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 50_000_000))
    # Roll Redis back to an empty snapshot, as if every Redis write had been lost.
    store = SnapshotStore(redis_client, settings.namespace, "risk")
    for p in range(settings.topics.partitions(topics.RISK_IN)):
        await redis_client.delete(store.state_key(p), store.offset_key(p))
    replayed_before = metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get()
    second = [(ALICE, Deposit(ts=100 + i, account=ALICE, usd=2_000_000)) for i in range(10)]
    await produce(settings, topics.RISK_IN, second)
    async with running(settings):
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 70_000_000))
        outputs = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=60, quiet_s=1.0)
    assert metrics.REPLAYED.labels("risk", topics.RISK_IN)._value.get() - replayed_before == 50
    assert len(outputs) == 60, "replayed inputs must not produce their outputs again"
    assert len({r.id for r in outputs}) == 60
    assert outputs[-1].value.collateral == 70_000_000


async def test_a_snapshot_that_no_longer_decodes_is_rebuilt_from_the_input_log(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """State written by an older state schema is derived data: the runtime drops it and
    replays the partition's log from offset 0, producing nothing twice."""
    await produce(
        settings,
        topics.RISK_IN,
        [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(20)],
    )
    async with running(settings):
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 20_000_000))
    from libs.common.topics import partition_for

    store = SnapshotStore(redis_client, settings.namespace, "risk")
    p = partition_for(ALICE, settings.topics.partitions(topics.RISK_IN))
    await redis_client.hset(store.state_key(p), "a:" + ALICE, b"\x81\xa3old\xa6schema")
    await produce(settings, topics.RISK_IN, [(ALICE, Deposit(ts=99, account=ALICE, usd=5_000_000))])
    async with running(settings):
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 25_000_000))
        outputs = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=21, quiet_s=1.0)
    assert len(outputs) == 21 and len({r.id for r in outputs}) == 21
    assert outputs[-1].value.collateral == 25_000_000


async def test_a_batch_the_broker_refuses_commits_nothing_until_it_is_accepted(
    stack: LocalStack, redis_client: aioredis.Redis
) -> None:
    """aiokafka would commit a transaction one of whose record batches failed (it only
    fails that batch's future): the runtime must abort instead, so the input position and
    the state never run ahead of the outputs. The broker is made to refuse the outputs by
    shrinking their topic's largest accepted batch (to 128 bytes: a transaction marker
    still fits, a balance update does not), then to accept them again."""
    settings = make_settings(stack, outage_backoff_max_ms=300, outage_window_s=120.0)
    await ensure_topics(settings)
    first = [(ALICE, Deposit(ts=i, account=ALICE, usd=1_000_000)) for i in range(20)]
    await produce(settings, topics.RISK_IN, first)
    async with running(settings) as proc:
        assert await wait_for(lambda: _eq(collateral(settings, redis_client, ALICE), 20_000_000))
        await set_topic_config(settings, topics.ACCOUNT_EVENTS, {"max.message.bytes": "128"})
        aborts = metrics.TXN_ABORTS.labels("risk")._value.get()
        second = [(ALICE, Deposit(ts=100 + i, account=ALICE, usd=2_000_000)) for i in range(10)]
        await produce(settings, topics.RISK_IN, second)
        assert await wait_for(
            lambda: _true(metrics.TXN_ABORTS.labels("risk")._value.get() >= aborts + 2),
            timeout_s=30,
        )
        # refused, retried, refused: neither the state nor the outputs moved
        assert await collateral(settings, redis_client, ALICE) == 20_000_000
        refused = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=20, quiet_s=0.5)
        assert len(refused) == 20
        await set_topic_config(settings, topics.ACCOUNT_EVENTS, {"max.message.bytes": "1048588"})
        assert await wait_for(
            lambda: _eq(collateral(settings, redis_client, ALICE), 40_000_000), timeout_s=30
        )
        outputs = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=30, quiet_s=1.0)
        assert not proc.fatal
    assert len(outputs) == len({r.id for r in outputs}) == 30
    assert [r.value.collateral for r in outputs[-10:]] == [
        20_000_000 + 2_000_000 * (i + 1) for i in range(10)
    ]


async def _true(value: bool) -> bool:
    return value
