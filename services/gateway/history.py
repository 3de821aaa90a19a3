"""Event history for the read API: fills, order outcomes, funding and liquidation steps,
kept in Redis.

A consumer group of the gateway instances reads account.events, market.events and
liquidation.audit and
writes each event once per key, in the API's own shape, to sorted sets scored by event
time. Writes are idempotent (a record replayed after a crash writes the same member),
so at-least-once delivery gives exactly the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import codec, metrics, topics
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.money import format_ppb, format_usd
from libs.common.runtime.outage import Outage
from libs.common.schemas import (
    AccountFill,
    FundingPayment,
    FundingRate,
    LiquidationStep,
    OrderUpdate,
)
from libs.common.settings import Settings

log = logging.getLogger(__name__)
_JSON = msgspec.json.Encoder()
KEEP_FILLS = 10_000
KEEP_FUNDING = 5_000
KEEP_LIQUIDATION_STEPS = 5_000
ORDER_TTL_S = 7 * 24 * 3600


def direction(start: int, is_buy: bool, sz: int) -> str:
    """The API's ``dir`` of a fill: opening, closing or flipping a long or short."""
    end = start + sz if is_buy else start - sz
    if start == 0 or ((start > 0) == (end > 0) and abs(end) > abs(start)):
        return "Open Long" if is_buy else "Open Short"
    if end != 0 and (start > 0) != (end > 0):
        return "Short > Long" if is_buy else "Long > Short"
    return "Close Short" if is_buy else "Close Long"


rate = format_ppb


class History:
    """The projection (``project``) and its reads (fills, funding, order outcomes)."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.markets: MarketRegistry = settings.markets
        self.ns = settings.namespace

    def user_key(self, user: str, what: str) -> str:
        return f"{{{self.ns}hist:{user}}}:{what}"

    def market_key(self, market: str, what: str) -> str:
        return f"{{{self.ns}hist:market:{market}}}:{what}"

    # ------------------------------------------------------------ projection

    def fill_row(self, e: AccountFill) -> dict[str, Any]:
        spec = self.markets.by_name(e.market)
        return {
            "coin": e.market,
            "px": spec.format_price(e.px),
            "sz": spec.format_size(e.sz),
            "side": "B" if e.is_buy else "A",
            "time": e.ts,
            "startPosition": spec.format_size(e.start_position),
            "dir": direction(e.start_position, e.is_buy, e.sz),
            "closedPnl": format_usd(e.closed_pnl),
            "hash": f"0x{e.tid:064x}",
            "oid": e.oid,
            "crossed": not e.is_maker,
            "fee": format_usd(e.fee),
            "tid": e.tid,
            "feeToken": "USDC",
        }

    def order_row(self, e: OrderUpdate) -> dict[str, Any]:
        spec = self.markets.by_name(e.market)
        order = {
            "coin": e.market,
            "oid": e.oid,
            "sz": spec.format_size(e.resting_sz),
            "origSz": spec.format_size(e.filled_sz + e.resting_sz),
            "timestamp": e.ts,
        }
        if e.cloid:
            order["cloid"] = e.cloid
        return {"order": order, "status": e.status, "statusTimestamp": e.ts}

    def liquidation_row(self, e: LiquidationStep) -> dict[str, Any]:
        """A step of a liquidation as ``liquidationHistory`` answers it (our extension):
        prices and sizes in the market's decimals, money in USDC."""
        spec = self.markets.by_name(e.market) if e.market in self.markets.names else None
        return {
            "time": e.ts,
            "caseId": e.case_id,
            "step": e.step,
            "stage": e.stage,
            "coin": e.market,
            "px": spec.format_price(e.px) if spec and e.px else "0.0",
            "sz": spec.format_size(e.sz) if spec and e.sz else "0.0",
            "equityBefore": format_usd(e.equity),
            "equityAfter": format_usd(e.equity_after),
            "maintenance": format_usd(e.maintenance),
            "shortfall": format_usd(e.shortfall),
            "counterparty": e.counterparty,
            "detail": e.detail,
        }

    async def project(self, events: Iterable[msgspec.Struct]) -> None:
        """Write a batch of events to their histories in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in events:
                if isinstance(e, AccountFill):
                    key = self.user_key(e.account, "fills")
                    pipe.zadd(key, {_JSON.encode(self.fill_row(e)): e.ts})
                    pipe.zremrangebyrank(key, 0, -KEEP_FILLS - 1)
                elif isinstance(e, OrderUpdate) and e.oid is not None:
                    key = self.user_key(e.account, "orders")
                    pipe.hset(key, str(e.oid), _JSON.encode(self.order_row(e)))
                    if e.cloid:
                        pipe.hset(self.user_key(e.account, "cloids"), e.cloid, str(e.oid))
                    pipe.expire(key, ORDER_TTL_S)
                elif isinstance(e, FundingPayment):
                    spec = self.markets.by_name(e.market)
                    row = {
                        "time": e.ts,
                        "hash": "0x" + "0" * 64,
                        "delta": {
                            "type": "funding",
                            "coin": e.market,
                            "usdc": format_usd(e.usd),
                            "szi": spec.format_size(e.szi),
                            "fundingRate": rate(e.rate_ppb),
                        },
                    }
                    key = self.user_key(e.account, "funding")
                    pipe.zadd(key, {_JSON.encode(row): e.ts})
                    pipe.zremrangebyrank(key, 0, -KEEP_FUNDING - 1)
                elif isinstance(e, FundingRate):
                    row = {
                        "coin": e.market,
                        "fundingRate": rate(e.rate_ppb),
                        "premium": rate(e.premium_ppb),
                        "time": e.ts,
                    }
                    key = self.market_key(e.market, "funding")
                    pipe.zadd(key, {_JSON.encode(row): e.ts})
                elif isinstance(e, LiquidationStep):
                    key = self.user_key(e.account, "liquidations")
                    pipe.zadd(key, {_JSON.encode(self.liquidation_row(e)): e.ts})
                    pipe.zremrangebyrank(key, 0, -KEEP_LIQUIDATION_STEPS - 1)
            await pipe.execute()

    # ------------------------------------------------------------ reads

    async def _range(self, key: str, start: int, end: int, limit: int) -> list[Any]:
        raw = cast(
            list[bytes],
            await self.redis.zrangebyscore(key, start, end, start=0, num=limit),
        )
        return [msgspec.json.decode(r) for r in raw]

    async def fills(self, user: str, start: int, end: int, limit: int) -> list[Any]:
        rows = await self._range(self.user_key(user, "fills"), start, end, limit)
        return sorted(rows, key=lambda r: (-r["time"], -r["tid"]))

    async def liquidations(self, user: str, start: int, end: int, limit: int) -> list[Any]:
        """The account's liquidation steps in order: by time, case, then step."""
        rows = await self._range(self.user_key(user, "liquidations"), start, end, limit)
        return sorted(rows, key=lambda r: (r["time"], r["caseId"], r["step"]))

    async def fundings(self, user: str, start: int, end: int) -> list[Any]:
        return await self._range(self.user_key(user, "funding"), start, end, 500)

    async def funding_history(self, spec: MarketSpec, start: int, end: int) -> list[Any]:
        return await self._range(self.market_key(spec.name, "funding"), start, end, 500)

    async def order_status(self, user: str, ref: Any) -> Any:
        oid = ref
        if isinstance(ref, str):
            found = await self.redis.hget(self.user_key(user, "cloids"), ref.lower())
            if found is None:
                return None
            oid = int(found)
        if not isinstance(oid, int):
            return None
        raw = await self.redis.hget(self.user_key(user, "orders"), str(oid))
        return msgspec.json.decode(raw) if raw else None


# How often the projector commits its consumer offsets: projecting is idempotent (the
# same event writes the same member or field), so a restart re-projecting up to this
# much is harmless, and a commit per batch cost a group round trip per batch.
PROJECTOR_COMMIT_INTERVAL_S = 1.0
# Redis failures the projector waits out (retrying the same batch) instead of dying.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


async def project_until_written(
    history: History, events: list[msgspec.Struct], stop: asyncio.Event, outage: Outage
) -> bool:
    """Project a batch, retrying it with backoff while Redis is away. False if stopped
    before it was written (its offsets must then not be committed)."""
    while True:
        try:
            await history.project(events)
        except REDIS_DOWN as exc:
            now = time.monotonic()
            retry_at = outage.failed(now)
            assert retry_at is not None  # the projector's window is unbounded
            metrics.OUTAGE_RETRIES.labels("gateway", "history").inc()
            log.warning(
                "projecting history failed (%r); retrying in %.1f s (Redis away for %.1f s)",
                exc,
                retry_at - now,
                outage.lasted(now),
                extra={"event": "outage_retry"},
            )
            try:
                await asyncio.wait_for(stop.wait(), retry_at - now)
                return False
            except TimeoutError:
                continue
        if outage.active:
            log.info(
                "history projection resumed after %.1f s",
                outage.lasted(time.monotonic()),
                extra={"event": "outage_over"},
            )
            outage.end()
        return True


async def commit_offsets(consumer: AIOKafkaConsumer) -> bool:
    """Commit the projected positions; a broker away is retried at the next commit."""
    try:
        await consumer.commit()
    except KafkaError as exc:
        log.warning("committing history offsets failed (%r); will retry", exc)
        return False
    return True


async def run_projector(history: History, stop: asyncio.Event) -> None:
    """Project account.events, market.events and liquidation.audit until stopped
    (at-least-once, offsets committed every second and on the way out)."""
    settings = history.settings
    names = {
        settings.topics.name(logical): codec.decoder(logical)
        for logical in (topics.ACCOUNT_EVENTS, topics.MARKET_EVENTS, topics.LIQUIDATION_AUDIT)
    }
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.namespace}gateway-history",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    pending = False
    next_commit = 0.0
    # Projection never gives up: the gateway serves meanwhile, and the history catches up.
    outage = Outage(
        settings.outage_backoff_first_ms / 1000,
        settings.outage_backoff_max_ms / 1000,
        float("inf"),
    )
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            events: list[msgspec.Struct] = []
            for tp, records in batches.items():
                decoder = names[tp.topic]
                for record in records:
                    try:
                        events.append(decoder.decode(record.value or b""))
                    except codec.DecodeError:
                        log.warning("undecodable event at %s %d", tp, record.offset)
            if events and not await project_until_written(history, events, stop, outage):
                return  # stopped with this batch unwritten: its offsets stay uncommitted
            pending = pending or bool(batches)
            now = time.monotonic()
            if pending and now >= next_commit:
                pending = not await commit_offsets(consumer)
                next_commit = now + PROJECTOR_COMMIT_INTERVAL_S
        if pending:
            await commit_offsets(consumer)
    finally:
        await consumer.stop()
