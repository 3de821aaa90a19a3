"""Where each publication goes: index ticks to the market's matcher.in partition and the
public price to oracle.prices (same partition number by market); an override's audit
event right before the index it caused; nothing for the matchers before a valid price."""

from __future__ import annotations

import asyncio
from typing import Any

from libs.common import codec, topics
from libs.common.schemas import IndexTick, OracleOverride, OraclePrice
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.oracle.aggregator import Override
from services.oracle.publisher import Publisher
from tests.unit.oracle.reference import T0, aggregator, everyone, feed

SETTINGS = Settings(namespace="unit.")


class Recorder:
    """Stands in for the producer: keeps what was sent, delivers at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str, Any]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, partition: int) -> Any:
        logical = topic.removeprefix("unit.")
        message = codec.decoder(logical).decode(value)
        self.sent.append((logical, partition, key.decode(), message))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        pass


async def test_updates_and_overrides_go_to_their_topics_and_partitions() -> None:
    producer = Recorder()
    publisher = Publisher(SETTINGS, producer)  # type: ignore[arg-type]
    agg = aggregator()
    btc = partition_for("BTC", 4)

    await publisher.publish(feed(agg, 0, {"binance": "100000"}))  # no quorum, no price yet
    assert [(t, p, type(m)) for t, p, _, m in producer.sent] == [
        (topics.ORACLE_PRICES, btc, OraclePrice)
    ]

    producer.sent.clear()
    await publisher.publish(feed(agg, 1000, everyone("100000")))
    audit, halted = agg.override(Override(ts=T0 + 1500, market="BTC", action="freeze"))
    await publisher.publish([audit, halted])
    await publisher.flush()
    assert [(t, p, k, type(m), getattr(m, "status", None)) for t, p, k, m in producer.sent] == [
        (topics.MATCHER_IN, btc, "BTC", IndexTick, "valid"),
        (topics.ORACLE_PRICES, btc, "BTC", OraclePrice, "valid"),
        (topics.ORACLE_PRICES, btc, "BTC", OracleOverride, None),
        (topics.MATCHER_IN, btc, "BTC", IndexTick, "halted"),
        (topics.ORACLE_PRICES, btc, "BTC", OraclePrice, "halted"),
    ]
    tick = producer.sent[0][3]
    assert (tick.ts, tick.px, len(tick.sources)) == (T0 + 1000, 1_000_000, 5)
    assert publisher.failures == 0
