"""Hot state in Redis: one hash of state entries plus the input offset, per partition.

Both keys of a partition share a hash tag (``{<ns><service>:<partition>}``) so they
live in one Redis Cluster slot and one script writes both atomically. Writes are fenced by
offset: a write whose offset is not ahead of the stored one is refused, so a stalled
former owner of a partition can never move Redis backwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

# The fenced write as one script (the Redis equivalent of WATCH, GET, MULTI/EXEC, in
# one round trip instead of three). KEYS: offset, state. ARGV: the offset, the number
# of upserted entries, their fields and values in pairs, then the fields to delete.
# Fields go to HSET/HDEL in chunks: Lua's unpack is bounded by its C stack.
_WRITE = """
local offset = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= offset then
  return 0
end
local last = 2 + 2 * tonumber(ARGV[2])
local i = 3
while i <= last do
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
i = last + 1
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class SnapshotStore:
    """Reads and writes one service's partition snapshots."""

    def __init__(self, client: aioredis.Redis, namespace: str, service: str) -> None:
        self.client = client
        self.namespace = namespace
        self.service = service
        self._write = client.register_script(_WRITE)

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
        """Apply changed entries and set the offset, atomically, in one round trip.

        Returns False (and writes nothing) if Redis already holds this offset or a
        later one, which only a former owner of the partition can run into.
        """
        upserts: list[str | bytes] = []
        deletes: list[str] = []
        for key, value in changes.items():
            if value is None:
                deletes.append(key)
            else:
                upserts += (key, value)
        args: list[str | bytes | int] = [offset, len(upserts) // 2, *upserts, *deletes]
        keys = [self.offset_key(partition), self.state_key(partition)]
        return bool(await self._write(keys=keys, args=args))
