"""The chaos drills in short form, on a private broker and Redis (the restart drills stop
and start them): under a signed order load, SIGKILL and restart each of the six
services, restart Redis and freeze the oracle; after each, the audit passes and the
time to recover was measured (``python -m sim.chaos`` runs the same, longer, and also
restarts the Kafka broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.localstack import LocalStack
from sim.chaos import QUICK, SERVICES, Plan, run_drills, seeded_orders

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DRILLS = [*(f"kill:{name}" for name in SERVICES), "oracle:freeze", "restart:redis"]


async def test_each_drill_recovers_and_the_audit_passes(tmp_path: Path) -> None:
    stack = LocalStack.private(tmp_path / "stack")
    stack.start()
    plan = Plan(DRILLS, QUICK.warmup_s, QUICK.after_s, 45.0, QUICK.proof_interval)
    try:
        outcome = await run_drills(stack, plan, seeded_orders(seed=11), tmp_path / "logs")
    finally:
        stack.stop()
    print(outcome.render())
    assert [r.name for r in outcome.results] == DRILLS
    for result in outcome.results:
        assert result.error is None, f"{result.name}: {result.error}"
        assert result.audit is not None and result.audit.ok, result.audit and result.audit.render()
        # recovery measured: from the fault to a probe order's round trip
        assert result.recovery_s is not None and 0 < result.recovery_s < plan.recover_timeout_s
        assert result.probe_ms is not None and result.probe_ms > 0
        assert result.audit.books is not None and result.audit.books.imbalance == 0
        assert result.audit.proofs_checked > 0
    fills = [r.audit.fills.fills for r in outcome.results if r.audit and r.audit.fills]
    assert fills == sorted(fills) and fills[-1] > 0, "fills only accumulate, none lost"
    assert outcome.stats.filled > 0
