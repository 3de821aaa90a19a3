"""Crash safety, proven against real Kafka and Redis with the risk service as a process.

The truth is a reference run: the recorded input log applied to fresh cores in-process.
After SIGKILLs at random points, and after a failover between two instances, a
read_committed consumer must see exactly the reference outputs (each once, in order per
source partition) and Redis must hold exactly the reference state at the log's end.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.runtime import Core, SnapshotStore
from libs.common.settings import Settings
from libs.localstack.procs import ServiceProcess
from services.liquidator.service import core_factory as liquidator_factory
from services.matcher.engine import MatcherCore
from services.risk.engine import RiskCore
from tests.support.bus import produce, read_topic
from tests.support.workload import (
    Item,
    Reference,
    liquidator_workload,
    matcher_workload,
    reference_run,
    risk_workload,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@dataclass(frozen=True)
class Scenario:
    """A stateful service, its input log, a workload for it and the core that is truth."""

    service: str
    input_topic: str
    outputs: tuple[str, ...]
    workload: Callable[[int, int], list[Item]]
    factory: Callable[[Settings], Callable[[int], Core]]


RISK = Scenario(
    "risk",
    topics.RISK_IN,
    (topics.ACCOUNT_EVENTS, topics.MATCHER_IN, topics.LIQUIDATIONS, topics.DEAD_LETTERS),
    risk_workload,
    lambda s: lambda p: RiskCore(s.markets, p),
)
MATCHER = Scenario(
    "matcher",
    topics.MATCHER_IN,
    (topics.RISK_IN, topics.MARKET_EVENTS, topics.DEAD_LETTERS),
    matcher_workload,
    lambda s: lambda p: MatcherCore(s.markets, p),
)
# The liquidations log of real waterfalls (triggers, statuses, reports, fund answers,
# ADL candidates): killed mid-waterfall, each case's orders, transfers, claims and
# audit steps must still come out exactly once.
LIQUIDATOR = Scenario(
    "liquidator",
    topics.LIQUIDATIONS,
    (topics.MATCHER_IN, topics.RISK_IN, topics.LIQUIDATION_AUDIT, topics.DEAD_LETTERS),
    liquidator_workload,
    liquidator_factory,
)


async def feed(
    settings: Settings, scenario: Scenario, items: list[Item], chunk: int = 0, pause_s: float = 0.0
) -> None:
    """Produce the workload in order, optionally in chunks with pauses (a live stream)."""
    step = chunk or len(items)
    for start in range(0, len(items), step):
        part = items[start : start + step]
        groups: dict[int | None, list] = defaultdict(list)
        for key, message, partition in part:
            groups[partition].append((key, message))
        for partition, pairs in groups.items():
            await produce(settings, scenario.input_topic, pairs, partition=partition)
        if pause_s:
            await asyncio.sleep(pause_s)


async def progress(
    settings: Settings, redis: aioredis.Redis, scenario: Scenario = RISK
) -> dict[int, int]:
    store = SnapshotStore(redis, settings.namespace, scenario.service)
    count = settings.topics.partitions(scenario.input_topic)
    return {p: await store.stored_offset(p) for p in range(count)}


async def wait_done(
    settings: Settings,
    redis: aioredis.Redis,
    ref: Reference,
    procs: list[ServiceProcess],
    scenario: Scenario = RISK,
    timeout_s: float = 120.0,
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        done = await progress(settings, redis, scenario)
        if all(done.get(p, 0) >= end for p, end in ref.offsets.items()):
            return
        for proc in procs:
            assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"
        assert asyncio.get_running_loop().time() < deadline, f"stuck at {done} of {ref.offsets}"
        await asyncio.sleep(0.2)


async def assert_matches_reference(
    settings: Settings, redis: aioredis.Redis, ref: Reference, scenario: Scenario = RISK
) -> None:
    seen = []
    for topic in scenario.outputs:
        seen.extend(await read_topic(settings, topic, decode=False, quiet_s=1.0, timeout_s=60))
    counts = Counter(r.id for r in seen)
    doubled = [i for i, n in counts.items() if n > 1]
    assert not doubled, f"{len(doubled)} outputs seen more than once, e.g. {doubled[:3]}"
    missing = set(ref.outputs) - set(counts)
    extra = set(counts) - set(ref.outputs)
    assert not missing and not extra, f"missing {len(missing)}, unexpected {len(extra)}"
    for r in seen:
        if r.raw != ref.outputs[r.id][1]:
            got = msgspec.msgpack.decode(r.raw)
            want = msgspec.msgpack.decode(ref.outputs[r.id][1])
            raise AssertionError(f"output {r.id} differs from the reference:\n{got}\n{want}")
    # Order: per output partition, the outputs of each source partition keep their order.
    sequences: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for r in seen:
        source = int(r.id.split("/")[-3])
        sequences[(r.topic, r.partition, source)].append(r.id)
    assert dict(sequences) == ref.sequences
    store = SnapshotStore(redis, settings.namespace, scenario.service)
    for p, expected in ref.state.items():
        offset, state = await store.load(p)
        assert offset == ref.offsets[p]
        assert state == expected, f"Redis state of partition {p} differs from the reference"


async def recorded_reference(
    settings: Settings, count: int, scenario: Scenario = RISK
) -> Reference:
    inputs = await read_topic(
        settings, scenario.input_topic, decode=False, expect=count, quiet_s=0.5
    )
    assert len(inputs) == count
    return reference_run(settings, inputs, scenario.input_topic, scenario.factory(settings))


def replays_in(log: Path) -> list[tuple[int, int]]:
    """(state offset, committed offset) of every assignment that had to replay."""
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "state_offset" in doc and doc["committed_offset"] > doc["state_offset"]:
            out.append((doc["state_offset"], doc["committed_offset"]))
    return out


@pytest.mark.parametrize("scenario", [RISK, MATCHER, LIQUIDATOR], ids=lambda s: s.service)
async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    stack: object,
    settings: Settings,
    redis_client: aioredis.Redis,
    tmp_path: Path,
    scenario: Scenario,
) -> None:
    items = scenario.workload(11, 6000)
    await feed(settings, scenario, items)
    ref = await recorded_reference(settings, len(items), scenario)
    total = sum(ref.offsets.values())
    # Small batches make the run long enough to be killed many times mid-stream.
    proc = ServiceProcess(scenario.service, settings, tmp_path / "logs", batch_max=40)
    rng = random.Random(5)
    targets = sorted(rng.uniform(0.05, 0.85) * total for _ in range(5))
    kills: list[int] = []
    proc.start()
    try:
        for target in targets:
            target = max(target, (kills[-1] + 1) if kills else 0)  # new progress first
            while sum((await progress(settings, redis_client, scenario)).values()) < target:
                assert proc.alive(), proc.tail()
                await asyncio.sleep(0.02)
            proc.kill()
            kills.append(sum((await progress(settings, redis_client, scenario)).values()))
            proc.start()
        await wait_done(settings, redis_client, ref, [proc], scenario)
    finally:
        proc.stop()
    assert len(kills) == 5 and all(0 < k < total for k in kills), kills
    assert kills == sorted(kills) and len(set(kills)) == 5, f"each kill after new progress: {kills}"
    await assert_matches_reference(settings, redis_client, ref, scenario)
    print(f"{scenario.service}: killed at {kills} of {total}; replays {replays_in(proc.log_path)}")


async def test_failover_moves_partitions_with_state(
    stack: object, settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    items = risk_workload(23, 4000)
    first, rest = items[:1500], items[1500:]
    a = ServiceProcess("risk", settings, tmp_path / "a", batch_max=100)
    b = ServiceProcess("risk", settings, tmp_path / "b", batch_max=100)
    a.start()
    b.start()
    try:
        await feed(settings, RISK, first, chunk=150, pause_s=0.1)
        owned_by_a, owned_by_b = await shared_between(a.log_path, b.log_path)
        a.kill()
        await feed(settings, RISK, rest, chunk=250, pause_s=0.05)
        ref = await recorded_reference(settings, len(items))
        await wait_done(settings, redis_client, ref, [b])
        taken_over = owned_partitions(b.log_path)
        assert taken_over == owned_by_a | owned_by_b == {0, 1, 2, 3}, "b must take a's share"
    finally:
        a.stop()
        b.stop()
    await assert_matches_reference(settings, redis_client, ref)


def owned_partitions(log: Path) -> set[int]:
    """Partitions an instance owns now, from its last assignment event."""
    owned: set[int] = set()
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") in ("assigned", "revoked"):
                owned = set(doc["partitions"])
    return owned


async def shared_between(a: Path, b: Path, timeout_s: float = 30.0) -> tuple[set[int], set[int]]:
    """Wait until two instances split the four partitions between them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        pa, pb = owned_partitions(a), owned_partitions(b)
        if pa and pb and pa | pb == {0, 1, 2, 3} and not pa & pb:
            return pa, pb
        assert asyncio.get_running_loop().time() < deadline, f"no split: a={pa} b={pb}"
        await asyncio.sleep(0.1)
