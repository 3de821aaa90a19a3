"""The transactional consume-apply-produce loop that every stateful service runs.

Per owned input partition there is one transactional producer (``transactional.id`` =
``<group>.<topic>.<partition>``): whoever takes the partition over fences the previous
owner's producer, so a paused or partitioned former owner can commit nothing more.

Each owned partition runs its own loop: fetch a batch of that partition only (so a busy
partition never starves the others), decode and apply the records to the pure core,
produce its outputs and commit the input offset in one Kafka transaction, then write the
changed state and the next input offset to Redis atomically. Redis is therefore never
ahead of Kafka, and partitions commit independently of each other.

The input offset is committed as a record: a ``Checkpoint`` on the partition of the same
number of the input topic's checkpoint topic (``risk.in.checkpoints``...), produced in
the batch's transaction like any output. It costs no extra round trip (its partition is
added to the transaction with the outputs'), where the consumer group's transactional
offset commit costs two (AddOffsetsToTxn, then TxnOffsetCommit to the group
coordinator) before the commit. The committed offset C is the last committed
checkpoint; a partition with none yet (a deployment that committed to the group before)
falls back to the group's committed offset.

On assignment the state is loaded at the Redis offset R and the
records from R up to the committed offset C are re-applied without producing (their
outputs already exist), after which the partition is live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.producer import sender as _aiokafka_sender
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import codec, metrics
from libs.common.runtime import heap
from libs.common.runtime.batching import BatchSizer
from libs.common.runtime.core import Context, Core, CoreFactory
from libs.common.runtime.outage import Outage
from libs.common.runtime.output import Output
from libs.common.runtime.proof import StateMirror, proof_due
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.schemas import Checkpoint, DeadLetter, StateProof
from libs.common.settings import Settings
from libs.common.topics import CHECKPOINT_KEY, CHECKPOINTS, DEAD_LETTERS, STATE_PROOFS

log = logging.getLogger(__name__)

ID_HEADER = "id"


# How often the committed positions are copied to the consumer group (for lag tools).
MIRROR_INTERVAL_S = 5.0
MIRROR_TIMEOUT_S = 2.0
# How long a partition waits at assignment for its checkpoint topic to exist.
CHECKPOINT_TOPIC_WAIT_S = 60.0
# How long a producer may take to close while the broker is away.
PRODUCER_STOP_TIMEOUT_S = 5.0

# Failures of a broker or Redis that is away (restarting, partitioned): the partition is
# reopened once it answers again, rather than the process exiting.
TRANSIENT = (
    KafkaError,
    OSError,
    asyncio.TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is an outage worth waiting out (not a bug, not a fence)."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, ProducerFenced)


def shorten_txn_backoff(seconds: float) -> None:
    """After a commit the coordinator still writes the markers for about a millisecond and
    answers the next AddPartitionsToTxn with CONCURRENT_TRANSACTIONS; aiokafka then waits a
    fixed 20 ms (``BACKOFF_OVERRIDE``, KAFKA-5477), which would idle every back-to-back
    batch of a partition. The constant is read at each retry, so it can be lowered here."""
    _aiokafka_sender.BACKOFF_OVERRIDE = seconds  # type: ignore[attr-defined]


def emit_dead_letter(
    ctx: Context,
    input_topic: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    payload: bytes,
    error: str,
) -> None:
    """Send an input record that cannot be applied to the dead-letter topic, in the
    batch's transaction, with its bytes and the reason."""
    letter = DeadLetter(
        ts=timestamp,
        topic=topic,
        partition=partition,
        offset=offset,
        error=error[:2000],
        payload=payload,
    )
    ctx.emit(DEAD_LETTERS, input_topic, letter)


class Staged(msgspec.Struct, kw_only=True):
    """A batch applied to the core and not yet committed."""

    outputs: list[Output]
    next_offset: int
    live: int
    replayed: int
    changes: dict[str, bytes | None]
    started: float


class PartitionWorker:
    """One owned input partition: its core, producer, replay boundary and loop."""

    def __init__(
        self,
        processor: Processor,
        tp: TopicPartition,
        core: Core,
        producer: AIOKafkaProducer,
        replay_until: int,
        position: int,
        restored: dict[str, bytes] | None = None,
    ) -> None:
        settings = processor.settings
        self.processor = processor
        self.tp = tp
        self.core = core
        self.producer = producer
        self.replay_until = replay_until
        self.position = position
        # The next input offset whose effects are not committed yet (C), as far as this
        # owner knows: the start's, then each committed batch's.
        self.committed = replay_until
        self.replaying = position < replay_until
        self.ctx = Context(settings.topics, processor.input_topic, tp.partition)
        self.sizer = BatchSizer(settings.batch_min, settings.batch_max, settings.batch_target_ms)
        self.pending: dict[str, bytes | None] = {}
        self.failure: BaseException | None = None
        self.closing = False
        self.busy = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.inflight: asyncio.Task[None] | None = None
        # State proofs every K input offsets: the whole state as persisted, kept current.
        self.proof_interval = settings.proof_interval
        self.mirror = StateMirror(restored) if self.proof_interval > 0 else None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=f"partition-{self.tp}")
        # a fetch that fails (the broker away) must rebuild the partition, not stall it
        self.task.add_done_callback(self._finished)

    async def close(self) -> None:
        """Let the batch being committed finish its commit and snapshot, then stop."""
        self.closing = True
        async with self.busy:
            pass
        if self.inflight is not None:
            await asyncio.gather(self.inflight, return_exceptions=True)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await stop_producer(self.producer)

    async def _loop(self) -> None:
        """Fetch, apply, and hand the batch to a commit task; while batch k commits (the
        broker's round trips), batch k+1 is fetched and applied (our CPU)."""
        consumer = self.processor.consumer
        poll_ms = self.processor.settings.poll_timeout_ms
        while not self.closing:
            batches = await consumer.getmany(
                self.tp, timeout_ms=poll_ms, max_records=self.sizer.size
            )
            records = batches.get(self.tp)
            if not records:
                continue
            async with self.busy:
                if self.closing:
                    return
                records = [r for r in records if r.offset >= self.position]
                if not records:
                    continue
                staged = self.stage(records)
                previous = self.inflight
                if previous is not None:
                    await asyncio.gather(previous, return_exceptions=True)
                    if self.failure is not None:
                        return
                self.inflight = asyncio.create_task(self.finish(staged))
                self.inflight.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            self.processor.wake.set()

    def stage(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> Staged:
        """Apply a batch to the core and capture what it produced and changed."""
        started = time.perf_counter()
        ctx = self.ctx
        replay_until = self.replay_until
        live = 0
        changes: dict[str, bytes | None] = {}
        mirror = self.mirror
        position = self.position
        for record in records:
            is_live = record.offset >= replay_until
            ctx.at(record.offset, live=is_live)
            self._apply(record, ctx)
            live += is_live
            if mirror is not None and proof_due(position, record.offset, self.proof_interval):
                self._prove(record, ctx, mirror, changes)
            position = record.offset + 1
        next_offset = records[-1].offset + 1
        self.position = next_offset
        if self.replaying and next_offset >= replay_until:
            self.replaying = False
            heap.settle()  # the state rebuilt by the replay is long-lived too
        # The changes are taken now, before the next batch is applied, so the snapshot
        # written after this batch's commit is exactly the state after this batch.
        return Staged(
            outputs=ctx.drain(),
            next_offset=next_offset,
            live=live,
            replayed=len(records) - live,
            changes=self._take_changes(changes),
            started=started,
        )

    def _take_changes(self, changes: dict[str, bytes | None]) -> dict[str, bytes | None]:
        """The batch's changes: those taken for proofs mid-batch, then the rest."""
        last = self.core.take_changes()
        if self.mirror is None:
            return last
        self.mirror.update(last)
        if not changes:
            return last
        changes.update(last)
        return changes

    def _prove(
        self,
        record: ConsumerRecord[bytes, bytes],
        ctx: Context,
        mirror: StateMirror,
        changes: dict[str, bytes | None],
    ) -> None:
        """Prove the state after ``record``: take the core's changes so far (they join the
        batch's), hash the whole state, and emit the proof in the batch's transaction
        (only live: a replayed record's proof is already committed)."""
        taken = self.core.take_changes()
        changes.update(taken)
        mirror.update(taken)
        if not ctx.live:
            return
        proc = self.processor
        started = time.perf_counter()
        proof = StateProof(
            ts=record.timestamp,
            service=proc.service,
            topic=proc.input_topic,
            partition=self.tp.partition,
            offset=record.offset + 1,
            entries=len(mirror.entries),
            sha256=mirror.digest(),
        )
        metrics.PROOF_SECONDS.labels(proc.service).observe(time.perf_counter() - started)
        where = f"{proc.input_topic}/{self.tp.partition}"
        ctx.outputs.append(
            Output(
                proc.settings.topics.name(STATE_PROOFS),
                self.tp.partition,
                where.encode(),
                proof,
                f"{where}/{record.offset}/proof",
            )
        )

    async def finish(self, staged: Staged) -> None:
        """Commit the batch's outputs and offset in one transaction, then snapshot."""
        proc = self.processor
        if staged.live:
            # bounded: after a broker restart aiokafka's sender can die and leave the
            # commit waiting forever; a timeout rebuilds the partition, which reads back
            # whether the transaction committed (C) and goes on from there
            await asyncio.wait_for(
                self._commit(staged.outputs, staged.next_offset),
                proc.settings.kafka_commit_timeout_s,
            )
            self.committed = staged.next_offset
            metrics.MESSAGES_IN.labels(proc.service, proc.input_topic).inc(staged.live)
        if staged.replayed:
            metrics.REPLAYED.labels(proc.service, proc.input_topic).inc(staged.replayed)
        await self.persist(staged.next_offset, staged.changes)
        elapsed = time.perf_counter() - staged.started
        metrics.BATCH_SECONDS.labels(proc.service).observe(elapsed)
        size = self.sizer.observe(staged.live + staged.replayed, elapsed)
        metrics.BATCH_SIZE.labels(proc.service).set(size)

    async def persist(self, next_offset: int, changes: dict[str, bytes | None]) -> None:
        """Write changed state and the next offset; on failure retried with the next batch."""
        self.pending.update(changes)
        started = time.perf_counter()
        try:
            await self.processor.snapshots.write(self.tp.partition, next_offset, self.pending)
        except Exception:
            log.warning("Redis write failed for %s; will retry", self.tp, exc_info=True)
            return
        self.pending.clear()
        metrics.SNAPSHOT_SECONDS.labels(self.processor.service).observe(
            time.perf_counter() - started
        )

    def _apply(self, record: ConsumerRecord[bytes, bytes], ctx: Context) -> None:
        proc = self.processor
        try:
            message = proc.decoder.decode(record.value or b"")
        except (codec.DecodeError, ValueError) as exc:
            self._dead_letter(record, ctx, "decode", str(exc))
            return
        try:
            self.core.apply(message, ctx)
        except Exception as exc:  # a core bug must not stall the partition
            log.exception("core failed on %s offset %d", self.tp, record.offset)
            self._dead_letter(record, ctx, "apply", f"{type(exc).__name__}: {exc}")

    def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], ctx: Context, reason: str, error: str
    ) -> None:
        proc = self.processor
        if ctx.live:
            log.warning(
                "dead-lettering %s offset %d: %s",
                self.tp,
                record.offset,
                error,
                extra={"reason": reason},
            )
            metrics.DEAD_LETTERS.labels(proc.service, proc.input_topic, reason).inc()
        emit_dead_letter(
            ctx,
            proc.input_topic,
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.value or b"",
            f"{reason}: {error}",
        )

    async def _commit(self, outputs: list[Output], next_offset: int) -> None:
        proc = self.processor
        producer = self.producer
        phases = metrics.TXN_PHASE_SECONDS
        await producer.begin_transaction()
        try:
            if proc.checkpoints is None:
                deliveries = await self._send_batched(outputs)
                started = time.perf_counter()
                await producer.send_offsets_to_transaction({self.tp: next_offset}, proc.group_id)
                phases.labels(proc.service, "offsets").observe(time.perf_counter() - started)
            else:  # the input position is one more output of the batch
                deliveries = await self._send_batched(
                    [*outputs, self._checkpoint(proc.checkpoints, next_offset)]
                )
            started = time.perf_counter()
            # aiokafka commits a transaction whose record batch failed (it marks only that
            # batch's future): every batch must be in before the commit, or none is kept.
            await asyncio.gather(*deliveries)
            await producer.commit_transaction()
            phases.labels(proc.service, "commit").observe(time.perf_counter() - started)
        except BaseException:
            metrics.TXN_ABORTS.labels(proc.service).inc()
            try:
                await asyncio.wait_for(producer.abort_transaction(), PRODUCER_STOP_TIMEOUT_S)
            except Exception:  # the producer may be fenced or dead: nothing to abort
                log.debug("abort failed on %s", self.tp, exc_info=True)
            raise
        counts: dict[str, int] = {}
        for out in outputs:
            counts[out.topic] = counts.get(out.topic, 0) + 1
        for topic, count in counts.items():
            metrics.MESSAGES_OUT.labels(proc.service, topic).inc(count)

    def _checkpoint(self, topic: str, next_offset: int) -> Output:
        """The input position as a record of the batch: what the next owner reads."""
        checkpoint = Checkpoint(ts=int(time.time() * 1000), offset=next_offset)
        where = f"{self.processor.input_topic}/{self.tp.partition}/{next_offset}/checkpoint"
        return Output(topic, self.tp.partition, CHECKPOINT_KEY, checkpoint, where)

    async def _send_batched(self, outputs: list[Output]) -> list[asyncio.Future[Any]]:
        """Encode outputs into one record batch per (topic, partition), in output order;
        returns each batch's delivery."""
        producer = self.producer
        deliveries: list[asyncio.Future[Any]] = []
        batches: dict[tuple[str, int], Any] = {}
        for out in outputs:
            where = (out.topic, out.partition)
            batch = batches.get(where)
            if batch is None:
                batch = batches[where] = producer.create_batch()
            value = codec.encode(out.message)
            headers = [(ID_HEADER, out.id.encode())]
            if batch.append(key=out.key, value=value, timestamp=None, headers=headers) is None:
                deliveries.append(
                    await producer.send_batch(batch, out.topic, partition=out.partition)
                )
                batch = batches[where] = producer.create_batch()
                batch.append(key=out.key, value=value, timestamp=None, headers=headers)
        for (topic, partition), batch in batches.items():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries


async def stop_producer(producer: AIOKafkaProducer) -> None:
    """Close a producer, giving up after a few seconds when the broker is away."""
    try:
        await asyncio.wait_for(producer.stop(), PRODUCER_STOP_TIMEOUT_S)
    except Exception:  # nothing left to flush that a new owner would not redo
        log.warning("producer did not close cleanly", exc_info=True)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.processor.revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.processor.assign(assigned)


class Processor:
    """Runs one service's core over its input topic with exactly-once effects."""

    def __init__(
        self,
        *,
        service: str,
        input_topic: str,
        core_factory: CoreFactory,
        settings: Settings,
        redis: aioredis.Redis | None = None,
    ) -> None:
        shorten_txn_backoff(settings.txn_retry_backoff_ms / 1000)
        self.service = service
        self.input_topic = input_topic
        self.core_factory = core_factory
        self.settings = settings
        self.group_id = settings.group_id(service)
        self.topic_name = settings.topics.name(input_topic)
        self.decoder = codec.decoder(input_topic)
        self.redis = redis or aioredis.Redis.from_url(settings.redis_url)
        self.snapshots = SnapshotStore(self.redis, settings.namespace, service)
        # Where the input position is committed (None: the consumer group's offsets,
        # for an input topic without a checkpoint topic).
        logical = CHECKPOINTS.get(input_topic)
        self.checkpoints = settings.topics.name(logical) if logical else None
        self._checkpoint = codec.decoder(logical) if logical else None
        self._next_mirror = 0.0
        self._mirrored: dict[TopicPartition, int] = {}
        self.checkpoint_reader = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            isolation_level="read_committed",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.wake = asyncio.Event()
        self.fatal: BaseException | None = None
        # Partitions owned but not open: their batch or their opening failed during an
        # outage; reopened with backoff until the outage window is over.
        self.reopen: set[TopicPartition] = set()
        self.outage = Outage(
            settings.outage_backoff_first_ms / 1000,
            settings.outage_backoff_max_ms / 1000,
            settings.outage_window_s,
        )
        self._retry_at = 0.0
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        # Never assigned: polling it keeps the group membership alive while idle.
        self._idle_tp = TopicPartition(self.topic_name, -1)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self.group_id}-{settings.instance_id}",
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            # A processor started before its topic exists must notice it soon, not after
            # the client's default five minutes.
            metadata_max_age_ms=5_000,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )

    # ------------------------------------------------------------ ownership

    async def assign(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            for tp in sorted(assigned):
                worker = self.workers.get(tp)
                if worker is None and self.reopen and self._retry_at > time.monotonic():
                    self.consumer.pause(tp)  # an outage is on: open it with the others
                    self.reopen.add(tp)
                    continue
                if worker is None:
                    try:
                        await self._open_bounded(tp)
                    except Exception as exc:
                        if is_transient(exc):  # the broker or Redis is away: retry
                            self._open_failed(tp, exc)
                            continue
                        # aiokafka would swallow this and leave the partition unowned: a
                        # silent stall. Stop the process instead, loudly.
                        log.exception("cannot open %s", tp)
                        self.fatal = exc
                        self.wake.set()
                        return
                    self.reopen.discard(tp)
                else:  # kept across the rebalance: continue exactly where we are
                    self.consumer.seek(tp, worker.position)
            self._owned("assigned")

    async def revoke(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            self.reopen.difference_update(revoked)
            await asyncio.gather(*(self._close(tp) for tp in sorted(revoked)))
            self._owned("revoked")

    def _owned(self, event: str) -> None:
        owned = sorted(tp.partition for tp in self.workers)
        metrics.PARTITIONS_OWNED.labels(self.service).set(len(owned))
        log.info(
            "%s: now own partitions %s", event, owned, extra={"event": event, "partitions": owned}
        )

    async def _open(self, tp: TopicPartition) -> None:
        """Fence the previous owner, then load state at R and replay up to C."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=f"{self.group_id}-{self.settings.instance_id}-p{tp.partition}",
            transactional_id=f"{self.group_id}.{tp.topic}.{tp.partition}",
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=1 << 20,
            retry_backoff_ms=self.settings.txn_retry_backoff_ms,
            request_timeout_ms=self.settings.kafka_request_timeout_ms,
        )
        try:
            # InitProducerId: fences the previous owner of tp, and completes (commits or
            # aborts) its last transaction before it answers
            await producer.start()
            committed = await self._committed(tp)
            stored, entries = await self.snapshots.load(tp.partition)
        except BaseException:  # also a cancelled attempt: leave no producer behind
            await stop_producer(producer)
            raise
        if stored > committed:
            # Cannot happen while Redis is written only after commits; refuse to guess.
            await stop_producer(producer)
            raise RuntimeError(
                f"{tp}: Redis offset {stored} is ahead of committed offset {committed}"
            )
        core = self.core_factory(tp.partition)
        try:
            core.restore(entries)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
            # The snapshot is derived state (for example written by an older state
            # schema): drop it and rebuild the partition from its input log, which keeps
            # its whole history. The replay produces nothing already committed.
            log.warning(
                "state of %s cannot be restored (%s); rebuilding it from offset 0",
                tp,
                exc,
                extra={"partition": tp.partition, "event": "rebuild"},
            )
            await self.snapshots.reset(tp.partition)
            core = self.core_factory(tp.partition)
            stored = 0
        heap.settle()  # the restored state lives until the partition is revoked
        self.consumer.seek(tp, stored)
        self.consumer.resume(tp)
        worker = PartitionWorker(
            self,
            tp,
            core,
            producer,
            replay_until=committed,
            position=stored,
            restored=entries if stored else {},
        )
        self.workers[tp] = worker
        worker.start()
        log.info(
            "partition %s opened: state at %d, replaying to %d",
            tp,
            stored,
            committed,
            extra={
                "partition": tp.partition,
                "state_offset": stored,
                "committed_offset": committed,
            },
        )

    async def _committed(self, tp: TopicPartition) -> int:
        """C: the next input offset whose effects are not committed yet."""
        if self.checkpoints is not None:
            found = await self._last_checkpoint(tp.partition)
            if found is not None:
                return found
        return await self.consumer.committed(tp) or 0

    async def _last_checkpoint(self, partition: int) -> int | None:
        """The offset in the last committed checkpoint of a partition (None if none).

        Read backwards from the last stable offset in growing windows: each batch
        leaves its checkpoint and a commit marker, aborted batches a record and an
        abort marker, so the last committed checkpoint is a few offsets back."""
        assert self.checkpoints is not None and self._checkpoint is not None
        tp = TopicPartition(self.checkpoints, partition)
        reader = self.checkpoint_reader
        deadline = time.monotonic() + CHECKPOINT_TOPIC_WAIT_S
        while self.checkpoints not in await reader.topics():
            # created with the input topics (create-topics), maybe a moment later
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"topic {self.checkpoints} does not exist: create the registry's topics "
                    "(python -m libs.common.admin create-topics)"
                )
            await asyncio.sleep(0.5)
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]  # read_committed: the last stable offset
        span = 16
        while end > 0:
            start = max(0, end - span)
            reader.seek(tp, start)
            last: ConsumerRecord[bytes, bytes] | None = None
            deadline = time.monotonic() + 30.0
            while await reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot read the checkpoints of {tp} up to {end}")
                batches = await reader.getmany(tp, timeout_ms=200)
                for record in batches.get(tp, []):
                    if record.offset < end:
                        last = record
            if last is not None:
                checkpoint = self._checkpoint.decode(last.value or b"")
                assert isinstance(checkpoint, Checkpoint)
                return checkpoint.offset
            if start == 0:
                return None
            span *= 8
        return None

    async def _close(self, tp: TopicPartition) -> None:
        worker = self.workers.pop(tp, None)
        metrics.CONSUMER_LAG.labels(self.service, self.topic_name, str(tp.partition)).set(0)
        if worker is not None:
            await worker.close()

    # ------------------------------------------------------------ supervision

    async def start(self) -> None:
        await self.checkpoint_reader.start()
        await self.consumer.start()
        self.consumer.subscribe([self.topic_name], listener=_Rebalance(self))

    def request_stop(self) -> None:
        self._stop.set()
        self.wake.set()

    async def run(self) -> None:
        """Supervise the partition loops until stopped: keep the group membership alive,
        rebuild a partition whose batch failed, and export consumer lag."""
        while not self._stop.is_set():
            # Polls nothing (the partition is never assigned) but counts as activity and
            # raises the consumer's fatal group errors here.
            await self.consumer.getmany(self._idle_tp, timeout_ms=200)
            if self.wake.is_set():
                self.wake.clear()
                if self.fatal is not None:
                    raise self.fatal
                await self._recover_failed()
            await self._reopen_due()
            self._export_lag()
            await self._mirror_offsets()
            metrics.HEALTH.beat(partitions=len(self.workers))

    async def _mirror_offsets(self) -> None:
        """Copy the committed positions to the consumer group every few seconds, outside
        the transactions, for the tools that read a group's lag (kafka-consumer-groups,
        exporters). They are never ahead of the checkpoints, and are read back only for
        a partition without any checkpoint."""
        if self.checkpoints is None:
            return
        now = time.monotonic()
        if now < self._next_mirror:
            return
        self._next_mirror = now + MIRROR_INTERVAL_S
        offsets = {
            tp: worker.committed
            for tp, worker in self.workers.items()
            if worker.committed > self._mirrored.get(tp, 0)
        }
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), MIRROR_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:  # a rebalance: the next round retries
            log.debug("mirroring offsets to the group failed: %r", exc)
            return
        self._mirrored.update(offsets)

    async def _recover_failed(self) -> None:
        """Close the partitions whose batch failed; an outage's are reopened later."""
        async with self._lock:
            for tp, worker in sorted(self.workers.items()):
                failure = worker.failure
                if failure is None:
                    continue
                await self._close(tp)
                if isinstance(failure, ProducerFenced):
                    log.warning("producer of %s fenced: another instance owns it", tp)
                    self.consumer.pause(tp)
                    continue
                if not is_transient(failure):
                    raise failure
                log.warning("batch on %s failed (%r); rebuilding the partition", tp, failure)
                metrics.OUTAGE_RETRIES.labels(self.service, "batch").inc()
                self._open_failed(tp, failure, attempted=False)

    def _open_failed(self, tp: TopicPartition, exc: BaseException, attempted: bool = True) -> None:
        """Schedule ``tp``'s reopening after the outage's backoff, or give up on it."""
        now = time.monotonic()
        if tp in self.consumer.assignment():  # (a failed fetch may follow a revoke)
            self.consumer.pause(tp)  # nothing fetched for it until it is open again
        self.reopen.add(tp)
        if not attempted:  # a batch failed: the first attempt is after the first delay
            self.outage.begin(now)
            self._retry_at = max(self._retry_at, now + self.outage.first_s)
            return
        metrics.OUTAGE_RETRIES.labels(self.service, "partition").inc()
        retry_at = self.outage.failed(now)
        if retry_at is None:
            metrics.OUTAGES_GIVEN_UP.labels(self.service).inc()
            log.error(
                "cannot reopen %s after %.1f s of outage (window %.0f s): exiting",
                tp,
                self.outage.lasted(now),
                self.outage.window_s,
                extra={"partition": tp.partition, "event": "outage_given_up"},
            )
            self.fatal = RuntimeError(
                f"{tp}: the broker or Redis stayed away longer than the outage window "
                f"({self.outage.window_s:.0f} s): {exc!r}"
            )
            self.wake.set()
            return
        self._retry_at = retry_at
        log.warning(
            "cannot reopen %s (%r); retrying in %.1f s (outage for %.1f s)",
            tp,
            exc,
            retry_at - now,
            self.outage.lasted(now),
            extra={"partition": tp.partition, "event": "outage_retry"},
        )

    async def _open_bounded(self, tp: TopicPartition) -> None:
        """Open ``tp``, failing with a TimeoutError if the attempt hangs on an outage."""
        await asyncio.wait_for(self._open(tp), self.settings.outage_attempt_timeout_s)

    async def _reopen_due(self) -> None:
        """Reopen the partitions an outage closed, once their backoff is over."""
        if not self.reopen:
            if self.outage.active and not self.workers_failed():
                log.info(
                    "outage over after %.1f s: all partitions open",
                    self.outage.lasted(time.monotonic()),
                    extra={"event": "outage_over"},
                )
                self.outage.end()
            return
        if time.monotonic() < self._retry_at:
            return
        async with self._lock:
            assignment = self.consumer.assignment()
            for tp in sorted(self.reopen):
                if tp not in assignment or tp in self.workers:  # moved, or reopened
                    self.reopen.discard(tp)
                    continue
                try:
                    await self._open_bounded(tp)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    self._open_failed(tp, exc)
                    return
                self.reopen.discard(tp)
                self._owned("reopened")

    def workers_failed(self) -> bool:
        return any(worker.failure is not None for worker in self.workers.values())

    def _export_lag(self) -> None:
        for tp, worker in list(self.workers.items()):
            high = self.consumer.highwater(tp)
            if high is not None:
                lag = max(0, high - max(worker.position, 0))
                metrics.CONSUMER_LAG.labels(self.service, self.topic_name, str(tp.partition)).set(
                    lag
                )

    async def stop(self) -> None:
        """Finish in-flight batches, leave the group (partitions move at once), close."""
        self._stop.set()
        async with self._lock:
            await asyncio.gather(*(self._close(tp) for tp in sorted(self.workers)))
        await self.consumer.stop()
        await self.checkpoint_reader.stop()
        await self.redis.aclose()
