"""Holds: margin for the part of an order that can open exposure, plus its taker fee."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.schemas import CancelAll, ModifyOrder, OrderUpdate
from libs.common.state import OpenOrderState
from services.risk import holds
from tests.unit.cores import only
from tests.unit.risk.support import (
    ALICE,
    account,
    deposit,
    leg,
    mark,
    place,
    placed_oid,
    result,
    risk,
    usd,
)


def _long_03() -> object:
    """Alice: $10,000, long 0.3 BTC from 100000 (maker fee $4.5)."""
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(leg(ALICE, "buy", "100000", "0.3", maker=True))
    return r


def test_orders_that_close_the_position_hold_only_their_fee_oldest_first() -> None:
    r = _long_03()
    first = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    second = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    buy = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid=None))
    orders = account(r, ALICE).orders
    # the first sell only closes: the $9 fee on $20,000
    assert orders[first].hold == usd("9")
    # the second closes the last 0.1 and opens 0.1 short: $500 + $9
    assert orders[second].hold == usd("509")
    # a buy adds to the long: $500 + $4.5
    assert orders[buy].hold == usd("504.5")


def test_a_fill_that_closes_the_position_converts_the_closing_orders_holds() -> None:
    r = _long_03()
    first = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    second = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    # the long is closed elsewhere: both sells would now open a short
    r.send(leg(ALICE, "sell", "100000", "0.3", maker=False, oid=0))
    orders = account(r, ALICE).orders
    assert (orders[first].hold, orders[second].hold) == (usd("1009"), usd("1009"))


def test_reduce_only_orders_and_tpsl_children_hold_nothing() -> None:
    r = _long_03()
    ro = placed_oid(r, place(ALICE, "sell", "100000", "0.5", reduce_only=True))
    order = account(r, ALICE).orders[ro]
    assert (order.hold, order.sz) == (0, 30_000)  # capped at the position's size


def test_a_pending_modify_holds_the_larger_of_both_terms_until_answered() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    modify = ModifyOrder(
        ts=7,
        account=ALICE,
        market="BTC",
        oid=oid,
        is_buy=True,
        px=1_000_000,
        sz=30_000,
        req_id="m1",
    )
    r.send(modify)
    assert account(r, ALICE).orders[oid].hold == usd("1513.5")  # 0.3 at 20x + fee
    r.send(result(ALICE, oid, "resting", resting=30_000, req_id="m1", price=1_000_000))
    order = account(r, ALICE).orders[oid]
    assert (order.sz, order.orig_sz, order.hold) == (30_000, 30_000, usd("1513.5"))


def test_a_refused_modify_gives_back_the_larger_hold() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))
    r.send(
        ModifyOrder(
            ts=7,
            account=ALICE,
            market="BTC",
            oid=oid,
            is_buy=True,
            px=1_000_000,
            sz=30_000,
            req_id="m1",
        )
    )
    r.send(result(ALICE, oid, "badAloPxRejected", req_id="m1"))
    order = account(r, ALICE).orders[oid]
    assert (order.sz, order.hold, order.modify) == (10_000, usd("504.5"), None)


def test_holds_exceeding_free_margin_after_a_mark_are_canceled_market_by_market() -> None:
    r = risk()
    r.send(deposit(ALICE, "1200"))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))  # collateral 1198.5
    eth = placed_oid(r, place(ALICE, "buy", "3500", "0.1", market="ETH"))  # $17.5 + $0.1575 fee
    btc = placed_oid(r, place(ALICE, "buy", "100000", "0.1"))  # $504.5
    # at 95000 equity is $698.5 and initial margin $475: $223.5 free for $522.1575 held.
    # The newest order's market (BTC) goes first; then ETH's $17.6575 fits.
    outs = r.send(mark("95000"))
    cancel = only(outs, CancelAll)
    assert (cancel.market, cancel.status) == ("BTC", "marginCanceled")
    assert account(r, ALICE).orders[btc].canceling
    assert not account(r, ALICE).orders[eth].canceling
    assert r.send(mark("94990")) == []  # not sent twice
    update = only(r.send(result(ALICE, btc, "marginCanceled")), OrderUpdate)
    assert update.status == "marginCanceled"
    assert account(r, ALICE).holds == usd("17.6575")


def _counting_holds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the holds risk computes (one entry per order hold computed)."""
    computed: list[int] = []
    original = holds._hold

    def counted(order: OpenOrderState, *args: Any) -> int:
        computed.append(order.oid)
        return original(order, *args)

    monkeypatch.setattr(holds, "_hold", counted)
    return computed


def test_the_1001st_resting_bid_computes_its_own_hold_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = risk()
    r.send(deposit(ALICE, "100000"))
    for n in range(1_000):
        r.send(place(ALICE, "buy", str(99_000 - n), "0.01", cloid=None))
    orders = account(r, ALICE).orders
    assert len(orders) == 1_000
    # 0.01 BTC at 99,000 is $990: $49.5 at 20x + $0.4455 taker fee
    assert orders[min(orders)].hold == usd("49.9455")
    before = {oid: o.hold for oid, o in orders.items()}
    computed = _counting_holds(monkeypatch)
    oid = placed_oid(r, place(ALICE, "buy", "100000", "0.01", cloid=None))
    assert computed == [oid]  # not the 1,000 others
    assert orders[oid].hold == usd("50.45")  # $1,000: $50 + $0.45
    assert {o: orders[o].hold for o in before} == before
    computed.clear()
    r.send(result(ALICE, oid, "resting", resting=1_000))
    r.send(result(ALICE, oid, "canceled"))
    assert computed == [oid]  # the rest confirmed; the cancel computes none
    assert oid not in orders


def test_a_fill_that_opens_a_position_reprices_the_orders_that_now_reduce_it() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    sells = [placed_oid(r, place(ALICE, "sell", "100000", "0.1", cloid=None)) for _ in range(3)]
    buy = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid=None))
    orders = account(r, ALICE).orders
    # flat: every 0.1 at 100,000 ($10,000) holds $500 + $4.5
    assert [orders[o].hold for o in [*sells, buy]] == [usd("504.5")] * 4
    # long 0.15 BTC: the oldest sell closes 0.1 (its fee only), the next closes the last
    # 0.05 and opens 0.05 ($250 + $4.5), the third opens all of it; the buy adds to it
    r.send(leg(ALICE, "buy", "100000", "0.15", maker=False, oid=0))
    assert [orders[o].hold for o in sells] == [usd("4.5"), usd("254.5"), usd("504.5")]
    assert orders[buy].hold == usd("504.5")
    # the oldest sell goes: the next two move up in the queue for the position
    r.send(result(ALICE, sells[0], "canceled"))
    assert [orders[o].hold for o in sells[1:]] == [usd("4.5"), usd("254.5")]
    # the middle sell rests with 0.04 (the fee on $4,000: $1.8): the last 0.1 now fits
    # in the 0.11 of the position left to close, its fee only
    r.send(result(ALICE, sells[1], "resting", resting=4_000))
    assert [orders[o].hold for o in sells[1:]] == [usd("1.8"), usd("4.5")]


def test_an_order_behind_a_position_already_claimed_computes_its_own_hold_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = _long_03()
    first = placed_oid(r, place(ALICE, "sell", "100000", "0.3", cloid=None))
    computed = _counting_holds(monkeypatch)
    second = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    buy = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid=None))
    orders = account(r, ALICE).orders
    assert computed == [second, buy]
    assert orders[first].hold == usd("13.5")  # closes all 0.3: the fee on $30,000
    assert orders[second].hold == usd("1009")  # nothing left to close: $1,000 + $9
    assert orders[buy].hold == usd("504.5")
    # the second sell going away moves nobody else's hold
    computed.clear()
    r.send(result(ALICE, second, "canceled"))
    assert computed == []
    assert (orders[first].hold, orders[buy].hold) == (usd("13.5"), usd("504.5"))


def test_a_pending_modify_that_would_reduce_follows_the_orders_ahead_of_it() -> None:
    r = _long_03()
    sell = placed_oid(r, place(ALICE, "sell", "100000", "0.2", cloid=None))
    buy = placed_oid(r, place(ALICE, "buy", "100000", "0.1", cloid=None))
    modify = ModifyOrder(
        ts=7,
        account=ALICE,
        market="BTC",
        oid=buy,
        is_buy=False,
        px=1_000_000,
        sz=30_000,
        req_id="m1",
    )
    r.send(modify)
    orders = account(r, ALICE).orders
    # as a sell of 0.3 behind the older sell's 0.2, the buy would close 0.1 and open 0.2:
    # $1,000 + $13.5 fee, more than its $504.5 as a buy
    assert orders[buy].hold == usd("1013.5")
    # the older sell goes: the modify would close all 0.3 (its fee only), so the buy's
    # own terms are the larger again
    r.send(result(ALICE, sell, "canceled"))
    assert orders[buy].hold == usd("504.5")
