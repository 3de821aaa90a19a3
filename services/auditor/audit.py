"""The audit run: Kafka logs and Redis in, a report of every difference out.

    python -m services.auditor [--skip-books] [--skip-fills]   (EXCHANGE_* settings)

For every partition of every stateful processor (risk, matcher, liquidator) it reads the
Redis snapshot (offset R and entries), replays the input log read_committed from offset
0 through a fresh core, and compares every entry at R; on the way it recomputes every
state proof the processor published on ``state.proofs`` and checks that none is missing
(every ``proof_interval`` offsets below R). Then money conservation over risk's state at
R and the fills across risk.in, market.events and account.events (``books``,
``fills``). Conservation and fills are exact only on a quiet venue (nothing in flight
between partitions); the state and the proofs are exact at any time. Exit status 1 on
any problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from libs.common import codec, topics
from libs.common.runtime import CoreFactory, Output, SnapshotStore
from libs.common.schemas import AccountFill, FillLeg, StateProof, Trade
from libs.common.settings import Settings
from services.auditor.books import Books
from services.auditor.fills import FillLedger
from services.auditor.replay import PartitionReplay
from services.liquidator.service import core_factory as liquidator_factory
from services.matcher.service import core_factory as matcher_factory
from services.risk.service import core_factory as risk_factory

READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Stateful:
    """A processor whose state the auditor rebuilds: its input log and its core."""

    service: str
    input_topic: str
    factory: Callable[[Settings], CoreFactory]


STATEFUL = (
    Stateful("risk", topics.RISK_IN, risk_factory),
    Stateful("matcher", topics.MATCHER_IN, matcher_factory),
    Stateful("liquidator", topics.LIQUIDATIONS, liquidator_factory),
)


@dataclass
class PartitionAudit:
    """One partition: Redis at ``offset`` against the log's replay."""

    service: str
    partition: int
    offset: int
    entries: int
    differences: list[str] = field(default_factory=list)
    proofs_checked: int = 0


@dataclass
class AuditReport:
    partitions: list[PartitionAudit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    books: Books | None = None
    fills: FillLedger | None = None
    seconds: float = 0.0

    @property
    def proofs_checked(self) -> int:
        return sum(p.proofs_checked for p in self.partitions)

    @property
    def differences(self) -> list[str]:
        return [d for p in self.partitions for d in p.differences]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences

    def render(self) -> str:
        lines = [
            f"{'service':<11} {'part':>4} {'offset':>8} {'entries':>8} {'proofs':>6}  state",
        ]
        for p in self.partitions:
            verdict = "= log" if not p.differences else f"{len(p.differences)} DIFFER"
            lines.append(
                f"{p.service:<11} {p.partition:>4} {p.offset:>8} {p.entries:>8} "
                f"{p.proofs_checked:>6}  {verdict}"
            )
        if self.books is not None:
            b = self.books
            lines.append(
                f"books: deposits {b.deposits} - withdrawals {b.withdrawals} = collateral "
                f"{b.collateral} + isolated {b.isolated_margin} - basis {b.basis} + venue "
                f"{b.venue}; imbalance {b.imbalance} micro-USDC over {b.accounts} accounts"
            )
        if self.fills is not None:
            lines.append(f"fills: {self.fills.fills} checked (legs, trades, account fills)")
        lines += [f"DIFFERS: {d}" for d in self.differences]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append(f"audit {'passed' if self.ok else 'FAILED'} in {self.seconds:.2f} s")
        return "\n".join(lines)


def describe_difference(
    service: str, partition: int, name: str, redis: bytes | None, log: bytes | None
) -> str:
    """One differing entry, named for a person: the account and the fields that differ."""
    prefix, _, rest = name.partition(":")
    who = f"account {rest}" if service == "risk" and prefix == "a" else f"entry {name!r}"
    where = f"{service} partition {partition}: {who}"
    if redis is None:
        return f"{where} is missing from Redis"
    if log is None:
        return f"{where} is in Redis but not in the state rebuilt from the log"
    got, want = msgspec.msgpack.decode(redis), msgspec.msgpack.decode(log)
    if isinstance(got, dict) and isinstance(want, dict):
        fields = sorted(set(got) | set(want), key=str)
        diffs = [
            f"{k}: Redis {got.get(k)!r}, log {want.get(k)!r}"
            for k in fields
            if got.get(k) != want.get(k)
        ]
        if diffs:
            return f"{where} differs: " + "; ".join(diffs)
    return f"{where} differs (Redis {len(redis)} bytes, log {len(log)} bytes)"


class LogReader:
    """Reads whole partitions read_committed, from the start to their last stable offset."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 << 20,
            fetch_max_wait_ms=20,  # a partition read to its end must not wait for more
        )

    async def __aenter__(self) -> LogReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def end(self, topic: str, partition: int) -> int:
        tp = TopicPartition(self.settings.topics.name(topic), partition)
        return int((await self.consumer.end_offsets([tp]))[tp])

    async def read(
        self,
        topic: str,
        partition: int,
        on_record: Callable[[ConsumerRecord[bytes, bytes]], None],
        end: int | None = None,
    ) -> int:
        """Every committed record of one partition below ``end`` (default: the last
        stable offset now), in order; returns ``end``."""
        tp = TopicPartition(self.settings.topics.name(topic), partition)
        consumer = self.consumer
        if end is None:
            end = await self.end(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cannot read {tp} up to offset {end}")
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
            for record in batches.get(tp, []):
                if record.offset >= end:
                    return end
                on_record(record)
        return end

    async def read_topic(
        self, topic: str, on_record: Callable[[ConsumerRecord[bytes, bytes]], None]
    ) -> None:
        for partition in range(self.settings.topics.partitions(topic)):
            await self.read(topic, partition, on_record)


def record_id(record: ConsumerRecord[bytes, bytes]) -> str:
    for name, value in record.headers or ():
        if name == "id":
            return bytes(value).decode()
    return ""


class Auditor:
    """One audit of a venue's logs against its Redis."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis

    async def run(self, *, books: bool = True, fills: bool = True) -> AuditReport:
        started = time.perf_counter()
        report = AuditReport(books=Books() if books else None)
        ledger = FillLedger()
        # Redis first: every proof below a partition's R is then on the log when read.
        snapshots: dict[tuple[str, int], tuple[int, dict[str, bytes]]] = {}
        for stateful in STATEFUL:
            store = SnapshotStore(self.redis, self.settings.namespace, stateful.service)
            for partition in range(self.settings.topics.partitions(stateful.input_topic)):
                snapshots[(stateful.service, partition)] = await store.load(partition)
        async with LogReader(self.settings) as reader:
            replays: list[tuple[Stateful, PartitionAudit, PartitionReplay, int]] = []
            for stateful in STATEFUL:
                for partition in range(self.settings.topics.partitions(stateful.input_topic)):
                    audit, replay, end = await self._partition(
                        reader,
                        stateful,
                        partition,
                        snapshots[(stateful.service, partition)],
                        report,
                        ledger,
                    )
                    report.partitions.append(audit)
                    replays.append((stateful, audit, replay, end))
            # The proofs last: a batch's transaction markers land a moment after its
            # commit returns (and its Redis write), long before the replays are done.
            proofs = await self._proofs(reader, ledger)
            for stateful, audit, replay, end in replays:
                published = proofs.get((stateful.input_topic, audit.partition), {})
                self._check_proofs(stateful, audit, replay, end, published, report)
            if fills:
                await self._outputs(reader, ledger)
                report.fills = ledger
                report.problems += ledger.problems()
        if report.books is not None:
            report.problems += report.books.problems()
        report.seconds = time.perf_counter() - started
        return report

    async def _proofs(
        self, reader: LogReader, ledger: FillLedger
    ) -> dict[tuple[str, int], dict[int, list[StateProof]]]:
        """Every published proof, by input partition and offset."""
        decoder = codec.decoder(topics.STATE_PROOFS)
        found: dict[tuple[str, int], dict[int, list[StateProof]]] = {}

        def take(record: ConsumerRecord[bytes, bytes]) -> None:
            ledger.record(topics.STATE_PROOFS, record_id(record))
            proof: StateProof = decoder.decode(record.value or b"")
            found.setdefault((proof.topic, proof.partition), {}).setdefault(
                proof.offset, []
            ).append(proof)

        if self.settings.topics.name(topics.STATE_PROOFS) not in await reader.consumer.topics():
            return found  # a deployment from before proofs: every proof is then missing
        await reader.read_topic(topics.STATE_PROOFS, take)
        return found

    async def _partition(
        self,
        reader: LogReader,
        stateful: Stateful,
        partition: int,
        snapshot: tuple[int, dict[str, bytes]],
        report: AuditReport,
        ledger: FillLedger,
    ) -> tuple[PartitionAudit, PartitionReplay, int]:
        stored, redis_entries = snapshot
        books = report.books if stateful.service == "risk" else None
        watch = None
        if books is not None:
            book_watch = books.watch

            def watch(out: Output) -> None:
                if replay.offset < stored:  # the books are taken at R
                    book_watch(out)

        core = stateful.factory(self.settings)(partition)
        replay = PartitionReplay(
            core,
            self.settings.topics,
            stateful.input_topic,
            partition,
            proof_interval=self.settings.proof_interval,
            watch=watch,
        )
        audit = PartitionAudit(stateful.service, partition, stored, len(redis_entries))
        compared = False

        def compare() -> None:
            nonlocal compared
            compared = True
            rebuilt = dict(replay.flush())
            for name in sorted(set(rebuilt) | set(redis_entries)):
                have, want = redis_entries.get(name), rebuilt.get(name)
                if have != want:
                    audit.differences.append(
                        describe_difference(stateful.service, partition, name, have, want)
                    )
            if books is not None:
                books.add_partition(rebuilt)

        def take(record: ConsumerRecord[bytes, bytes]) -> None:
            if not compared and record.offset >= stored:
                compare()
            ledger.record(stateful.input_topic, record_id(record))
            message = replay.apply(record.offset, record.value or b"")
            if type(message) is FillLeg:
                ledger.leg(message)

        end = await reader.read(stateful.input_topic, partition, take)
        if not compared:
            compare()
        if stored > end:
            audit.differences.append(
                f"{stateful.service} partition {partition}: Redis is at offset {stored}, "
                f"beyond the log's last stable offset {end}"
            )
        return audit, replay, end

    @staticmethod
    def _check_proofs(
        stateful: Stateful,
        audit: PartitionAudit,
        replay: PartitionReplay,
        end: int,
        published: dict[int, list[StateProof]],
        report: AuditReport,
    ) -> None:
        """Each published proof against the replay's hash at its offset, and none
        missing where the log says one was committed (below the Redis offset)."""
        partition, stored = audit.partition, audit.offset
        for offset, found in sorted(published.items()):
            if offset not in replay.digests:
                if offset <= end:
                    report.problems.append(
                        f"{stateful.service} partition {partition}: a state proof at offset "
                        f"{offset}, where the log proves nothing"
                    )
                continue  # beyond what the log held when it was read
            entries, digest = replay.digests[offset]
            audit.proofs_checked += 1
            for proof in found:
                if proof.sha256 != digest or proof.entries != entries:
                    report.problems.append(
                        f"{stateful.service} partition {partition}: the state proof at offset "
                        f"{offset} says {proof.sha256[:16]}.. ({proof.entries} entries), the "
                        f"log gives {digest[:16]}.. ({entries} entries)"
                    )
        # every proof due below R was committed with its batch
        missing = [o for o in sorted(replay.digests) if o <= stored and o not in published]
        if missing:
            report.problems.append(
                f"{stateful.service} partition {partition}: {len(missing)} state proofs "
                f"missing below offset {stored}, e.g. at {missing[:3]}"
            )

    async def _outputs(self, reader: LogReader, ledger: FillLedger) -> None:
        """Trades on market.events and account fills on account.events."""
        for topic, keep in (
            (topics.MARKET_EVENTS, self._trade(ledger)),
            (topics.ACCOUNT_EVENTS, self._account_fill(ledger)),
        ):
            decoder = codec.decoder(topic)

            def take(
                record: ConsumerRecord[bytes, bytes],
                topic: str = topic,
                decoder: Any = decoder,
                keep: Callable[[Any], None] = keep,
            ) -> None:
                ledger.record(topic, record_id(record))
                keep(decoder.decode(record.value or b""))

            await reader.read_topic(topic, take)

    @staticmethod
    def _trade(ledger: FillLedger) -> Callable[[Any], None]:
        def keep(message: Any) -> None:
            if type(message) is Trade:
                ledger.trade(message)

        return keep

    @staticmethod
    def _account_fill(ledger: FillLedger) -> Callable[[Any], None]:
        def keep(message: Any) -> None:
            if type(message) is AccountFill:
                ledger.account_fill(message)

        return keep


async def audit(settings: Settings, *, books: bool = True, fills: bool = True) -> AuditReport:
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        return await Auditor(settings, redis).run(books=books, fills=fills)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--skip-books", action="store_true", help="no conservation check (a busy venue)"
    )
    parser.add_argument("--skip-fills", action="store_true", help="no fill check (a busy venue)")
    args = parser.parse_args()
    report = asyncio.run(audit(Settings(), books=not args.skip_books, fills=not args.skip_fills))
    print(report.render())
    sys.exit(0 if report.ok else 1)
