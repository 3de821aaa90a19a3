"""Services ride out a broker or Redis restart instead of exiting.

On a private broker and Redis (these tests stop and start them): the processor runtime
keeps running through a broker restart in the middle of a stream and every input still
yields its output exactly once; it exits, for its supervisor to restart it, only when
the outage outlasts its window. The gateway's history projector retries through a Redis
restart and catches up, and its reads answer a clear 503 while Redis is away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from libs.common import metrics, topics
from libs.common.admin import ensure_topics
from libs.common.runtime import SnapshotStore
from libs.common.schemas import Deposit
from libs.common.settings import Settings
from libs.localstack import LocalStack
from services.gateway.app import REDIS_UNAVAILABLE, Gateway
from services.gateway.history import run_projector
from tests.conftest import make_settings
from tests.integration.test_history_projector import fill
from tests.integration.test_runtime import risk_processor
from tests.support.bus import produce, read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ACCOUNTS = ["0x" + f"{i:02x}" * 20 for i in range(1, 9)]


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack.private(tmp_path_factory.mktemp("outage") / "stack")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def deposits(count: int, start: int = 0) -> list[tuple[str, Deposit]]:
    return [
        (ACCOUNTS[i % len(ACCOUNTS)], Deposit(ts=i, account=ACCOUNTS[i % len(ACCOUNTS)], usd=1 + i))
        for i in range(start, start + count)
    ]


async def stored_total(settings: Settings) -> int:
    """Input offsets of all risk partitions whose state is in Redis."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = SnapshotStore(client, settings.namespace, "risk")
        parts = settings.topics.partitions(topics.RISK_IN)
        return sum([await store.stored_offset(p) for p in range(parts)])
    finally:
        await client.aclose()


def retries() -> float:
    return float(metrics.OUTAGE_RETRIES.labels("risk", "partition")._value.get())


async def restart_kafka(stack: LocalStack, down_s: float) -> None:
    await asyncio.to_thread(stack.script, "kafka.sh", "stop")
    await asyncio.sleep(down_s)
    await asyncio.to_thread(stack.script, "kafka.sh", "start")


async def test_a_broker_restart_mid_stream_is_ridden_out_exactly_once(
    private_stack: LocalStack,
) -> None:
    settings = make_settings(
        private_stack,
        batch_max=5,
        outage_backoff_max_ms=1_000,
        outage_window_s=120.0,
        kafka_request_timeout_ms=2_000,  # so batches fail while the broker is away
        kafka_commit_timeout_s=10.0,
    )
    await ensure_topics(settings)
    first = deposits(6_000)
    await produce(settings, topics.RISK_IN, first)
    proc = risk_processor(settings)
    await proc.start()
    run = asyncio.create_task(proc.run())
    try:
        # the broker goes away while batches are being committed
        assert await wait_for(lambda: _above(stored_total(settings), 300), timeout_s=60)
        await restart_kafka(private_stack, down_s=3.0)
        after = deposits(200, start=len(first))
        await produce(settings, topics.RISK_IN, after)
        outputs = await read_topic(
            settings, topics.ACCOUNT_EVENTS, expect=6_200, quiet_s=2.0, timeout_s=120
        )
        assert not run.done(), "the processor exited during the outage"
    finally:
        proc.request_stop()
        await asyncio.gather(run, return_exceptions=True)
        await proc.stop()
    # every input yielded its one output, none twice, despite the aborted batches
    assert len(outputs) == 6_200
    assert len({r.id for r in outputs}) == 6_200
    by_account = {r.value.account: r.value.collateral for r in outputs}
    assert by_account[ACCOUNTS[0]] == sum(1 + i for i in range(0, 6_200, len(ACCOUNTS)))


async def _above(total: Awaitable[int], floor: int) -> bool:
    return await total > floor


async def test_partitions_assigned_while_redis_is_down_open_once_it_is_back(
    private_stack: LocalStack,
) -> None:
    settings = make_settings(private_stack, outage_backoff_max_ms=1_000, outage_window_s=60.0)
    await ensure_topics(settings)
    await produce(settings, topics.RISK_IN, deposits(400))
    before = retries()
    await asyncio.to_thread(private_stack.script, "redis.sh", "stop")
    redis_down = True
    proc = risk_processor(settings)
    try:
        await proc.start()
        run = asyncio.create_task(proc.run())
        # the state cannot be loaded: the partitions wait, retrying, instead of exiting
        assert await wait_for(lambda: _true(retries() >= before + 3), timeout_s=30)
        assert not run.done() and not proc.workers
        await asyncio.to_thread(private_stack.script, "redis.sh", "start")
        redis_down = False
        outputs = await read_topic(settings, topics.ACCOUNT_EVENTS, expect=400, quiet_s=1.0)
        assert await wait_for(lambda: _above(stored_total(settings), 399), timeout_s=30)
        assert not run.done()
        partitions = settings.topics.partitions(topics.RISK_IN)
        assert await wait_for(lambda: _true(len(proc.workers) == partitions), timeout_s=30)
    finally:
        if redis_down:
            await asyncio.to_thread(private_stack.script, "redis.sh", "start")
        proc.request_stop()
        await asyncio.gather(run, return_exceptions=True)
        await proc.stop()
    assert len({r.id for r in outputs}) == len(outputs) == 400
    by_account = {r.value.account: r.value.collateral for r in outputs}
    assert by_account[ACCOUNTS[1]] == sum(1 + i for i in range(1, 400, len(ACCOUNTS)))


async def _true(value: bool) -> bool:
    return value


async def test_an_outage_longer_than_the_window_stops_the_processor(
    private_stack: LocalStack,
) -> None:
    settings = make_settings(
        private_stack,
        outage_backoff_first_ms=200,
        outage_backoff_max_ms=500,
        outage_window_s=2.0,
        outage_attempt_timeout_s=2.0,
    )
    await ensure_topics(settings)
    given_up = metrics.OUTAGES_GIVEN_UP.labels("risk")._value.get()
    await asyncio.to_thread(private_stack.script, "redis.sh", "stop")
    proc = risk_processor(settings)
    stopped_at = time.monotonic()
    try:
        await proc.start()
        run = asyncio.create_task(proc.run())
        with pytest.raises(RuntimeError, match="outage window"):
            await asyncio.wait_for(asyncio.shield(run), 30)
        exited_after = time.monotonic() - stopped_at
    finally:
        await asyncio.to_thread(private_stack.script, "redis.sh", "start")
        proc.request_stop()
        await asyncio.gather(run, return_exceptions=True)
        await proc.stop()
    # the 2 s window from the first failed opening, plus the group's join before it
    assert 2.0 <= exited_after < 20.0
    assert metrics.OUTAGES_GIVEN_UP.labels("risk")._value.get() == given_up + 1


async def test_history_projects_through_a_redis_restart_and_reads_answer_503(
    private_stack: LocalStack,
) -> None:
    settings = make_settings(private_stack, outage_backoff_max_ms=500)
    await ensure_topics(settings)
    gateway = Gateway(settings)
    await gateway.start()
    http = TestClient(TestServer(gateway.public_app()))
    await http.start_server()
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(gateway.history, stop))
    key = gateway.history.user_key(ACCOUNTS[0], "fills")
    redis_down = False
    before = metrics.OUTAGE_RETRIES.labels("gateway", "history")._value.get()
    try:
        await produce(
            settings, topics.ACCOUNT_EVENTS, [(ACCOUNTS[0], fill(n, ACCOUNTS[0])) for n in range(5)]
        )
        assert await wait_for(lambda: _cards(gateway, key, 5))
        await asyncio.to_thread(private_stack.script, "redis.sh", "stop")
        redis_down = True
        await produce(
            settings,
            topics.ACCOUNT_EVENTS,
            [(ACCOUNTS[0], fill(n, ACCOUNTS[0])) for n in range(5, 12)],
        )
        # the projector retries the batch it cannot write, and does not die
        assert await wait_for(
            lambda: _true(metrics.OUTAGE_RETRIES.labels("gateway", "history")._value.get() > before)
        )
        assert not projector.done()
        # a read needing Redis answers a clear, retryable error
        response = await http.post("/info", json={"type": "userFills", "user": ACCOUNTS[0]})
        assert response.status == 503
        assert await response.json() == {"status": "err", "response": REDIS_UNAVAILABLE}
        await asyncio.to_thread(private_stack.script, "redis.sh", "start")
        redis_down = False
        assert await wait_for(lambda: _cards(gateway, key, 12))
        response = await http.post("/info", json={"type": "userFills", "user": ACCOUNTS[0]})
        assert response.status == 200
        assert sorted(row["tid"] for row in await response.json()) == list(range(1, 13))
    finally:
        if redis_down:
            await asyncio.to_thread(private_stack.script, "redis.sh", "start")
        stop.set()
        await projector  # a clean stop: no exception out of the projector
        await http.close()
        await gateway.stop()


async def _cards(gateway: Gateway, key: str, expected: int) -> bool:
    return int(await gateway.redis.zcard(key)) == expected
