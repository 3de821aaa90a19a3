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

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from libs.common.admin import create_missing, unready_topics
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
    wanted = changelog_topics(app)
    topics = [
        NewTopic(
            name,
            partitions,
            app.conf.topic_replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        for name, partitions in wanted.items()
    ]
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        try:
            await create_missing(settings.kafka_bootstrap, topics)
            unready = await unready_topics(settings.kafka_bootstrap, wanted)
        except KafkaError as exc:  # the broker is not up yet
            unready = [repr(exc)]
        if not unready:
            log.info("changelog topics ready", extra={"topics": sorted(wanted)})
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"changelog topics not ready: {', '.join(unready)}")
        log.info("waiting for changelog topics", extra={"unready": unready})
        await asyncio.sleep(0.2)
