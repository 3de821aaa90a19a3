"""Outcomes from the bus: waits for the account.events record that answers a request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common import codec, topics
from libs.common.settings import Settings

log = logging.getLogger(__name__)


class Replies:
    """Reads every partition of account.events from its end and resolves waiters by req_id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.name(topics.ACCOUNT_EVENTS)
        self.decoder = codec.decoder(topics.ACCOUNT_EVENTS)
        self.waiters: dict[str, asyncio.Future[Any]] = {}
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        count = self.settings.topics.partitions(topics.ACCOUNT_EVENTS)
        parts = [TopicPartition(self.topic, p) for p in range(count)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before any request is sent
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    def expect(self, req_id: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters[req_id] = future
        return future

    def forget(self, req_id: str) -> None:
        self.waiters.pop(req_id, None)

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    try:
                        event = self.decoder.decode(record.value or b"")
                    except codec.DecodeError:
                        log.warning("undecodable account event at %s", record.offset)
                        continue
                    req_id = getattr(event, "req_id", "")
                    if req_id:
                        future = self.waiters.pop(req_id, None)
                        if future is not None and not future.done():
                            future.set_result(event)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.consumer.stop()
