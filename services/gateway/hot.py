"""Reads of the hot state the state machines publish in Redis (never the machines).

Risk keeps each account under ``a:<address>`` and each market's mark under
``m:<market>`` in its partition's state hash; the matcher keeps ``l2:<market>`` and
``ctx:<market>`` in its partition's. Both hashes are written atomically with the
partition's committed offset, so every read is a consistent, committed view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import msgspec
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.settings import Settings
from libs.common.state import (
    ACCOUNT_PREFIX,
    L2_PREFIX,
    MARK_PREFIX,
    MARKET_CTX_PREFIX,
    MARKET_SPEC_PREFIX,
    VAULT_PREFIX,
    AccountState,
    L2View,
    MarketContext,
    MarkState,
    VaultShares,
)
from libs.common.topics import partition_for

log = logging.getLogger(__name__)

_ACCOUNT = msgspec.msgpack.Decoder(AccountState)
_MARK = msgspec.msgpack.Decoder(MarkState)
_L2 = msgspec.msgpack.Decoder(L2View)
_CTX = msgspec.msgpack.Decoder(MarketContext)
_SPEC = msgspec.msgpack.Decoder(MarketSpec)
_VAULT = msgspec.msgpack.Decoder(VaultShares)


Where = tuple[str, int]  # (input topic, partition) of a state machine


class Reflections:
    """Waits for the snapshots in Redis to reach an input offset, for many requests at
    once: one task polls the offsets of the partitions somebody waits on, all in one
    round trip, and wakes every request whose record is in. A request whose record
    is already known to be in does not touch Redis at all.

    The stored offset of a partition only grows, so an offset seen once stays a lower
    bound of the stored one (a request never waits for what is already written).
    """

    FIRST_PAUSE_S = 0.0005
    LAST_PAUSE_S = 0.004

    def __init__(self, read: Callable[[list[Where]], Awaitable[list[int]]]) -> None:
        self._read = read
        self.known: dict[Where, int] = {}
        # partition -> (offset waited for, future), one entry per waiting request
        self._waiting: dict[Where, list[tuple[int, asyncio.Future[None]]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.polls = 0

    async def wait(self, where: Where, offset: int, timeout_s: float) -> bool:
        if self.known.get(where, 0) > offset:
            return True
        if timeout_s <= 0:  # no time to wait: one look
            (stored,) = await self._read([where])
            self.known[where] = max(self.known.get(where, 0), stored)
            return stored > offset
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (offset, future)
        self._waiting.setdefault(where, []).append(entry)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiting.get(where)
            if waiters is not None and entry in waiters:
                waiters.remove(entry)
                if not waiters:
                    del self._waiting[where]

    async def _poll(self) -> None:
        pause = self.FIRST_PAUSE_S
        while self._waiting:
            where = sorted(self._waiting)
            try:
                offsets = await self._read(where)
            except Exception:  # Redis unavailable: the waiters time out on their own
                log.warning("reading the snapshot offsets failed", exc_info=True)
                offsets = [self.known.get(w, 0) for w in where]
            self.polls += 1
            moved = False
            for at, stored in zip(where, offsets, strict=True):
                if stored > self.known.get(at, 0):
                    self.known[at] = stored
                    moved = True
                for offset, future in self._waiting.get(at, []):
                    if stored > offset and not future.done():
                        future.set_result(None)
            if not self._waiting:
                return
            pause = self.FIRST_PAUSE_S if moved else min(pause * 2, self.LAST_PAUSE_S)
            await asyncio.sleep(pause)


class HotState:
    """Typed reads of accounts, marks, books and market contexts."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.markets: MarketRegistry = settings.markets
        self.risk = SnapshotStore(redis, settings.namespace, "risk")
        self.matcher = SnapshotStore(redis, settings.namespace, "matcher")
        self.risk_partitions = settings.topics.partitions(topics.RISK_IN)
        self.matcher_partitions = settings.topics.partitions(topics.MATCHER_IN)
        self._stores = {topics.RISK_IN: self.risk, topics.MATCHER_IN: self.matcher}
        self._reflections = Reflections(self._stored_offsets)

    async def reflects(self, origin: str, timeout_s: float) -> bool:
        """Wait until the hot state includes input record ``origin`` (an output's id,
        ``<input topic>/<partition>/<offset>/<n>``): the runtime writes Redis just after
        the Kafka transaction that carried the answer. False if not within the time."""
        parts = origin.split("/")
        if len(parts) != 4 or parts[0] not in self._stores:
            return True
        return await self._reflections.wait((parts[0], int(parts[1])), int(parts[2]), timeout_s)

    async def _stored_offsets(self, where: list[tuple[str, int]]) -> list[int]:
        """The offsets Redis holds for these (input topic, partition), in one round trip."""
        keys = [self._stores[topic].offset_key(partition) for topic, partition in where]
        raw = cast(list[bytes | None], await self.redis.mget(keys))
        return [int(r) if r is not None else 0 for r in raw]

    def risk_key(self, account: str) -> str:
        return self.risk.state_key(partition_for(account, self.risk_partitions))

    def matcher_key(self, market: str) -> str:
        return self.matcher.state_key(partition_for(market, self.matcher_partitions))

    async def account(self, user: str) -> tuple[AccountState | None, dict[str, int]]:
        """An account and the marks of every market, from the account's risk partition."""
        fields = [ACCOUNT_PREFIX + user] + [MARK_PREFIX + m for m in self.markets.names]
        raw = cast(list[bytes | None], await self.redis.hmget(self.risk_key(user), fields))
        account = _ACCOUNT.decode(raw[0]) if raw[0] else None
        marks: dict[str, int] = {}
        for blob in raw[1:]:
            if blob:
                mark = _MARK.decode(blob)
                marks[mark.market] = mark.mark_px
        return account, marks

    async def vault(
        self, address: str
    ) -> tuple[VaultShares | None, AccountState | None, dict[str, int]]:
        """A vault's LP ledger, its account and the marks, in one read of its partition."""
        fields = [VAULT_PREFIX + address, ACCOUNT_PREFIX + address]
        fields += [MARK_PREFIX + m for m in self.markets.names]
        raw = cast(list[bytes | None], await self.redis.hmget(self.risk_key(address), fields))
        ledger = _VAULT.decode(raw[0]) if raw[0] else None
        account = _ACCOUNT.decode(raw[1]) if raw[1] else None
        marks: dict[str, int] = {}
        for blob in raw[2:]:
            if blob:
                mark = _MARK.decode(blob)
                marks[mark.market] = mark.mark_px
        return ledger, account, marks

    async def account_marks(self, user: str) -> tuple[AccountState | None, dict[str, MarkState]]:
        """An account and risk's state of every market (mark, index, oracle status)."""
        fields = [ACCOUNT_PREFIX + user] + [MARK_PREFIX + m for m in self.markets.names]
        raw = cast(list[bytes | None], await self.redis.hmget(self.risk_key(user), fields))
        account = _ACCOUNT.decode(raw[0]) if raw[0] else None
        states = {}
        for blob in raw[1:]:
            if blob:
                state = _MARK.decode(blob)
                states[state.market] = state
        return account, states

    async def account_exists(self, user: str) -> bool:
        return bool(await self.redis.hexists(*self.account_field(user)))

    def account_field(self, user: str) -> tuple[str, str]:
        """The hash key and field holding the user's account state (risk's snapshot)."""
        return self.risk_key(user), ACCOUNT_PREFIX + user

    async def l2(self, market: str) -> L2View | None:
        raw = cast(
            bytes | None, await self.redis.hget(self.matcher_key(market), L2_PREFIX + market)
        )
        return _L2.decode(raw) if raw else None

    async def contexts(self) -> dict[str, MarketContext]:
        """Every market's live context, in universe order (absent until first traded)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in self.markets.names:
                pipe.hget(self.matcher_key(name), MARKET_CTX_PREFIX + name)
            raws = cast(list[bytes | None], await pipe.execute())
        return {
            name: _CTX.decode(raw)
            for name, raw in zip(self.markets.names, raws, strict=True)
            if raw
        }

    async def changed_specs(self) -> list[MarketSpec]:
        """The markets an operator changed at run time, as their matchers apply them."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in self.markets.names:
                pipe.hget(self.matcher_key(name), MARKET_SPEC_PREFIX + name)
            raws = cast(list[bytes | None], await pipe.execute())
        return [_SPEC.decode(raw) for raw in raws if raw]
