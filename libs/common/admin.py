"""Bus administration for scripts and tests.

``python -m libs.common.admin create-topics`` creates every registry topic that is missing;
``python -m libs.common.admin wait-kafka --bootstrap HOST:PORT`` waits for a metadata answer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from libs.common.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create every registry topic that is missing; returns the names created."""
    wanted = [
        NewTopic(name, t.partitions, replication, topic_configs=t.config())
        for name, t in settings.topics.all()
    ]
    return await create_missing(settings.kafka_bootstrap, wanted)


async def create_missing(bootstrap: str, topics: list[NewTopic]) -> list[str]:
    """Create those of ``topics`` that do not exist yet; returns the names created (one
    created meanwhile by another process counts as existing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in missing]
    finally:
        await admin.close()


async def unready_topics(bootstrap: str, partitions: dict[str, int]) -> list[str]:
    """The topics (name -> partitions) without a leader for every partition yet: a topic
    just created has none for a moment, and its metadata lists no partition."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        return sorted(
            name
            for name, count in partitions.items()
            if len(cluster.available_partitions_for_topic(name) or ()) != count
        )
    finally:
        await client.close()


async def wait_for_kafka(bootstrap: str, within_s: float) -> bool:
    """True once the broker answers a metadata request, False after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            if metadata.brokers():
                return True
        except Exception:
            await asyncio.sleep(0.25)
        finally:
            await client.close()
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["create-topics", "wait-kafka"])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (wait-kafka)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    if args.command == "wait-kafka":
        ok = asyncio.run(wait_for_kafka(args.bootstrap or Settings().kafka_bootstrap, args.timeout))
        raise SystemExit(0 if ok else 1)
    created = asyncio.run(ensure_topics(Settings()))
    print(f"created {len(created)} topics: {', '.join(created) or '-'}")


if __name__ == "__main__":
    main()
