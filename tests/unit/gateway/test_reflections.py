"""The gateway holds each answer until Redis reflects its record; many requests waiting
share one poll of the stored offsets instead of polling Redis each."""

from __future__ import annotations

import asyncio

from services.gateway.hot import Reflections, Where

RISK_2: Where = ("risk.in", 2)
MATCHER_0: Where = ("matcher.in", 0)


class FakeOffsets:
    """Stored offsets as Redis would hold them, and the reads made of them."""

    def __init__(self) -> None:
        self.stored: dict[Where, int] = {}
        self.reads: list[list[Where]] = []

    async def read(self, where: list[Where]) -> list[int]:
        self.reads.append(list(where))
        return [self.stored.get(w, 0) for w in where]


async def test_a_thousand_waiting_answers_share_the_polls() -> None:
    redis = FakeOffsets()
    redis.stored[RISK_2] = 100  # offsets 0-99 applied
    reflections = Reflections(redis.read)
    waits = [asyncio.create_task(reflections.wait(RISK_2, 100 + n % 10, 5.0)) for n in range(1000)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waits)
    redis.stored[RISK_2] = 105  # the records at 100-104 are in
    await asyncio.sleep(0.02)
    assert sum(w.done() for w in waits) == 500
    redis.stored[RISK_2] = 110
    assert all(await asyncio.gather(*waits))
    # one read per poll, whatever the number of requests (the old way: one per request
    # per poll, thousands here)
    assert len(redis.reads) < 40
    assert all(r == [RISK_2] for r in redis.reads)
    # now known: a request whose record is in is answered without a read
    before = len(redis.reads)
    assert await reflections.wait(RISK_2, 109, 5.0)
    assert len(redis.reads) == before


async def test_waits_time_out_and_polling_stops_when_nobody_waits() -> None:
    redis = FakeOffsets()
    redis.stored[MATCHER_0] = 7
    reflections = Reflections(redis.read)
    assert not await reflections.wait(MATCHER_0, 7, 0.03)
    assert not await reflections.wait(RISK_2, 0, 0.03)
    assert reflections.known.get(MATCHER_0) == 7
    await asyncio.sleep(0.01)  # the poller sees nobody waiting and stops
    reads = len(redis.reads)
    await asyncio.sleep(0.05)
    assert len(redis.reads) == reads
    # no time to wait: one look, and the answer of that look
    assert await reflections.wait(MATCHER_0, 6, 0.0)
    assert not await reflections.wait(MATCHER_0, 7, 0.0)
    redis.stored[MATCHER_0] = 8
    assert await reflections.wait(MATCHER_0, 7, 0.0)


async def test_a_failing_redis_does_not_wake_anybody_early() -> None:
    calls = 0

    async def broken(where: list[Where]) -> list[int]:
        nonlocal calls
        calls += 1
        raise ConnectionError("redis is down")

    reflections = Reflections(broken)
    assert not await reflections.wait(RISK_2, 0, 0.05)
    assert calls >= 2  # it kept trying while the request waited
