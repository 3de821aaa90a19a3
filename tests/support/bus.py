"""Test helpers that talk to the real bus: produce inputs, read outputs read_committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.common import codec
from libs.common.settings import Settings
from libs.common.topics import partition_for


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    id: str
    value: Any
    raw: bytes
    topic: str = ""
    timestamp: int = 0


async def produce(
    settings: Settings,
    topic: str,
    items: Iterable[tuple[str, msgspec.Struct | bytes]],
    partition: int | None = None,
) -> list[tuple[int, int]]:
    """Produce ``(key, message)`` pairs in order; returns each record's (partition, offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    name = settings.topics.name(topic)
    count = settings.topics.partitions(topic)
    try:
        futures = []
        for key, message in items:
            value = message if isinstance(message, bytes) else codec.encode(message)
            part = partition if partition is not None else partition_for(key, count)
            futures.append(await producer.send(name, value, key=key.encode(), partition=part))
        metas = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in metas]
    finally:
        await producer.stop()


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    expect: int | None = None,
    quiet_s: float = 1.5,
    timeout_s: float = 60.0,
    decode: bool = True,
) -> list[Record]:
    """Every committed record of a topic, from the start.

    Stops once ``expect`` records arrived and nothing more came for ``quiet_s`` seconds
    (so extra duplicates would still be seen), or at ``timeout_s``.
    """
    name = settings.topics.name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    parts = [TopicPartition(name, p) for p in range(settings.topics.partitions(topic))]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    decoder = codec.decoder(topic)
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    headers = dict(r.headers or ())
                    value = decoder.decode(r.value) if decode else None
                    out.append(
                        Record(
                            r.partition,
                            r.offset,
                            headers.get("id", b"").decode(),
                            value,
                            r.value or b"",
                            r.topic,
                            r.timestamp,
                        )
                    )
                    last_new = time.monotonic()
            if time.monotonic() - last_new >= quiet_s and (expect is None or len(out) >= expect):
                break
    finally:
        await consumer.stop()
    return out


async def wait_for(predicate: Any, timeout_s: float = 30.0, interval_s: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await predicate()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval_s)


def ids(records: Sequence[Record]) -> list[str]:
    return [r.id for r in records]


async def set_topic_config(settings: Settings, topic: str, config: dict[str, str]) -> None:
    """Change a topic's configuration on the broker (for example the largest batch it
    accepts, ``max.message.bytes``, to make it refuse records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topics.name(topic), config)
        await admin.alter_configs([resource])
    finally:
        await admin.close()
