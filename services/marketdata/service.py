"""The marketdata service: a faust-streaming app over the public streams.

Two agents, each with tables co-partitioned with its input and backed by changelog
topics (exactly-once: table changes, outputs and input offsets commit together):

- market.events (by market): candles at every interval and the 24-hour window, written
  to Redis for the gateway after each trade or mark;
- account.events (by account): each account's daily maker and taker volume; when the
  partition's event time enters a new UTC day, every account of the partition whose
  tier changed gets a ``FeeTier`` command in risk.in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any, cast

import faust
import msgspec
import redis.asyncio as aioredis
from prometheus_client import Counter

from libs.common import codec, metrics, topics
from libs.common.schemas import AccountFill, FeeTier, MarkPrice, Trade
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.marketdata import changelogs
from services.marketdata.candles import INTERVALS, Candle, as_row, fold, from_row
from services.marketdata.daystats import DayStats, MinuteBucket, advance, record_trade
from services.marketdata.delivery import commit_only_delivered
from services.marketdata.fees import (
    DAY_MS,
    AccountVolume,
    FeeSchedule,
    add_fill,
    load_schedule,
    roll_day,
)
from services.marketdata.views import MarketDataViews

log = logging.getLogger(__name__)

EVENTS = Counter(
    "exchange_marketdata_events_total",
    "Records the marketdata service applied, by topic",
    ["topic"],
    registry=metrics.REGISTRY,
)
FEE_TIERS = Counter(
    "exchange_marketdata_fee_tiers_total",
    "FeeTier commands sent to risk",
    registry=metrics.REGISTRY,
)


class TableBuckets:
    """One market's minute buckets inside the shared buckets table."""

    def __init__(self, table: Any, market: str) -> None:
        self.table = table
        self.market = market

    def _key(self, minute: int) -> str:
        return f"{self.market}:{minute}"

    def get(self, minute: int) -> MinuteBucket | None:
        row = self.table.get(self._key(minute))
        return msgspec.convert(row, MinuteBucket) if row is not None else None

    def pop(self, minute: int) -> MinuteBucket | None:
        bucket = self.get(minute)
        if bucket is not None:
            del self.table[self._key(minute)]
        return bucket

    def __setitem__(self, minute: int, bucket: MinuteBucket) -> None:
        self.table[self._key(minute)] = msgspec.to_builtins(bucket)


async def send_in_transaction(
    app: faust.App,
    source: tuple[str, int],
    topic: str,
    partition: int,
    key: bytes,
    value: bytes,
) -> None:
    """Produce in the transaction of the source partition being processed.

    faust's own ``Topic.send`` picks a transaction by the destination topic's partition
    group, so a command to a topic we do not consume would commit apart from the table
    changes and input offsets that caused it; this sends through the producer that also
    commits ``source``'s offsets and changelog records, as faust's commit names it."""
    group = app.assignor.group_for_topic(source[0])
    transactional_id = f"{app.conf.id}-{group}-{source[1]}"
    await app.consumer.transactions.producer.send(
        topic, key, value, partition, None, None, transactional_id=transactional_id
    )


async def _stable_highwaters(self: Any, partitions: list[Any]) -> Any:
    """End offsets as a read_committed ListOffsets answers them (the last stable offset)."""
    return await self._ensure_consumer().end_offsets(partitions)


def use_listed_highwaters() -> None:
    """Work around faust-streaming 0.15.3 recovery under exactly-once.

    With transactions, faust takes a changelog's highwater from the consumer's cached last
    stable offset, which is unknown until that partition has been fetched once; at start
    the cache is often empty, faust then believes every changelog is empty and skips
    recovery while the input offsets are committed, losing the tables. Asking the broker
    (ListOffsets, read_committed) gives the same value without the race."""
    from faust.transport.drivers import aiokafka as driver

    driver.AIOKafkaConsumerThread._highwaters = _stable_highwaters  # type: ignore[method-assign]


async def changelog_sent(app: faust.App) -> None:
    """Hand the table changes of the record just applied to the transactional producers.

    faust buffers changelog records and commits input offsets on a timer without
    draining that buffer, so a commit could carry a record's offset while its table
    changes wait for the next transaction; a crash then loses them (or, the other way
    round, applies a record twice). Flushing before the record is acknowledged keeps
    both in one transaction."""
    await app.producer.flush()


def brokers(settings: Settings) -> list[str]:
    return [f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")]


def build_app(settings: Settings, schedule: FeeSchedule | None = None) -> faust.App:
    """The faust app with its topics, tables and agents, configured from ``settings``."""
    schedule = schedule or load_schedule()
    use_listed_highwaters()
    commit_only_delivered()
    names = settings.topics
    app = faust.App(
        f"{settings.namespace}marketdata",
        broker=brokers(settings),
        store="memory://",
        # Faust keeps a data directory even for in-memory tables; never in the working
        # directory (the repository, or a read-only root filesystem in a container).
        datadir=os.path.join(tempfile.gettempdir(), f"{settings.namespace}marketdata-data"),
        processing_guarantee="exactly_once",
        web_enabled=False,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        # A rebalance or a stop must not wait for the records in flight to be acked:
        # an agent that crashed or waits (for table recovery, say) never acks its record,
        # and faust then waits without end ("Wait for streams..."), past the stop's grace
        # period. Not waiting is safe here: a record's effects and its ``applied`` offset
        # commit in one transaction, so a record re-delivered after the move or the
        # restart is recognized (``first_time``) and applied once.
        stream_wait_empty=False,
    )

    def topic(logical: str) -> Any:
        return app.topic(
            names.name(logical),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=names.partitions(logical),
        )

    market_events = topic(topics.MARKET_EVENTS)
    account_events = topic(topics.ACCOUNT_EVENTS)
    risk_partitions = names.partitions(topics.RISK_IN)
    account_partitions = names.partitions(topics.ACCOUNT_EVENTS)
    market_parts = names.partitions(topics.MARKET_EVENTS)

    candles = app.Table("candles", partitions=market_parts)
    day_stats = app.Table("day_stats", partitions=market_parts)
    minute_buckets = app.Table("minute_buckets", partitions=market_parts)
    volumes = app.Table("volumes", partitions=account_partitions)
    fee_days = app.Table("fee_days", partitions=account_partitions)
    applied = app.Table("applied", partitions=max(market_parts, account_partitions))

    market_decoder = codec.decoder(topics.MARKET_EVENTS)
    account_decoder = codec.decoder(topics.ACCOUNT_EVENTS)
    state: dict[str, MarketDataViews] = {}

    def views() -> MarketDataViews:
        if "views" not in state:
            state["views"] = MarketDataViews(aioredis.Redis.from_url(settings.redis_url), settings)
        return state["views"]

    async def first_time(event: Any) -> bool:
        """Mark a record applied; False when the tables already hold its effects.

        faust may deliver a record again although the tables (restored from their
        changelogs, or kept in memory) already hold its effects: it resumes fetching
        while it restores, then seeks back to the committed offsets. The next offset per
        input partition lives in a table, changed in the same transaction as the effects,
        so each record changes state exactly once."""
        await cast(Any, app.tables).recovery.completed.wait()
        key = f"{event.message.topic}:{event.message.partition}"
        offset = int(event.message.offset)
        if offset < (applied.get(key) or 0):
            return False
        applied[key] = offset + 1
        return True

    def apply_trade(trade: Trade) -> tuple[list[tuple[str, Candle]], DayStats]:
        changed: list[tuple[str, Candle]] = []
        for interval, interval_ms in INTERVALS.items():
            key = f"{trade.market}:{interval}"
            row = candles.get(key)
            candle = fold(from_row(row) if row else None, interval_ms, trade.ts, trade.px, trade.sz)
            if candle is not None:
                candles[key] = as_row(candle)
                changed.append((interval, candle))
        stats = record_trade(
            _stats(day_stats.get(trade.market)),
            TableBuckets(minute_buckets, trade.market),
            trade.ts,
            trade.px,
            trade.sz,
        )
        day_stats[trade.market] = msgspec.to_builtins(stats)
        return changed, stats

    def apply_mark(mark: MarkPrice) -> DayStats | None:
        row = day_stats.get(mark.market)
        if row is None:
            return None
        stats = advance(_stats(row), TableBuckets(minute_buckets, mark.market), mark.ts)
        day_stats[mark.market] = msgspec.to_builtins(stats)
        return stats

    @app.agent(market_events)
    async def market_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                message = market_decoder.decode(event.value)
            except msgspec.DecodeError:
                log.warning("undecodable market event at %s", event.message.offset)
                continue
            if not isinstance(message, Trade | MarkPrice) or not await first_time(event):
                continue
            # Tables first, then their changelog records into the transaction, then the
            # views (which only repeat table state, so a replay rewrites them unchanged).
            if isinstance(message, Trade):
                changed, stats = apply_trade(message)
                await changelog_sent(app)
                for interval, candle in changed:
                    await views().write_candle(message.market, interval, candle)
                await views().write_day_stats(message.market, message.ts, stats)
            else:
                marked = apply_mark(message)
                await changelog_sent(app)
                if marked is not None:
                    await views().write_day_stats(message.market, message.ts, marked)
            EVENTS.labels(topics.MARKET_EVENTS).inc()

    def roll_partition(partition: int, ts: int) -> list[FeeTier]:
        """Start a new day of fee tiers for one account.events partition: the commands for
        the accounts whose tier changed."""
        clock_key = f"p{partition}"
        today = ts // DAY_MS
        last = fee_days.get(clock_key)
        if last is not None and today <= last:
            return []
        fee_days[clock_key] = today
        if last is None:
            return []
        commands: list[FeeTier] = []
        accounts = sorted(a for a in volumes if partition_for(a, account_partitions) == partition)
        for account in accounts:
            volume = msgspec.convert(volumes[account], AccountVolume)
            rolled, tier = roll_day(volume, today, schedule)
            if rolled.is_empty():
                del volumes[account]
            else:
                volumes[account] = msgspec.to_builtins(rolled)
            if tier is not None:
                commands.append(
                    FeeTier(
                        ts=today * DAY_MS,
                        account=account,
                        taker_ppm=tier.taker_ppm,
                        maker_ppm=tier.maker_ppm,
                    )
                )
        return commands

    @app.agent(account_events)
    async def account_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                message = account_decoder.decode(event.value)
            except msgspec.DecodeError:
                log.warning("undecodable account event at %s", event.message.offset)
                continue
            if not await first_time(event):
                continue
            partition = int(event.message.partition)
            commands = roll_partition(partition, message.ts)
            if isinstance(message, AccountFill):
                row = volumes.get(message.account)
                volume = msgspec.convert(row, AccountVolume) if row else AccountVolume()
                volumes[message.account] = msgspec.to_builtins(
                    add_fill(volume, message.ts, message.px * message.sz, message.is_maker)
                )
            for command in commands:
                await send_in_transaction(
                    app,
                    (names.name(topics.ACCOUNT_EVENTS), partition),
                    names.name(topics.RISK_IN),
                    partition_for(command.account, risk_partitions),
                    command.account.encode(),
                    codec.encode(command),
                )
                FEE_TIERS.inc()
            await changelog_sent(app)
            EVENTS.labels(topics.ACCOUNT_EVENTS).inc()

    async def heartbeat() -> None:
        """Beat /health while the worker's loop runs."""
        metrics.HEALTH.beat(recovering=not cast(Any, app.tables).recovery.completed.is_set())

    cast(Any, app).timer(1.0)(heartbeat)

    async def commit_before_revoke(sender: Any, *_: Any, **__: Any) -> None:
        """Commit what was applied before faust stops the revoked partitions' producers:
        stopping aborts their open transactions while the in-memory tables keep the
        changes, so the records would be applied twice when processed again."""
        await sender.consumer.commit()

    app.on_partitions_revoked.connect(cast(Any, commit_before_revoke))

    return app


def _stats(row: Any) -> DayStats:
    return msgspec.convert(row, DayStats) if row is not None else DayStats()


# How long a stop on SIGTERM may take before the worker exits on its own (a supervisor
# would kill it soon after); every effect is transactional, so nothing is lost either way.
STOP_TIMEOUT_S = 10.0


class BoundedStopWorker(faust.Worker):
    """A faust worker whose stop on a signal is bounded: if faust's shutdown (its
    services stopping one after the other, a commit or a transaction end waiting on the
    broker) has not finished ``STOP_TIMEOUT_S`` after the signal, it says so and exits."""

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if not self._signal_stop_time:  # the first signal: arm the watchdog once
            timer = threading.Timer(STOP_TIMEOUT_S, _stop_overdue, args=(time.monotonic(),))
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signum)


def _stop_overdue(since: float) -> None:
    """Runs in the watchdog thread: the event loop may be the one stuck."""
    log.error("stop still not finished %.1f s after the signal; exiting", time.monotonic() - since)
    _exit_now(1)


def prepare(app: faust.App, settings: Settings) -> None:
    """The changelog topics, before faust starts: on an event loop of their own (faust
    makes and runs its own), logged in faust's format (faust sets logging up later)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")
    )
    logger = logging.getLogger(changelogs.__name__)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    setup = asyncio.new_event_loop()
    try:
        setup.run_until_complete(changelogs.prepare_changelogs(app, settings))
    finally:
        setup.close()
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def main() -> None:
    settings = Settings()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    app = build_app(settings)
    prepare(app, settings)
    worker = BoundedStopWorker(
        app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        # faust has stopped every service and closed its loop: the transactions are
        # committed or aborted. What would follow is the interpreter's own teardown
        # (joining the threads faust and aiokafka leave behind, collecting their
        # objects), measured at 5-13 s on a loaded machine; nothing there needs to run.
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        log.info("stopped", extra={"code": code})
        _exit_now(code)


def _exit_now(code: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
