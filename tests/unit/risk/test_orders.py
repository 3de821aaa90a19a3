"""Order kinds, TP/SL children, limits, cancels and modifies as risk handles them."""

from __future__ import annotations

from libs.common.schemas import (
    CancelOrder,
    CancelRequest,
    ChildOrder,
    ModifyOrder,
    ModifyRequest,
    NewOrder,
    OrderIntent,
    OrderUpdate,
)
from libs.common.state import order_id
from tests.unit.cores import only
from tests.unit.risk.support import (
    ALICE,
    BTC,
    account,
    deposit,
    leg,
    lots,
    mark,
    place,
    placed_oid,
    px,
    result,
    risk,
    usd,
)


def _rich(amount: str = "10000") -> object:
    r = risk()
    r.send(deposit(ALICE, amount))
    return r


# ------------------------------------------------------------------ kinds


def test_a_market_order_is_held_at_the_mark_moved_by_the_markets_slippage() -> None:
    r = _rich()
    r.send(mark("100000"))
    new = only(r.send(place(ALICE, "buy", "0", "0.1", kind="market")), NewOrder)
    assert (new.px, new.kind, new.slippage_ppm) == (0, "market", 0)
    # 5% above 100000 is 105000: $10,500 at 20x is $525, plus the $4.725 taker fee
    assert account(r, ALICE).orders[new.oid].hold == usd("529.725")
    sell = only(r.send(place(ALICE, "sell", "0", "0.1", kind="market")), NewOrder)
    assert account(r, ALICE).orders[sell.oid].hold_px == px("100000")  # never below mark


def test_a_market_order_without_any_price_is_refused() -> None:
    r = _rich()
    update = only(r.send(place(ALICE, "buy", "0", "0.1", kind="market")), OrderUpdate)
    assert (update.status, update.error) == (
        "marketOrderNoLiquidityRejected",
        "No reference price for a market order. asset=0",
    )


def test_a_trigger_order_is_held_at_its_trigger_price_when_that_is_worse() -> None:
    r = _rich()
    r.send(mark("100000"))
    order = place(
        ALICE,
        "buy",
        "101000",
        "0.1",
        kind="trigger",
        trigger_px=px("102000"),
        tpsl="tp",
        trigger_is_market=False,
    )
    oid = placed_oid(r, order)
    held = account(r, ALICE).orders[oid]
    assert (held.kind, held.trigger_px, held.hold_px) == ("trigger", px("102000"), px("102000"))
    assert held.hold == usd("514.59")  # $10,200 / 20 + 0.045%


def test_a_trigger_order_needs_a_trigger_price() -> None:
    r = _rich()
    update = only(r.send(place(ALICE, "buy", "100000", "0.1", kind="trigger")), OrderUpdate)
    assert (update.status, update.error) == (
        "rejected",
        "Trigger order needs a positive trigger price.",
    )


def test_normal_tpsl_children_get_the_next_oids_and_wait_for_their_parent() -> None:
    r = _rich()
    tp = OrderIntent(is_buy=False, px=0, sz=lots("0.1"), trigger_px=px("110000"), tpsl="tp")
    sl = OrderIntent(
        is_buy=False,
        px=px("89000"),
        sz=lots("0.1"),
        trigger_px=px("90000"),
        tpsl="sl",
        trigger_is_market=False,
        cloid="0x02",
    )
    r.offset = 7
    new = only(
        r.send(place(ALICE, "buy", "100000", "0.1", grouping="normalTpsl", children=(tp, sl))),
        NewOrder,
    )
    assert new.oid == order_id(7, 0)
    assert new.children == (
        ChildOrder(
            oid=order_id(7, 0, 1), is_buy=False, px=0, sz=10_000, trigger_px=1_100_000, tpsl="tp"
        ),
        ChildOrder(
            oid=order_id(7, 0, 2),
            is_buy=False,
            px=890_000,
            sz=10_000,
            trigger_px=900_000,
            tpsl="sl",
            trigger_is_market=False,
            cloid="0x02",
        ),
    )
    child = account(r, ALICE).orders[order_id(7, 0, 1)]
    assert (child.parent, child.placed, child.hold, child.reduce_only) == (new.oid, False, 0, True)
    # the parent fills, the matcher places the children
    r.send(result(ALICE, order_id(7, 0, 1), "resting", resting=10_000))
    assert account(r, ALICE).orders[order_id(7, 0, 1)].placed


def test_children_of_a_refused_parent_are_dropped_with_it() -> None:
    r = _rich()
    tp = OrderIntent(is_buy=False, px=0, sz=lots("0.1"), trigger_px=px("110000"), tpsl="tp")
    new = only(
        r.send(place(ALICE, "buy", "100000", "0.1", grouping="normalTpsl", children=(tp,))),
        NewOrder,
    )
    r.send(result(ALICE, new.oid, "oracleRejected"))
    assert account(r, ALICE).orders == {}


def test_a_child_on_the_parents_side_is_refused() -> None:
    r = _rich()
    bad = OrderIntent(is_buy=True, px=0, sz=lots("0.1"), trigger_px=px("110000"), tpsl="tp")
    update = only(
        r.send(place(ALICE, "buy", "100000", "0.1", grouping="normalTpsl", children=(bad,))),
        OrderUpdate,
    )
    assert update.status == "rejected"
    assert "other side" in (update.error or "")


def test_a_position_tpsl_needs_a_position_to_close_and_holds_nothing() -> None:
    r = _rich()
    order = place(
        ALICE,
        "sell",
        "90000",
        "0.1",
        kind="trigger",
        trigger_px=px("90000"),
        tpsl="sl",
        grouping="positionTpsl",
    )
    assert only(r.send(order), OrderUpdate).status == "reduceOnlyRejected"
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    oid = placed_oid(r, order)
    assert account(r, ALICE).orders[oid].hold == 0


def test_a_reduce_only_order_carries_at_most_the_positions_size() -> None:
    r = _rich()
    r.send(leg(ALICE, "buy", "100000", "0.02", maker=True))
    new = only(r.send(place(ALICE, "sell", "100000", "0.5", reduce_only=True)), NewOrder)
    assert (new.sz, new.reduce_only) == (2_000, True)


def test_a_triggered_order_stays_open_and_trades_as_a_limit() -> None:
    r = _rich()
    order = place(ALICE, "buy", "101000", "0.1", kind="trigger", trigger_px=px("101000"))
    oid = placed_oid(r, order)
    r.send(result(ALICE, oid, "triggered", price=px("101000")))
    assert account(r, ALICE).orders[oid].kind == "limit"


# ------------------------------------------------------------------ limits


def test_an_order_that_would_take_the_position_past_its_maximum_is_refused() -> None:
    r = _rich("50000000")
    # BTC allows $200M per account: 1,500 BTC resting plus 500.01 more at 100000 is over
    placed_oid(r, place(ALICE, "buy", "100000", "1500", cloid=None))
    update = only(r.send(place(ALICE, "buy", "100000", "500.01", cloid=None)), OrderUpdate)
    assert (update.status, update.error) == (
        "perpMaxPositionRejected",
        "Order would take the position past the maximum of $200000000. asset=0",
    )
    placed_oid(r, place(ALICE, "buy", "100000", "500", cloid=None))  # exactly $200M


def test_an_order_is_refused_while_open_interest_is_at_its_cap() -> None:
    r = _rich()
    # $2B cap at 100000 is 20,000 BTC; 19,999.95 is open
    r.send(mark("100000", open_interest=lots("19999.95")))
    update = only(r.send(place(ALICE, "buy", "100000", "0.1")), OrderUpdate)
    assert update.status == "openInterestIncreaseRejected"
    placed_oid(r, place(ALICE, "buy", "100000", "0.05"))  # exactly at the cap
    # an order that only reduces is fine
    r.send(leg(ALICE, "sell", "100000", "0.1", maker=True))
    placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid="0x09"))


# ------------------------------------------------------------------ cancel


def test_a_cancel_by_client_id_names_the_order_by_oid() -> None:
    r = _rich()
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid="0xc1"))
    cancel = CancelOrder(ts=9, account=ALICE, market="BTC", oid=0, cloid="0xc1", req_id="c")
    assert only(r.send(cancel), CancelRequest).oid == oid
    missing = CancelOrder(ts=9, account=ALICE, market="BTC", oid=0, cloid="0xzz", req_id="c")
    assert only(r.send(missing), OrderUpdate).status == "cancelRejected"


def test_a_cancel_the_matcher_refuses_ends_an_order_it_no_longer_has() -> None:
    r = _rich()
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    r.send(result(ALICE, oid, "cancelRejected"))
    assert account(r, ALICE).orders == {}


# ------------------------------------------------------------------ modify


def _modify(oid: int, price: str, size: str, **fields: object) -> ModifyOrder:
    return ModifyOrder(
        ts=8,
        account=ALICE,
        market="BTC",
        oid=oid,
        is_buy=True,
        px=px(price),
        sz=lots(size),
        req_id="m",
        **fields,  # type: ignore[arg-type]
    )


def test_a_modify_is_checked_and_forwarded() -> None:
    r = _rich()
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid="0xc1"))
    sent = only(r.send(_modify(oid, "99000", "0.2")), ModifyRequest)
    assert (sent.oid, sent.px, sent.sz, sent.cloid, sent.req_id) == (
        oid,
        px("99000"),
        20_000,
        "0xc1",
        "m",
    )
    by_cloid = _modify(0, "99000", "0.2", by_cloid="0xc1")
    again = only(r.send(by_cloid), OrderUpdate)
    assert (again.status, again.oid) == ("modifyRejected", 0)  # one modify at a time


def test_a_modify_beyond_the_free_margin_is_refused_and_changes_nothing() -> None:
    r = _rich("600")
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    r.core.take_changes()
    update = only(r.send(_modify(oid, "100000", "0.2")), OrderUpdate)
    assert (update.status, update.oid) == ("perpMarginRejected", oid)
    assert r.core.take_changes() == {}
    assert account(r, ALICE).orders[oid].hold == usd("504.5")


def test_a_modify_of_an_unknown_order_is_refused() -> None:
    r = _rich()
    update = only(r.send(_modify(12345, "100000", "0.1")), OrderUpdate)
    assert (update.status, update.error) == (
        "modifyRejected",
        "Cannot modify canceled or filled order",
    )


def test_a_modified_order_that_trades_on_re_entry_rests_with_what_is_left() -> None:
    r = _rich()
    oid = placed_oid(r, place(ALICE, "buy", "99000", "0.1"))
    r.send(_modify(oid, "100000", "0.3"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=False, oid=oid))
    assert account(r, ALICE).orders[oid].sz == 10_000  # still the old terms
    r.send(
        result(ALICE, oid, "resting", filled=10_000, resting=20_000, req_id="m", price=px("100000"))
    )
    order = account(r, ALICE).orders[oid]
    assert (order.px, order.sz, order.orig_sz, order.modify) == (px("100000"), 20_000, 30_000, None)
    # 0.2 more to open on top of the 0.1 long: $1,000 + $9
    assert order.hold == usd("1009")


def test_btc_has_the_configured_limits() -> None:
    assert (BTC.max_position_usd, BTC.open_interest_cap) == (usd("200000000"), usd("2000000000"))


def test_a_market_trigger_order_is_held_at_its_trigger_price_moved_by_slippage() -> None:
    r = _rich()  # no mark yet
    order = place(ALICE, "buy", "0", "0.1", kind="trigger", trigger_px=px("100000"), tpsl="sl")
    oid = placed_oid(r, order)
    # fires as a market order: up to 5% above 100000
    assert account(r, ALICE).orders[oid].hold_px == px("105000")
