"""What a run leaves behind, read back for the report: the public Kafka logs of its
namespace (read_committed, from the beginning to the end offsets at the time of reading)
and the venue's end state in Redis (every risk partition's accounts, marks and fee
ledger; the liquidator's open cases)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common import codec
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.settings import Settings
from libs.common.state import ACCOUNT_PREFIX, MARK_PREFIX, AccountState, MarkState
from services.liquidator.cases import CASE_PREFIX
from services.risk.engine import VENUE_KEY
from services.risk.ledger import VenueLedger


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: Any


async def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every committed record of a logical topic, in (partition, offset) order;
    records that do not decode are skipped (dead letters are the services' concern)."""
    name = settings.topics.name(topic)
    decoder = codec.decoder(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Record] = []
    try:
        parts = [TopicPartition(name, p) for p in range(settings.topics.partitions(topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {name} took longer than {timeout_s:.0f} s")
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp] or m.value is None:
                        continue
                    try:
                        value = decoder.decode(m.value)
                    except (codec.DecodeError, msgspec.ValidationError):
                        continue
                    out.append(Record(topic, tp.partition, m.offset, value))
    finally:
        await consumer.stop()
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


@dataclass
class RiskPartition:
    partition: int
    accounts: dict[str, AccountState] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    ledger: VenueLedger = field(default_factory=VenueLedger)


@dataclass
class EndState:
    partitions: list[RiskPartition]
    open_cases: int

    def account(self, address: str) -> tuple[AccountState, dict[str, int]] | None:
        for part in self.partitions:
            if address in part.accounts:
                return part.accounts[address], part.marks
        return None


class StateReader:
    """Reads a namespace's hot state; ``quiet`` waits until nothing moves."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = aioredis.Redis.from_url(settings.redis_url)

    async def close(self) -> None:
        await self.redis.aclose()

    def _partitions(self, service: str) -> int:
        topic = {"risk": "risk.in", "matcher": "matcher.in", "liquidator": "liquidations"}
        return self.settings.topics.partitions(topic[service])

    async def offsets(self) -> tuple[int, ...]:
        found = []
        for service in ("risk", "matcher", "liquidator"):
            store = SnapshotStore(self.redis, self.settings.namespace, service)
            found.extend([await store.stored_offset(p) for p in range(self._partitions(service))])
        return tuple(found)

    async def open_cases(self) -> int:
        store = SnapshotStore(self.redis, self.settings.namespace, "liquidator")
        count = 0
        for p in range(self._partitions("liquidator")):
            _, entries = await store.load(p)
            count += sum(1 for key in entries if key.startswith(CASE_PREFIX))
        return count

    async def quiet(self, still_s: float = 2.0, timeout_s: float = 60.0) -> bool:
        """Until no liquidation case is open and no service has committed anything for
        ``still_s``; False if that never happened within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last, since = await self.offsets(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            now = await self.offsets()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= still_s and not await self.open_cases():
                return True
        return False

    async def end_state(self) -> EndState:
        store = SnapshotStore(self.redis, self.settings.namespace, "risk")
        parts = []
        for p in range(self._partitions("risk")):
            _, entries = await store.load(p)
            part = RiskPartition(p)
            for key, raw in entries.items():
                if key.startswith(ACCOUNT_PREFIX):
                    acct = msgspec.msgpack.decode(raw, type=AccountState)
                    part.accounts[acct.address] = acct
                elif key.startswith(MARK_PREFIX):
                    mark = msgspec.msgpack.decode(raw, type=MarkState)
                    part.marks[mark.market] = mark.mark_px
                elif key == VENUE_KEY:
                    part.ledger = msgspec.msgpack.decode(raw, type=VenueLedger)
            parts.append(part)
        return EndState(parts, await self.open_cases())
