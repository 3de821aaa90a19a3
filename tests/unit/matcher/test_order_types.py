"""Order types as a trader sees them: GTC, IOC, ALO, market and reduce-only orders, and
self-trade prevention, with the exact statuses and the fills, trades and legs they make."""

from __future__ import annotations

from libs.common.schemas import BookDelta, FillLeg, Level, OrderResult, Trade
from libs.common.topics import partition_for
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, DAVE, T0, Venue, px, sz

# ------------------------------------------------------------------ limit GTC


def test_a_gtc_order_that_crosses_nothing_rests_and_is_acknowledged_to_its_owner() -> None:
    venue = Venue()
    sent = venue.buy(ALICE, "99000", "0.1", cloid="0xabc")
    answer, delta = sent.outputs
    assert (answer.topic, answer.partition) == ("risk.in", partition_for(ALICE, 4))
    assert answer.message == OrderResult(
        ts=T0 + 1,
        account=ALICE,
        market="BTC",
        oid=1,
        status="resting",
        filled_sz=0,
        resting_sz=sz("0.1"),
        req_id="req-1",
        cloid="0xabc",
        px=px("99000"),
    )
    assert (delta.topic, delta.partition) == ("market.events", partition_for("BTC", 4))
    assert isinstance(delta.message, BookDelta)
    assert venue.resting() == [(1, "99000", "0.1")]


def test_a_taker_buy_walks_the_asks_and_each_execution_has_two_legs_and_a_trade() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    venue.sell(CAROL, "100001", "0.2")
    sent = venue.buy(ALICE, "100001", "0.25")

    legs = [
        (f.account, f.oid, f.is_buy, f.px, f.sz, f.is_maker, f.tid, f.order_closed, f.kind)
        for f in sent.fills
    ]
    assert legs == [
        (ALICE, 3, True, px("100000"), sz("0.1"), False, 1, False, "trade"),
        (BOB, 1, False, px("100000"), sz("0.1"), True, 1, True, "trade"),
        (ALICE, 3, True, px("100001"), sz("0.15"), False, 2, False, "trade"),
        (CAROL, 2, False, px("100001"), sz("0.15"), True, 2, False, "trade"),
    ]
    assert sent.traded() == [
        (ALICE, BOB, "100000", "0.1"),
        (ALICE, CAROL, "100001", "0.15"),
    ]
    assert [(t.taker_is_buy, t.tid) for t in sent.trades] == [(True, 1), (True, 2)]
    result = sent.result
    assert (result.status, result.filled_sz, result.resting_sz) == ("filled", sz("0.25"), 0)
    # $10,000 at 100,000 plus $15,000.15 at 100,001
    assert result.filled_ntl == 25_000_150_000
    assert venue.resting() == [(2, "100001", "0.05")]
    assert (venue.position(ALICE), venue.position(BOB), venue.position(CAROL)) == (
        "0.25",
        "-0.1",
        "-0.15",
    )


def test_legs_go_to_each_owners_risk_partition_and_trades_and_deltas_to_the_markets() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.1")
    where = [(type(o.message).__name__, o.topic, o.partition, o.key) for o in sent.outputs]
    assert where == [
        ("FillLeg", "risk.in", partition_for(ALICE, 4), ALICE.encode()),
        ("FillLeg", "risk.in", partition_for(BOB, 4), BOB.encode()),
        ("Trade", "market.events", partition_for("BTC", 4), b"BTC"),
        ("OrderResult", "risk.in", partition_for(ALICE, 4), ALICE.encode()),
        ("BookDelta", "market.events", partition_for("BTC", 4), b"BTC"),
    ]


def test_every_fill_has_one_taker_leg_and_one_maker_leg_for_the_fee_roles() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    venue.sell(CAROL, "100000", "0.1")
    venue.sell(DAVE, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.3")
    by_tid: dict[int, list[FillLeg]] = {}
    for leg in sent.fills:
        by_tid.setdefault(leg.tid, []).append(leg)
    assert len(by_tid) == 3
    for tid, (taker, maker) in by_tid.items():
        assert (taker.account, taker.is_maker, maker.is_maker) == (ALICE, False, True)
        assert (taker.is_buy, maker.is_buy) == (True, False)
        assert (taker.px, taker.sz) == (maker.px, maker.sz)
        (trade,) = [t for t in sent.trades if t.tid == tid]
        assert (trade.buyer, trade.seller) == (ALICE, maker.account)


def test_a_partly_filled_gtc_rests_the_rest_at_its_limit() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    result = venue.buy(ALICE, "100005", "0.3").result
    assert (result.status, result.filled_sz, result.resting_sz) == ("resting", sz("0.1"), sz("0.2"))
    assert result.filled_ntl == 10_000_000_000
    assert venue.resting() == [(2, "100005", "0.2")]


def test_trade_ids_count_per_market() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.2")
    venue.sell(BOB, "3500", "1", market="ETH")
    btc_first = venue.buy(ALICE, "100000", "0.1")
    eth_first = venue.buy(ALICE, "3500", "1", market="ETH")
    btc_second = venue.buy(ALICE, "100000", "0.1")
    assert [t.tid for t in btc_first.trades + btc_second.trades] == [1, 2]
    assert [t.tid for t in eth_first.trades] == [1]


# ------------------------------------------------------------------ IOC


def test_an_ioc_that_finds_nothing_is_rejected_and_leaves_no_trace() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "99999", "0.1", tif="Ioc")
    assert sent.results == [sent.result]
    assert sent.result.status == "iocCancelRejected"
    assert sent.result.error == (
        "Order could not immediately match against any resting orders. asset=0"
    )
    assert (sent.result.filled_sz, sent.result.resting_sz) == (0, 0)
    assert sent.deltas == []
    assert venue.resting() == [(1, "100000", "0.1")]


def test_a_partly_filled_ioc_reports_filled_and_drops_the_rest() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    result = venue.buy(ALICE, "100010", "0.3", tif="Ioc").result
    assert (result.status, result.filled_sz, result.resting_sz) == ("filled", sz("0.1"), 0)
    assert venue.resting() == []


# ------------------------------------------------------------------ ALO (post only)


def test_a_post_only_order_that_would_take_is_rejected_quoting_the_bbo() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.1", tif="Alo")
    assert sent.result.status == "badAloPxRejected"
    assert sent.result.error == (
        "Post only order would have immediately matched, bbo was 100000. asset=0"
    )
    assert (sent.fills, sent.deltas) == ([], [])
    assert venue.resting() == [(1, "100000", "0.1")]


def test_a_post_only_sell_through_the_best_bid_is_rejected() -> None:
    venue = Venue()
    venue.buy(BOB, "99950", "0.1")
    sent = venue.sell(ALICE, "99900", "0.1", tif="Alo")
    assert sent.result.status == "badAloPxRejected"
    assert sent.result.error == (
        "Post only order would have immediately matched, bbo was 99950. asset=0"
    )


def test_a_post_only_order_that_does_not_cross_rests() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    result = venue.buy(ALICE, "99999", "0.1", tif="Alo").result
    assert (result.status, result.resting_sz) == ("resting", sz("0.1"))
    assert venue.levels() == ([("99999", "0.1", 1)], [("100000", "0.1", 1)])


# ------------------------------------------------------------------ market orders


def _asks_at_100k_104k_106k(venue: Venue) -> int:
    """Bob, Carol and Dave offer 0.1 each at 100,000, 104,000 and 106,000, with the
    oracle (and so the mark) at 100,000; returns Dave's order id."""
    venue.tick("100000")
    venue.sell(BOB, "100000", "0.1")
    venue.sell(CAROL, "104000", "0.1")
    return venue.sell(DAVE, "106000", "0.1").oid


def test_a_market_buy_fills_up_to_five_percent_above_the_mark() -> None:
    venue = Venue()
    dave = _asks_at_100k_104k_106k(venue)
    sent = venue.market_order(ALICE, "buy", "0.3")
    assert sent.traded() == [(ALICE, BOB, "100000", "0.1"), (ALICE, CAROL, "104000", "0.1")]
    result = sent.result
    assert (result.status, result.filled_sz, result.resting_sz) == ("filled", sz("0.2"), 0)
    assert result.filled_ntl == 20_400_000_000  # $10,000 + $10,400
    assert result.px == px("105000")  # the worst price it was allowed
    assert venue.resting() == [(dave, "106000", "0.1")]


def test_a_market_sell_with_its_own_slippage_stops_one_percent_under_the_mark() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.buy(BOB, "99500", "0.1")
    venue.buy(CAROL, "98900", "0.1")
    sent = venue.market_order(ALICE, "sell", "0.2", slippage_ppm=10_000)
    assert sent.traded() == [(BOB, ALICE, "99500", "0.1")]
    assert (sent.result.status, sent.result.px) == ("filled", px("99000"))


def test_a_market_order_with_a_price_goes_no_further_than_that_price() -> None:
    venue = Venue()
    _asks_at_100k_104k_106k(venue)
    sent = venue.market_order(ALICE, "buy", "0.3", limit="101000")
    assert sent.traded() == [(ALICE, BOB, "100000", "0.1")]
    assert (sent.result.status, sent.result.filled_sz) == ("filled", sz("0.1"))


def test_a_market_order_into_an_empty_book_is_rejected_for_no_liquidity() -> None:
    venue = Venue()
    venue.tick("100000")
    sent = venue.market_order(ALICE, "buy", "0.1")
    assert sent.result.status == "marketOrderNoLiquidityRejected"
    assert sent.result.error == "No liquidity available for market order. asset=0"
    assert venue.resting() == []


def test_a_market_order_beyond_the_slippage_limit_finds_no_liquidity() -> None:
    venue = Venue()
    venue.tick("100000")
    bob = venue.sell(BOB, "105001", "0.1")
    sent = venue.market_order(ALICE, "buy", "0.1")
    assert sent.result.status == "marketOrderNoLiquidityRejected"
    assert venue.resting() == [(bob.oid, "105001", "0.1")]


def test_a_market_order_with_no_reference_price_at_all_is_rejected() -> None:
    venue = Venue()
    sent = venue.market_order(ALICE, "buy", "0.1")
    assert sent.result.status == "marketOrderNoLiquidityRejected"
    assert sent.result.error == "No reference price for a market order. asset=0"


def test_before_any_oracle_tick_a_market_order_is_bounded_from_the_last_trade() -> None:
    venue = Venue()
    venue.trade(CAROL, BOB, "100000", "0.1")
    venue.sell(BOB, "104900", "0.1")
    venue.sell(BOB, "105100", "0.1")
    sent = venue.market_order(ALICE, "buy", "0.2")
    assert sent.traded() == [(ALICE, BOB, "104900", "0.1")]
    assert sent.result.px == px("105000")


# ------------------------------------------------------------------ reduce-only


def test_a_reduce_only_taker_fills_no_more_than_the_position_it_closes() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.3")  # Alice is long 0.3
    carol = venue.buy(CAROL, "99000", "1")
    sent = venue.sell(ALICE, "99000", "0.5", tif="Ioc", reduce_only=True)
    assert sent.traded() == [(CAROL, ALICE, "99000", "0.3")]
    assert (sent.result.status, sent.result.filled_sz) == ("filled", sz("0.3"))
    assert venue.position(ALICE) == "0"
    assert venue.resting() == [(carol.oid, "99000", "0.7")]


def test_a_resting_reduce_only_order_rests_only_what_the_position_allows() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.3")
    result = venue.sell(ALICE, "110000", "0.5", reduce_only=True).result
    assert (result.status, result.resting_sz) == ("resting", sz("0.3"))


def test_a_reduce_only_order_that_would_open_or_grow_a_position_is_rejected() -> None:
    venue = Venue()
    flat = venue.sell(ALICE, "99000", "0.1", reduce_only=True).result
    assert flat.status == "reduceOnlyRejected"
    assert flat.error == "Reduce only order would increase position. asset=0"
    venue.trade(ALICE, BOB, "100000", "0.3")
    assert venue.buy(ALICE, "99000", "0.1", reduce_only=True).result.status == (
        "reduceOnlyRejected"
    )


def test_a_reduce_only_maker_fills_only_what_its_position_still_holds() -> None:
    venue = Venue()
    venue.trade(BOB, DAVE, "100000", "0.1")  # Bob is long 0.1 ...
    bob = venue.sell(BOB, "100000", "0.1", reduce_only=True)  # ... and offers it
    carol = venue.sell(CAROL, "100000", "0.5")
    venue.buy(DAVE, "99000", "0.05")
    venue.sell(BOB, "99000", "0.05", tif="Ioc")  # Bob sells half elsewhere: 0.05 left
    sent = venue.buy(ALICE, "100000", "0.3")
    # Bob's order fills the 0.05 he still holds and leaves; Carol fills the rest.
    assert sent.traded() == [(ALICE, BOB, "100000", "0.05"), (ALICE, CAROL, "100000", "0.25")]
    (gone,) = [r for r in sent.results if r.oid == bob.oid]
    assert (gone.status, gone.filled_sz, gone.resting_sz) == (
        "reduceOnlyCanceled",
        sz("0.05"),
        0,
    )
    assert venue.position(BOB) == "0"
    assert venue.resting() == [(carol.oid, "100000", "0.25")]


def test_a_resting_reduce_only_order_goes_when_the_position_closes_by_another_trade() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.2")
    take_profit = venue.sell(ALICE, "110000", "0.2", reduce_only=True)
    venue.buy(CAROL, "100000", "0.2")
    sent = venue.sell(ALICE, "100000", "0.2")
    assert sent.statuses == [(take_profit.oid, "reduceOnlyCanceled"), (sent.oid, "filled")]
    assert venue.position(ALICE) == "0"
    assert venue.resting() == []
    assert sent.deltas[0].asks == (Level(px("110000"), 0, 0),)


def test_a_resting_reduce_only_order_goes_when_the_position_flips() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.1")
    take_profit = venue.sell(ALICE, "110000", "0.1", reduce_only=True)
    venue.buy(CAROL, "100000", "0.3")
    sent = venue.sell(ALICE, "100000", "0.3")  # Alice ends 0.2 short
    assert venue.position(ALICE) == "-0.2"
    assert (take_profit.oid, "reduceOnlyCanceled") in sent.statuses


# ------------------------------------------------------------------ self-trade prevention


def test_a_takers_own_resting_order_is_canceled_and_it_trades_with_the_next_one() -> None:
    venue = Venue()
    own = venue.sell(ALICE, "100000", "0.1")
    venue.sell(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.2")
    assert sent.traded() == [(ALICE, BOB, "100000", "0.1")]
    assert sent.statuses == [(own.oid, "selfTradeCanceled"), (sent.oid, "resting")]
    result = sent.result
    assert (result.filled_sz, result.resting_sz) == (sz("0.1"), sz("0.1"))
    assert venue.resting() == [(sent.oid, "100000", "0.1")]
    assert venue.position(ALICE) == "0.1"


def test_a_self_trade_canceled_order_reports_what_it_had_filled() -> None:
    venue = Venue()
    own = venue.sell(ALICE, "100000", "0.3", cloid="0x01")
    venue.buy(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.1", tif="Ioc")
    (expired,) = [r for r in sent.results if r.oid == own.oid]
    assert (expired.status, expired.filled_sz, expired.filled_ntl, expired.cloid) == (
        "selfTradeCanceled",
        sz("0.1"),
        10_000_000_000,
        "0x01",
    )
    assert sent.result.status == "iocCancelRejected"
    assert sent.fills == []


def test_the_answer_comes_after_the_fills_and_the_trades() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    sent = venue.buy(ALICE, "100000", "0.1")
    kinds = [type(o.message) for o in sent.outputs]
    assert kinds.index(OrderResult) > max(i for i, k in enumerate(kinds) if k in (FillLeg, Trade))
