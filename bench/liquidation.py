"""How fast a crash is noticed: from one mark event that puts N accounts under
maintenance at once to each account's first liquidation order at the matcher.

    python -m bench.liquidation [--quick] [--accounts N] [--kafka] [--kafka-accounts M]

Scenario: N longs of 0.01 BTC bought at 100,000 at 50x from 40 shorts, each with a
slightly different cushion, a market maker's bids under the market, a funded insurance
fund and vault. Then one index tick at 98,800: the matcher marks there, and every long
is below maintenance but above the backstop threshold (2/3 of it), so each case's first
move is a reduce-only IOC order into the book.

Per-account latency = from the start of the mark event (the index tick handed to the
matcher) to that account's first liquidation ``NewOrder`` processed by the matcher.

- In-process (always): risk, matcher and liquidator cores on every partition, wired by
  the in-memory FIFO bus (``bench.liquidator``): the decisions and messages, no
  transport, one thread doing the work of all twelve partitions in turn. The garbage
  collector is set up as the services set it up (``libs/common/runtime/heap.py``):
  larger thresholds from the start, and the state built by the setup frozen before the
  mark, as a service freezes its state once restored and replayed.
- ``--kafka``: risk, matcher and liquidator as processes over Kafka and Redis (a
  private stack unless ``--bootstrap``); the tick is produced to matcher.in and the
  latency is the time until a read_committed consumer of matcher.in holds the order
  (what the matcher's own consumer sees), so it includes every Kafka hop and
  transaction commit on the way: tick -> matcher -> risk.in -> risk -> liquidations ->
  liquidator -> matcher.in.

Reported: p50/p99/max latency, the time until every case ended (recovered or closed)
and cases handled per second over it. Last line: ``liquidation_detect_p99_ms=<x>``,
the in-process p99 with N accounts (10,000 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.liquidator import MARKETS, START_PX, USD, exchange, order
from libs.common import codec, topics
from libs.common.admin import ensure_topics
from libs.common.runtime import SnapshotStore, heap
from libs.common.schemas import (
    Deposit,
    IndexTick,
    LiquidationStep,
    LiquidationTrigger,
    NewOrder,
    UpdateLeverage,
)
from libs.common.settings import Settings
from libs.common.state import (
    ACCOUNT_PREFIX,
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    L2_PREFIX,
    AccountState,
    L2View,
    is_liquidation_order,
)
from libs.common.topics import partition_for
from libs.localstack import LocalStack
from libs.localstack.procs import ServiceProcess

LOT = 1_000  # 0.01 BTC
CRASH_PX = 988_000  # 98,800: every long between 2/3 of maintenance and maintenance
LADDER_TOP = 987_900
FINAL = ("recovered", "closed")


@dataclass
class Scenario:
    """The inputs, in the order they must take effect, in three phases: accounts and the
    shorts' asks, the longs' buys, the maker's bids."""

    longs: list[str]
    accounts: list[tuple[str, Any]]
    buys: list[tuple[str, Any]]
    bids: list[tuple[str, Any]]
    ladder_lots: int


def scenario(accounts: int, seed: int) -> Scenario:
    rng = random.Random(seed)
    longs = [f"0x{rng.getrandbits(160):040x}" for _ in range(accounts)]
    shorts = [f"0x{rng.getrandbits(160):040x}" for _ in range(40)]
    maker = f"0x{rng.getrandbits(160):040x}"
    setup: list[tuple[str, Any]] = [
        (INSURANCE_FUND_ACCOUNT, Deposit(ts=1, account=INSURANCE_FUND_ACCOUNT, usd=10**6 * USD)),
        (BACKSTOP_VAULT_ACCOUNT, Deposit(ts=1, account=BACKSTOP_VAULT_ACCOUNT, usd=10**8 * USD)),
        (maker, Deposit(ts=1, account=maker, usd=10**9 * USD)),
    ]
    total = accounts * LOT
    for n, who in enumerate(shorts):
        sz = total // len(shorts) + (1 if n < total % len(shorts) else 0)
        setup.append((who, Deposit(ts=1, account=who, usd=sz * START_PX // 3)))
        setup.append((who, order(who, False, START_PX, sz)))
    buys: list[tuple[str, Any]] = []
    for who in longs:
        # $20 of initial margin, the $0.45 taker fee and a cushion of $0-1.50: equity
        # $8-9.50 at 98,800 against $9.88 of maintenance (2/3 of it is $6.59)
        cash = 20_450_000 + rng.randint(0, 150) * 10_000
        setup.append((who, Deposit(ts=1, account=who, usd=cash)))
        change = UpdateLeverage(ts=1, account=who, market="BTC", leverage=50, is_cross=True)
        setup.append((who, change))
        buys.append((who, order(who, True, START_PX, LOT, "Ioc")))
    # the maker: 90 levels $10 apart under the crash price, 1.5x the longs in all
    per_level = max(LOT, total * 3 // 2 // 90)
    bids = [(maker, order(maker, True, LADDER_TOP - n * 100, per_level)) for n in range(90)]
    return Scenario(longs, setup, buys, bids, per_level * 90)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, latencies: list[float], cases: int, finished_s: float) -> float:
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"{label}: {len(latencies)} accounts under maintenance at one mark; first liquidation "
        f"order at the matcher: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms"
    )
    print(
        f"{label}: {cases} cases ended in {finished_s * 1000:.0f} ms after the mark: "
        f"{cases / finished_s:,.0f} cases/s"
    )
    return p99


# ---------------------------------------------------------------- in-process


def in_process(accounts: int, seed: int) -> float:
    plan = scenario(accounts, seed)
    heap.tune()
    bus = exchange()
    started = time.perf_counter()
    bus.publish(topics.MATCHER_IN, "BTC", IndexTick(ts=1, market="BTC", px=START_PX))
    for phase in (plan.accounts, plan.buys, plan.bids):
        for key, message in phase:
            bus.publish(topics.RISK_IN, key, message)
    print(f"setup: {accounts} longs, 40 shorts, a maker in {time.perf_counter() - started:.1f} s")
    bus.log.clear()
    heap.settle()
    watch = Stopwatch(accounts)
    for (topic, _), driver in bus.drivers.items():
        setattr(driver, "send", watch.wrap(driver.send, topic))  # noqa: B010
    t0 = time.perf_counter()
    bus.publish(topics.MATCHER_IN, "BTC", IndexTick(ts=2_000, market="BTC", px=CRASH_PX))
    finished = time.perf_counter() - t0
    first = watch.first
    window = max(first.values()) - t0
    spent = [
        f"{name} {watch.busy.get(topic, 0.0) * 1e6 / accounts:.0f} us"
        for name, topic in (
            ("risk", topics.RISK_IN),
            ("liquidator", topics.LIQUIDATIONS),
            ("matcher", topics.MATCHER_IN),
        )
    ]
    print(
        f"in-process, core time per account until every first order: {', '.join(spent)} "
        f"(of {window * 1e6 / accounts:.0f} us)"
    )
    triggers = sum(isinstance(o.message, LiquidationTrigger) for o in bus.log)
    ended = sum(
        isinstance(o.message, LiquidationStep) and o.message.stage in FINAL for o in bus.log
    )
    print(f"in-process: {triggers} triggers, {len(bus.log):,} records, {ended} cases ended")
    latencies = [(first[who] - t0) * 1000 for who in plan.longs if who in first]
    assert len(latencies) == accounts, f"only {len(latencies)} of {accounts} got an order"
    return report("in-process", latencies, ended, finished)


class Stopwatch:
    """Wraps each driver's ``send``: adds up each service's time until every account has
    its first liquidation order, and notes when the matcher processed each first order."""

    def __init__(self, accounts: int) -> None:
        self.accounts = accounts
        self.first: dict[str, float] = {}
        self.busy: dict[str, float] = {}

    def wrap(self, send: Any, topic: str) -> Any:
        def timed_send(message: msgspec.Struct, *, live: bool = True) -> Any:
            began = time.perf_counter()
            outputs = send(message, live=live)
            done = time.perf_counter()
            if len(self.first) < self.accounts:
                self.busy[topic] = self.busy.get(topic, 0.0) + done - began
            if isinstance(message, NewOrder) and is_liquidation_order(message.oid):
                self.first.setdefault(message.account, done)
            return outputs

        return timed_send


# ---------------------------------------------------------------- through Kafka


async def through_kafka(args: argparse.Namespace) -> float:
    stack = None
    if args.bootstrap:
        bootstrap, redis_url = args.bootstrap, args.redis
    else:
        stack = LocalStack.private(Path(tempfile.mkdtemp(prefix="bench-liquidation-")))
        stack.start()
        bootstrap, redis_url = stack.bootstrap, stack.redis_url
    settings = Settings(
        kafka_bootstrap=bootstrap,
        redis_url=redis_url,
        namespace=f"benchl{uuid.uuid4().hex[:8]}.",
        batch_target_ms=args.batch_target_ms,
    )
    await ensure_topics(settings)
    logs = Path(tempfile.mkdtemp(prefix="bench-liquidation-logs-"))
    procs = [ServiceProcess(name, settings, logs) for name in ("risk", "matcher", "liquidator")]
    for proc in procs:
        proc.start()
    try:
        return await _measure(settings, args.kafka_accounts, args.seed, procs)
    finally:
        for proc in procs:
            proc.stop()
        if stack:
            stack.stop()


async def _measure(
    settings: Settings, accounts: int, seed: int, procs: list[ServiceProcess]
) -> float:
    import redis.asyncio as aioredis

    plan = scenario(accounts, seed)
    redis = aioredis.Redis.from_url(settings.redis_url)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()

    async def send(topic: str, items: list[tuple[str, Any]]) -> None:
        name, count = settings.topics.name(topic), settings.topics.partitions(topic)
        futures = [
            await producer.send(
                name, codec.encode(m), key=k.encode(), partition=partition_for(k, count)
            )
            for k, m in items
        ]
        await asyncio.gather(*futures)

    async def until(what: str, check: Any, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not await check():
            for proc in procs:
                assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.1)

    matcher = SnapshotStore(redis, settings.namespace, "matcher")

    async def book() -> L2View | None:
        raw = await redis.hget(matcher.state_key(partition_for("BTC", 4)), L2_PREFIX + "BTC")
        return msgspec.msgpack.decode(raw, type=L2View) if isinstance(raw, bytes) else None

    async def asks() -> bool:
        view = await book()
        return view is not None and sum(sz for _, sz, _ in view.asks) == accounts * LOT

    async def longs_filled() -> bool:
        store = SnapshotStore(redis, settings.namespace, "risk")
        count = 0
        for p in range(4):
            _, state = await store.load(p)
            for key, raw in state.items():
                if key.startswith(ACCOUNT_PREFIX):
                    acct = msgspec.msgpack.decode(raw, type=AccountState)
                    pos = acct.positions.get("BTC")
                    count += pos is not None and pos.szi == LOT
        return count == accounts

    async def ladder() -> bool:
        view = await book()
        return (
            view is not None
            and not view.asks
            and view.bids[:1] == [(LADDER_TOP, plan.bids[0][1].sz, 1)]
        )

    try:
        started = time.perf_counter()
        await send(topics.MATCHER_IN, [("BTC", IndexTick(ts=1, market="BTC", px=START_PX))])
        await send(topics.RISK_IN, plan.accounts)
        await until("the shorts' asks", asks)
        await send(topics.RISK_IN, plan.buys)
        await until("the longs' fills", longs_filled)
        await send(topics.RISK_IN, plan.bids)
        await until("the maker's bids", ladder)
        print(f"setup through Kafka: {accounts} longs in {time.perf_counter() - started:.1f} s")
        await asyncio.sleep(1.0)  # let the services go idle
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        parts = [
            TopicPartition(settings.topics.name(topic), p)
            for topic in (topics.MATCHER_IN, topics.LIQUIDATION_AUDIT)
            for p in range(4)
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        first: dict[str, float] = {}
        ends: list[float] = []
        decoders = {
            settings.topics.name(topics.MATCHER_IN): codec.decoder(topics.MATCHER_IN),
            settings.topics.name(topics.LIQUIDATION_AUDIT): codec.decoder(topics.LIQUIDATION_AUDIT),
        }
        t0 = time.perf_counter()
        await send(topics.MATCHER_IN, [("BTC", IndexTick(ts=2_000, market="BTC", px=CRASH_PX))])
        deadline = time.monotonic() + 300
        while (len(first) < accounts or len(ends) < accounts) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for tp, records in batches.items():
                decoder = decoders[tp.topic]
                for r in records:
                    message = decoder.decode(r.value)
                    if isinstance(message, NewOrder) and is_liquidation_order(message.oid):
                        first.setdefault(message.account, now)
                    elif isinstance(message, LiquidationStep) and message.stage in FINAL:
                        ends.append(now - t0)
        await consumer.stop()
        latencies = [(first[who] - t0) * 1000 for who in plan.longs if who in first]
        assert len(latencies) == accounts, f"only {len(latencies)} of {accounts} got an order"
        print(
            f"through Kafka: cases ended, half by {percentile(ends, 0.5) * 1000:.0f} ms, "
            f"90% by {percentile(ends, 0.9) * 1000:.0f} ms"
        )
        return report("through Kafka", latencies, len(ends), max(ends))
    finally:
        await producer.stop()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 accounts in-process")
    parser.add_argument("--accounts", type=int, default=0, help="in-process (10,000)")
    parser.add_argument("--kafka", action="store_true", help="also through the services")
    parser.add_argument("--kafka-accounts", type=int, default=1_000)
    parser.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch-target-ms",
        type=float,
        default=Settings().batch_target_ms,
        help="the services' batch latency target (EXCHANGE_BATCH_TARGET_MS)",
    )
    args = parser.parse_args()
    accounts = args.accounts or (2_000 if args.quick else 10_000)
    assert MARKETS.by_name("BTC").sz_decimals == 5, "the scenario assumes BTC lots of 1e-5"
    p99 = in_process(accounts, args.seed)
    if args.kafka:
        import uvloop

        uvloop.run(through_kafka(args))
    print(f"liquidation_detect_p99_ms={p99:.1f}")


if __name__ == "__main__":
    main()
