"""The same liquidations log gives the same waterfall, byte for byte, also across a
restart from the persisted cases."""

from __future__ import annotations

from libs.common import codec, topics
from libs.common.schemas import NewOrder
from libs.common.state import BACKSTOP_VAULT_ACCOUNT
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from tests.support.workload import liquidator_workload
from tests.unit.cores import Driver, comparable, restart_midway

LOG = liquidator_workload(5, 800)


def partition_log(partition: int) -> list:  # type: ignore[type-arg]
    return [message for _, message, p in LOG if p == partition]


def test_the_log_holds_whole_waterfalls() -> None:
    kinds = {type(message).__name__ for _, message, _ in LOG}
    assert kinds == {
        "LiquidationTrigger",
        "LiquidationStatus",
        "LiquidationReport",
        "InsuranceAnswer",
        "AdlCandidates",
        "VaultStatus",
    }


def test_two_runs_of_one_log_emit_the_same_bytes() -> None:
    for partition in range(4):
        runs = []
        for _ in range(2):
            d = Driver(LiquidatorCore(partition), topics.LIQUIDATIONS, partition)
            outs = [out for m in partition_log(partition) for out in d.send(m)]
            runs.append([(o.topic, o.partition, o.id, codec.encode(o.message)) for o in outs])
        assert runs[0] == runs[1] and runs[0]


def test_a_restart_mid_waterfall_continues_exactly() -> None:
    for partition in range(4):
        inputs = partition_log(partition)
        whole = Driver(LiquidatorCore(partition), topics.LIQUIDATIONS, partition)
        expected = comparable(out for m in inputs for out in whole.send(m))
        d = Driver(LiquidatorCore(partition), topics.LIQUIDATIONS, partition)
        split = len(inputs) // 2
        restarted = restart_midway(d, LiquidatorCore, inputs, split, set(range(0, split, 7)))
        assert restarted.core.take_changes() == d.core.take_changes()
        assert len(expected) > 0


def test_a_restart_mid_unwind_continues_exactly() -> None:
    config = LiquidatorConfig(unwind_slice_ppm=250_000, unwind_interval_ms=1_000)

    def factory(partition: int) -> LiquidatorCore:
        return LiquidatorCore(partition, config)

    unwound = 0
    for partition in range(4):
        inputs = partition_log(partition)
        whole = Driver(factory(partition), topics.LIQUIDATIONS, partition)
        outs = [out for m in inputs for out in whole.send(m)]
        unwound += sum(
            1
            for o in outs
            if isinstance(o.message, NewOrder) and o.message.account == BACKSTOP_VAULT_ACCOUNT
        )
        d = Driver(factory(partition), topics.LIQUIDATIONS, partition)
        split = len(inputs) // 2
        restarted = restart_midway(d, factory, inputs, split, set(range(0, split, 5)))
        assert restarted.core.take_changes() == d.core.take_changes()
    assert unwound > 0  # the vault's partition did send its positions back to the book
