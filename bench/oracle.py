"""The oracle: aggregation throughput of the core, and latency from a source tick to the
published index tick through Kafka.

    python -m bench.oracle [--quick] [--bootstrap HOST:PORT] [--rate N] [--seconds S]

Both with 10 sources (weights 3, 2, 2, 1, ...) and 20 markets.

Core: source ticks go into the aggregator one at a time (each one a batch of its own, so
every tick re-evaluates its market: staleness, median, outliers, quorum, breaker), in
round-robin over markets and sources, with prices that wander a few bps.

Latency: the oracle service runs in this process against Kafka (a private broker unless
--bootstrap is given). Every few milliseconds one market's 10 sources all move 0.5%
(beyond the significant-move threshold, inside the outlier band), which makes the
oracle publish that market at once; a consumer of matcher.in takes each index tick whose
price changed and measures the time since those source ticks were handed to the oracle
(and, separately, the oracle's own share: until the records are handed to the producer).
The raw bus is measured first the same way (the same records per second to the same
partitions, produced and consumed with nothing in between), to show what the machine's
Kafka costs on its own. Last line: ``oracle_tick_p99_ms=<p99 latency>``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common import codec, topics
from libs.common.admin import ensure_topics
from libs.common.markets import MarketSpec
from libs.common.schemas import IndexTick, OracleOverride
from libs.common.settings import Settings
from libs.common.topics import partition_for
from libs.localstack import LocalStack
from services.oracle.aggregator import Aggregator, IndexUpdate
from services.oracle.config import ControlConfig, OracleConfig, Rules, SourceRule
from services.oracle.publisher import new_producer
from services.oracle.service import OracleService, wall_clock_ms
from services.oracle.sources.base import QuoteBatch, SourcePrice

MARKETS = [f"M{i:02d}" for i in range(20)]
SOURCES = tuple(
    SourceRule(name=f"s{i}", weight=w) for i, w in enumerate((3, 2, 2, 1, 1, 1, 1, 1, 1, 1))
)
BASE = Decimal("2500")


def market_specs() -> list[MarketSpec]:
    return [
        MarketSpec(
            name=name,
            asset=i,
            sz_decimals=3,
            max_leverage=20,
            default_leverage=10,
            taker_fee_ppm=450,
            maker_fee_ppm=150,
            min_order_usd=10_000_000,
        )
        for i, name in enumerate(MARKETS)
    ]


def markets_toml(path: Path) -> Path:
    lines = []
    for name in MARKETS:
        lines += [
            "[[market]]",
            f'name = "{name}"',
            "sz_decimals = 3",
            "max_leverage = 20",
            "taker_fee_ppm = 450",
            "maker_fee_ppm = 150",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------- core


def core_ticks(count: int) -> list[SourcePrice]:
    """Source ticks 1 ms apart, round-robin over markets and sources, a few bps apart."""
    out = []
    wiggle = [Decimal(d) / 10 for d in (-3, -1, 0, 1, 2, 4, -2, 3, 1, -4)]
    for i in range(count):
        market = MARKETS[(i // len(SOURCES)) % len(MARKETS)]
        source = SOURCES[i % len(SOURCES)].name
        price = BASE + wiggle[(i * 7 + i // 200) % len(wiggle)]
        out.append(SourcePrice(ts=1_700_000_000_000 + i, source=source, market=market, price=price))
    return out


def bench_core(count: int) -> tuple[float, float]:
    """(ticks per second one at a time, ticks per second in per-market batches)."""
    ticks = core_ticks(count)
    agg = Aggregator(Rules(), SOURCES, market_specs())
    gc.collect()
    started = time.perf_counter()
    for tick in ticks:
        agg.advance(tick.ts, (tick,))
    single = count / (time.perf_counter() - started)

    agg = Aggregator(Rules(), SOURCES, market_specs())
    batches = [ticks[i : i + len(SOURCES)] for i in range(0, count, len(SOURCES))]
    started = time.perf_counter()
    for batch in batches:
        agg.advance(batch[-1].ts, batch)
    batched = count / (time.perf_counter() - started)
    return single, batched


# ---------------------------------------------------------------- latency through Kafka


class Probe:
    """Hands market moves to the oracle and times them at the consumer of matcher.in."""

    def __init__(self, service: OracleService) -> None:
        self.service = service
        self.sent: dict[str, deque[tuple[bool, int]]] = {m: deque() for m in MARKETS}
        self.measuring = False
        self.last_px: dict[str, int] = {}
        self.up = dict.fromkeys(MARKETS, False)
        self.latencies_ms: list[float] = []
        # The oracle's own share: from the source ticks to the records handed to the
        # producer (the rest is the bus).
        self.to_publish: dict[str, deque[tuple[bool, int]]] = {m: deque() for m in MARKETS}
        self.published_px: dict[str, int] = {}
        self.handling_ms: list[float] = []
        publish = service.publisher.publish

        async def timed_publish(items: Sequence[IndexUpdate | OracleOverride]) -> None:
            at = time.perf_counter_ns()
            await publish(items)
            for item in items:
                if isinstance(item, IndexUpdate) and self.published_px.get(item.market) != item.px:
                    self.published_px[item.market] = item.px
                    pending = self.to_publish[item.market]
                    if pending:
                        measured, sent = pending.popleft()
                        if measured:
                            self.handling_ms.append((at - sent) / 1e6)

        service.publisher.publish = timed_publish  # type: ignore[method-assign]

    def move(self, market: str) -> None:
        """All sources of ``market`` move 0.5%, up or back down."""
        self.up[market] = not self.up[market]
        price = BASE * Decimal("1.005") if self.up[market] else BASE
        now = wall_clock_ms()
        batch = QuoteBatch(
            now=now,
            prices=tuple(
                SourcePrice(ts=now, source=s.name, market=market, price=price) for s in SOURCES
            ),
        )
        sent = (self.measuring, time.perf_counter_ns())
        self.sent[market].append(sent)
        self.to_publish[market].append(sent)
        self.service.emit(batch)

    def received(self, tick: IndexTick, at_ns: int) -> None:
        if self.last_px.get(tick.market) == tick.px:
            return  # a cadence tick, not a move
        self.last_px[tick.market] = tick.px
        pending = self.sent[tick.market]
        if pending:
            measured, sent = pending.popleft()
            if measured:
                self.latencies_ms.append((at_ns - sent) / 1e6)


async def consume(settings: Settings, probe: Probe, ready: asyncio.Event) -> None:
    name = settings.topics.name(topics.MATCHER_IN)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    parts = [TopicPartition(name, p) for p in range(settings.topics.partitions(topics.MATCHER_IN))]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for part in parts:
        await consumer.position(part)
    ready.set()
    decoder = codec.decoder(topics.MATCHER_IN)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            at = time.perf_counter_ns()
            for records in batches.values():
                for record in records:
                    tick = decoder.decode(record.value)
                    if isinstance(tick, IndexTick):
                        probe.received(tick, at)
    finally:
        await consumer.stop()


async def bench_latency(
    settings: Settings, seconds: float, rate: int
) -> tuple[list[float], list[float]]:
    """(source tick -> index tick consumed, source tick -> records handed to Kafka)."""
    # The live path: wall clock and cadence timer, as with the exchange adapters.
    config = OracleConfig(feed="exchanges", sources=SOURCES, control=ControlConfig(port=0))
    service = OracleService(settings, config, sources=[])
    probe = Probe(service)
    stop = asyncio.Event()
    ready = asyncio.Event()
    runner = asyncio.create_task(service.run(stop))
    reader = asyncio.create_task(consume(settings, probe, ready))
    await ready.wait()
    loop = asyncio.get_running_loop()
    try:
        # Warm up at the same rate (connections, metadata, leaders), then measure.
        for measuring, phase in ((False, min(1.0, seconds)), (True, seconds)):
            probe.measuring = measuring
            began = loop.time()
            i = 0
            while loop.time() - began < phase:
                probe.move(MARKETS[i % len(MARKETS)])
                i += 1
                await asyncio.sleep(max(0.0, began + i / rate - loop.time()))
        for _ in range(200):  # the last moves: up to 10 s to show up
            if not any(probe.sent.values()):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await runner
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    missing = sum(len(p) for p in probe.sent.values())
    if missing:
        print(f"warning: {missing} moves never showed up as index ticks")
    return probe.latencies_ms, probe.handling_ms


async def bench_raw_bus(settings: Settings, seconds: float, rate: int, size: int) -> list[float]:
    """The oracle's traffic with no oracle: for each move, one timed record to the
    market's partition of one topic and a companion to the same partition of another
    (as the index tick and the public price are), produced the same way and consumed
    and timed the same way. What the bus itself costs on this machine."""
    name = settings.topics.name(topics.MARKET_EVENTS)
    companion = settings.topics.name(topics.ACCOUNT_EVENTS)
    producer = new_producer(settings)
    await producer.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    parts = [
        TopicPartition(name, p) for p in range(settings.topics.partitions(topics.MARKET_EVENTS))
    ]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for part in parts:
        await consumer.position(part)
    latencies: list[float] = []

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            at = time.perf_counter_ns()
            for records in batches.values():
                for record in records:
                    sent = int.from_bytes(record.value[:8], "big")
                    latencies.append((at - sent) / 1e6)

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    padding = b"." * max(0, size - 8)
    try:
        for warm in (True, False):
            latencies.clear()
            began = loop.time()
            i = 0
            while loop.time() - began < (0.5 if warm else seconds):
                market = MARKETS[i % len(MARKETS)]
                partition = partition_for(market, len(parts))
                stamp = time.perf_counter_ns().to_bytes(8, "big")
                await producer.send(name, stamp + padding, key=market.encode(), partition=partition)
                await producer.send(companion, padding, key=market.encode(), partition=partition)
                i += 1
                await asyncio.sleep(max(0.0, began + i / rate - loop.time()))
            await asyncio.sleep(0.3)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    return latencies


def summary(latencies: list[float]) -> str:
    return (
        f"{len(latencies):,} samples, p50 {percentile(latencies, 0.5):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> float:
    count = args.ticks or (30_000 if args.quick else 1_000_000)
    single, batched = bench_core(count)
    print(
        f"core, {len(SOURCES)} sources x {len(MARKETS)} markets, {count:,} source ticks: "
        f"{single:,.0f} ticks/s one at a time, {batched:,.0f} ticks/s in batches of "
        f"{len(SOURCES)}"
    )
    stack = None
    work = Path(tempfile.mkdtemp(prefix="bench-oracle-"))
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        stack = LocalStack.private(work)
        started = time.perf_counter()
        stack.start()  # Kafka, and Redis for the operator overrides the oracle keeps
        bootstrap = stack.bootstrap
        print(f"private Kafka {bootstrap} (cold start {time.perf_counter() - started:.2f} s)")
    seconds = args.seconds or (3.0 if args.quick else 30.0)
    try:
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=stack.redis_url if stack else args.redis,
            namespace=f"bench{uuid.uuid4().hex[:8]}.",
            markets_file=markets_toml(work / "markets.toml"),
        )
        await ensure_topics(settings)
        raw = await bench_raw_bus(settings, seconds / 2, args.rate, size=230)
        latencies, handling = await bench_latency(settings, seconds, args.rate)
    finally:
        if stack:
            stack.stop()
    print(
        f"raw bus, {args.rate} timed records/s of 230 bytes (+ as many companions), "
        f"produce -> consume: {summary(raw)}"
    )
    print(
        f"oracle, {args.rate} market moves/s ({args.rate * len(SOURCES):,} source ticks/s), "
        f"source tick -> index tick on matcher.in: {summary(latencies)}"
    )
    print(f"  of which in the oracle (source tick -> records handed to Kafka): {summary(handling)}")
    return percentile(latencies, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under 30 s")
    parser.add_argument("--ticks", type=int, default=0, help="source ticks for the core")
    parser.add_argument("--seconds", type=float, default=0, help="latency phase length")
    parser.add_argument("--rate", type=int, default=200, help="market moves per second")
    parser.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0", help="with --bootstrap")
    p99 = uvloop.run(run(parser.parse_args()))
    print(f"oracle_tick_p99_ms={p99:.2f}")


if __name__ == "__main__":
    main()
