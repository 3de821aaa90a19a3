"""Hot state in Redis: one hash of state entries plus the input offset, per partition.

Both keys of a partition share a hash tag (``{<ns><service>:<partition>}``) so they
live in one Redis Cluster slot and one MULTI/EXEC covers them. Writes are fenced by
offset: a write whose offset is not ahead of the stored one is refused, so a stalled
former owner of a partition can never move Redis backwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import WatchError


class SnapshotStore:
    """Reads and writes one service's partition snapshots."""

    def __init__(self, client: aioredis.Redis, namespace: str, service: str) -> None:
        self.client = client
        self.namespace = namespace
        self.service = service

    def hash_tag(self, partition: int) -> str:
        return f"{{{self.namespace}{self.service}:{partition}}}"

    def state_key(self, partition: int) -> str:
        return f"{self.hash_tag(partition)}:state"

    def offset_key(self, partition: int) -> str:
        return f"{self.hash_tag(partition)}:offset"

    async def load(self, partition: int) -> tuple[int, dict[str, bytes]]:
        """State and the offset it corresponds to (next input offset), read atomically."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.offset_key(partition))
            pipe.hgetall(self.state_key(partition))
            raw_offset, raw_state = await pipe.execute()
        offset = int(raw_offset) if raw_offset is not None else 0
        state = {k.decode(): v for k, v in raw_state.items()}
        return offset, state

    async def reset(self, partition: int) -> None:
        """Forget a partition's snapshot (state and offset) so it is rebuilt from offset 0."""
        await self.client.delete(self.state_key(partition), self.offset_key(partition))

    async def stored_offset(self, partition: int) -> int:
        raw = await self.client.get(self.offset_key(partition))
        return int(raw) if raw is not None else 0

    async def write(self, partition: int, offset: int, changes: Mapping[str, bytes | None]) -> bool:
        """Apply changed entries and set the offset in one MULTI/EXEC.

        Returns False (and writes nothing) if Redis already holds this offset or a
        later one, which only a former owner of the partition can run into.
        """
        offset_key = self.offset_key(partition)
        state_key = self.state_key(partition)
        upserts = {k: v for k, v in changes.items() if v is not None}
        deletes = [k for k, v in changes.items() if v is None]
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(offset_key)
                    current = await pipe.get(offset_key)
                    if current is not None and int(current) >= offset:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if upserts:
                        pipe.hset(state_key, mapping=upserts)  # type: ignore[arg-type]
                    if deletes:
                        pipe.hdel(state_key, *deletes)
                    pipe.set(offset_key, offset)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
