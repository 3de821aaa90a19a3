"""Risk and matcher on the processor runtime against real Kafka and Redis.

Two accounts trade through the matcher, the oracle moves the mark, and the short is
flagged for liquidation. The hot state risk wrote to Redis is exactly what a fresh
replay of the risk.in log computes, and so is the clearinghouseState the gateway
renders from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.margin import clearinghouse_state
from libs.common.runtime import Processor, SnapshotStore
from libs.common.schemas import (
    Deposit,
    IndexTick,
    LiquidationTrigger,
    OrderUpdate,
    PlaceOrder,
)
from libs.common.settings import Settings
from libs.common.state import ACCOUNT_PREFIX, MARK_PREFIX, AccountState, MarkState
from libs.common.topics import partition_for
from services.matcher.engine import MatcherCore
from services.risk.engine import RiskCore
from tests.support.bus import produce, read_topic, wait_for
from tests.support.workload import reference_run

pytestmark = pytest.mark.kafka

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
T0 = 1_700_000_000_000


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[None]:
    markets = settings.markets
    procs = [
        Processor(
            service="risk",
            input_topic=topics.RISK_IN,
            core_factory=lambda p: RiskCore(markets, p),
            settings=settings,
        ),
        Processor(
            service="matcher",
            input_topic=topics.MATCHER_IN,
            core_factory=lambda p: MatcherCore(markets, p),
            settings=settings,
        ),
    ]
    tasks = []
    for proc in procs:
        await proc.start()
        tasks.append(asyncio.create_task(proc.run()))
    try:
        yield
    finally:
        for proc in procs:
            proc.request_stop()
        await asyncio.gather(*tasks)
        for proc in procs:
            await proc.stop()


def clearinghouse(state: dict[str, bytes], user: str, settings: Settings) -> dict[str, object]:
    """What the gateway renders for ``user`` from a risk partition's state hash."""
    raw = state.get(ACCOUNT_PREFIX + user)
    account = msgspec.msgpack.decode(raw, type=AccountState) if raw else None
    marks = {}
    for name in settings.markets.names:
        blob = state.get(MARK_PREFIX + name)
        if blob:
            marks[name] = msgspec.msgpack.decode(blob, type=MarkState).mark_px
    return clearinghouse_state(account, marks, settings.markets, 0)


async def answered(settings: Settings, req_id: str) -> bool:
    events = await read_topic(settings, topics.ACCOUNT_EVENTS, quiet_s=0.1, timeout_s=2)
    return any(getattr(e.value, "req_id", "") == req_id for e in events)


async def test_a_trade_and_a_mark_move_flag_the_short_and_redis_matches_a_replay(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    btc = settings.markets.by_name("BTC")
    async with services(settings):
        await produce(
            settings,
            topics.RISK_IN,
            [
                (ALICE, Deposit(ts=T0, account=ALICE, usd=10_000_000_000)),
                (BOB, Deposit(ts=T0, account=BOB, usd=700_000_000)),
            ],
        )
        await produce(
            settings, topics.MATCHER_IN, [("BTC", IndexTick(ts=T0 + 1, market="BTC", px=1_000_000))]
        )
        orders = [
            (ALICE, True, "100000", "Gtc", "a1"),
            (BOB, False, "99000", "Ioc", "b1"),
        ]
        for who, is_buy, price, tif, req_id in orders:
            await produce(
                settings,
                topics.RISK_IN,
                [
                    (
                        who,
                        PlaceOrder(
                            ts=T0 + 2,
                            account=who,
                            market="BTC",
                            is_buy=is_buy,
                            px=btc.price_units(price),
                            sz=btc.size_units("0.1"),
                            tif=tif,  # type: ignore[arg-type]
                            req_id=req_id,
                        ),
                    )
                ],
            )
            # each order is answered before the next step, so the book sees them in order
            assert await wait_for(lambda req_id=req_id: answered(settings, req_id))
        # the oracle moves to 106000: Bob's short loses $600 of his $695.5
        await produce(
            settings, topics.MATCHER_IN, [("BTC", IndexTick(ts=T0 + 3, market="BTC", px=1_060_000))]
        )
        triggers = await read_topic(settings, topics.LIQUIDATIONS, expect=1, quiet_s=1.0)
        events = await read_topic(settings, topics.ACCOUNT_EVENTS, quiet_s=0.5)
        inputs = await read_topic(settings, topics.RISK_IN, decode=False, quiet_s=1.0)
        ref = reference_run(settings, inputs)
        store = SnapshotStore(redis_client, settings.namespace, "risk")

        async def caught_up() -> bool:
            for p, end in ref.offsets.items():
                if await store.stored_offset(p) < end:
                    return False
            return True

        assert await wait_for(caught_up)

    # the trigger, carrying the first status the liquidator decides from
    (trigger,) = [r.value for r in triggers if isinstance(r.value, LiquidationTrigger)]
    assert (trigger.ts, trigger.account, trigger.market) == (T0 + 3, BOB, "")
    assert (trigger.equity, trigger.maintenance) == (95_500_000, 106_000_000)
    assert trigger.status is not None and trigger.status.below
    assert (trigger.status.equity, trigger.status.reason) == (95_500_000, "trigger")
    (short,) = trigger.status.positions
    assert (short.market, short.szi) == ("BTC", -btc.size_units("0.1"))
    answers = {e.value.req_id: e.value.status for e in events if isinstance(e.value, OrderUpdate)}
    assert (answers["a1"], answers["b1"]) == ("resting", "filled")
    # Redis holds exactly what a fresh replay of the log computes, offsets included.
    for p, state in ref.state.items():
        offset, stored = await store.load(p)
        assert (offset, stored) == (ref.offsets[p], state)
    views = {}
    for who in (ALICE, BOB):
        p = partition_for(who, settings.topics.partitions(topics.RISK_IN))
        _, stored = await store.load(p)
        views[who] = clearinghouse(stored, who, settings)
        assert views[who] == clearinghouse(ref.state[p], who, settings)
    bob = views[BOB]
    assert bob["marginSummary"] == {  # type: ignore[comparison-overlap]
        "accountValue": "95.5",
        "totalMarginUsed": "530",
        "totalNtlPos": "10600",
        "totalRawUsd": "10695.5",
    }
    assert bob["crossMaintenanceMarginUsed"] == "106"
    alice = views[ALICE]
    assert alice["marginSummary"]["accountValue"] == "10598.5"  # type: ignore[index]
