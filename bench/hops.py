"""Where one order's time goes, hop by hop: the records of each order on the bus, seen
as they are produced (read_uncommitted) and as the next hop may read them
(read_committed), against the moment the request was sent.

Orders go one at a time (the next when the last is answered), each tagged with a cloid
that every record on its way carries: PlaceOrder (gateway -> risk.in), NewOrder (risk ->
matcher.in), OrderResult (matcher -> risk.in), OrderUpdate (risk -> account.events),
then the gateway's answer. Used by ``bench.e2e --hops N``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from eth_account.signers.local import LocalAccount

from libs.common import codec, topics
from libs.common.settings import Settings
from sim.client import signed_body

STAGES = ("PlaceOrder", "NewOrder", "OrderResult", "OrderUpdate")
# What each record's arrival (or the answer) ends, from the stage before it.
SPANS = {
    ("PlaceOrder", "produced"): "gateway: admission, produce (no transaction)",
    ("NewOrder", "produced"): "risk: fetch, apply, produce",
    ("NewOrder", "committed"): "risk: transaction commit",
    ("OrderResult", "produced"): "matcher: fetch, apply, produce",
    ("OrderResult", "committed"): "matcher: transaction commit",
    ("OrderUpdate", "produced"): "risk: fetch, apply, produce",
    ("OrderUpdate", "committed"): "risk: transaction commit",
    ("answer", ""): "gateway: read the event, wait for Redis, answer",
}


async def _watch(
    settings: Settings, isolation: str, seen: dict[tuple[str, str, str], float]
) -> tuple[AIOKafkaConsumer, asyncio.Task[None]]:
    logical = (topics.RISK_IN, topics.MATCHER_IN, topics.ACCOUNT_EVENTS)
    decoders = {settings.topics.name(t): codec.decoder(t) for t in logical}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    parts = [
        TopicPartition(settings.topics.name(t), p)
        for t in logical
        for p in range(settings.topics.partitions(t))
    ]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    kind = "committed" if isolation == "read_committed" else "produced"

    async def pump() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=5)
            now = time.perf_counter()
            for tp, records in batches.items():
                for record in records:
                    message = decoders[tp.topic].decode(record.value or b"")
                    cloid = getattr(message, "cloid", None)
                    name = type(message).__name__
                    if cloid and name in STAGES:
                        seen.setdefault((cloid, name, kind), now)

    return consumer, asyncio.create_task(pump())


async def hops(
    settings: Settings,
    post: Any,
    port: int,
    request: Any,
    keys: list[LocalAccount],
    order_wire: Any,
    count: int,
) -> list[str]:
    """Send ``count`` orders one at a time; the median time of each span, as lines."""
    seen: dict[tuple[str, str, str], float] = {}
    watchers = [await _watch(settings, iso, seen) for iso in ("read_committed", "read_uncommitted")]
    await asyncio.sleep(0.5)
    nonce = int(time.time() * 1000) + 10_000_000
    rows: list[dict[tuple[str, str], float]] = []
    try:
        for i in range(count):
            wire = order_wire(i)
            wire["c"] = f"0x{0xE2E0000 + i:032x}"
            nonce += 1
            action = {"type": "order", "orders": [wire], "grouping": "na"}
            raw = request(port, signed_body(keys[i % len(keys)], action, nonce))
            sent = time.perf_counter()
            await post(raw)
            answered = time.perf_counter()
            await asyncio.sleep(0.05)  # let the watchers catch the last records
            row = {("answer", ""): answered - sent}
            for stage in STAGES:
                for kind in ("produced", "committed"):
                    at = seen.get((wire["c"], stage, kind))
                    if at is not None:
                        row[(stage, kind)] = at - sent
            rows.append(row)
    finally:
        for consumer, task in watchers:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()
    rows = rows[min(5, len(rows) // 4) :]  # the first orders warm the connections
    lines = []
    before = 0.0
    for span, label in SPANS.items():
        values = [row[span] for row in rows if span in row]
        if not values:
            continue
        at = statistics.median(values) * 1000
        lines.append(f"  {label:<48} +{at - before:6.1f} ms  (at {at:6.1f} ms)")
        before = at
    return lines
