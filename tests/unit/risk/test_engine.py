"""Risk's core: collateral, pre-trade holds and checks, fills with fees, marks, liquidation."""

from __future__ import annotations

import pytest

from libs.common.schemas import (
    AccountFill,
    BalanceUpdate,
    CancelOrder,
    CancelRequest,
    Deposit,
    LiquidatedPosition,
    LiquidationStatus,
    LiquidationTrigger,
    MarginCall,
    MarkUpdate,
    NewOrder,
    OrderUpdate,
    PlaceOrder,
    Withdraw,
)
from libs.common.state import order_id
from libs.common.topics import partition_for
from tests.unit.cores import Driver, of_type, only
from tests.unit.risk.support import (
    ALICE,
    BOB,
    account,
    deposit,
    ledger,
    leg,
    lots,
    mark,
    place,
    placed_oid,
    px,
    result,
    risk,
    usd,
    withdraw,
)


def fees(driver: Driver) -> int:
    return ledger(driver).fees


# ------------------------------------------------------------------ deposits, withdrawals


def test_a_deposit_credits_collateral_and_answers_the_request() -> None:
    r = risk()
    (out,) = r.send(deposit(ALICE, "10000"))
    assert (out.topic, out.partition) == ("account.events", partition_for(ALICE, 4))
    assert out.message == BalanceUpdate(
        ts=1,
        account=ALICE,
        collateral=usd("10000"),
        delta=usd("10000"),
        reason="deposit",
        req_id="dep-0xa1",
    )
    update = only(r.send(deposit(ALICE, "0.5")), BalanceUpdate)
    assert update.collateral == usd("10000.5")


def test_a_non_positive_deposit_is_refused_and_opens_no_account() -> None:
    r = risk()
    update = only(r.send(Deposit(ts=1, account=ALICE, usd=0)), BalanceUpdate)
    assert (update.error, update.delta, update.collateral) == ("Deposit must be positive.", 0, 0)
    assert r.core.take_changes() == {}


def test_withdrawing_everything_of_a_flat_account_is_allowed_but_not_a_cent_more() -> None:
    r = risk()
    r.send(deposit(ALICE, "100"))
    refused = only(r.send(withdraw(ALICE, "100.000001")), BalanceUpdate)
    assert (refused.error, refused.collateral) == ("Insufficient balance.", usd("100"))
    done = only(r.send(withdraw(ALICE, "100")), BalanceUpdate)
    assert (done.error, done.delta, done.collateral) == (None, -usd("100"), 0)


def test_withdrawing_from_an_account_that_never_deposited_is_refused() -> None:
    r = risk()
    update = only(r.send(withdraw(ALICE, "1")), BalanceUpdate)
    assert (update.error, update.collateral) == ("Insufficient balance.", 0)


@pytest.mark.parametrize("amount", [0, -5])
def test_withdrawing_nothing_or_less_is_refused(amount: int) -> None:
    r = risk()
    r.send(deposit(BOB, "10"))
    update = only(r.send(Withdraw(ts=2, account=BOB, usd=amount)), BalanceUpdate)
    assert (update.error, update.collateral) == ("Insufficient balance.", usd("10"))


def test_an_open_position_keeps_ten_percent_of_its_notional_from_withdrawal() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))  # collateral 9998.5
    r.send(mark("100000"))
    # max(initial $500, 10% of $10,000) = $1,000 stays
    assert only(r.send(withdraw(ALICE, "8998.500001")), BalanceUpdate).error is not None
    assert only(r.send(withdraw(ALICE, "8998.5")), BalanceUpdate).collateral == usd("1000")


def test_holds_of_open_orders_cannot_be_withdrawn() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    placed_oid(r, place(ALICE, "buy", "100000", "0.1"))  # holds $504.5
    assert only(r.send(withdraw(ALICE, "495.6")), BalanceUpdate).error is not None
    assert only(r.send(withdraw(ALICE, "495.5")), BalanceUpdate).collateral == usd("504.5")


# ------------------------------------------------------------------ placing orders


def test_an_accepted_order_holds_margin_plus_taker_fee_and_goes_to_the_markets_matcher() -> None:
    r = risk(partition=3)
    r.send(deposit(ALICE, "1000"))
    outs = r.send(place(ALICE, "buy", "100000", "0.1", tif="Alo"))
    (out,) = outs
    assert (out.topic, out.partition, out.key) == (
        "matcher.in",
        partition_for("BTC", 4),
        b"BTC",
    )
    new = out.message
    assert isinstance(new, NewOrder)
    assert new.oid == order_id(1, 3)  # offset 1 of partition 3, slot 0
    assert (new.px, new.sz, new.tif, new.cloid, new.req_id) == (
        1_000_000,
        10_000,
        "Alo",
        "0x01",
        "place",
    )
    order = account(r, ALICE).orders[new.oid]
    # $10,000 at 20x is $500, plus the $4.50 taker fee
    assert order.hold == usd("504.5")
    assert account(r, ALICE).collateral == usd("1000")


def test_oids_are_unique_across_partitions_and_offsets() -> None:
    seen = set()
    for partition in range(4):
        r = risk(partition)
        r.send(deposit(ALICE, "100000"))
        for _ in range(5):
            seen.add(placed_oid(r, place(ALICE, "buy", "100000", "0.1")))
    assert len(seen) == 20


def test_an_order_is_rejected_when_its_hold_exceeds_the_available_margin() -> None:
    r = risk()
    r.send(deposit(ALICE, "504.499999"))
    update = only(r.send(place(ALICE, "buy", "100000", "0.1")), OrderUpdate)
    assert (update.status, update.error) == (
        "perpMarginRejected",
        "Insufficient margin to place order. asset=0",
    )
    assert (update.oid, update.req_id, update.cloid) == (None, "place", "0x01")
    assert account(r, ALICE).orders == {}
    r.send(deposit(ALICE, "0.000001"))
    placed_oid(r, place(ALICE, "buy", "100000", "0.1"))


def test_holds_of_resting_orders_use_up_the_margin() -> None:
    r = risk()
    r.send(deposit(ALICE, "1100"))
    placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    placed_oid(r, place(ALICE, "sell", "100000", "0.1"))
    assert account(r, ALICE).holds == usd("1009")
    third = only(r.send(place(ALICE, "buy", "100000", "0.1")), OrderUpdate)
    assert third.status == "perpMarginRejected"


def test_a_mark_above_the_limit_raises_the_hold() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    r.send(mark("101000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    assert account(r, ALICE).orders[oid].hold == usd("509.545")


def test_an_order_worth_less_than_ten_dollars_is_rejected() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    update = only(r.send(place(ALICE, "buy", "100000", "0.00009")), OrderUpdate)
    assert (update.status, update.error) == (
        "minTradeNtlRejected",
        "Order must have minimum value of $10.",
    )
    placed_oid(r, place(ALICE, "buy", "100000", "0.0001"))  # exactly $10


def test_the_minimum_value_is_measured_at_the_mark_once_there_is_one() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    r.send(mark("50000"))
    # $20 at the limit price, but $8 at the mark
    update = only(r.send(place(ALICE, "buy", "100000", "0.00016")), OrderUpdate)
    assert update.status == "minTradeNtlRejected"


def test_a_reduce_only_order_needs_a_position_on_the_other_side() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    flat = only(r.send(place(ALICE, "sell", "100000", "0.1", reduce_only=True)), OrderUpdate)
    assert (flat.status, flat.error) == (
        "reduceOnlyRejected",
        "Reduce only order would increase position.",
    )
    r.send(leg(ALICE, "buy", "100000", "0.01", maker=True))
    adding = only(r.send(place(ALICE, "buy", "100000", "0.1", reduce_only=True)), OrderUpdate)
    assert adding.status == "reduceOnlyRejected"


def test_a_reduce_only_order_holds_nothing_and_may_be_small() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    r.send(leg(ALICE, "buy", "100000", "0.01", maker=True))
    oid = placed_oid(r, place(ALICE, "sell", "100000", "0.00005", reduce_only=True))  # $5
    assert account(r, ALICE).orders[oid].hold == 0


@pytest.mark.parametrize(
    ("market", "px", "sz", "error"),
    [
        ("DOGE", 1, 1, "unknown market 'DOGE'"),
        ("BTC", 0, 10_000, "Order has invalid price or size."),
        ("BTC", 1_000_000, -1, "Order has invalid price or size."),
    ],
)
def test_impossible_orders_are_rejected_without_touching_state(
    market: str, px: int, sz: int, error: str
) -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    r.commit()
    msg = PlaceOrder(ts=3, account=ALICE, market=market, is_buy=True, px=px, sz=sz)
    update = only(r.send(msg), OrderUpdate)
    assert (update.status, update.error) == ("rejected", error)
    assert r.core.take_changes() == {}


def test_a_rejected_order_from_a_stranger_leaves_no_account_behind() -> None:
    r = risk()
    only(r.send(place(ALICE, "buy", "100000", "0.1")), OrderUpdate)
    assert r.core.take_changes() == {}


# ------------------------------------------------------------------ cancels


def test_a_cancel_of_an_open_order_is_forwarded_to_the_matcher() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    out = r.send(CancelOrder(ts=7, account=ALICE, market="BTC", oid=oid, req_id="c"))
    assert [(o.topic, o.message) for o in out] == [
        ("matcher.in", CancelRequest(ts=7, oid=oid, account=ALICE, market="BTC", req_id="c"))
    ]
    # the hold stays until the matcher confirms
    assert account(r, ALICE).holds == usd("504.5")


@pytest.mark.parametrize(("who", "market"), [(ALICE, "ETH"), (BOB, "BTC")])
def test_a_cancel_of_an_order_not_open_there_is_rejected(who: str, market: str) -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    update = only(r.send(CancelOrder(ts=7, account=who, market=market, oid=oid)), OrderUpdate)
    assert (update.status, update.oid) == ("cancelRejected", oid)
    assert update.error == "Order was never placed, already canceled, or filled."


# ------------------------------------------------------------------ fills


def test_a_trade_charges_the_maker_and_the_taker_their_fees() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(deposit(BOB, "10000"))
    alice = only(r.send(leg(ALICE, "buy", "100000", "0.1", maker=True)), AccountFill)
    bob = only(r.send(leg(BOB, "sell", "100000", "0.1", maker=False)), AccountFill)
    # 0.015% of $10,000 is $1.50, 0.045% is $4.50
    assert (alice.fee, bob.fee) == (usd("1.5"), usd("4.5"))
    assert account(r, ALICE).collateral == usd("9998.5")
    assert account(r, BOB).collateral == usd("9995.5")
    assert fees(r) == usd("6")
    assert account(r, ALICE).positions["BTC"].szi == 10_000
    assert account(r, BOB).positions["BTC"].szi == -10_000
    assert (alice.start_position, alice.closed_pnl) == (0, 0)


def test_closing_at_a_profit_credits_the_pnl_less_the_fee() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    fill = only(r.send(leg(ALICE, "sell", "101000", "0.1", maker=False, tid=2)), AccountFill)
    assert (fill.closed_pnl, fill.start_position) == (usd("100"), 10_000)
    # fee 0.045% of $10,100 is $4.545
    assert fill.fee == usd("4.545")
    assert account(r, ALICE).collateral == usd("10000") - usd("1.5") + usd("100") - usd("4.545")
    assert "BTC" not in account(r, ALICE).positions


def test_selling_through_zero_realizes_the_long_and_opens_a_short() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    fill = only(r.send(leg(ALICE, "sell", "99000", "0.3", maker=False)), AccountFill)
    assert fill.closed_pnl == -usd("100")
    # $29,700 traded at 0.045%: $13.365
    assert account(r, ALICE).collateral == usd("9885.135")
    pos = account(r, ALICE).positions["BTC"]
    assert (pos.szi, pos.entry_ntl) == (-20_000, usd("19800"))


def test_the_fee_on_a_one_lot_fill_rounds_up_to_a_micro_dollar() -> None:
    r = risk()
    r.send(deposit(ALICE, "1"))
    fill = only(r.send(leg(ALICE, "buy", "0.1", "0.00001", maker=True)), AccountFill)
    assert fill.fee == 1  # 1 micro-dollar notional x 150 ppm, rounded up


def test_a_partial_fill_releases_the_filled_share_of_the_hold() -> None:
    r = risk()
    r.send(deposit(ALICE, "2000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.3"))
    assert account(r, ALICE).holds == usd("1513.5")
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True, oid=oid))
    order = account(r, ALICE).orders[oid]
    assert (order.sz, order.hold) == (20_000, usd("1009"))
    r.send(result(ALICE, oid, "canceled", filled=10_000))
    assert account(r, ALICE).holds == 0


def test_a_maker_whose_order_is_done_hears_filled() -> None:
    r = risk()
    r.send(deposit(ALICE, "2000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    outs = r.send(leg(ALICE, "buy", "100000", "0.1", maker=True, oid=oid, closed=True))
    update = only(outs, OrderUpdate)
    assert (update.status, update.oid) == ("filled", oid)
    assert account(r, ALICE).orders == {}


def test_a_maker_filled_in_two_legs_hears_the_whole_size_filled() -> None:
    r = risk()
    r.send(deposit(ALICE, "2000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.3"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True, oid=oid, tid=1))
    outs = r.send(leg(ALICE, "buy", "100000", "0.2", maker=True, oid=oid, tid=2, closed=True))
    update = only(outs, OrderUpdate)
    assert (update.filled_sz, update.filled_ntl) == (30_000, usd("30000"))


def test_a_taker_filled_in_full_gives_up_its_hold_before_the_order_result() -> None:
    r = risk()
    r.send(deposit(ALICE, "2000"))
    oid = placed_oid(r, place(ALICE, "buy", "100010", "0.1"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=False, oid=oid))
    assert account(r, ALICE).holds == 0
    update = only(r.send(result(ALICE, oid, "filled", filled=10_000)), OrderUpdate)
    assert (update.status, update.filled_sz) == ("filled", 10_000)


def test_a_resting_result_keeps_the_hold_and_any_other_result_releases_it() -> None:
    r = risk()
    r.send(deposit(ALICE, "2000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    update = only(r.send(result(ALICE, oid, "resting", resting=10_000)), OrderUpdate)
    assert (update.status, update.resting_sz, update.oid) == ("resting", 10_000, oid)
    assert account(r, ALICE).holds == usd("504.5")
    r.send(result(ALICE, oid, "badAloPxRejected"))
    assert account(r, ALICE).holds == 0


# ------------------------------------------------------------------ marks and liquidation


def _alice_long_on_600() -> Driver:
    """Alice put up $600 and is long 0.1 BTC from 100000: collateral $598.5."""
    r = risk()
    r.send(deposit(ALICE, "600"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    return r


def test_a_mark_that_leaves_equity_above_maintenance_triggers_nothing_but_a_margin_call() -> None:
    r = _alice_long_on_600()
    # equity 598.5 - 500 = $98.5, maintenance 1% of $9,500 = $95: 96% of equity is used
    (out,) = r.send(mark("95000"))
    assert out.message == MarginCall(
        ts=5, account=ALICE, level_pct=80, equity=usd("98.5"), maintenance=usd("95")
    )
    assert not account(r, ALICE).liquidating
    assert account(r, ALICE).margin_call_pct == 80


def test_a_mark_that_takes_equity_below_maintenance_triggers_liquidation_once() -> None:
    r = _alice_long_on_600()
    outs = r.send(mark("94900"))
    (out,) = [o for o in outs if o.topic == "liquidations"]
    assert out.partition == partition_for(ALICE, 4)
    # equity 598.5 - 510 = $88.5, maintenance 1% of $9,490 = $94.9; the account's
    # positions ride in the same record, as the case's first status, for the liquidator
    status = LiquidationStatus(
        ts=5,
        account=ALICE,
        equity=usd("88.5"),
        maintenance=usd("94.9"),
        collateral=usd("598.5"),
        positions=(
            LiquidatedPosition(
                market="BTC",
                szi=lots("0.1"),
                entry_ntl=usd("10000"),
                mark_px=px("94900"),
                maintenance=usd("94.9"),
            ),
        ),
        below=True,
        reason="trigger",
        open_orders=False,  # she has no order for the liquidator to cancel
    )
    assert out.message == LiquidationTrigger(
        ts=5, account=ALICE, equity=usd("88.5"), maintenance=usd("94.9"), status=status
    )
    assert account(r, ALICE).liquidating
    # no second trigger: each later mark only updates the liquidator
    (update,) = [o.message for o in r.send(mark("94000"))]
    assert isinstance(update, LiquidationStatus)
    assert (update.reason, update.below, update.equity) == ("mark", True, usd("-1.5"))


def test_the_first_status_says_whether_the_account_has_orders_in_its_markets() -> None:
    r = _alice_long_on_600()
    r.send(place(ALICE, "sell", "3500", "0.01", market="ETH"))
    assert [o.market for o in account(r, ALICE).orders.values()] == ["ETH"]
    status = only(r.send(mark("94900")), LiquidationTrigger).status
    assert status is not None and status.open_orders is False  # nothing to cancel in BTC
    r = _alice_long_on_600()
    r.send(place(ALICE, "sell", "120000", "0.1", reduce_only=True))
    assert [o.market for o in account(r, ALICE).orders.values()] == ["BTC"]
    status = only(r.send(mark("94900")), LiquidationTrigger).status
    assert status is not None and (status.reason, status.open_orders) == ("trigger", True)


def test_an_account_that_recovers_can_be_triggered_again() -> None:
    r = _alice_long_on_600()
    r.send(mark("94900"))
    r.send(mark("96000"))
    assert not account(r, ALICE).liquidating
    assert len(of_type(r.send(mark("94900")), LiquidationTrigger)) == 1


def test_a_fill_that_leaves_the_account_under_water_triggers_at_once() -> None:
    r = risk()
    r.send(deposit(ALICE, "600"))
    r.send(mark("94900"))  # Alice is flat: nothing to check
    outs = r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))  # under water at once
    assert len(of_type(outs, LiquidationTrigger)) == 1
    assert r.send(mark("3500", market="ETH")) == []  # she holds no ETH
    assert of_type(r.send(mark("94900")), LiquidationTrigger) == []  # already liquidating


def test_a_non_positive_mark_is_ignored() -> None:
    r = _alice_long_on_600()
    r.commit()
    assert r.send(MarkUpdate(ts=5, market="BTC", mark_px=0, index_px=0)) == []
    assert r.core.take_changes() == {}
