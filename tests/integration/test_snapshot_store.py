"""The snapshot of a partition in Redis: entries and offset written atomically, in one
round trip, and fenced by offset so a stalled former owner can never move it back."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from libs.common.runtime.snapshot import SnapshotStore
from libs.common.settings import Settings

pytestmark = pytest.mark.kafka


async def test_writes_apply_in_offset_order_and_stale_ones_change_nothing(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    store = SnapshotStore(redis_client, settings.namespace, "snaptest")
    assert await store.load(0) == (0, {})
    assert await store.write(0, 10, {"a:1": b"one", "a:2": b"two", "gone": None})
    assert await store.load(0) == (10, {"a:1": b"one", "a:2": b"two"})
    # a former owner replaying an older batch: refused, nothing written
    assert not await store.write(0, 10, {"a:1": b"stale", "a:2": None})
    assert not await store.write(0, 7, {"a:3": b"stale"})
    assert await store.load(0) == (10, {"a:1": b"one", "a:2": b"two"})
    assert await store.write(0, 11, {"a:1": b"uno", "a:2": None})
    assert await store.load(0) == (11, {"a:1": b"uno"})
    # an empty batch still moves the offset (the gateway waits on it)
    assert await store.write(0, 12, {})
    assert await store.stored_offset(0) == 12
    # partitions are independent
    assert await store.load(1) == (0, {})


async def test_a_batch_larger_than_one_command_takes_is_written_whole(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    store = SnapshotStore(redis_client, settings.namespace, "snapbig")
    first = {f"a:{n:05d}": n.to_bytes(4, "big") for n in range(5_001)}
    assert await store.write(3, 1, first)
    offset, state = await store.load(3)
    assert (offset, len(state)) == (1, 5_001)
    assert state["a:04999"] == (4_999).to_bytes(4, "big")
    # 2,501 deletes and 1,200 changes in one batch
    changes: dict[str, bytes | None] = {f"a:{n:05d}": None for n in range(0, 5_001, 2)}
    changes.update({f"a:{n:05d}": b"x" for n in range(1, 2_401, 2)})
    assert await store.write(3, 2, changes)
    offset, state = await store.load(3)
    assert (offset, len(state)) == (2, 2_500)
    assert sum(v == b"x" for v in state.values()) == 1_200
    assert "a:00000" not in state and state["a:04999"] == (4_999).to_bytes(4, "big")
