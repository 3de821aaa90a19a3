"""An override is kept in the hold store before it is applied: when Redis cannot keep
it, the operator gets a 503 with the reason and nothing changes (no hold, no audit,
no halted index); the core's plan of an override is exactly what applying it gives."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.schemas import OracleOverride
from libs.common.settings import Settings
from libs.localstack import free_ports
from services.oracle.aggregator import Override, OverrideRefused
from services.oracle.config import load_oracle_config
from services.oracle.holds import HoldStore, HoldStoreUnavailable
from services.oracle.service import OracleService
from services.oracle.sources.base import QuoteBatch
from tests.unit.oracle.reference import T0, aggregator, everyone, feed, quotes
from tests.unit.oracle.test_publisher import Recorder

SETTINGS = Settings(namespace="unit.")

actions = st.sampled_from(["freeze", "set", "release", "halt"])
commands = st.lists(
    st.tuples(actions, st.integers(-10, 2_000_000), st.integers(0, 5000)), max_size=8
)


@given(commands, st.booleans())
def test_a_plan_is_what_the_override_gives_and_refuses_alike(
    steps: list[tuple[str, int, int]], priced: bool
) -> None:
    agg = aggregator()
    if priced:
        feed(agg, 0, everyone("100000"))
    for action, px, dt in steps:
        command = Override(ts=T0 + dt, market="BTC", action=action, px=px, operator="o")  # type: ignore[arg-type]
        try:
            planned: OracleOverride | None = agg.plan_override(command)
        except OverrideRefused:
            planned = None
        try:
            applied: OracleOverride | None = agg.override(command)[0]
        except OverrideRefused:
            applied = None
        assert planned == applied


class DownStore:
    """The hold store while Redis is away."""

    def __init__(self) -> None:
        self.up = False
        self.kept: list[OracleOverride] = []

    async def record(self, audit: OracleOverride) -> None:
        if not self.up:
            raise HoldStoreUnavailable("hold store (Redis) unavailable: Connection refused")
        self.kept.append(audit)


async def test_an_override_redis_cannot_keep_is_refused_and_changes_nothing() -> None:
    clock = [T0]
    producer = Recorder()
    service = OracleService(
        SETTINGS,
        load_oracle_config(SETTINGS),
        clock=lambda: clock[0],
        sources=[],
        producer=producer,  # type: ignore[arg-type]
    )
    store = DownStore()
    service.holds = store  # type: ignore[assignment]
    batch = QuoteBatch(now=T0, prices=tuple(quotes(T0, everyone("100000"))))
    await service._handle([batch])
    producer.sent.clear()

    freeze = Override(ts=0, market="BTC", action="freeze", operator="alice", reason="drill")
    task = asyncio.create_task(service.override(freeze))
    await asyncio.sleep(0)
    await service._handle([service.queue.get_nowait()])  # type: ignore[list-item]
    with pytest.raises(HoldStoreUnavailable, match="Connection refused"):
        await task
    assert service.core.last_update("BTC").status == "valid"  # type: ignore[union-attr]
    assert [m for *_, m in producer.sent if isinstance(m, OracleOverride)] == []

    store.up = True  # Redis is back: the same request is applied, kept, published
    task = asyncio.create_task(service.override(freeze))
    await asyncio.sleep(0)
    await service._handle([service.queue.get_nowait()])  # type: ignore[list-item]
    audit, update = await task
    assert (update.status, update.px) == ("halted", 1_000_000)
    assert store.kept == [audit] and audit.operator == "alice"
    assert [m for *_, m in producer.sent if isinstance(m, OracleOverride)] == [audit]


async def test_a_hold_store_without_redis_fails_fast_with_the_reason() -> None:
    (port,) = free_ports(1)  # nothing listens there
    store = HoldStore(Settings(namespace="unit.", redis_url=f"redis://127.0.0.1:{port}/0"))
    audit = OracleOverride(ts=T0, market="BTC", action="freeze", px=1, operator="o", reason="")
    started = time.monotonic()
    with pytest.raises(HoldStoreUnavailable, match="hold store \\(Redis\\) unavailable"):
        await store.record(audit)
    with pytest.raises(HoldStoreUnavailable):
        await store.load()
    assert time.monotonic() - started < 2 * store.op_timeout_s
    stop = asyncio.Event()
    stop.set()
    assert await store.load_patiently(stop) is None
    await store.close()
