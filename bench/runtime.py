"""Throughput of the processor runtime against the raw bus, in the same run.

    python -m bench.runtime [--quick] [--messages N] [--bootstrap HOST:PORT --redis URL]

Raw bus: aiokafka produces N messages (idempotent, acks=all) and a consumer reads them
back, one hop. Runtime: a pass-through core on the processor runtime consumes the same N
messages read_committed, produces one output each, commits offsets in the same Kafka
transaction and writes its state to Redis after every batch. Both move every message
through one produce and one consume. Without --bootstrap a private Kafka and Redis are
started and stopped. Last line: ``runtime_vs_bus_ratio=<runtime msgs/s / raw msgs/s>``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvloop

from bench.bus import Payload, consume_all, produce_all, run_processor
from libs.common import codec, topics
from libs.common.admin import ensure_topics
from libs.common.runtime import Context
from libs.common.schemas import NewOrder, PlaceOrder
from libs.common.settings import Settings
from libs.localstack import LocalStack

SERVICE = "bench"


class PassThrough:
    """Turns each accepted order into the matcher's order, counting per partition."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.count = 0
        self._changed = False

    def apply(self, message: Any, ctx: Context) -> None:
        if isinstance(message, PlaceOrder):
            self.count += 1
            self._changed = True
            ctx.emit(
                topics.MATCHER_IN,
                message.market,
                NewOrder(
                    ts=message.ts,
                    oid=ctx.offset,
                    account=message.account,
                    market=message.market,
                    is_buy=message.is_buy,
                    px=message.px,
                    sz=message.sz,
                ),
            )

    def take_changes(self) -> dict[str, bytes | None]:
        if not self._changed:
            return {}
        self._changed = False
        return {"count": str(self.count).encode()}

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.count = int(entries.get("count", b"0"))


def messages(count: int) -> list[tuple[bytes, bytes, int]]:
    parts = 4
    out = []
    for i in range(count):
        account = f"0x{i % 512:040x}"
        order = PlaceOrder(
            ts=1_700_000_000_000 + i,
            account=account,
            market="BTC",
            is_buy=i % 2 == 0,
            px=1_000_000 + i % 100,
            sz=1000,
            req_id=f"{i:032x}",
        )
        out.append((account.encode(), codec.encode(order), i % parts))
    return out


async def raw_bus(settings: Settings, payload: Payload) -> float:
    topic = settings.topics.name(topics.MARKET_EVENTS)
    started = time.perf_counter()
    await produce_all(settings.kafka_bootstrap, topic, payload)
    await consume_all(settings.kafka_bootstrap, topic, len(payload))
    return len(payload) / (time.perf_counter() - started)


async def through_runtime(settings: Settings, payload: Payload) -> float:
    await produce_all(settings.kafka_bootstrap, settings.topics.name(topics.RISK_IN), payload)
    expected = {p: sum(1 for *_, q in payload if q == p) for p in range(4)}
    seconds = await run_processor(settings, SERVICE, topics.RISK_IN, PassThrough, expected)
    return len(payload) / seconds


async def run(args: argparse.Namespace) -> float:
    count = args.messages or (80_000 if args.quick else 300_000)
    stack = None
    if args.bootstrap:
        bootstrap, redis_url = args.bootstrap, args.redis
    else:
        stack = LocalStack.private(Path(tempfile.mkdtemp(prefix="bench-runtime-")))
        stack.start()
        bootstrap, redis_url = stack.bootstrap, stack.redis_url
        print(
            f"private Kafka {bootstrap} (cold start {stack.kafka_start_seconds:.2f} s), "
            f"Redis {redis_url}"
        )
    try:
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            namespace=f"bench{uuid.uuid4().hex[:8]}.",
            batch_max=args.batch_max,
            batch_target_ms=args.target_ms,
        )
        await ensure_topics(settings)
        payload = messages(count)
        size = sum(len(v) for _, v, _ in payload) // count
        print(f"{count} messages of {size} bytes over 4 partitions")
        # Warm up: leaders elected and clients connected before anything is timed.
        warm = settings.model_copy(update={"namespace": settings.namespace + "warm."})
        await ensure_topics(warm)
        await raw_bus(warm, payload[:5000])
        # The broker shares two cores with everything else, so the raw rate is noisy:
        # keep the better of two runs, which can only lower our ratio.
        raws = []
        for attempt in range(2):
            again = settings.model_copy(update={"namespace": f"{settings.namespace}raw{attempt}."})
            await ensure_topics(again)
            raws.append(await raw_bus(again, payload))
        raw = max(raws)
        print(
            "raw bus (produce then consume, one hop): "
            + ", ".join(f"{r:,.0f}" for r in raws)
            + f" msgs/s; best {raw:,.0f}"
        )
        runtime = await through_runtime(settings, payload)
        print(
            f"runtime (read_committed, transaction per batch, Redis snapshot per batch): "
            f"{runtime:,.0f} msgs/s"
        )
        return runtime / raw
    finally:
        if stack:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under 30 s")
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--batch-max", type=int, default=16000)
    parser.add_argument("--target-ms", type=float, default=250.0)
    parser.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    ratio = uvloop.run(run(parser.parse_args()))
    print(f"runtime_vs_bus_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
