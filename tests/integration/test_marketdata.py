"""The marketdata service against real Kafka and Redis, as a process.

A known stream of trades, marks and fills goes through the service twice: once without
interruption, once with the service killed mid-stream and restarted. Both runs must leave
the same candles, 24-hour statistics and fee-tier commands; the candles are checked to
the unit, through the gateway's candleSnapshot, metaAndAssetCtxs and candle WebSocket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.schemas import (
    CANDLE_INTERVALS,
    AccountFill,
    BalanceUpdate,
    DayStatsView,
    MarkPrice,
    Trade,
    candles_key,
    day_stats_key,
)
from libs.common.settings import Settings
from libs.common.state import MARKET_CTX_PREFIX, MarketContext
from libs.common.topics import partition_for
from libs.localstack import LocalStack, free_ports
from libs.localstack.procs import ServiceProcess
from services.gateway.app import Gateway
from services.marketdata.changelogs import changelog_topics, prepare_changelogs
from services.marketdata.service import build_app
from tests.conftest import make_settings
from tests.support.bus import produce, read_topic, set_topic_config, wait_for

pytestmark = pytest.mark.kafka

MINUTE = 60_000
DAY = 86_400_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
BTC_PX = 1_000_000  # 100000.0 USDC in BTC ticks (0.1)


def trade(ts: int, px: int, sz: int, market: str = "BTC", tid: int = 0) -> Trade:
    return Trade(
        ts=ts, market=market, px=px, sz=sz, taker_is_buy=True, buyer=ALICE, seller=BOB, tid=tid
    )


def fill(ts: int, account: str, sz: int, is_maker: bool) -> AccountFill:
    return AccountFill(
        ts=ts,
        account=account,
        market="BTC",
        oid=1,
        is_buy=True,
        px=BTC_PX,
        sz=sz,
        fee=0,
        is_maker=is_maker,
        tid=1,
        closed_pnl=0,
        start_position=0,
    )


def balance(ts: int, account: str) -> BalanceUpdate:
    return BalanceUpdate(ts=ts, account=account, collateral=0, delta=0, reason="tick")


MARKET_PHASES: list[list[Trade | MarkPrice]] = [
    [
        trade(T0 + 1_000, 1_000_000, 300, tid=1),
        trade(T0 + 20_000, 1_005_000, 100, tid=2),
        trade(T0 + 59_999, 998_000, 200, tid=3),
        trade(T0 + MINUTE, 999_000, 500, tid=4),
        trade(T0 + 2_000, 35_000_000, 7, market="ETH", tid=5),
    ],
    [
        trade(T0 + MINUTE + 1_000, 1_010_000, 100, tid=6),
        trade(T0 + 5 * MINUTE, 980_000, 400, tid=7),
        MarkPrice(ts=T0 + DAY + 2 * MINUTE, market="BTC", mark_px=990_000, index_px=990_000),
        trade(T0 + DAY + 3 * MINUTE, 990_000, 1_000, tid=8),
    ],
]
# Alice makes 5M USDC on day 0 (tier 1), Bob takes 2B USDC (tier 5, a maker rebate);
# both fall back to the base tier once day 0 leaves the 14-day window.
ACCOUNT_PHASES: list[list[tuple[str, AccountFill | BalanceUpdate]]] = [
    [
        (ALICE, fill(T0 + 10, ALICE, 5_000_000, is_maker=True)),
        (BOB, fill(T0 + 10, BOB, 2_000_000_000, is_maker=False)),
        (ALICE, balance(T0 + DAY + 1, ALICE)),
        (BOB, balance(T0 + DAY + 1, BOB)),
    ],
    [
        (ALICE, balance(T0 + 16 * DAY, ALICE)),
        (BOB, balance(T0 + 16 * DAY, BOB)),
    ],
]
EXPECTED_TIERS = sorted(
    [
        (ALICE, T0 + DAY, 400, 120),
        (BOB, T0 + DAY, 260, -10),
        (ALICE, T0 + 16 * DAY, 450, 150),
        (BOB, T0 + 16 * DAY, 450, 150),
    ]
)
LAST_BTC_TS = T0 + DAY + 3 * MINUTE


async def seed_open_interest(redis: aioredis.Redis, settings: Settings, lots: int) -> None:
    """What the matcher would have written: BTC's context with its open interest."""
    store = SnapshotStore(redis, settings.namespace, "matcher")
    key = store.state_key(partition_for("BTC", settings.topics.partitions(topics.MATCHER_IN)))
    ctx = MarketContext(market="BTC", open_interest=lots)
    await redis.hset(key, MARKET_CTX_PREFIX + "BTC", msgspec.msgpack.encode(ctx))


async def produce_phase(settings: Settings, phase: int) -> None:
    await produce(settings, topics.MARKET_EVENTS, [(m.market, m) for m in MARKET_PHASES[phase]])
    await produce(settings, topics.ACCOUNT_EVENTS, ACCOUNT_PHASES[phase])


async def day_stats(redis: aioredis.Redis, settings: Settings) -> dict[str, DayStatsView]:
    raw = cast(dict[bytes, bytes], await redis.hgetall(day_stats_key(settings.namespace)))
    decoder = msgspec.msgpack.Decoder(DayStatsView)
    return {k.decode(): decoder.decode(v) for k, v in raw.items()}


async def wait_until_applied(
    redis: aioredis.Redis, settings: Settings, btc_ts: int, tiers: int
) -> None:
    async def applied() -> bool:
        stats = await day_stats(redis, settings)
        return "BTC" in stats and stats["BTC"].ts == btc_ts

    assert await wait_for(applied, timeout_s=60)
    commands = await read_topic(settings, topics.RISK_IN, expect=tiers, quiet_s=1.0)
    assert len(commands) == tiers


async def outcome(redis: aioredis.Redis, settings: Settings) -> dict[str, Any]:
    """Everything the service produced: candle sets, statistics and fee-tier commands."""
    candles = {
        f"{market}:{interval}": await redis.zrange(
            candles_key(settings.namespace, market, interval), 0, -1, withscores=True
        )
        for market in ("BTC", "ETH")
        for interval in CANDLE_INTERVALS
    }
    commands = await read_topic(settings, topics.RISK_IN, expect=len(EXPECTED_TIERS))
    tiers = sorted(
        (r.value.account, r.value.ts, r.value.taker_ppm, r.value.maker_ppm) for r in commands
    )
    partitions = {r.value.account: r.partition for r in commands}
    return {
        "candles": candles,
        "stats": await day_stats(redis, settings),
        "tiers": tiers,
        "partitions": partitions,
    }


@pytest.fixture
async def fresh(stack: LocalStack) -> AsyncIterator[tuple[Settings, aioredis.Redis]]:
    settings = make_settings(stack, namespace=f"md{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings)
    redis = aioredis.Redis.from_url(stack.redis_url)
    await seed_open_interest(redis, settings, 1_234_567)
    yield settings, redis
    await redis.aclose()


async def run_through(
    settings: Settings, redis: aioredis.Redis, log_dir: Path, restart: bool
) -> dict[str, Any]:
    service = ServiceProcess("marketdata", settings, log_dir).start()
    try:
        await produce_phase(settings, 0)
        if restart:
            await wait_until_applied(redis, settings, T0 + MINUTE, tiers=2)
            service.kill()
        await produce_phase(settings, 1)
        if restart:
            service.start()
        await wait_until_applied(redis, settings, LAST_BTC_TS, tiers=len(EXPECTED_TIERS))
        return await outcome(redis, settings)
    finally:
        code = service.stop()
        assert code == 0, service.tail()


async def test_restart_mid_stream_gives_the_same_candles_stats_and_tiers(
    stack: LocalStack, tmp_path: Path
) -> None:
    results = []
    for restart in (False, True):
        settings = make_settings(stack, namespace=f"md{uuid.uuid4().hex[:8]}.")
        await ensure_topics(settings)
        redis = aioredis.Redis.from_url(stack.redis_url)
        try:
            await seed_open_interest(redis, settings, 1_234_567)
            results.append(await run_through(settings, redis, tmp_path / str(restart), restart))
        finally:
            await redis.aclose()
    straight, restarted = results
    assert straight["tiers"] == EXPECTED_TIERS
    risk_parts = 4
    assert straight["partitions"] == {a: partition_for(a, risk_parts) for a in (ALICE, BOB)}
    assert restarted == straight
    btc = straight["stats"]["BTC"]
    # 24 h before the last trade (day 1, 00:03) is day 0, 00:03: the trades of day 0's
    # first two minutes have left the window, the last of them sets the previous price.
    assert (btc.day_ntl_vlm, btc.prev_day_px, btc.open_interest) == (
        980_000 * 400 + 990_000 * 1_000,
        1_010_000,
        1_234_567,
    )


async def test_the_changelog_topics_exist_with_leaders_before_the_worker_starts(
    fresh: tuple[Settings, aioredis.Redis],
) -> None:
    """Each table's changelog topic is created compacted, with the table's partitions,
    and every partition has a leader, before faust subscribes (no PartitionsMismatch)."""
    settings, _ = fresh
    app = build_app(settings)
    wanted = changelog_topics(app)
    assert sorted(name.rsplit("-", 2)[-2] for name in wanted) == [
        "applied",
        "candles",
        "day_stats",
        "fee_days",
        "minute_buckets",
        "volumes",
    ]
    await prepare_changelogs(app, settings)
    await prepare_changelogs(app, settings)  # a second worker of the group: nothing to do
    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap)
    await client.bootstrap()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        cluster = await client.fetch_all_metadata()
        for name, partitions in wanted.items():
            assert partitions == 4
            assert len(cluster.available_partitions_for_topic(name) or ()) == partitions
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(wanted)]
        )
        policies = [
            entry[1]
            for response in described
            for resource in response.resources
            for entry in resource[4]
            if entry[0] == "cleanup.policy"
        ]
        assert policies == ["compact"] * 6
    finally:
        await admin.close()
        await client.close()


async def test_fee_tier_commands_the_broker_refuses_are_not_committed_away(
    fresh: tuple[Settings, aioredis.Redis], tmp_path: Path
) -> None:
    """risk.in is made to refuse every record (its largest batch shrunk to 128 bytes: a
    transaction marker fits, a FeeTier command does not) when the day's tiers go out. The
    worker must not commit the day without them: it stops, and once risk.in accepts them
    again a restarted worker sends each tier exactly once."""
    settings, redis = fresh
    await set_topic_config(settings, topics.RISK_IN, {"max.message.bytes": "128"})
    service = ServiceProcess("marketdata", settings, tmp_path).start()
    try:
        await produce_phase(settings, 0)
        assert await wait_for(lambda: _now(not service.alive()), timeout_s=90), service.tail()
        log = service.log_path.read_text()
        assert "was refused" in log
        # the worker made its changelog topics ready before faust started (point 6)
        assert log.index("changelog topics ready") < log.index("Starting...")
        assert await read_topic(settings, topics.RISK_IN, quiet_s=1.0) == []
        await set_topic_config(settings, topics.RISK_IN, {"max.message.bytes": "1048588"})
        service.start()
        await produce_phase(settings, 1)
        await wait_until_applied(redis, settings, LAST_BTC_TS, tiers=len(EXPECTED_TIERS))
        result = await outcome(redis, settings)
    finally:
        service.stop()
    assert result["tiers"] == EXPECTED_TIERS
    btc = result["stats"]["BTC"]
    assert (btc.day_ntl_vlm, btc.prev_day_px) == (980_000 * 400 + 990_000 * 1_000, 1_010_000)


async def _now(value: bool) -> bool:
    return value


def snapshot_request(coin: str, interval: str, start: int, end: int) -> dict[str, Any]:
    return {
        "type": "candleSnapshot",
        "req": {"coin": coin, "interval": interval, "startTime": start, "endTime": end},
    }


def candle(t: int, interval: str, o: str, c: str, h: str, low: str, v: str, n: int) -> Any:
    return {
        "t": t,
        "T": t + CANDLE_INTERVALS[interval] - 1,
        "s": "BTC",
        "i": interval,
        "o": o,
        "c": c,
        "h": h,
        "l": low,
        "v": v,
        "n": n,
    }


async def post_info(http: TestClient, body: dict[str, Any]) -> Any:
    response = await http.post("/info", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_gateway_serves_candles_day_stats_and_the_candle_stream(
    fresh: tuple[Settings, aioredis.Redis], tmp_path: Path
) -> None:
    settings, redis = fresh
    (metrics_port,) = free_ports(1)
    service = ServiceProcess("marketdata", settings, tmp_path, metrics_port=metrics_port).start()
    gateway = Gateway(settings)
    await gateway.start()
    http = TestClient(TestServer(gateway.public_app()))
    await http.start_server()
    try:
        await produce_phase(settings, 0)
        await produce_phase(settings, 1)
        await wait_until_applied(redis, settings, LAST_BTC_TS, tiers=len(EXPECTED_TIERS))
        async with aiohttp.ClientSession() as session:
            health = await session.get(f"http://127.0.0.1:{metrics_port}/health")
            assert health.status == 200, await health.text()

        one_minute = await post_info(http, snapshot_request("BTC", "1m", T0, T0 + 10 * MINUTE))
        assert one_minute == [
            candle(T0, "1m", "100000", "99800", "100500", "99800", "0.006", 3),
            candle(T0 + MINUTE, "1m", "99900", "101000", "101000", "99900", "0.006", 2),
            candle(T0 + 5 * MINUTE, "1m", "98000", "98000", "98000", "98000", "0.004", 1),
        ]
        five = await post_info(http, snapshot_request("BTC", "5m", T0, T0 + 2 * DAY))
        assert five == [
            candle(T0, "5m", "100000", "101000", "101000", "99800", "0.012", 5),
            candle(T0 + 5 * MINUTE, "5m", "98000", "98000", "98000", "98000", "0.004", 1),
            candle(T0 + DAY, "5m", "99000", "99000", "99000", "99000", "0.01", 1),
        ]
        day = await post_info(http, snapshot_request("BTC", "1d", 0, T0 + 2 * DAY))
        assert day == [
            candle(T0, "1d", "100000", "98000", "101000", "98000", "0.016", 6),
            candle(T0 + DAY, "1d", "99000", "99000", "99000", "99000", "0.01", 1),
        ]
        bad = await http.post("/info", json=snapshot_request("BTC", "2m", 0, 1))
        assert bad.status == 400

        _, ctxs = await post_info(http, {"type": "metaAndAssetCtxs"})
        btc = ctxs[0]
        assert (btc["dayNtlVlm"], btc["prevDayPx"], btc["openInterest"]) == (
            "1382",
            "101000",
            "12.34567",
        )

        async with http.ws_connect("/ws") as ws:
            sub = {"type": "candle", "coin": "BTC", "interval": "1m"}
            await ws.send_json({"method": "subscribe", "subscription": sub})
            ack = await ws.receive_json(timeout=5)
            assert ack["channel"] == "subscriptionResponse"
            first = await ws.receive_json(timeout=5)
            assert first == {
                "channel": "candle",
                "data": candle(
                    T0 + DAY + 3 * MINUTE, "1m", "99000", "99000", "99000", "99000", "0.01", 1
                ),
            }
            await produce(
                settings,
                topics.MARKET_EVENTS,
                [("BTC", trade(LAST_BTC_TS + 30_000, 995_000, 50, tid=9))],
            )
            update = await ws.receive_json(timeout=15)
            assert update == {
                "channel": "candle",
                "data": candle(
                    T0 + DAY + 3 * MINUTE, "1m", "99000", "99500", "99500", "99000", "0.0105", 2
                ),
            }
    finally:
        await http.close()
        await gateway.stop()
        assert service.stop() == 0, service.tail()
