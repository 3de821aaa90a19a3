"""Public book data: one L2 delta per input record that changed levels, periodic full
snapshots, and the state written for the gateway (book, market context, top-20 L2)."""

from __future__ import annotations

import msgspec

from libs.common.schemas import BookDelta, BookSnapshot, Level
from libs.common.state import L2View, MarketContext
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, T0, Venue, px, sz


def test_each_record_that_changes_the_book_publishes_one_delta_of_new_level_totals() -> None:
    venue = Venue()
    first = venue.buy(ALICE, "99000", "0.1").deltas
    second = venue.buy(BOB, "99000", "0.2").deltas
    rejected = venue.sell(CAROL, "99000", "0.1", tif="Alo").deltas
    taker = venue.sell(CAROL, "99000", "0.35").deltas
    assert first == [
        BookDelta(ts=T0 + 1, market="BTC", seq=1, bids=(Level(px("99000"), sz("0.1"), 1),))
    ]
    assert second[0].bids == (Level(px("99000"), sz("0.3"), 2),)
    assert rejected == []
    # Carol takes both bids and rests 0.05: the bid level goes (size 0), an ask appears.
    assert taker == [
        BookDelta(
            ts=T0 + 4,
            market="BTC",
            seq=3,
            bids=(Level(px("99000"), 0, 0),),
            asks=(Level(px("99000"), sz("0.05"), 1),),
        )
    ]


def test_a_sweep_through_several_levels_is_still_one_delta() -> None:
    venue = Venue()
    for price in ("100000", "100010", "100020"):
        venue.sell(BOB, price, "0.1")
    sent = venue.buy(ALICE, "100015", "0.25")
    (delta,) = sent.deltas
    assert delta.asks == (Level(px("100000"), 0, 0), Level(px("100010"), 0, 0))
    assert delta.bids == (Level(px("100015"), sz("0.05"), 1),)
    assert delta.seq == 4


def test_deltas_count_per_market() -> None:
    venue = Venue()
    venue.buy(ALICE, "99000", "0.1")
    eth = venue.buy(ALICE, "3400", "1", market="ETH").deltas
    btc = venue.buy(ALICE, "98000", "0.1").deltas
    assert [(d.market, d.seq) for d in eth + btc] == [("ETH", 1), ("BTC", 2)]


def test_a_full_snapshot_goes_out_on_an_index_tick_every_ten_seconds() -> None:
    venue = Venue()
    for i in range(25):
        venue.buy(ALICE, str(99_000 - 10 * i), "0.1")
    venue.sell(BOB, "100000", "0.2")
    venue.sell(CAROL, "100000", "0.1")
    (snapshot,) = venue.tick("100000", at=T0 + 10_000).of(BookSnapshot)
    assert (snapshot.ts, snapshot.seq) == (T0 + 10_000, 27)
    assert len(snapshot.bids) == 25  # every level, not only the top 20
    assert snapshot.bids[0] == Level(px("99000"), sz("0.1"), 1)
    assert snapshot.asks == (Level(px("100000"), sz("0.3"), 2),)
    assert venue.tick("100000", at=T0 + 19_999).of(BookSnapshot) == []
    assert len(venue.tick("100000", at=T0 + 20_000).of(BookSnapshot)) == 1


def test_the_gateway_reads_the_top_20_levels_and_the_market_context() -> None:
    venue = Venue()
    for i in range(25):
        venue.buy(ALICE, str(99_000 - 10 * i), "0.1")
    venue.sell(BOB, "100000", "0.2")
    venue.tick("99500")
    venue.driver.commit()
    persisted = venue.driver.persisted
    orders = {key for key in persisted if key.startswith("o:BTC:")}
    assert len(orders) == 26  # each resting order in its own field
    assert set(persisted) - orders == {"mkt:BTC", "ctx:BTC", "l2:BTC"}

    l2 = msgspec.msgpack.decode(persisted["l2:BTC"], type=L2View)
    assert (l2.market, l2.seq, len(l2.bids), len(l2.asks)) == ("BTC", 26, 20, 1)
    assert l2.bids[0] == (px("99000"), sz("0.1"), 1)
    assert l2.bids[-1] == (px("98810"), sz("0.1"), 1)
    assert l2.asks == [(px("100000"), sz("0.2"), 1)]

    ctx = msgspec.msgpack.decode(persisted["ctx:BTC"], type=MarketContext)
    assert (ctx.index_px, ctx.mark_px, ctx.mid_px) == (px("99500"), px("99500"), px("99500"))
    assert (ctx.state, ctx.oracle_status, ctx.open_interest) == ("open", "valid", 0)


def test_only_what_changed_is_written_again() -> None:
    venue = Venue()
    venue.buy(ALICE, "99000", "0.1")
    venue.buy(ALICE, "3400", "1", market="ETH")
    venue.driver.commit()
    venue.cancel(BOB, 1)  # rejected: the book does not change
    assert "l2:BTC" not in venue.core.take_changes()
    venue.sell(BOB, "100000", "0.1")
    assert set(venue.core.take_changes()) == {"mkt:BTC", "ctx:BTC", "l2:BTC", "o:BTC:3"}


def test_open_interest_and_last_price_follow_the_trades() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.3")
    venue.trade(CAROL, ALICE, "100100", "0.1")
    ctx = venue.engine().context()
    assert (ctx.open_interest, ctx.last_px) == (sz("0.3"), px("100100"))


def test_a_record_that_also_runs_a_dead_mans_switch_publishes_one_delta() -> None:
    venue = Venue()
    venue.buy(ALICE, "99000", "0.1")
    venue.schedule_cancel(ALICE, T0 + 10_000)
    sent = venue.sell(BOB, "101000", "0.1", at=T0 + 10_000)
    assert sent.statuses == [(1, "scheduledCancel"), (sent.oid, "resting")]
    assert len(sent.deltas) == 1
