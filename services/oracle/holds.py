"""Operator overrides in force, kept in Redis so a restart does not lift them.

Redis may restart under the oracle. The client reconnects a dropped connection and
retries a command a few times with a capped exponential backoff, and every operation
has a hard time bound on top, so an override never hangs on Redis: after the bound it
fails with ``HoldStoreUnavailable`` (the operator gets a 503 with the reason) and the
oracle runs on. The next command after Redis is back reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Final, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import codec, metrics
from libs.common.schemas import OracleOverride
from libs.common.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# One command: up to 3 retries 50, 100, 200 ms apart (capped at 500 ms), each
# connection attempt and reply bounded by 1 s; the whole operation by OP_TIMEOUT_S.
RETRIES: Final = 3
SOCKET_TIMEOUT_S: Final = 1.0
OP_TIMEOUT_S: Final = 3.0
# At start the holds must be known before anything is published: keep trying.
LOAD_BACKOFF_S: Final = (0.2, 5.0)


class HoldStoreUnavailable(RuntimeError):
    """Redis did not answer within the bound: nothing was changed."""


class HoldStore:
    def __init__(self, settings: Settings, op_timeout_s: float = OP_TIMEOUT_S) -> None:
        self.redis = aioredis.Redis.from_url(
            settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=10,
        )
        self.key = f"{{{settings.namespace}oracle}}:holds"
        self.op_timeout_s = op_timeout_s

    async def _bounded(self, op: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.ORACLE_HOLD_STORE_ERRORS.labels(op).inc()
            why = str(exc) or type(exc).__name__
            raise HoldStoreUnavailable(f"hold store (Redis) unavailable: {why}") from exc

    async def record(self, audit: OracleOverride) -> None:
        """Keep (freeze, set) or drop (release) the market's hold; raises
        ``HoldStoreUnavailable`` if Redis cannot be reached in time."""
        if audit.action == "release":
            await self._bounded("record", self.redis.hdel(self.key, audit.market))
        else:
            await self._bounded(
                "record", self.redis.hset(self.key, audit.market, codec.encode(audit))
            )

    async def load(self) -> list[OracleOverride]:
        raw = await self._bounded("load", self.redis.hgetall(self.key))
        decoder = msgspec.msgpack.Decoder(OracleOverride)
        held = cast(dict[bytes, bytes], raw)
        return [decoder.decode(held[k]) for k in sorted(held)]

    async def load_patiently(self, stop: asyncio.Event) -> list[OracleOverride] | None:
        """``load``, retried with a capped backoff until Redis answers (an override in
        force must not be lifted by starting without it); None if stopped first."""
        delay, cap = LOAD_BACKOFF_S
        while not stop.is_set():
            try:
                return await self.load()
            except HoldStoreUnavailable as exc:
                log.error("holds not loaded, retrying", extra={"error": str(exc), "in_s": delay})
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(cap, delay * 2)
        return None

    async def close(self) -> None:
        await self.redis.aclose()
