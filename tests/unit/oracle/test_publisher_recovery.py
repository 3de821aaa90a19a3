"""A producer broken by a broker restart is replaced: which errors break a producer for
good, and what the publisher does then (fresh producer, audit events sent again, one
attempt a second while the broker is still away). Producers here are fakes that fail
the way aiokafka does; tests/integration/test_oracle.py runs the real one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownProducerId,
)

from libs.common import codec, metrics, topics
from libs.common.schemas import OracleOverride, OraclePrice
from libs.common.settings import Settings
from services.oracle.aggregator import Override
from services.oracle.publisher import Publisher, needs_new_producer
from tests.unit.oracle.reference import T0, aggregator, everyone, feed

SETTINGS = Settings(namespace="unit.")


@pytest.mark.parametrize(
    ("exc", "by_send", "fatal"),
    [
        (OutOfOrderSequenceNumber(), False, True),
        (UnknownProducerId(), False, True),
        (ProducerFenced(), False, True),
        (InvalidProducerEpoch(), False, True),
        (RequestTimedOutError(), False, False),  # retriable, given up on: same producer
        (RecordTooLargeError(), False, False),  # a new producer would refuse it too
        (KafkaTimeoutError(), True, False),  # no buffer room: the broker is away
        (KafkaError("Unexpected error during batch delivery"), True, True),  # dead sender
        (KafkaError("Unexpected error during batch delivery"), False, False),
        (OutOfOrderSequenceNumber(), True, True),
        (ValueError("not kafka"), True, False),
    ],
)
def test_which_errors_call_for_a_new_producer(
    exc: BaseException, by_send: bool, fatal: bool
) -> None:
    assert needs_new_producer(exc, raised_by_send=by_send) is fatal


class FakeProducer:
    """Delivers at once, or fails every delivery (or every send) with ``fail``."""

    def __init__(self, name: str, fail: BaseException | None = None, raise_on_send: bool = False):
        self.name = name
        self.fail = fail
        self.raise_on_send = raise_on_send
        self.start_error: BaseException | None = None
        self.sent: list[Any] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, *, key: bytes, partition: int) -> Any:
        if self.fail is not None and self.raise_on_send:
            raise self.fail
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            future.set_exception(self.fail)
        else:
            self.sent.append(codec.decoder(topic.removeprefix("unit.")).decode(value))
            future.set_result(None)
        return future


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def resets(error: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "exchange_oracle_producer_resets_total", {"error": error}
    )
    return value or 0.0


async def test_an_out_of_order_producer_is_replaced_and_the_audit_sent_again() -> None:
    broken = FakeProducer("first", OutOfOrderSequenceNumber())
    fresh = FakeProducer("second")
    made = iter([fresh])
    publisher = Publisher(SETTINGS, broken, lambda: next(made), clock=Clock())  # type: ignore[arg-type, return-value]
    before = resets("OutOfOrderSequenceNumber")
    agg = aggregator()
    feed(agg, 0, everyone("100000"))
    audit, halted = agg.override(Override(ts=T0 + 500, market="BTC", action="freeze"))

    await publisher.publish([audit, halted])

    # 3 deliveries failed (audit, index tick, price); the producer was replaced once,
    # the old one closed, and the audit went out again on the fresh one.
    assert (publisher.failures, publisher.resets, publisher.generation) == (3, 1, 1)
    assert publisher.producer is fresh and fresh.started
    await asyncio.sleep(0)  # the broken producer is closed in the background
    assert broken.stopped
    assert resets("OutOfOrderSequenceNumber") == before + 1
    assert [type(m) for m in fresh.sent] == [OracleOverride]
    assert (fresh.sent[0].action, fresh.sent[0].px, fresh.sent[0].ts) == (
        "freeze",
        1_000_000,
        T0 + 500,
    )

    # the next cadence tick reaches the broker through the fresh producer
    await publisher.publish(feed(agg, 1500, everyone("100000")))
    prices = [m for m in fresh.sent if isinstance(m, OraclePrice)]
    assert [(p.status, p.px, p.ts) for p in prices] == [("halted", 1_000_000, T0 + 1500)]
    assert publisher.failures == 3 and publisher.resets == 1


async def test_while_the_broker_is_away_a_replacement_is_tried_once_a_second() -> None:
    broken = FakeProducer("first", KafkaError("Unexpected error during batch delivery"), True)
    away = FakeProducer("second")
    away.start_error = KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9")
    back = FakeProducer("third")
    made = iter([away, back])
    clock = Clock()
    publisher = Publisher(SETTINGS, broken, lambda: next(made), clock=clock)  # type: ignore[arg-type, return-value]
    agg = aggregator()

    await publisher.publish(feed(agg, 0, everyone("100000")))  # tick + price refused by send
    assert publisher.broken is not None and publisher.producer is broken
    assert publisher.failures == 2 and publisher.resets == 0
    await asyncio.sleep(0)
    assert away.stopped  # the producer that could not start is closed, not leaked

    clock.now += 0.5  # too soon: nothing tried, the updates are counted as lost
    await publisher.publish(feed(agg, 1000, everyone("100000")))
    assert publisher.failures == 4 and publisher.producer is broken

    clock.now += 0.6
    await publisher.publish(feed(agg, 2000, everyone("101000")))
    assert publisher.producer is back and publisher.resets == 1 and publisher.broken is None
    assert [(p.status, p.px) for p in back.sent if isinstance(p, OraclePrice)] == [
        ("valid", 1_010_000)
    ]
    assert publisher.failures == 4


async def test_a_retriable_failure_keeps_the_producer() -> None:
    slow = FakeProducer("only", KafkaTimeoutError(), raise_on_send=True)
    publisher = Publisher(SETTINGS, slow, lambda: pytest.fail("not replaced"), clock=Clock())  # type: ignore[arg-type]
    await publisher.publish(feed(aggregator(), 0, everyone("100000")))
    assert (publisher.failures, publisher.resets, publisher.broken) == (2, 0, None)
    assert publisher.producer is slow and not slow.stopped


def test_topics_of_the_fake_are_the_publishers() -> None:
    assert Publisher(SETTINGS, FakeProducer("x")).prices_topic == "unit." + topics.ORACLE_PRICES  # type: ignore[arg-type]
