"""The gateway's live feed: account.events, market.events and liquidation.audit from
their ends.

It resolves the waiter of each request by ``req_id`` and hands every event to the
listeners (the WebSocket hub). Each gateway instance reads every partition: answers and
subscriptions are per instance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common import codec, topics
from libs.common.runtime.processor import ID_HEADER
from libs.common.settings import Settings

log = logging.getLogger(__name__)

Listener = Callable[[str, Any], None]


class Replies:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decoders = {
            settings.topics.name(topics.ACCOUNT_EVENTS): (
                topics.ACCOUNT_EVENTS,
                codec.decoder(topics.ACCOUNT_EVENTS),
            ),
            settings.topics.name(topics.MARKET_EVENTS): (
                topics.MARKET_EVENTS,
                codec.decoder(topics.MARKET_EVENTS),
            ),
            settings.topics.name(topics.LIQUIDATION_AUDIT): (
                topics.LIQUIDATION_AUDIT,
                codec.decoder(topics.LIQUIDATION_AUDIT),
            ),
        }
        self.waiters: dict[str, asyncio.Future[Any]] = {}
        # req_id -> id of the answer's record, "<input topic>/<partition>/<offset>/<n>":
        # which input record of which state machine produced it
        self.origins: dict[str, str] = {}
        self.listeners: list[Listener] = []
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        parts = [
            TopicPartition(name, p)
            for name, (logical, _) in self.decoders.items()
            for p in range(self.settings.topics.partitions(logical))
        ]
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
        self.origins.pop(req_id, None)

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                logical, decoder = self.decoders[tp.topic]
                for record in records:
                    try:
                        event = decoder.decode(record.value or b"")
                    except codec.DecodeError:
                        log.warning("undecodable event at %s %d", tp, record.offset)
                        continue
                    req_id = getattr(event, "req_id", "")
                    if req_id:
                        future = self.waiters.pop(req_id, None)
                        if future is not None and not future.done():
                            self.origins[req_id] = _record_id(record.headers)
                            future.set_result(event)
                    for listener in self.listeners:
                        try:
                            listener(logical, event)
                        except Exception:
                            log.exception("listener failed on %s", type(event).__name__)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.consumer.stop()


def _record_id(headers: Any) -> str:
    for name, value in headers or ():
        if name == ID_HEADER:
            return bytes(value).decode()
    return ""
