"""What one Kafka transaction of the runtime costs, by how the input offset is committed.

    python -m bench.txn [--transactions N] [--rounds R]

A private broker; transactional producers like the runtime's (one per input partition,
``linger_ms=0``, the runtime's short retry backoff) each run N transactions back to
back, each of one 200-byte output record plus the input position, committed either

- ``group``: to the consumer group (``send_offsets_to_transaction``: AddOffsetsToTxn to
  the transaction coordinator, then TxnOffsetCommit to the group coordinator), as the
  runtime did before, or
- ``checkpoint``: as a ``Checkpoint`` record on the input partition's checkpoint
  partition, in the same transaction (what the runtime does: ``libs/common/runtime``).

Each mode runs with one partition committing and with four committing at once, and the
modes alternate for R rounds so that the machine's load falls on both alike. Reported:
p50/p90 of a transaction's time, from ``begin_transaction`` to the commit's answer.
Last line: ``txn_checkpoint_vs_group_p50=<checkpoint p50 / group p50, 4 at once>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from libs.common import codec
from libs.common.runtime.processor import shorten_txn_backoff
from libs.common.schemas import Checkpoint
from libs.common.settings import Settings
from libs.common.topics import CHECKPOINT_KEY
from libs.localstack import LocalStack

PARTITIONS = 4
GROUP = "bench-txn"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_mode(bootstrap: str, mode: str, parallel: int, count: int) -> list[float]:
    producers = []
    for p in range(parallel):
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"bench-{mode}-{p}-{uuid.uuid4().hex[:6]}",
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            retry_backoff_ms=Settings().txn_retry_backoff_ms,
        )
        await producer.start()
        producers.append(producer)
    times: list[float] = []

    async def loop(p: int, producer: AIOKafkaProducer) -> None:
        for i in range(count):
            began = time.perf_counter()
            await producer.begin_transaction()
            await producer.send("out", b"x" * 200, partition=p)
            if mode == "group":
                await producer.send_offsets_to_transaction({TopicPartition("in", p): i + 1}, GROUP)
            else:
                value = codec.encode(Checkpoint(ts=i, offset=i + 1))
                await producer.send("checkpoints", value, key=CHECKPOINT_KEY, partition=p)
            await producer.commit_transaction()
            times.append((time.perf_counter() - began) * 1000)

    try:
        await asyncio.gather(*(loop(p, producer) for p, producer in enumerate(producers)))
    finally:
        for producer in producers:
            await producer.stop()
    return times


async def main(args: argparse.Namespace) -> float:
    stack = LocalStack.private(Path(tempfile.mkdtemp(prefix="bench-txn-")))
    stack.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
        await admin.start()
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1) for name in ("in", "out", "checkpoints")]
        )
        await admin.close()
        shorten_txn_backoff(Settings().txn_retry_backoff_ms / 1000)
        # the group exists, as the runtime's does
        member = AIOKafkaConsumer("in", bootstrap_servers=stack.bootstrap, group_id=GROUP)
        await member.start()
        await asyncio.sleep(2.0)
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for mode in ("group", "checkpoint"):
                for parallel in (1, PARTITIONS):
                    times = await run_mode(stack.bootstrap, mode, parallel, args.transactions)
                    results.setdefault((mode, parallel), []).extend(times)
        await member.stop()
    finally:
        stack.stop()
    for (mode, parallel), times in sorted(results.items()):
        print(
            f"{mode:10} {parallel} partition(s) committing at once: {len(times)} transactions, "
            f"p50 {pct(times, 0.5):.1f} ms, p90 {pct(times, 0.9):.1f} ms"
        )
    return pct(results[("checkpoint", PARTITIONS)], 0.5) / pct(results[("group", PARTITIONS)], 0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=150, help="per producer, per run")
    parser.add_argument("--rounds", type=int, default=2)
    ratio = uvloop.run(main(parser.parse_args()))
    print(f"txn_checkpoint_vs_group_p50={ratio:.2f}")
