"""The liquidator's core: one case per account in trouble, every trigger audited."""

from __future__ import annotations

from libs.common import topics
from libs.common.schemas import Deposit, LiquidationStep, LiquidationTrigger
from libs.common.topics import partition_for
from services.liquidator.cases import LiquidatorCore
from tests.unit.cores import Driver, comparable, only

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def liquidator() -> Driver:
    return Driver(LiquidatorCore(0), topics.LIQUIDATIONS)


def trigger(account: str, ts: int, equity: int, maintenance: int) -> LiquidationTrigger:
    return LiquidationTrigger(ts=ts, account=account, equity=equity, maintenance=maintenance)


def test_a_first_trigger_opens_a_case_and_audits_it() -> None:
    d = liquidator()
    (out,) = d.send(trigger(ALICE, 1000, 88_500_000, 94_900_000))
    assert (out.topic, out.partition) == ("liquidation.audit", partition_for(ALICE, 4))
    assert out.message == LiquidationStep(
        ts=1000, account=ALICE, stage="triggered", detail="equity=88500000 maintenance=94900000"
    )
    core: LiquidatorCore = d.core  # type: ignore[assignment]
    case = core.cases[ALICE]
    assert (case.opened, case.triggers, case.equity, case.maintenance) == (
        1000,
        1,
        88_500_000,
        94_900_000,
    )


def test_a_repeated_trigger_updates_the_open_case_and_keeps_its_opening_time() -> None:
    d = liquidator()
    d.send(trigger(ALICE, 1000, 88_500_000, 94_900_000))
    step = only(d.send(trigger(ALICE, 2000, 50_000_000, 94_000_000)), LiquidationStep)
    assert step.detail == "equity=50000000 maintenance=94000000"
    core: LiquidatorCore = d.core  # type: ignore[assignment]
    case = core.cases[ALICE]
    assert (case.opened, case.triggers, case.equity) == (1000, 2, 50_000_000)


def test_cases_are_per_account() -> None:
    d = liquidator()
    d.send(trigger(ALICE, 1, -5, 10))
    d.send(trigger(BOB, 2, 3, 10))
    core: LiquidatorCore = d.core  # type: ignore[assignment]
    assert core.cases.keys() == [ALICE, BOB]
    assert core.cases[BOB].triggers == 1


def test_other_messages_are_ignored() -> None:
    d = liquidator()
    assert d.send(Deposit(ts=1, account=ALICE, usd=5)) == []
    assert d.core.take_changes() == {}


def test_a_restarted_liquidator_continues_the_same_cases() -> None:
    d = liquidator()
    d.send(trigger(ALICE, 1, 88, 94))
    d.send(trigger(BOB, 2, 3, 10))
    d.commit()
    assert sorted(d.persisted) == ["case:" + ALICE, "case:" + BOB]
    restarted = d.restarted(LiquidatorCore)
    nxt = trigger(ALICE, 3, 70, 94)
    assert comparable(restarted.send(nxt)) == comparable(d.send(nxt))
    core: LiquidatorCore = restarted.core  # type: ignore[assignment]
    assert (core.cases[ALICE].opened, core.cases[ALICE].triggers) == (1, 2)
