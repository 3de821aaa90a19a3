"""What the marketdata service publishes in Redis for the gateway: candles and 24-hour
statistics. Writes repeat the table state after each event, so replays are harmless."""

from __future__ import annotations

from typing import cast

import msgspec
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.schemas import CandleView, DayStatsView, candles_key, day_stats_key
from libs.common.settings import Settings
from libs.common.state import MARKET_CTX_PREFIX, MarketContext
from libs.common.topics import partition_for
from services.marketdata.candles import INTERVALS, Candle
from services.marketdata.daystats import DayStats

CANDLES_KEPT = 5000  # candleSnapshot answers at most this many per request, as Hyperliquid
_ENCODER = msgspec.msgpack.Encoder()
_CTX = msgspec.msgpack.Decoder(MarketContext)


class MarketDataViews:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.namespace = settings.namespace
        self.matcher = SnapshotStore(redis, settings.namespace, "matcher")
        self.matcher_partitions = settings.topics.partitions(topics.MATCHER_IN)

    async def write_candle(self, market: str, interval: str, candle: Candle) -> None:
        view = CandleView(
            market=market,
            interval=interval,
            t=candle.t,
            close_t=candle.t + INTERVALS[interval] - 1,
            o=candle.o,
            h=candle.h,
            low=candle.low,
            c=candle.c,
            v=candle.v,
            n=candle.n,
        )
        key = candles_key(self.namespace, market, interval)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, candle.t, candle.t)
            pipe.zadd(key, {_ENCODER.encode(view): candle.t})
            pipe.zremrangebyrank(key, 0, -CANDLES_KEPT - 1)
            await pipe.execute()

    async def open_interest(self, market: str) -> int:
        """The matcher's committed open interest of a market (lots, one side)."""
        key = self.matcher.state_key(partition_for(market, self.matcher_partitions))
        raw = cast(bytes | None, await self.redis.hget(key, MARKET_CTX_PREFIX + market))
        return _CTX.decode(raw).open_interest if raw else 0

    async def write_day_stats(self, market: str, ts: int, stats: DayStats) -> None:
        view = DayStatsView(
            market=market,
            ts=ts,
            day_ntl_vlm=stats.ntl,
            prev_day_px=stats.day_px,
            open_interest=await self.open_interest(market),
        )
        await self.redis.hset(day_stats_key(self.namespace), market, _ENCODER.encode(view))
