"""Account actions: leverage, isolated margin, transfers, fee tiers, dead man's switch."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.schemas import (
    AccountFill,
    ActionResult,
    BalanceUpdate,
    FeeTier,
    LiquidationTrigger,
    ScheduleCancel,
    TransferIn,
    UpdateIsolatedMargin,
    UpdateLeverage,
    UsdTransfer,
)
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.risk.config import RiskConfig
from services.risk.service import core_factory
from tests.unit.cores import Driver, of_type, only
from tests.unit.risk.support import (
    ALICE,
    BOB,
    account,
    conserved,
    deposit,
    ledger,
    leg,
    mark,
    place,
    placed_oid,
    risk,
    summary,
    usd,
)


def leverage(value: int, *, cross: bool = True, market: str = "BTC") -> UpdateLeverage:
    return UpdateLeverage(
        ts=2, account=ALICE, market=market, leverage=value, is_cross=cross, req_id="lev"
    )


def answer(driver: Driver, message: object) -> str | None:
    return only(driver.send(message), ActionResult).error  # type: ignore[arg-type]


# ------------------------------------------------------------------ leverage


def test_leverage_sets_the_margin_new_orders_hold() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    assert answer(r, leverage(10)) is None
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    assert account(r, ALICE).orders[oid].hold == usd("1004.5")  # $10,000 / 10 + fee


def test_leverage_above_what_the_positions_tier_allows_is_refused() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    assert answer(r, leverage(51)) == "Invalid leverage value: 51x (at most 50x at this size)."
    assert answer(r, leverage(0)) is not None
    big = risk()
    big.send(deposit(ALICE, "5000000"))
    big.send(leg(ALICE, "buy", "100000", "400", maker=True))  # $40M: tier 1, 20x at most
    assert answer(big, leverage(25)) == "Invalid leverage value: 25x (at most 20x at this size)."
    assert answer(big, leverage(20)) is None


def test_the_margin_mode_cannot_change_under_an_open_position() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    assert answer(r, leverage(10, cross=False)) == (
        "Cannot switch leverage type with open position."
    )


def test_lowering_leverage_needs_the_margin_for_it() -> None:
    r = risk()
    r.send(deposit(ALICE, "600"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))  # $500 used at 20x
    r.commit()
    assert answer(r, leverage(2)) == "Insufficient margin for this leverage."
    assert account(r, ALICE).positions["BTC"].leverage == 20  # still the default
    assert answer(r, leverage(40)) is None
    assert summary(r, ALICE).cross_initial == usd("250")


# ------------------------------------------------------------------ isolated margin


def _isolated_long() -> Driver:
    """Alice: $10,000; BTC isolated at 10x; long 0.1 from 100000 as maker (fee $1.5),
    sold to her by Bob ($10,000, cross) so that the books balance."""
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(deposit(BOB, "10000"))
    r.send(leverage(10, cross=False))
    trade(r, "100000", "0.1", alice_buys=True)
    return r


def trade(r: Driver, price: str, size: str, *, alice_buys: bool, alice_maker: bool = True) -> None:
    r.send(leg(ALICE, "buy" if alice_buys else "sell", price, size, maker=alice_maker))
    r.send(leg(BOB, "sell" if alice_buys else "buy", price, size, maker=not alice_maker))


DEPOSITS = usd("20000")


def test_an_isolated_position_takes_its_initial_margin_from_collateral() -> None:
    r = _isolated_long()
    acct = account(r, ALICE)
    pos = acct.positions["BTC"]
    assert (pos.is_cross, pos.isolated_margin, acct.collateral) == (
        False,
        usd("1000"),
        usd("8998.5"),
    )
    assert conserved(r) == DEPOSITS


def test_an_isolated_position_is_liquidated_on_its_own_margin() -> None:
    r = _isolated_long()
    # liquidation price: 1000 - 10000 + 0.1 x = 0.001 x  =>  x = 90909.09
    (row,) = summary(r, ALICE).positions
    assert row.liquidation_px is not None and 909_090 < row.liquidation_px < 909_091
    assert of_type(r.send(mark("91000")), LiquidationTrigger) == []
    trigger = only(r.send(mark("90900")), LiquidationTrigger)
    # its margin $1,000 less the $910 loss is $90, under 1% of $9,090
    assert msgspec.structs.replace(trigger, status=None) == LiquidationTrigger(
        ts=5, account=ALICE, equity=usd("90"), maintenance=usd("90.9"), market="BTC"
    )
    # its first status rides along: the isolated position alone, on its own margin
    status = trigger.status
    assert status is not None
    assert (status.market, status.equity, status.below, status.reason) == (
        "BTC",
        usd("90"),
        True,
        "trigger",
    )
    assert [(p.market, p.is_cross) for p in status.positions] == [("BTC", False)]
    acct = account(r, ALICE)
    assert acct.positions["BTC"].liquidating and not acct.liquidating
    assert acct.collateral == usd("8998.5")  # cross collateral untouched


def test_margin_can_be_added_and_removed_down_to_the_initial_margin() -> None:
    r = _isolated_long()
    r.send(mark("100000"))

    def move(amount: str) -> str | None:
        return answer(r, UpdateIsolatedMargin(ts=3, account=ALICE, market="BTC", usd=usd(amount)))

    assert move("500") is None
    assert account(r, ALICE).positions["BTC"].isolated_margin == usd("1500")
    assert account(r, ALICE).collateral == usd("8498.5")
    # $1,000 must stay: the initial margin at 10x (and 10% of the value)
    assert move("-500.000001") is not None
    assert move("-500") is None
    assert move("9000") == "Insufficient margin to add."
    assert answer(r, UpdateIsolatedMargin(ts=3, account=ALICE, market="ETH", usd=usd("1"))) == (
        "No isolated position to adjust."
    )
    assert conserved(r) == DEPOSITS


def test_closing_an_isolated_position_returns_its_margin_and_pnl() -> None:
    r = _isolated_long()
    fill = only(r.send(leg(ALICE, "sell", "101000", "0.1", maker=False)), AccountFill)
    r.send(leg(BOB, "buy", "101000", "0.1", maker=True))
    assert (fill.closed_pnl, fill.fee) == (usd("100"), usd("4.545"))
    acct = account(r, ALICE)
    assert "BTC" not in acct.positions
    # $1,000 of margin plus $100 less the $4.545 fee comes back
    assert acct.collateral == usd("8998.5") + usd("1095.455")
    assert conserved(r) == DEPOSITS


def test_a_partial_close_releases_its_share_of_the_margin() -> None:
    r = _isolated_long()
    trade(r, "100000", "0.05", alice_buys=False, alice_maker=False)  # fee $2.25 from the margin
    pos = account(r, ALICE).positions["BTC"]
    assert pos.isolated_margin == usd("498.875")  # half of $997.75
    assert account(r, ALICE).collateral == usd("8998.5") + usd("498.875")


def test_a_loss_beyond_the_isolated_margin_is_bad_debt_not_the_accounts() -> None:
    r = _isolated_long()
    trade(r, "80000", "0.1", alice_buys=False, alice_maker=False)  # -$2,000, a $3.6 fee
    assert account(r, ALICE).collateral == usd("8998.5")
    assert ledger(r).bad_debt == usd("1003.6")
    assert conserved(r) == DEPOSITS


# ------------------------------------------------------------------ transfers


def test_a_transfer_debits_here_and_credits_the_destinations_partition() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    outs = r.send(UsdTransfer(ts=3, account=ALICE, destination=BOB, usd=usd("400"), req_id="t"))
    assert only(outs, ActionResult) == ActionResult(
        ts=3, account=ALICE, action="usdTransfer", req_id="t"
    )
    debit = only(outs, BalanceUpdate)
    assert (debit.delta, debit.collateral, debit.reason) == (-usd("400"), usd("600"), "transfer")
    (credit_out,) = [o for o in outs if isinstance(o.message, TransferIn)]
    assert (credit_out.topic, credit_out.partition) == ("risk.in", partition_for(BOB, 4))
    credit = credit_out.message
    assert credit == TransferIn(
        ts=3, account=BOB, source=ALICE, usd=usd("400"), transfer_id="risk.in/0/1"
    )
    bob = risk(partition=partition_for(BOB, 4))
    update = only(bob.send(credit), BalanceUpdate)
    assert (update.account, update.delta, update.collateral) == (BOB, usd("400"), usd("400"))


def test_a_transfer_is_held_to_what_could_be_withdrawn() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    placed_oid(r, place(ALICE, "buy", "100000", "0.1"))  # holds $504.5

    def send(amount: str, to: str = BOB) -> str | None:
        return answer(r, UsdTransfer(ts=3, account=ALICE, destination=to, usd=usd(amount)))

    assert send("495.500001") == "Insufficient balance."
    assert send("1", to=ALICE) == "Invalid destination."
    assert send("0") == "Transfer amount must be positive."
    assert send("495.5") is None


# ------------------------------------------------------------------ fee tiers


def test_a_fee_tier_sets_the_rates_and_a_maker_rebate_comes_from_the_venues_share() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(FeeTier(ts=2, account=ALICE, taker_ppm=400, maker_ppm=-20))
    maker = only(r.send(leg(ALICE, "buy", "100000", "0.1", maker=True)), AccountFill)
    taker = only(r.send(leg(ALICE, "sell", "100000", "0.1", maker=False, tid=2)), AccountFill)
    assert (maker.fee, taker.fee) == (-usd("0.2"), usd("4"))
    assert account(r, ALICE).collateral == usd("10000") + usd("0.2") - usd("4")
    book = ledger(r)
    # $4 split 20% insurance, 30% vault, the rest venue; the rebate came from the venue
    assert (book.fees, book.insurance, book.vault, book.venue) == (
        usd("3.8"),
        usd("0.8"),
        usd("1.2"),
        usd("1.8"),
    )


def test_a_rebate_larger_than_the_taker_fee_is_ignored() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(FeeTier(ts=2, account=ALICE, taker_ppm=400, maker_ppm=-500))
    assert account(r, ALICE).maker_fee_ppm is None


# ------------------------------------------------------------------ dead man's switch


def test_a_scheduled_cancel_goes_to_every_matcher_partition() -> None:
    r = risk()
    early = ScheduleCancel(ts=1_000, account=ALICE, at=5_999, req_id="s")
    assert answer(r, early) == "Scheduled cancel time must be at least 5 seconds in the future."
    outs = r.send(ScheduleCancel(ts=1_000, account=ALICE, at=6_000, req_id="s"))
    sent = [o for o in outs if o.topic == "matcher.in"]
    assert sorted(o.partition for o in sent) == [0, 1, 2, 3]
    assert only(outs, ActionResult).error is None
    assert answer(r, ScheduleCancel(ts=1_000, account=ALICE, at=0, req_id="s")) is None


def test_the_service_reads_its_parameters_from_settings() -> None:
    settings = Settings(
        risk_margin_call_levels="30, 60,90",
        risk_insurance_fee_share_ppm=100_000,
        risk_vault_fee_share_ppm=0,
    )
    built = core_factory(settings)(2)
    assert built.config == RiskConfig(  # type: ignore[attr-defined]
        margin_call_levels=(30, 60, 90), insurance_fee_share_ppm=100_000, vault_fee_share_ppm=0
    )


def test_impossible_risk_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="margin call levels"):
        RiskConfig(margin_call_levels=(80, 50))
    with pytest.raises(ValueError, match="fee shares"):
        RiskConfig(insurance_fee_share_ppm=600_000, vault_fee_share_ppm=500_000)
