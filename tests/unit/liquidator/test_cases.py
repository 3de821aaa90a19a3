"""The liquidator's core: one case per account in trouble, every trigger audited, and
the waterfall's arithmetic (slices, limits, bankruptcy price, ADL ranking)."""

from __future__ import annotations

from fractions import Fraction

import msgspec

from libs.common import topics
from libs.common.metrics import REGISTRY
from libs.common.schemas import (
    AdlCandidate,
    BadDebtNotice,
    Deposit,
    InsuranceAnswer,
    InsuranceClaim,
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationStep,
    LiquidationTrigger,
    NewOrder,
    PositionTransfer,
)
from libs.common.topics import partition_for
from services.liquidator import adl, waterfall
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from tests.unit.cores import Driver, comparable, of_type, only

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
        ts=1000,
        account=ALICE,
        stage="triggered",
        detail="equity=88500000 maintenance=94900000",
        case_id="liquidations/0/0",
        equity=88_500_000,
        maintenance=94_900_000,
        shortfall=6_400_000,
        equity_after=88_500_000,
        step=1,
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


def position(szi: int, mark_px: int, market: str = "BTC") -> LiquidatedPosition:
    return LiquidatedPosition(
        market=market, szi=szi, entry_ntl=abs(szi) * mark_px, mark_px=mark_px, maintenance=0
    )


def test_positions_above_the_threshold_go_in_twenty_percent_slices() -> None:
    config = LiquidatorConfig()
    # 2 BTC at 94,800 is $189,600, above $100,000: a fifth of it
    assert waterfall.slice_size(position(200_000, 948_000), config) == 40_000
    # 1 BTC at 94,800 is under it: whole
    assert waterfall.slice_size(position(-100_000, 948_000), config) == 100_000
    # a single lot still moves
    big = LiquidatorConfig(slice_threshold=0)
    assert waterfall.slice_size(position(3, 948_000), big) == 1


def test_liquidation_orders_accept_at_most_the_configured_slippage() -> None:
    config = LiquidatorConfig()
    rich = 10**12
    assert waterfall.limit_px(position(10, 948_000), 10, rich, config) == 900_600
    assert waterfall.limit_px(position(-10, 948_001), 10, rich, config) == 995_402  # rounded up


def test_a_liquidation_order_never_sells_below_the_price_that_empties_the_account() -> None:
    config = LiquidatorConfig()
    long = position(9_000, 940_000)  # 0.09 BTC at 94,000: $8,460
    # $64.95 of equity, $25.38 kept for fees: at worst 94,000 - $39.57 / 0.09 = 93,560.4
    assert waterfall.limit_px(long, 9_000, 64_950_000, config) == 935_604
    short = position(-9_000, 940_000)
    assert waterfall.limit_px(short, 9_000, 64_950_000, config) == 944_396
    # nothing left after the fees: no order, the backstop takes it
    assert waterfall.limit_px(long, 9_000, 25_380_000, config) == 0


def test_the_backstop_threshold_is_two_thirds_of_maintenance() -> None:
    config = LiquidatorConfig()
    assert waterfall.below_backstop(1_259, 1_890, config)
    assert not waterfall.below_backstop(1_260, 1_890, config)


def test_the_bankruptcy_price_leaves_the_account_at_zero_or_just_above() -> None:
    long = position(200_000, 940_000)
    assert waterfall.bankruptcy_px(long, -90_000_000) == 940_450
    assert waterfall.bankruptcy_px(long, -90_000_001) == 940_451  # rounded the trader's way
    short = position(-200_000, 940_000)
    assert waterfall.bankruptcy_px(short, -90_000_000) == 939_550
    equity = -90_000_001
    b = waterfall.bankruptcy_px(short, equity)
    assert equity - 200_000 * (b - 940_000) >= 0


def test_adl_ranks_profit_times_leverage_and_breaks_ties_by_account() -> None:
    mark = 940_000
    dave = AdlCandidate(account=BOB, szi=-80_000, entry_ntl=80_000_000_000, account_value=10)
    bob = AdlCandidate(account=ALICE, szi=-120_000, entry_ntl=120_000_000_000, account_value=30)
    twin = AdlCandidate(
        account="0x" + "00" * 20, szi=-40_000, entry_ntl=40_000_000_000, account_value=5
    )
    assert [c.account for c in adl.ranked([bob, dave, twin], mark)] == [
        "0x" + "00" * 20,
        BOB,
        ALICE,
    ]
    closes, left = adl.allocate([bob, dave], mark, 150_000)
    assert closes == [adl.AdlClose(BOB, False, 80_000), adl.AdlClose(ALICE, False, 70_000)]
    assert left == 0
    assert adl.allocate([dave], mark, 100_000)[1] == 20_000


def test_a_long_candidate_scores_mark_over_entry_times_leverage() -> None:
    winner = AdlCandidate(account=ALICE, szi=10, entry_ntl=900, account_value=100)
    assert adl.score(winner, 100) == Fraction(1000, 900) * Fraction(1000, 100)


def status(
    account: str,
    ts: int,
    equity: int,
    maintenance: int,
    positions: tuple[LiquidatedPosition, ...],
    *,
    below: bool = True,
    reason: str = "trigger",
) -> LiquidationStatus:
    return LiquidationStatus(
        ts=ts,
        account=account,
        equity=equity,
        maintenance=maintenance,
        collateral=0,
        positions=positions,
        below=below,
        reason=reason,
    )


def test_a_trigger_whose_account_recovered_is_dropped_as_stale_and_sends_nothing() -> None:
    d = liquidator()
    d.send(trigger(ALICE, 1_000, 1_510_000_000, 1_896_000_000))
    # the first status already says Alice is above maintenance (the mark came back)
    back = status(ALICE, 1_000, 1_950_000_000, 1_896_000_000, (position(200_000, 948_000),))
    outs = d.send(msgspec.structs.replace(back, below=False))
    assert [(o.topic, o.message.stage) for o in outs] == [("liquidation.audit", "stale")]
    step = outs[0].message
    assert step.detail == (
        "trigger dropped: above maintenance (equity=1950000000 maintenance=1896000000)"
    )
    assert (step.equity, step.equity_after, step.shortfall) == (1_510_000_000, 1_950_000_000, 0)
    core: LiquidatorCore = d.core  # type: ignore[assignment]
    assert core.cases.keys() == []
    # a trigger whose account has no position left is stale too
    d.send(trigger(BOB, 2_000, 5_000_000, 9_000_000))
    (flat,) = d.send(status(BOB, 2_000, 5_000_000, 0, ()))
    assert flat.message.stage == "stale" and "no position" in flat.message.detail
    assert core.cases.keys() == []


def test_negative_equity_holds_withdrawals_on_every_risk_partition_until_the_case_ends() -> None:
    d = liquidator()
    outs = d.send(trigger(ALICE, 1_000, -90_000_000, 1_880_000_000))
    notices = [o for o in outs if isinstance(o.message, BadDebtNotice)]
    assert [(o.topic, o.partition) for o in notices] == [("risk.in", p) for p in range(4)]
    assert {(n.message.open, n.message.usd) for n in notices} == {(True, 90_000_000)}
    # a second negative status does not notify again; the case's end clears it
    flat = status(ALICE, 1_100, -40_000_000, 0, ())
    assert of_type(d.send(flat), BadDebtNotice) == []
    core: LiquidatorCore = d.core  # type: ignore[assignment]
    assert core.cases[ALICE].debt_open
    done = d.send(msgspec.structs.replace(flat, ts=1_200, equity=0, below=False))
    cleared = of_type(done, BadDebtNotice)
    assert [(n.open, n.usd, n.case_id) for n in cleared] == [(False, 0, "liquidations/0/0")] * 4
    assert core.cases.keys() == []


def report(oid: int, sz: int, ts: int) -> LiquidationReport:
    return LiquidationReport(
        ts=ts, account=ALICE, market="BTC", oid=oid, status="filled", filled_sz=sz
    )


def test_the_per_interval_cap_holds_back_what_exceeds_it_until_the_next_interval() -> None:
    config = LiquidatorConfig(cooldown_ms=0, max_book_notional=50_000_000_000)
    d = Driver(LiquidatorCore(0, config), topics.LIQUIDATIONS)
    equity, maintenance = 1_510_000_000, 1_896_000_000
    d.send(trigger(ALICE, 1_000, equity, maintenance))
    outs = d.send(status(ALICE, 1_000, equity, maintenance, (position(200_000, 948_000),)))
    (first,) = of_type(outs, NewOrder)
    assert first.sz == 40_000  # 0.4 BTC at 94,800: $37,920 of the $50,000
    # her status after the fill, then the order's result: the next slice at once
    d.send(status(ALICE, 1_100, equity, maintenance, (position(160_000, 948_000),), reason="trade"))
    outs = d.send(report(first.oid, 40_000, 1_100))
    (second,) = of_type(outs, NewOrder)
    # 20% of 1.6 BTC would be 0.32; $12,080 left in the interval buys 0.12742 BTC
    assert second.sz == 12_742
    assert "capped at 50000000000 per interval" in of_type(outs, LiquidationStep)[1].detail
    d.send(status(ALICE, 1_200, equity, maintenance, (position(147_258, 948_000),), reason="trade"))
    outs = d.send(report(second.oid, 12_742, 1_200))
    assert of_type(outs, NewOrder) == []
    (held,) = of_type(outs, LiquidationStep)[1:]
    assert held.stage == "capped"
    assert held.detail == (
        "49999416000 of 50000000000 sent this interval: 147258 lots wait until 2000"
    )
    # still within the interval: nothing, and no second audit
    assert d.send(status(ALICE, 1_900, equity, maintenance, (position(147_258, 948_000),))) == []
    # the next interval: 20% of what is left
    outs = d.send(status(ALICE, 2_000, equity, maintenance, (position(147_258, 948_000),)))
    assert [o.sz for o in of_type(outs, NewOrder)] == [29_451]


def test_adl_never_takes_a_position_that_is_losing_at_the_mark() -> None:
    """Shorts at 94,000: Bob sold 0.8 BTC at 100,000 ($4,800 in profit, score 80,000/2,000
    = 40); Carol sold 1 BTC at 90,000, is $4,000 behind at 31x (score 30): she
    is never closed, and the lots Bob cannot take are left for the vault."""
    mark = 940_000
    bob = AdlCandidate(
        account=BOB, szi=-80_000, entry_ntl=80_000_000_000, account_value=2_000_000_000
    )
    carol = AdlCandidate(
        account=ALICE, szi=-100_000, entry_ntl=90_000_000_000, account_value=3_000_000_000
    )
    assert adl.in_profit(bob, mark) and not adl.in_profit(carol, mark)
    assert adl.score(carol, mark) > 29 and adl.score(bob, mark) == 40
    assert adl.ranked([carol, bob], mark) == [bob]
    closes, left = adl.allocate([carol, bob], mark, 150_000)
    assert (closes, left) == ([adl.AdlClose(BOB, False, 80_000)], 70_000)
    flat = AdlCandidate(account=ALICE, szi=-100_000, entry_ntl=94_000_000_000, account_value=1)
    assert adl.ranked([flat], mark) == []  # break-even is not profit


def test_a_grant_that_no_longer_covers_the_deficit_claims_the_rest_before_the_takeover() -> None:
    """The fund grants the $0.59 it was asked at 97,000, but the mark has gapped to 94,000
    meanwhile and the isolated position is $30.59 under water: the vault must not take it
    over yet (that would leave $30 of bad debt); the case asks the fund for the $30."""
    d = liquidator()
    iso = LiquidatedPosition(
        market="BTC",
        szi=1_000,
        entry_ntl=1_000 * 1_000_000,
        mark_px=970_000,
        maintenance=9_700_000,
        is_cross=False,
        isolated_margin=29_411_765,
    )
    d.send(
        LiquidationTrigger(
            ts=1, account=ALICE, equity=-588_235, maintenance=9_700_000, market="BTC"
        )
    )
    status = LiquidationStatus(
        ts=1,
        account=ALICE,
        market="BTC",
        equity=-588_235,
        maintenance=9_700_000,
        collateral=5_000_000_000,
        positions=(iso,),
        below=True,
        reason="trigger",
    )
    first = only(d.send(status), InsuranceClaim)
    assert first.usd == 588_235
    lower = msgspec.structs.replace(iso, mark_px=940_000, maintenance=9_400_000)
    gapped = msgspec.structs.replace(
        status, ts=2, equity=-30_588_235, maintenance=9_400_000, positions=(lower,), reason="mark"
    )
    assert of_type(d.send(gapped), InsuranceClaim) == []  # the first claim is outstanding
    grant = InsuranceAnswer(
        ts=2,
        account=ALICE,
        usd=588_235,
        granted=True,
        balance=411_765,
        market="BTC",
        case_id=first.case_id,
    )
    outs = d.send(grant)
    assert of_type(outs, PositionTransfer) == []
    assert only(outs, InsuranceClaim).usd == 30_000_000
    refusal = InsuranceAnswer(
        ts=2,
        account=ALICE,
        usd=30_000_000,
        granted=False,
        balance=411_765,
        market="BTC",
        case_id=first.case_id,
    )
    step = [s for s in of_type(d.send(refusal), LiquidationStep) if s.stage == "adl"]
    # ADL for the $30 left after the fund paid its $0.588235: 940,000 + $30 / 0.01 BTC
    assert step and step[0].px == 970_000


def test_the_stage_counter_adds_a_batchs_live_steps_when_the_runtime_takes_the_changes() -> None:
    def counted(stage: str) -> float:
        value = REGISTRY.get_sample_value("exchange_liquidations_total", {"stage": stage})
        return value or 0.0

    d = liquidator()
    before = {stage: counted(stage) for stage in ("triggered", "cancel", "book")}
    for n, who in enumerate((ALICE, BOB)):
        # 0.01 BTC at 98,800: below maintenance, above 2/3 of it: a book order each
        first = status(who, 1_000, 8_500_000, 9_880_000, (position(1_000, 988_000),))
        case = msgspec.structs.replace(trigger(who, 1_000, 8_500_000, 9_880_000), status=first)
        steps = of_type(d.send(case), LiquidationStep)
        assert [s.stage for s in steps] == ["triggered", "cancel", "book"], n
    assert {stage: counted(stage) for stage in before} == before  # nothing until the batch ends
    d.commit()  # what the runtime does once per batch
    assert {stage: counted(stage) - before[stage] for stage in before} == {
        "triggered": 0.0,  # not a metered stage
        "cancel": 2.0,
        "book": 2.0,
    }
    # a replayed record emits nothing and counts nothing
    replayed = trigger("0x" + "c3" * 20, 1_000, 8_500_000, 9_880_000)
    assert d.send(replayed, live=False) == []
    d.commit()
    assert counted("cancel") - before["cancel"] == 2.0
