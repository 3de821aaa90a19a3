"""The auditor on a real run: the venue's six services under a signed order load.

It must pass on the run (Redis equals the state rebuilt from the logs, every state proof
recomputes, the books close to the micro-dollar, every fill exactly once), and fail,
naming what differs, when a Redis entry or a published proof is tampered with.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.runtime import SnapshotStore
from libs.common.runtime.proof import state_digest
from libs.common.schemas import StateProof
from libs.common.state import AccountState
from libs.localstack import LocalStack
from services.auditor.audit import audit
from sim.chaos import Drills, Venue, seeded_orders
from sim.client import VenueClient, wallet
from tests.conftest import make_settings
from tests.support.bus import produce, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TRADERS = 4  # seeded_orders' default, each funded with 100,000 USDC


async def test_auditor_passes_on_a_run_and_names_what_was_tampered(
    stack: LocalStack, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = make_settings(stack, proof_interval=20)
    await ensure_topics(settings)
    venue = Venue(stack, settings, tmp_path / "logs")
    venue.start()
    try:
        drills = Drills(venue, seeded_orders(seed=3), warmup_s=0, after_s=0, recover_timeout_s=60)
        await drills.positions.start()
        try:
            async with VenueClient(venue.url, venue.operator_url) as client:
                await drills.ready(client)
                await drills.load_for(client, 2.0, fills=10)
        finally:
            await drills.positions.close()
        report = await audit(settings)
    finally:
        codes = venue.stop()
    print(report.render())
    assert report.ok, report.render()
    # the processors audited stop cleanly (marketdata's faust worker may take longer)
    assert [codes[name] for name in ("risk", "matcher", "liquidator")] == [0, 0, 0], str(codes)
    assert drills.stats.filled > 0
    assert report.fills is not None and report.fills.fills >= drills.stats.filled
    assert report.books is not None
    # four traders with 100,000 USDC each and the probe account's 10,000, nothing out
    assert report.books.deposits == (TRADERS * 100_000 + 10_000) * 1_000_000
    assert report.books.withdrawals == 0 and report.books.imbalance == 0
    assert report.books.basis != 0 or report.books.venue > 0  # trades moved money
    assert report.proofs_checked >= 8  # risk alone: 4 partitions past offset 20

    # Tamper one trader's collateral in Redis by one micro-dollar.
    trader = wallet(0xC4A05000 + 3 * 100).address.lower()
    store = SnapshotStore(redis_client, settings.namespace, "risk")
    partition = topics.partition_for(trader, settings.topics.partitions(topics.RISK_IN))
    raw = await redis_client.hget(store.state_key(partition), f"a:{trader}")
    acct = msgspec.msgpack.decode(raw, type=AccountState)
    await redis_client.hset(
        store.state_key(partition),
        f"a:{trader}",
        msgspec.msgpack.encode(msgspec.structs.replace(acct, collateral=acct.collateral + 1)),
    )
    # And publish a forged proof over a real one: the same offset, another state.
    proofs = await read_topic(settings, topics.STATE_PROOFS, quiet_s=0.5)
    real = next(r.value for r in proofs if r.value.topic == topics.MATCHER_IN)
    _, entries = await SnapshotStore(redis_client, settings.namespace, "matcher").load(
        real.partition
    )
    forged_state = {**entries, "forged": b"\x00"}
    forged = msgspec.structs.replace(real, sha256=state_digest(forged_state))
    assert forged.sha256 != real.sha256
    await produce(
        settings,
        topics.STATE_PROOFS,
        [(f"{topics.MATCHER_IN}/{real.partition}", forged)],
        partition=real.partition,
    )

    tampered = await audit(settings)
    print(tampered.render())
    assert not tampered.ok
    assert tampered.differences == [
        f"risk partition {partition}: account {trader} differs: collateral: Redis "
        f"{acct.collateral + 1}, log {acct.collateral}"
    ]
    assert tampered.problems == [
        f"matcher partition {real.partition}: the state proof at offset {real.offset} says "
        f"{forged.sha256[:16]}.. ({real.entries} entries), the log gives "
        f"{real.sha256[:16]}.. ({real.entries} entries)"
    ]
    assert isinstance(real, StateProof) and tampered.proofs_checked >= report.proofs_checked
