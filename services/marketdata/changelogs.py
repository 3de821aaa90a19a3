"""The tables' changelog topics exist, with their partitions known, before faust starts.

faust creates a table's changelog topic as it starts and subscribes at once. A topic
created a moment before has no partition leaders yet, so the group's metadata snapshot
can list it with 0 partitions; the first write to the table then fails faust's
co-partitioning check (``PartitionsMismatch``: "the changelog topic has 0 partitions"),
the agent crashes on the record it was applying, and faust's supervisor restarts it on
the next record: the one it crashed on is never applied, and the ``applied`` marker of
a later record then hides it for good. Creating the topics first, and waiting until the
broker reports a leader for every partition, leaves faust only topics that are ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from libs.common.settings import Settings

log = logging.getLogger(__name__)

READY_WITHIN_S = 60.0


def changelog_topics(app: Any) -> dict[str, int]:
    """Each table's changelog topic and its partitions, by name."""
    return {
        f"{app.conf.id}-{name}-changelog": table.partitions
        for name, table in sorted(app.tables.items())
    }


async def prepare_changelogs(app: Any, settings: Settings) -> None:
    """Create the missing changelog topics (compacted, as faust would) and wait until
    every partition of each has a leader; a broker not up yet is waited for. Raises
    after ``READY_WITHIN_S`` if the topics are still not ready."""
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        try:
            await _create(app, settings)
            await _wait_for_leaders(settings.kafka_bootstrap, changelog_topics(app), deadline)
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("changelog topics not ready (%r); retrying", exc)
            await asyncio.sleep(1.0)


async def _create(app: Any, settings: Settings) -> None:
    wanted = changelog_topics(app)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                partitions,
                app.conf.topic_replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            )
            for name, partitions in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another worker of the group was first
                pass
    finally:
        await admin.close()


async def _wait_for_leaders(bootstrap: str, wanted: dict[str, int], deadline: float) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        while True:
            cluster = await client.fetch_all_metadata()
            unready = sorted(
                name
                for name, partitions in wanted.items()
                if len(cluster.available_partitions_for_topic(name) or ()) != partitions
            )
            if not unready:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog topics without leaders: {', '.join(unready)}")
            log.info("waiting for changelog partition leaders", extra={"topics": unready})
            await asyncio.sleep(0.2)
    finally:
        await client.close()
