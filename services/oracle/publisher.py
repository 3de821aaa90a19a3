"""Publishing: each index update goes to its market's matcher.in partition (as an
``IndexTick``) and to the public oracle.prices topic (as an ``OraclePrice``); operator
overrides go to oracle.prices as ``OracleOverride`` audit events, just before the index
they caused.

Sends are pipelined (the idempotent producer keeps per-partition order); a bounded
number of deliveries may be outstanding, and a failed index delivery is logged, not
retried: the next cadence tick supersedes a lost one.

A broker restart can leave the idempotent producer unable to send at all: its sequence
numbers no longer match the broker's (``OutOfOrderSequenceNumber``, ``UnknownProducerId``),
its epoch is fenced, or its sender task died. No later send through it can succeed, so
the publisher closes it and starts a fresh one (a new producer id), counted in
``exchange_oracle_producer_resets_total``; if the broker is not back yet, the next
publication tries again (at most once a second). Audit events that were not acknowledged
by the broken producer are sent again on the fresh one (at least once: an audit the
broken producer did deliver after all may then appear twice, with the same ``ts``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

from libs.common import codec, metrics, topics
from libs.common.schemas import OracleOverride
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.oracle.aggregator import IndexUpdate
from services.oracle.telemetry import Telemetry

SERVICE = "oracle"
log = logging.getLogger(__name__)

# Errors after which the producer's id or sequence is unusable: only a new producer helps.
FATAL_SEND_ERRORS: Final = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    ProducerFenced,
    InvalidProducerEpoch,
    ProducerClosed,
)
RENEW_EVERY_S: Final = 1.0
CLOSE_TIMEOUT_S: Final = 10.0


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """The oracle's producer: idempotent, acks from all replicas, no linger (latency)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
    )


def needs_new_producer(exc: BaseException, *, raised_by_send: bool) -> bool:
    """Whether ``exc`` means this producer can never deliver again.

    A delivery that failed with a broken sequence, an unknown producer id or a fenced
    epoch: yes. ``send()`` itself raising a Kafka error other than a timeout (no room in
    the buffer, no metadata yet: the broker is slow or away, a new producer would wait
    just the same) means the producer's sender task is dead: yes. Anything else
    (a timeout, a too-large record, a retriable error given up on): no."""
    if isinstance(exc, FATAL_SEND_ERRORS):
        return True
    return raised_by_send and isinstance(exc, KafkaError) and not isinstance(exc, KafkaTimeoutError)


class _Record(NamedTuple):
    topic: str
    value: bytes
    key: bytes
    partition: int


class _Sent(NamedTuple):
    future: Any
    generation: int
    record: _Record
    keep: bool  # sent again on a fresh producer if the broken one did not deliver it


class Publisher:
    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        renew: Callable[[], AIOKafkaProducer] | None = None,
        telemetry: Telemetry | None = None,
        max_pending: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        t = settings.topics
        self.producer = producer
        self.renew = renew
        self.telemetry = telemetry or Telemetry(settings.markets)
        self.matcher_topic = t.name(topics.MATCHER_IN)
        self.matcher_partitions = t.partitions(topics.MATCHER_IN)
        self.prices_topic = t.name(topics.ORACLE_PRICES)
        self.prices_partitions = t.partitions(topics.ORACLE_PRICES)
        self.max_pending = max_pending
        self.clock = clock
        self._pending: deque[_Sent] = deque()
        self._out_matcher = metrics.MESSAGES_OUT.labels(SERVICE, topics.MATCHER_IN)
        self._out_prices = metrics.MESSAGES_OUT.labels(SERVICE, topics.ORACLE_PRICES)
        self.failures = 0
        self.resets = 0
        self.generation = 0
        self.broken: BaseException | None = None  # why the current producer is unusable
        self._resend: list[_Record] = []
        self._last_renewal = -RENEW_EVERY_S
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def publish(self, items: Sequence[IndexUpdate | OracleOverride]) -> None:
        if self.broken is not None:
            await self._replace()
        for item in items:
            if isinstance(item, OracleOverride):
                await self._send_price(item.market, codec.encode(item), keep=True)
                continue
            # Before the first valid price there is nothing for a matcher to act on.
            if item.px:
                record = _Record(
                    self.matcher_topic,
                    codec.encode(item.index_tick()),
                    item.market.encode(),
                    partition_for(item.market, self.matcher_partitions),
                )
                if await self._send(record, keep=False):
                    self._out_matcher.inc()
            await self._send_price(item.market, codec.encode(item.oracle_price()), keep=False)
            self.telemetry.record(item)
        await self._reap()
        if self.broken is not None:
            await self._replace()

    async def _send_price(self, market: str, value: bytes, *, keep: bool) -> None:
        record = _Record(
            self.prices_topic,
            value,
            market.encode(),
            partition_for(market, self.prices_partitions),
        )
        if await self._send(record, keep=keep):
            self._out_prices.inc()

    async def _send(self, record: _Record, *, keep: bool) -> bool:
        """Hand one record to the producer; False (logged, counted) if it refused it."""
        if self.broken is not None:
            self._lost(record, keep, self.broken)
            return False
        try:
            future = await self.producer.send(
                record.topic, record.value, key=record.key, partition=record.partition
            )
        except Exception as exc:
            fatal = needs_new_producer(exc, raised_by_send=True)
            self._lost(record, keep and fatal, exc)
            if fatal:
                self.broken = exc
            return False
        self._pending.append(_Sent(future, self.generation, record, keep))
        return True

    def _lost(self, record: _Record, keep: bool, exc: BaseException) -> None:
        self.failures += 1
        log.error("index publication failed", extra={"error": repr(exc), "topic": record.topic})
        if keep:
            self._resend.append(record)

    async def _reap(self, limit: int | None = None) -> None:
        """Drop delivered sends, log failed ones, and wait while more than ``limit``
        (default ``max_pending``) are in flight."""
        bound = self.max_pending if limit is None else limit
        while self._pending and (self._pending[0].future.done() or len(self._pending) > bound):
            sent = self._pending.popleft()
            try:
                await sent.future
            except Exception as exc:
                fatal = needs_new_producer(exc, raised_by_send=False)
                self._lost(sent.record, sent.keep and fatal, exc)
                if fatal and sent.generation == self.generation:
                    self.broken = exc

    async def _replace(self) -> None:
        """Close the broken producer and start a fresh one; the undelivered audit events
        go out again on it. If it cannot start (the broker is still away), the next
        publication tries again."""
        if self.renew is None or self.clock() - self._last_renewal < RENEW_EVERY_S:
            return
        self._last_renewal = self.clock()
        error = type(self.broken).__name__
        # What the broken producer still holds will not be acknowledged by it.
        while self._pending:
            sent = self._pending.popleft()
            future = sent.future
            if future.done() and not future.cancelled() and future.exception() is None:
                continue  # delivered after all
            self._lost(sent.record, sent.keep, self.broken or KafkaError())
        fresh = self.renew()
        try:
            await fresh.start()
        except Exception as exc:
            log.error(
                "oracle producer not replaced yet", extra={"error": repr(exc), "broken": error}
            )
            self._close_later(fresh)
            return
        self._close_later(self.producer)
        self.producer = fresh
        self.generation += 1
        self.broken = None
        self.resets += 1
        metrics.ORACLE_PRODUCER_RESETS.labels(error).inc()
        log.warning(
            "oracle producer replaced",
            extra={"error": error, "resend": len(self._resend), "resets": self.resets},
        )
        resend, self._resend = self._resend, []
        for record in resend:
            if await self._send(record, keep=True):
                self._out_prices.inc()

    def _close_later(self, producer: AIOKafkaProducer) -> None:
        """Stop a broken producer without holding up the loop (its stop may wait out
        its request timeout)."""

        async def close() -> None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await producer.stop()
            except Exception as exc:
                log.info("broken producer closed uncleanly", extra={"error": repr(exc)})

        task = asyncio.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def settle(self, timeout_s: float) -> bool:
        """Wait, at most ``timeout_s``, until every send so far is acknowledged or has
        failed (then reaped); True if none is still in flight."""
        futures = [sent.future for sent in self._pending]
        if not futures:
            return True
        _, waiting = await asyncio.wait(futures, timeout=timeout_s)
        await self._reap()
        return not waiting

    async def flush(self) -> None:
        """Wait until every publication so far is delivered (or has failed)."""
        await self.producer.flush()
        await self._reap(limit=0)
