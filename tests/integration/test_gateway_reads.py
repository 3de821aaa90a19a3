"""Read your writes: the gateway holds an answer until the hot state in Redis includes
the input record that produced it, so a client that reads right after an answer sees
what the answer says (the runtime writes Redis just after the Kafka transaction that
carries the answer)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.settings import Settings
from services.gateway.hot import HotState

pytestmark = pytest.mark.kafka


async def test_an_answer_waits_for_its_record_in_redis(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    hot = HotState(redis_client, settings)
    risk = SnapshotStore(redis_client, settings.namespace, "risk")
    await risk.write(2, 41, {})  # risk partition 2 has applied offsets up to 40

    async def later() -> None:
        await asyncio.sleep(0.05)
        await risk.write(2, 42, {})  # ... and now offset 41

    writer = asyncio.create_task(later())
    # an answer produced by offset 41 of risk.in partition 2: released only once Redis
    # holds that record's state
    assert await risk.stored_offset(2) == 41
    assert await hot.reflects(f"{topics.RISK_IN}/2/41/0", 5.0)
    assert await risk.stored_offset(2) == 42
    await writer
    # already there: no wait; another partition or offset not yet there: times out
    assert await hot.reflects(f"{topics.RISK_IN}/2/40/3", 0.0)
    assert not await hot.reflects(f"{topics.RISK_IN}/2/42/0", 0.05)
    assert not await hot.reflects(f"{topics.MATCHER_IN}/0/0/0", 0.05)
    # records of topics without hot state, and ids it cannot read, never hold an answer
    assert await hot.reflects(f"{topics.LIQUIDATIONS}/0/5/0", 0.0)
    assert await hot.reflects("", 0.0)
