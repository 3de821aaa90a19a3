"""The gateway's side of the bus: commands onto risk.in (and operator controls onto
matcher.in), answered by the account.events record that carries the same req_id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from libs.common import codec, topics
from libs.common.schemas import Message
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.gateway.replies import Replies


class Bus:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replies = Replies(settings)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=1,
        )
        self.topics = settings.topics
        self.timeout_s = settings.gateway_reply_timeout_ms / 1000
        # Waits until the hot state in Redis includes an answer's input record (set by
        # the gateway): a client that reads after an answer sees what the answer says.
        self.reflected: Callable[[str, float], Awaitable[bool]] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.replies.start()

    async def stop(self) -> None:
        await self.replies.stop()
        await self.producer.stop()

    async def submit(self, account: str, messages: Sequence[Message]) -> list[Any]:
        """Send an account's commands in order and wait for each one's answer (None on
        timeout). They share the account's risk partition, so they apply in this order."""
        if not messages:
            return []
        req_ids = [getattr(m, "req_id") for m in messages]  # noqa: B009
        waiters = [self.replies.expect(r) for r in req_ids]
        topic = self.topics.name(topics.RISK_IN)
        partition = partition_for(account, self.topics.partitions(topics.RISK_IN))
        try:
            for message, req_id in zip(messages, req_ids, strict=True):
                await self.producer.send(
                    topic,
                    codec.encode(message),
                    key=account.encode(),
                    partition=partition,
                    headers=[("id", req_id.encode())],
                )
            started = asyncio.get_running_loop().time()
            done, _ = await asyncio.wait(waiters, timeout=self.timeout_s)
            await self._reflect([self.replies.origins.get(r, "") for r in req_ids], started)
            return [w.result() if w in done else None for w in waiters]
        finally:
            for req_id in req_ids:
                self.replies.forget(req_id)

    async def _reflect(self, origins: Sequence[str], started: float) -> None:
        """Hold the answers until Redis shows their effects (within the reply timeout:
        past it the answer goes out anyway, as it is committed in Kafka)."""
        if self.reflected is None:
            return
        for origin in dict.fromkeys(o for o in origins if o):
            left = self.timeout_s - (asyncio.get_running_loop().time() - started)
            if left <= 0 or not await self.reflected(origin, left):
                return

    async def ask_market(self, market: str, message: Message) -> Any:
        """An operator command for a market's matcher, answered on market.events by the
        event with its req_id (None on timeout)."""
        req_id = getattr(message, "req_id")  # noqa: B009
        waiter = self.replies.expect(req_id)
        try:
            await self.to_market(market, message)
            done, _ = await asyncio.wait([waiter], timeout=self.timeout_s)
            return waiter.result() if done else None
        finally:
            self.replies.forget(req_id)

    async def to_market(self, market: str, message: Message) -> None:
        """An operator control for a market's matcher (no answer is awaited)."""
        topic = self.topics.name(topics.MATCHER_IN)
        partition = partition_for(market, self.topics.partitions(topics.MATCHER_IN))
        await self.producer.send_and_wait(
            topic, codec.encode(message), key=market.encode(), partition=partition
        )
