"""Trigger orders: stop-loss and take-profit, market or limit, fired by the mark price;
normalTpsl children placed when their parent fills, and positionTpsl."""

from __future__ import annotations

import pytest

from libs.common.schemas import MarketStatus, MarkPrice
from services.matcher.market import TriggerOrder
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, DAVE, Venue, px, sz


@pytest.mark.parametrize(
    ("side", "tpsl", "mark", "fires"),
    [
        # A sell protects a long: its stop fires as the price falls to the trigger ...
        ("sell", "sl", "95000", True),
        ("sell", "sl", "94000", True),
        ("sell", "sl", "95001", False),
        # ... and its take-profit as the price rises to it.
        ("sell", "tp", "95000", True),
        ("sell", "tp", "96000", True),
        ("sell", "tp", "94999", False),
        # A buy protects a short: its stop fires as the price rises to the trigger ...
        ("buy", "sl", "95000", True),
        ("buy", "sl", "96000", True),
        ("buy", "sl", "94999", False),
        # ... and its take-profit as the price falls to it.
        ("buy", "tp", "95000", True),
        ("buy", "tp", "94000", True),
        ("buy", "tp", "95001", False),
    ],
)
def test_which_side_of_the_trigger_price_fires_an_order(
    side: str, tpsl: str, mark: str, fires: bool
) -> None:
    order = TriggerOrder(
        oid=1,
        account=ALICE,
        is_buy=side == "buy",
        px=0,
        sz=sz("0.1"),
        trigger_px=px("95000"),
        tpsl=tpsl,
        is_market=True,
        reduce_only=True,
        position_tpsl=False,
        ts=0,
    )
    assert order.fires_at(px(mark)) is fires


def _alice_long_with_a_bid_under_her(venue: Venue) -> None:
    """Alice bought 0.1 from Bob at 100,000; Carol bids 1 BTC at 94,000."""
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.1")
    venue.buy(CAROL, "94000", "1")


def test_a_stop_loss_waits_off_the_book_then_sells_at_market_when_the_mark_falls() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    assert stop.statuses == [(stop.oid, "resting")]
    assert (stop.result.resting_sz, stop.fills, stop.deltas) == (sz("0.1"), [], [])
    assert venue.trigger_oids() == [stop.oid]
    assert all(oid != stop.oid for oid, _, _ in venue.resting())

    assert venue.tick("96000").results == []
    fired = venue.tick("94900")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "filled")]
    assert fired.traded() == [(CAROL, ALICE, "94000", "0.1")]
    done = fired.results[-1]
    assert (done.filled_sz, done.filled_ntl) == (sz("0.1"), 9_400_000_000)
    assert done.px == px("90155")  # 5% under the 94,900 mark
    assert venue.position(ALICE) == "0"
    assert venue.trigger_oids() == []


def test_a_stop_watches_the_mark_not_the_oracle() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.1")  # the last trade is at 100,000
    venue.buy(CAROL, "95100", "0.5")
    venue.sell(DAVE, "95200", "0.5")
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    # The oracle drops through the stop, but the book and an external mid hold the mark
    # at 95,150: median(94,900 + 250 basis, median(95,100, 95,200, 100,000), 95,150).
    sent = venue.tick("94900", external="95150")
    assert sent.of(MarkPrice)[0].mark_px == px("95150")
    assert sent.results == []
    assert venue.trigger_oids() == [stop.oid]


def test_a_take_profit_limit_rests_on_the_book_once_the_mark_reaches_it() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    target = venue.trigger(ALICE, "sell", "0.1", trigger="105000", tpsl="tp", limit="105500")
    fired = venue.tick("105000")
    assert fired.statuses == [(target.oid, "triggered"), (target.oid, "resting")]
    assert fired.results[-1].resting_sz == sz("0.1")
    assert (target.oid, "105500", "0.1") in venue.resting()
    assert fired.deltas[0].asks[0].px == px("105500")


def test_a_short_sellers_stop_buys_back_at_market_as_the_mark_rises() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(BOB, ALICE, "100000", "0.1")  # Alice is short 0.1
    venue.sell(DAVE, "106000", "0.5")
    stop = venue.trigger(ALICE, "buy", "0.1", trigger="105000", tpsl="sl")
    fired = venue.tick("105500")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "filled")]
    assert fired.traded() == [(ALICE, DAVE, "106000", "0.1")]
    assert fired.results[-1].px == px("110775")  # 5% over the 105,500 mark


def test_a_triggered_market_order_into_an_empty_side_finds_no_liquidity() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.1")
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    fired = venue.tick("94000")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "marketOrderNoLiquidityRejected")]
    assert venue.position(ALICE) == "0.1"


def test_triggers_wait_while_the_oracle_is_not_valid() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    stale = venue.tick("94000", status="stale")
    assert stale.results == []
    assert [m.state for m in stale.of(MarketStatus)] == ["reduce_only"]
    fired = venue.tick("94000")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "filled")]


def test_a_trigger_order_can_be_canceled_by_id_or_client_id_before_it_fires() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    target = venue.trigger(ALICE, "sell", "0.1", trigger="105000", tpsl="tp", cloid="0x7")
    by_oid = venue.cancel(ALICE, stop.oid)
    assert (by_oid.result.oid, by_oid.result.status) == (stop.oid, "canceled")
    by_cloid = venue.cancel(ALICE, cloid="0x7")
    assert (by_cloid.result.oid, by_cloid.result.status) == (target.oid, "canceled")
    assert venue.trigger_oids() == []
    assert venue.tick("94000").results == []
    assert venue.tick("106000").results == []


def test_a_trigger_without_a_trigger_price_is_rejected() -> None:
    venue = Venue()
    venue.tick("100000")
    sent = venue.new(ALICE, "sell", 0, sz("0.1"), kind="trigger", tpsl="sl", reduce_only=True)
    assert (sent.result.status, sent.result.error) == (
        "rejected",
        "Trigger order needs a positive trigger price.",
    )


def test_a_reduce_only_trigger_is_canceled_when_its_position_is_closed() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    closed = venue.sell(ALICE, "94000", "0.1", tif="Ioc")  # Alice closes by hand first
    assert (stop.oid, "reduceOnlyCanceled") in closed.statuses
    fired = venue.tick("94900")
    assert fired.statuses == [] and fired.fills == []


# ------------------------------------------------------------------ positionTpsl


def test_a_position_stop_needs_a_position_it_would_close() -> None:
    venue = Venue()
    venue.tick("100000")
    sent = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl", position=True)
    assert (sent.result.status, sent.result.error) == (
        "rejected",
        "Position TP/SL needs an open position it would close.",
    )
    venue.trade(ALICE, BOB, "100000", "0.1")
    wrong_side = venue.trigger(ALICE, "buy", "0.1", trigger="105000", tpsl="sl", position=True)
    assert wrong_side.result.status == "rejected"


def test_a_position_stop_closes_the_whole_position_as_it_is_when_it_fires() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl", position=True)
    assert stop.result.status == "resting"
    venue.trade(ALICE, DAVE, "100000", "0.2")  # Alice adds to her long: 0.3
    fired = venue.tick("94900")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "filled")]
    assert fired.traded() == [(CAROL, ALICE, "94000", "0.3")]
    assert venue.position(ALICE) == "0"


def test_a_position_stop_goes_with_its_position() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl", position=True)
    closed = venue.sell(ALICE, "94000", "0.1", tif="Ioc")
    assert (stop.oid, "reduceOnlyCanceled") in closed.statuses
    assert venue.tick("94900").statuses == []


# ------------------------------------------------------------------ normalTpsl


def test_children_wait_for_the_parent_and_are_placed_when_it_fills() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    target = venue.child("sell", "0.1", trigger="110000", tpsl="tp", limit="110000")
    parent = venue.buy(ALICE, "100000", "0.1", children=(stop, target))
    assert parent.statuses == [(parent.oid, "resting")]  # the children are not live yet
    assert venue.trigger_oids() == []

    filled = venue.sell(BOB, "100000", "0.1")
    assert filled.statuses == [
        (stop.oid, "resting"),
        (target.oid, "resting"),
        (filled.oid, "filled"),
    ]
    assert [r.resting_sz for r in filled.results[:2]] == [sz("0.1"), sz("0.1")]
    assert venue.trigger_oids() == [stop.oid, target.oid]
    assert all(venue.engine().triggers[oid].reduce_only for oid in (stop.oid, target.oid))


def test_a_child_stop_protects_the_position_its_parent_opened() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    target = venue.child("sell", "0.1", trigger="110000", tpsl="tp")
    venue.buy(ALICE, "100000", "0.1", children=(stop, target))
    venue.sell(BOB, "100000", "0.1")
    venue.buy(CAROL, "94000", "1")
    fired = venue.tick("94500")
    # The stop closes the position; its sibling take-profit could now only open one,
    # so it is canceled at once (one cancels the other).
    assert fired.statuses == [
        (stop.oid, "triggered"),
        (target.oid, "reduceOnlyCanceled"),
        (stop.oid, "filled"),
    ]
    assert venue.position(ALICE) == "0"
    assert venue.trigger_oids() == []
    assert venue.tick("110000").statuses == []


def test_children_of_a_parent_that_fills_at_once_are_placed_in_the_same_step() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.sell(BOB, "100000", "0.1")
    stop = venue.child("sell", "0.2", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "100000", "0.1", tif="Ioc", children=(stop,))
    assert parent.statuses == [(stop.oid, "resting"), (parent.oid, "filled")]
    # The child is cut to what the parent filled.
    assert venue.engine().triggers[stop.oid].sz == sz("0.1")


def test_children_are_sized_to_what_a_canceled_parent_had_filled() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "100000", "0.1", children=(stop,))
    venue.sell(BOB, "100000", "0.04")
    assert venue.trigger_oids() == []  # still resting: nothing placed yet
    canceled = venue.cancel(ALICE, parent.oid)
    assert canceled.statuses == [(parent.oid, "canceled"), (stop.oid, "resting")]
    assert venue.engine().triggers[stop.oid].sz == sz("0.04")


def test_children_of_a_parent_canceled_without_a_fill_are_canceled() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "100000", "0.1", children=(stop,))
    canceled = venue.cancel(ALICE, parent.oid)
    assert canceled.statuses == [(parent.oid, "canceled"), (stop.oid, "canceled")]
    assert canceled.results[1].error == "Parent order did not fill."
    assert venue.trigger_oids() == []


def test_children_of_an_ioc_parent_that_found_nothing_are_canceled() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "100000", "0.1", tif="Ioc", children=(stop,))
    assert parent.statuses == [(stop.oid, "canceled"), (parent.oid, "iocCancelRejected")]


def test_children_of_a_parent_refused_at_admission_are_canceled_too() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "190000", "0.1", children=(stop,))  # beyond the 80% band
    assert parent.result.status == "oracleRejected"
    assert (stop.oid, "canceled") in parent.statuses


def test_a_halted_market_fires_no_triggers() -> None:
    venue = Venue()
    _alice_long_with_a_bid_under_her(venue)
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    venue.control("halt")
    halted = venue.tick("94000")
    assert halted.fills == []
    assert venue.trigger_oids() == [stop.oid]
