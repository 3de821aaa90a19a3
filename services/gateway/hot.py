"""Reads of the hot state the state machines publish in Redis (never the machines).

Risk keeps each account under ``a:<address>`` and each market's mark under
``m:<market>`` in its partition's state hash; the matcher keeps ``l2:<market>`` and
``ctx:<market>`` in its partition's. Both hashes are written atomically with the
partition's committed offset, so every read is a consistent, committed view.
"""

from __future__ import annotations

import asyncio
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

_ACCOUNT = msgspec.msgpack.Decoder(AccountState)
_MARK = msgspec.msgpack.Decoder(MarkState)
_L2 = msgspec.msgpack.Decoder(L2View)
_CTX = msgspec.msgpack.Decoder(MarketContext)
_SPEC = msgspec.msgpack.Decoder(MarketSpec)
_VAULT = msgspec.msgpack.Decoder(VaultShares)


class HotState:
    """Typed reads of accounts, marks, books and market contexts."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.markets: MarketRegistry = settings.markets
        self.risk = SnapshotStore(redis, settings.namespace, "risk")
        self.matcher = SnapshotStore(redis, settings.namespace, "matcher")
        self.risk_partitions = settings.topics.partitions(topics.RISK_IN)
        self.matcher_partitions = settings.topics.partitions(topics.MATCHER_IN)

    async def reflects(self, origin: str, timeout_s: float) -> bool:
        """Wait until the hot state includes input record ``origin`` (an output's id,
        ``<input topic>/<partition>/<offset>/<n>``): the runtime writes Redis just after
        the Kafka transaction that carried the answer. False if not within the time."""
        parts = origin.split("/")
        store = {topics.RISK_IN: self.risk, topics.MATCHER_IN: self.matcher}.get(parts[0])
        if store is None or len(parts) != 4:
            return True
        partition, offset = int(parts[1]), int(parts[2])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pause = 0.0005
        while await store.stored_offset(partition) <= offset:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.01)
        return True

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
