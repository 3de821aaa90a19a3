"""The matcher core alone, then the matcher service through Kafka.

    python -m bench.matcher [--quick] [--ops N] [--bootstrap HOST:PORT --redis URL]

A mixed flow in the spirit of exchange-core's benchmark: mostly modifies and cancels,
some GTC and IOC orders, a few percent of operations trade; about 1,000 resting orders
over hundreds of price levels; 1,000 accounts. The flow is generated once against a
scratch engine (so every cancel and modify names a live order), then replayed on a
fresh core: once for throughput, once timing every operation for its latency. Then the
cost of persisting a one-order batch with 1,000 and 10,000 orders resting.
The hot modules run compiled when built (``python -m libs.common.compile``, done by
deploy/local/bootstrap.sh); the output says which ran. Last line:
``matcher_ops_per_sec=<core ops/s>``.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import uvloop

from bench.bus import Payload, produce_all, run_processor
from libs.common import codec, native, topics
from libs.common.admin import ensure_topics
from libs.common.markets import MarketRegistry, load_markets
from libs.common.runtime import Context
from libs.common.schemas import CancelRequest, IndexTick, ModifyRequest, NewOrder
from libs.common.settings import Settings
from libs.common.topics import Topics
from libs.localstack import LocalStack
from services.matcher.book import RestingOrder
from services.matcher.engine import MatcherCore

MID = 1_000_000  # BTC at 100,000.0
SPREAD_LEVELS = 300
TARGET_RESTING = 1_000


def generate(ops: int, markets: MarketRegistry, seed: int = 1) -> list[msgspec.Struct]:
    """A reproducible flow whose cancels and modifies always name a live order."""
    rng = random.Random(seed)
    accounts = [f"0x{i:040x}" for i in range(1_000)]
    scratch = MatcherCore(markets, 0)
    ctx = Context(Topics(""), topics.MATCHER_IN, 0)
    flow: list[msgspec.Struct] = [IndexTick(ts=1, market="BTC", px=MID)]
    scratch.apply(flow[0], ctx.at(0, live=False))
    oid = 0
    ts = 2

    def resting() -> dict[int, RestingOrder]:
        engine = scratch.engines.get("BTC")
        return engine.book.orders if engine else {}

    def passive(is_buy: bool) -> int:
        depth = rng.randint(1, SPREAD_LEVELS)
        return MID - depth if is_buy else MID + depth

    while len(flow) < ops:
        ts += 1
        book = resting()
        roll = rng.random()
        msg: msgspec.Struct
        if len(book) < TARGET_RESTING or roll < 0.20:
            oid += 1
            is_buy = rng.random() < 0.5
            msg = NewOrder(
                ts=ts,
                oid=oid,
                account=rng.choice(accounts),
                market="BTC",
                is_buy=is_buy,
                px=passive(is_buy),
                sz=rng.randint(1, 20) * 100,
            )
        elif roll < 0.55:
            target = rng.choice(list(book.values()))
            msg = ModifyRequest(
                ts=ts,
                oid=target.oid,
                account=target.account,
                market="BTC",
                is_buy=target.is_buy,
                px=passive(target.is_buy),
                sz=rng.randint(1, 20) * 100,
            )
        elif roll < 0.90:
            target = rng.choice(list(book.values()))
            msg = CancelRequest(
                ts=ts,
                oid=target.oid,
                account=target.account,
                market="BTC",
            )
        else:
            oid += 1
            is_buy = rng.random() < 0.5
            aggressive = MID + 40 if is_buy else MID - 40
            msg = NewOrder(
                ts=ts,
                oid=oid,
                account=rng.choice(accounts),
                market="BTC",
                is_buy=is_buy,
                px=aggressive,
                sz=rng.randint(1, 5) * 100,
                tif="Ioc" if roll < 0.97 else "Gtc",
            )
        scratch.apply(msg, ctx.at(len(flow), live=False))
        flow.append(msg)
    return flow


def run_core(flow: list[msgspec.Struct], markets: MarketRegistry) -> tuple[float, int]:
    """Ops per second of a fresh core over the flow (outputs built, then dropped)."""
    core = MatcherCore(markets, 0)
    ctx = Context(Topics(""), topics.MATCHER_IN, 0)
    outputs = 0
    gc.collect()
    started = time.perf_counter()
    for offset, msg in enumerate(flow):
        core.apply(msg, ctx.at(offset, live=True))
        outputs += len(ctx.outputs)
        ctx.outputs.clear()
    return len(flow) / (time.perf_counter() - started), outputs


def persist_per_batch(markets: MarketRegistry, resting: int, batches: int = 200) -> str:
    """What one batch placing one order costs with ``resting`` orders on the book: the
    apply and ``take_changes`` (what the runtime writes to Redis after each batch)."""
    core = MatcherCore(markets, 0)
    ctx = Context(Topics(""), topics.MATCHER_IN, 0)
    core.apply(IndexTick(ts=1, market="BTC", px=MID), ctx.at(0, live=False))
    for i in range(resting):
        order = NewOrder(
            ts=2 + i,
            oid=1 + i,
            account=f"0x{i % 1_000:040x}",
            market="BTC",
            is_buy=True,
            px=MID - 1 - i % SPREAD_LEVELS,
            sz=100,
        )
        core.apply(order, ctx.at(1 + i, live=False))
    core.take_changes()
    ctx.outputs.clear()
    fields = size = 0
    started = time.perf_counter()
    for k in range(batches):
        n = resting + k
        order = NewOrder(
            ts=2 + n,
            oid=1 + n,
            account=f"0x{n % 1_000:040x}",
            market="BTC",
            is_buy=False,
            px=MID + 1 + n % SPREAD_LEVELS,
            sz=100,
        )
        core.apply(order, ctx.at(1 + n, live=True))
        ctx.outputs.clear()
        changes = core.take_changes()
        fields += len(changes)
        size += sum(len(value) for value in changes.values() if value is not None)
    per_batch = (time.perf_counter() - started) / batches * 1e6
    return (
        f"persist, {resting:,} resting orders: {per_batch:,.0f} us per one-order batch "
        f"(apply + take_changes), {fields / batches:.0f} fields, {size // batches:,} bytes"
    )


def latencies(flow: list[msgspec.Struct], markets: MarketRegistry) -> list[int]:
    """Per-operation latency in nanoseconds (the clock read costs ~50 ns of each)."""
    core = MatcherCore(markets, 0)
    ctx = Context(Topics(""), topics.MATCHER_IN, 0)
    clock = time.perf_counter_ns
    out = []
    for offset, msg in enumerate(flow):
        t0 = clock()
        core.apply(msg, ctx.at(offset, live=True))
        out.append(clock() - t0)
        ctx.outputs.clear()
    return out


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


async def through_kafka(args: argparse.Namespace, flow: list[msgspec.Struct]) -> float:
    stack = None
    if args.bootstrap:
        bootstrap, redis_url = args.bootstrap, args.redis
    else:
        stack = LocalStack.private(Path(tempfile.mkdtemp(prefix="bench-matcher-")))
        stack.start()
        bootstrap, redis_url = stack.bootstrap, stack.redis_url
    try:
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            namespace=f"benchm{uuid.uuid4().hex[:8]}.",
            batch_max=8000,
            batch_target_ms=250,
        )
        await ensure_topics(settings)
        partition = topics.partition_for("BTC", settings.topics.partitions(topics.MATCHER_IN))
        payload: Payload = [(b"BTC", codec.encode(m), partition) for m in flow]
        await produce_all(bootstrap, settings.topics.name(topics.MATCHER_IN), payload)
        markets = settings.markets
        seconds = await run_processor(
            settings,
            "matcher",
            topics.MATCHER_IN,
            lambda p: MatcherCore(markets, p),
            {partition: len(payload)},
        )
        return len(payload) / seconds
    finally:
        if stack:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under 30 s")
    parser.add_argument("--ops", type=int, default=0)
    parser.add_argument("--no-kafka", action="store_true", help="the core alone")
    parser.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    args = parser.parse_args()
    ops = args.ops or (100_000 if args.quick else 1_000_000)
    markets = load_markets()
    flow = generate(ops, markets)
    kinds: dict[str, int] = {}
    for msg in flow:
        name = type(msg).__name__ + (f"/{msg.tif}" if isinstance(msg, NewOrder) else "")
        kinds[name] = kinds.get(name, 0) + 1
    mix = ", ".join(f"{k} {v * 100 / len(flow):.1f}%" for k, v in sorted(kinds.items()))
    print(f"{len(flow):,} operations: {mix}")
    print(f"hot modules: {native.describe()}")
    best = 0.0
    for _ in range(3):
        rate, outputs = run_core(flow, markets)
        best = max(best, rate)
    print(f"core: {best:,.0f} ops/s (best of 3), {outputs / len(flow):.2f} outputs per op")
    lat = latencies(flow, markets)
    print(
        f"core latency per op: p50 {percentile(lat, 0.5):.1f} us, "
        f"p99 {percentile(lat, 0.99):.1f} us, p99.9 {percentile(lat, 0.999):.1f} us"
    )
    for resting in (1_000, 10_000):
        print(persist_per_batch(markets, resting))
    if not args.no_kafka:
        service = uvloop.run(through_kafka(args, flow[: min(len(flow), 200_000)]))
        print(f"service through Kafka (one market, one partition): {service:,.0f} ops/s")
    print(f"matcher_ops_per_sec={best:.0f}")


if __name__ == "__main__":
    main()
