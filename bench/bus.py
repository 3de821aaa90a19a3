"""Benchmark plumbing shared by the bench.* modules: fast produce, consume, and timing a
core on the processor runtime until Redis holds the last offset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.common.runtime import Core, Processor, SnapshotStore
from libs.common.settings import Settings

Payload = Sequence[tuple[bytes, bytes, int]]


async def produce_all(bootstrap: str, topic: str, payload: Payload) -> None:
    """Produce as fast as aiokafka allows: one record batch per partition at a time."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
    )
    await producer.start()
    try:
        batches: dict[int, Any] = {}
        sent = []
        for key, value, partition in payload:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    seen = 0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            seen += sum(len(v) for v in batches.values())
    finally:
        await consumer.stop()


async def run_processor(
    settings: Settings,
    service: str,
    input_topic: str,
    factory: Callable[[int], Core],
    expected: dict[int, int],
) -> float:
    """Seconds the runtime takes, from owning every partition until Redis holds each
    partition's expected next offset."""
    proc = Processor(
        service=service, input_topic=input_topic, core_factory=factory, settings=settings
    )
    store = SnapshotStore(proc.redis, settings.namespace, service)
    partitions = settings.topics.partitions(input_topic)
    await proc.start()
    task = asyncio.create_task(proc.run())
    while len(proc.workers) < partitions:  # time the steady state, not the group join
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    try:
        while True:
            done = [await store.stored_offset(p) for p in range(partitions)]
            if all(done[p] >= expected.get(p, 0) for p in range(partitions)):
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return time.perf_counter() - started
    finally:
        proc.request_stop()
        await task
        await proc.stop()
