"""Managing orders: cancel by id and by client id, modify and batch modify, cancel-all
for one account, and the dead man's switch (scheduled cancel) run by event time."""

from __future__ import annotations

from libs.common.schemas import OrderResult
from services.matcher.engine import SCHEDULE_KEY, MatcherCore
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, MARKETS, T0, Venue, px, sz

# ------------------------------------------------------------------ cancel


def test_canceling_a_partly_filled_order_reports_what_had_filled() -> None:
    venue = Venue()
    bob = venue.sell(BOB, "100000", "0.2", cloid="0xb0b")
    venue.buy(ALICE, "100000", "0.05")
    sent = venue.cancel(BOB, bob.oid)
    result = sent.result
    assert (result.oid, result.status, result.filled_sz, result.resting_sz) == (
        bob.oid,
        "canceled",
        sz("0.05"),
        0,
    )
    assert (result.filled_ntl, result.cloid) == (5_000_000_000, "0xb0b")
    assert venue.resting() == []
    assert len(sent.deltas) == 1


def test_an_order_can_be_canceled_by_its_owners_client_id() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1", cloid="0x01")
    bob = venue.buy(BOB, "99000", "0.1", cloid="0x01")  # client ids are per account
    result = venue.cancel(ALICE, cloid="0x01").result
    assert (result.oid, result.status, result.cloid) == (alice.oid, "canceled", "0x01")
    assert venue.resting() == [(bob.oid, "99000", "0.1")]


def test_a_cancel_for_someone_elses_order_is_rejected_and_the_order_stays() -> None:
    venue = Venue()
    bob = venue.sell(BOB, "100000", "0.2")
    sent = venue.cancel(ALICE, bob.oid)
    assert (sent.result.status, sent.result.error) == (
        "cancelRejected",
        "Order was never placed, already canceled, or filled.",
    )
    assert (sent.result.account, sent.deltas) == (ALICE, [])
    assert venue.resting() == [(bob.oid, "100000", "0.2")]


def test_a_cancel_for_a_filled_or_unknown_order_is_rejected() -> None:
    venue = Venue()
    bob = venue.sell(BOB, "100000", "0.1")
    venue.buy(ALICE, "100000", "0.1")
    assert venue.cancel(BOB, bob.oid).result.status == "cancelRejected"
    assert venue.cancel(BOB, 999).result.status == "cancelRejected"
    by_cloid = venue.cancel(BOB, cloid="0xdead").result
    assert (by_cloid.status, by_cloid.cloid) == ("cancelRejected", "0xdead")


def test_a_cancel_in_a_market_the_venue_does_not_list_is_rejected() -> None:
    venue = Venue()
    result = venue.cancel(ALICE, 1, market="DOGE").result
    assert (result.status, result.error) == ("rejected", "unknown market 'DOGE'")


def test_a_client_id_is_free_again_once_its_order_is_gone() -> None:
    venue = Venue()
    first = venue.buy(ALICE, "99000", "0.1", cloid="0x01")
    duplicate = venue.buy(ALICE, "98000", "0.1", cloid="0x01").result
    assert (duplicate.status, duplicate.error) == ("rejected", "Duplicate client order id.")
    venue.cancel(ALICE, first.oid)
    assert venue.buy(ALICE, "98000", "0.1", cloid="0x01").result.status == "resting"


# ------------------------------------------------------------------ modify


def test_shrinking_an_order_at_the_same_price_keeps_its_place_in_the_queue() -> None:
    venue = Venue()
    alice = venue.sell(ALICE, "100000", "0.5")
    venue.sell(BOB, "100000", "0.1")
    sent = venue.modify(ALICE, alice.oid, "sell", "100000", "0.2")
    assert (sent.result.status, sent.result.resting_sz) == ("resting", sz("0.2"))
    assert sent.deltas[0].asks[0].sz == sz("0.3")
    taken = venue.buy(CAROL, "100000", "0.25")
    assert taken.traded() == [(CAROL, ALICE, "100000", "0.2"), (CAROL, BOB, "100000", "0.05")]


def test_growing_an_order_sends_it_to_the_back_of_the_queue() -> None:
    venue = Venue()
    alice = venue.sell(ALICE, "100000", "0.1")
    venue.sell(BOB, "100000", "0.1")
    sent = venue.modify(ALICE, alice.oid, "sell", "100000", "0.2")
    assert (sent.result.status, sent.result.resting_sz) == ("resting", sz("0.2"))
    taken = venue.buy(CAROL, "100000", "0.15")
    assert taken.traded() == [(CAROL, BOB, "100000", "0.1"), (CAROL, ALICE, "100000", "0.05")]


def test_moving_an_order_to_a_new_price_loses_its_priority_there() -> None:
    venue = Venue()
    alice = venue.sell(ALICE, "100010", "0.1")
    bob = venue.sell(BOB, "100000", "0.1")
    sent = venue.modify(ALICE, alice.oid, "sell", "100000", "0.1")
    assert (sent.result.status, sent.result.px) == ("resting", px("100000"))
    assert venue.resting() == [(bob.oid, "100000", "0.1"), (alice.oid, "100000", "0.1")]
    assert venue.levels()[1] == [("100000", "0.2", 2)]


def test_a_modify_to_a_crossing_price_trades_like_a_new_order() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1")
    venue.sell(BOB, "100000", "0.05")
    sent = venue.modify(ALICE, alice.oid, "buy", "100000", "0.1")
    assert sent.traded() == [(ALICE, BOB, "100000", "0.05")]
    assert (sent.result.status, sent.result.filled_sz, sent.result.resting_sz) == (
        "resting",
        sz("0.05"),
        sz("0.05"),
    )
    assert venue.resting() == [(alice.oid, "100000", "0.05")]


def test_an_order_can_be_modified_by_client_id() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1", cloid="0x01")
    sent = venue.modify(ALICE, 0, "buy", "98000", "0.1", by_cloid="0x01")
    assert (sent.result.oid, sent.result.status, sent.result.cloid) == (
        alice.oid,
        "resting",
        "0x01",
    )
    assert venue.resting() == [(alice.oid, "98000", "0.1")]


def test_modifying_someone_elses_or_a_gone_order_is_rejected() -> None:
    venue = Venue()
    bob = venue.buy(BOB, "99000", "0.1")
    theirs = venue.modify(ALICE, bob.oid, "buy", "98000", "0.1").result
    assert (theirs.status, theirs.error) == (
        "modifyRejected",
        "Cannot modify canceled or filled order",
    )
    assert venue.modify(ALICE, 999, "buy", "98000", "0.1").result.status == "modifyRejected"
    by_cloid = venue.modify(ALICE, 0, "buy", "98000", "0.1", by_cloid="0x09").result
    assert by_cloid.status == "modifyRejected"
    assert venue.resting() == [(bob.oid, "99000", "0.1")]


def test_a_post_only_modify_that_would_take_is_rejected_and_the_order_stays() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1", tif="Alo")
    venue.sell(BOB, "100000", "0.1")
    sent = venue.modify(ALICE, alice.oid, "buy", "100000", "0.1", tif="Alo")
    # modifyRejected: the order is untouched (risk keeps its hold), and the reason is given.
    assert (sent.result.status, sent.result.resting_sz) == ("modifyRejected", 10_000)
    assert sent.result.error == "Post only order would have immediately matched."
    assert (sent.fills, sent.deltas) == ([], [])
    assert (alice.oid, "99000", "0.1") in venue.resting()


def test_a_modify_beyond_the_price_band_is_refused_and_the_order_stays() -> None:
    venue = Venue()
    venue.tick("100000")
    alice = venue.sell(ALICE, "101000", "0.1")
    sent = venue.modify(ALICE, alice.oid, "sell", "180001", "0.1")
    assert (sent.result.status, sent.result.error) == (
        "modifyRejected",
        "Order price cannot be more than 80% away from the reference price",
    )
    assert venue.resting() == [(alice.oid, "101000", "0.1")]


def test_a_batch_of_modifies_answers_each_one_in_order() -> None:
    venue = Venue()
    orders = [venue.buy(ALICE, p, "0.1").oid for p in ("99000", "98000", "97000")]
    answers: list[OrderResult] = []
    for oid, new_px in zip(orders, ("99100", "98100", "97100"), strict=True):
        answers.append(venue.modify(ALICE, oid, "buy", new_px, "0.2").result)
    assert [(a.oid, a.status, a.px, a.resting_sz) for a in answers] == [
        (orders[0], "resting", px("99100"), sz("0.2")),
        (orders[1], "resting", px("98100"), sz("0.2")),
        (orders[2], "resting", px("97100"), sz("0.2")),
    ]
    assert len({a.req_id for a in answers}) == 3
    assert venue.levels()[0] == [("99100", "0.2", 1), ("98100", "0.2", 1), ("97100", "0.2", 1)]


def test_shrinking_an_order_does_not_count_the_removed_lots_as_filled() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "100000", "0.5")
    shrunk = venue.modify(ALICE, alice.oid, "buy", "100000", "0.3").result
    canceled = venue.cancel(ALICE, alice.oid).result
    assert (shrunk.filled_sz, canceled.filled_sz) == (0, 0)


def test_a_parent_that_fills_when_modified_places_its_children() -> None:
    venue = Venue()
    venue.tick("100000")
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "99000", "0.1", children=(stop,))
    venue.sell(BOB, "100000", "0.1")
    sent = venue.modify(ALICE, parent.oid, "buy", "100000", "0.1")
    assert sent.result.status == "filled"
    assert (stop.oid, "resting") in sent.statuses
    assert venue.trigger_oids() == [stop.oid]


def test_a_modify_cannot_steal_the_client_id_of_another_live_order() -> None:
    venue = Venue()
    first = venue.buy(ALICE, "99000", "0.1", cloid="0x1")
    second = venue.buy(ALICE, "98000", "0.1", cloid="0x2")
    venue.modify(ALICE, second.oid, "buy", "97000", "0.1", cloid="0x1")
    assert venue.cancel(ALICE, cloid="0x1").result.oid == first.oid


# ------------------------------------------------------------------ cancel-all


def test_cancel_all_removes_every_order_of_one_account_with_the_given_status() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, CAROL, "100000", "0.1")
    bid = venue.buy(ALICE, "99000", "0.1")
    ask = venue.sell(ALICE, "101000", "0.1")
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl")
    bob = venue.buy(BOB, "99000", "0.2")
    sent = venue.cancel_all(ALICE, status="liquidatedCanceled")
    assert sent.statuses == [
        (bid.oid, "liquidatedCanceled"),
        (ask.oid, "liquidatedCanceled"),
        (stop.oid, "liquidatedCanceled"),
    ]
    assert venue.resting() == [(bob.oid, "99000", "0.2")]
    assert venue.trigger_oids() == []
    (delta,) = sent.deltas
    assert [(lv.px, lv.sz, lv.n) for lv in delta.bids + delta.asks] == [
        (px("99000"), sz("0.2"), 1),
        (px("101000"), 0, 0),
    ]
    assert venue.position(ALICE) == "0.1"  # positions are not touched


def test_cancel_all_without_a_market_clears_the_account_in_every_market() -> None:
    venue = Venue()
    btc = venue.buy(ALICE, "99000", "0.1")
    eth = venue.buy(ALICE, "3400", "1", market="ETH")
    sent = venue.cancel_all(ALICE, market="")
    assert sent.statuses == [(btc.oid, "canceled"), (eth.oid, "canceled")]
    assert (venue.resting(), venue.resting("ETH")) == ([], [])
    assert sorted(d.market for d in sent.deltas) == ["BTC", "ETH"]


def test_cancel_all_for_an_account_with_no_orders_says_nothing() -> None:
    venue = Venue()
    venue.buy(BOB, "99000", "0.1")
    assert venue.cancel_all(ALICE).outputs == []


# ------------------------------------------------------------------ scheduled cancel


def test_the_dead_mans_switch_cancels_at_the_first_event_at_or_after_its_time() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1")
    stop_at = T0 + 60_000
    assert venue.schedule_cancel(ALICE, stop_at).outputs == []
    assert venue.tick("100000", at=stop_at - 1).results == []
    bob = venue.buy(BOB, "98000", "0.1", at=stop_at)
    assert bob.statuses == [(alice.oid, "scheduledCancel"), (bob.oid, "resting")]
    assert venue.resting() == [(bob.oid, "98000", "0.1")]
    # It fires once: orders placed afterwards stay.
    again = venue.buy(ALICE, "99000", "0.1")
    assert venue.tick("100000", at=stop_at + 60_000).results == []
    assert (again.oid, "99000", "0.1") in venue.resting()


def test_an_index_tick_is_enough_to_run_the_switch() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1")
    stop = venue.trigger(ALICE, "sell", "0.1", trigger="95000", tpsl="sl", reduce_only=False)
    venue.schedule_cancel(ALICE, T0 + 10_000)
    sent = venue.tick("100000", at=T0 + 15_000)
    assert sent.statuses == [(alice.oid, "scheduledCancel"), (stop.oid, "scheduledCancel")]


def test_a_switch_can_be_cleared_or_pushed_back() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1")
    venue.schedule_cancel(ALICE, T0 + 10_000)
    venue.schedule_cancel(ALICE, T0 + 20_000)  # pushed back
    assert venue.tick("100000", at=T0 + 15_000).results == []
    assert venue.tick("100000", at=T0 + 20_000).statuses == [(alice.oid, "scheduledCancel")]

    carol = venue.buy(CAROL, "99000", "0.1")
    venue.schedule_cancel(CAROL, T0 + 30_000)
    venue.schedule_cancel(CAROL, 0)  # cleared
    assert venue.tick("100000", at=T0 + 40_000).results == []
    assert (carol.oid, "99000", "0.1") in venue.resting()


def test_a_switch_survives_a_restart() -> None:
    venue = Venue()
    alice = venue.buy(ALICE, "99000", "0.1")
    venue.schedule_cancel(ALICE, T0 + 10_000)
    venue.driver.commit()
    assert SCHEDULE_KEY in venue.driver.persisted
    venue.driver = venue.driver.restarted(lambda p: MatcherCore(MARKETS, p))
    assert venue.tick("100000", at=T0 + 10_000).statuses == [(alice.oid, "scheduledCancel")]
