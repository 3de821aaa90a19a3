"""The chaos drills in short form, and the auditor on their run.

On a private broker and Redis (the restart drills stop and start them), under a signed
order load: SIGKILL and restart each stateful service, the oracle and the gateway,
freeze the oracle, restart Redis. After each, the audit passes (Redis equals the state
rebuilt from the logs, every state proof recomputes, the books close to the
micro-dollar, every fill exactly once) and the time to recover was measured. Then the
auditor must fail, naming what differs, once a Redis entry or a published proof is
tampered with. ``python -m sim.chaos`` runs the same drills, longer, and also kills
marketdata and restarts the Kafka broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from libs.common import topics
from libs.common.runtime import SnapshotStore
from libs.common.runtime.proof import state_digest
from libs.common.schemas import StateProof
from libs.common.state import AccountState
from libs.localstack import LocalStack
from services.auditor.audit import audit
from sim.chaos import QUICK, SERVICES, Outcome, Plan, run_drills, seeded_orders
from sim.client import wallet
from tests.support.bus import produce, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# marketdata's kill (its faust worker takes ~25 s to answer again) and the broker's
# restart are left to ``python -m sim.chaos``, to keep the suite's time down.
DRILLS = [
    *(f"kill:{name}" for name in SERVICES if name != "marketdata"),
    "oracle:freeze",
    "restart:redis",
]
SEED = 11
TRADERS = 4  # seeded_orders' default, each funded with 100,000 USDC; the probe 10,000


@pytest.fixture(scope="module")
async def drilled(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outcome]:
    run_dir = tmp_path_factory.mktemp("drills")
    stack = LocalStack.private(run_dir / "stack")
    stack.start()
    plan = Plan(DRILLS, QUICK.warmup_s, QUICK.after_s, 45.0, QUICK.proof_interval)
    try:
        outcome = await run_drills(stack, plan, seeded_orders(seed=SEED), run_dir / "logs")
        print(outcome.render())
        yield outcome
    finally:
        stack.stop()


async def test_each_drill_recovers_and_the_audit_passes(drilled: Outcome) -> None:
    assert [r.name for r in drilled.results] == DRILLS
    for result in drilled.results:
        assert result.error is None, f"{result.name}: {result.error}"
        assert result.audit is not None and result.audit.ok, result.audit and result.audit.render()
        # recovery measured: from the fault to a probe order's round trip
        assert result.recovery_s is not None and 0 < result.recovery_s < 45.0
        assert result.probe_ms is not None and result.probe_ms > 0
        books = result.audit.books
        assert books is not None and books.imbalance == 0
        assert books.deposits == (TRADERS * 100_000 + 10_000) * 1_000_000
        assert books.withdrawals == 0
        assert result.audit.proofs_checked > 0
    fills = [r.audit.fills.fills for r in drilled.results if r.audit and r.audit.fills]
    assert fills == sorted(fills), "fills only accumulate: none lost"
    assert fills[-1] >= drilled.stats.filled > 0  # the load's own fills, and the makers'
    last = drilled.results[-1].audit
    assert last is not None and last.books is not None
    assert last.books.basis != 0 or last.books.venue > 0, "the trades moved money"


async def test_the_auditor_names_a_tampered_account_and_a_forged_proof(
    drilled: Outcome,
) -> None:
    settings = drilled.settings
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        # One trader's collateral in Redis, one micro-dollar more.
        trader = wallet(0xC4A05000 + SEED * 100).address.lower()
        store = SnapshotStore(redis, settings.namespace, "risk")
        partition = topics.partition_for(trader, settings.topics.partitions(topics.RISK_IN))
        raw = await redis.hget(store.state_key(partition), f"a:{trader}")
        acct = msgspec.msgpack.decode(raw, type=AccountState)
        tampered = msgspec.structs.replace(acct, collateral=acct.collateral + 1)
        await redis.hset(
            store.state_key(partition), f"a:{trader}", msgspec.msgpack.encode(tampered)
        )
    finally:
        await redis.aclose()
    # A forged proof over a real one: the same offset, the hash of another state.
    proofs = await read_topic(settings, topics.STATE_PROOFS, quiet_s=0.5)
    real = next(r.value for r in proofs if r.value.topic == topics.MATCHER_IN)
    assert isinstance(real, StateProof)
    forged = msgspec.structs.replace(real, sha256=state_digest({"forged": b"\x00"}))
    assert forged.sha256 != real.sha256
    key = f"{topics.MATCHER_IN}/{real.partition}"
    await produce(settings, topics.STATE_PROOFS, [(key, forged)], partition=real.partition)

    report = await audit(settings)
    print(report.render())
    assert not report.ok
    assert report.differences == [
        f"risk partition {partition}: account {trader} differs: collateral: Redis "
        f"{acct.collateral + 1}, log {acct.collateral}"
    ]
    assert report.problems == [
        f"matcher partition {real.partition}: the state proof at offset {real.offset} says "
        f"{forged.sha256[:16]}.. ({real.entries} entries), the log gives "
        f"{real.sha256[:16]}.. ({real.entries} entries)"
    ]
