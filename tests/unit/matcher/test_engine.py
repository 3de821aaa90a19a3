"""The matcher's core: orders, cancels and index ticks in, fill legs, trades and marks out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.markets import load_markets
from libs.common.runtime import Output
from libs.common.schemas import (
    CancelRequest,
    FillLeg,
    IndexTick,
    MarkPrice,
    MarkUpdate,
    Message,
    NewOrder,
    OrderResult,
    Tif,
    Trade,
)
from libs.common.topics import partition_for
from services.matcher.engine import MatcherCore
from tests.unit.cores import Driver, comparable, of_type, only, restart_midway

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ETH = MARKETS.by_name("ETH")
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20


def order(
    oid: int,
    account: str,
    side: str,
    price: str,
    size: str,
    tif: Tif = "Gtc",
    market: str = "BTC",
    cloid: str | None = None,
) -> NewOrder:
    spec = MARKETS.by_name(market)
    return NewOrder(
        ts=1_700_000_000_000 + oid,
        oid=oid,
        account=account,
        market=market,
        is_buy=side == "buy",
        px=spec.price_units(price),
        sz=spec.size_units(size),
        tif=tif,
        cloid=cloid,
        req_id=f"req-{oid}",
    )


def cancel(oid: int, account: str, market: str = "BTC") -> CancelRequest:
    return CancelRequest(ts=1_700_000_100_000, oid=oid, account=account, market=market)


def matcher() -> Driver:
    return Driver(MatcherCore(MARKETS, 0), topics.MATCHER_IN)


def resting_oids(driver: Driver, market: str = "BTC") -> list[tuple[int, int]]:
    core: MatcherCore = driver.core  # type: ignore[assignment]
    return [(o.oid, o.sz) for o in core.states[market].book.resting()]


# ------------------------------------------------------------------ orders


def test_an_order_that_crosses_nothing_rests_and_is_acknowledged_to_its_owner() -> None:
    m = matcher()
    outs = m.send(order(1, ALICE, "buy", "99000", "0.1", cloid="0xabc"))
    (out,) = outs
    assert out.topic == "risk.in"
    assert out.partition == partition_for(ALICE, 4)
    assert out.message == OrderResult(
        ts=1_700_000_000_001,
        account=ALICE,
        market="BTC",
        oid=1,
        status="resting",
        filled_sz=0,
        resting_sz=10_000,
        req_id="req-1",
        cloid="0xabc",
    )
    assert resting_oids(m) == [(1, 10_000)]


def test_a_taker_buy_walks_the_asks_and_each_execution_has_two_legs_and_a_trade() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    m.send(order(2, CAROL, "sell", "100001", "0.2"))
    outs = m.send(order(3, ALICE, "buy", "100001", "0.25"))

    legs = [
        (f.account, f.oid, f.is_buy, f.px, f.sz, f.is_maker, f.tid, f.order_closed)
        for f in of_type(outs, FillLeg)
    ]
    assert legs == [
        (ALICE, 3, True, 1_000_000, 10_000, False, 1, False),
        (BOB, 1, False, 1_000_000, 10_000, True, 1, True),
        (ALICE, 3, True, 1_000_010, 15_000, False, 2, False),
        (CAROL, 2, False, 1_000_010, 15_000, True, 2, False),
    ]
    trades = [(t.px, t.sz, t.buyer, t.seller, t.taker_is_buy, t.tid) for t in of_type(outs, Trade)]
    assert trades == [
        (1_000_000, 10_000, ALICE, BOB, True, 1),
        (1_000_010, 15_000, ALICE, CAROL, True, 2),
    ]
    result = only(outs, OrderResult)
    assert (result.status, result.filled_sz, result.resting_sz) == ("filled", 25_000, 0)
    # $10,000 at 100000.0 plus $15,000.15 at 100001.0
    assert result.filled_ntl == 25_000_150_000
    assert isinstance(outs[-1].message, OrderResult)  # the taker hears last
    assert resting_oids(m) == [(2, 5_000)]


def test_legs_go_to_each_owners_risk_partition_and_trades_to_the_markets() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    outs = m.send(order(2, ALICE, "buy", "100000", "0.1"))
    where = [(type(o.message).__name__, o.topic, o.partition) for o in outs]
    assert where == [
        ("FillLeg", "risk.in", partition_for(ALICE, 4)),
        ("FillLeg", "risk.in", partition_for(BOB, 4)),
        ("Trade", "market.events", partition_for("BTC", 4)),
        ("OrderResult", "risk.in", partition_for(ALICE, 4)),
    ]


def test_a_partly_filled_gtc_rests_the_rest_at_its_limit() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    result = only(m.send(order(2, ALICE, "buy", "100005", "0.3")), OrderResult)
    assert (result.status, result.filled_sz, result.resting_sz) == ("resting", 10_000, 20_000)
    assert result.filled_ntl == 10_000_000_000
    core: MatcherCore = m.core  # type: ignore[assignment]
    assert core.states["BTC"].book.best_bid() == BTC.price_units("100005")


def test_an_ioc_that_finds_nothing_is_rejected_and_leaves_no_trace() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    result = only(m.send(order(2, ALICE, "buy", "99999", "0.1", tif="Ioc")), OrderResult)
    assert result.status == "iocCancelRejected"
    assert result.error == "Order could not immediately match against any resting orders. asset=0"
    assert (result.filled_sz, result.resting_sz) == (0, 0)
    assert resting_oids(m) == [(1, 10_000)]


def test_a_partly_filled_ioc_reports_filled_and_drops_the_rest() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    outs = m.send(order(2, ALICE, "buy", "100010", "0.3", tif="Ioc"))
    result = only(outs, OrderResult)
    assert (result.status, result.filled_sz, result.resting_sz) == ("filled", 10_000, 0)
    assert resting_oids(m) == []


def test_a_post_only_order_that_would_take_is_rejected_and_the_book_is_untouched() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    outs = m.send(order(2, ALICE, "buy", "100000", "0.1", tif="Alo"))
    result = only(outs, OrderResult)
    assert result.status == "badAloPxRejected"
    assert result.error is not None
    assert result.error.startswith("Post only order would have immediately matched")
    assert of_type(outs, FillLeg) == []
    assert resting_oids(m) == [(1, 10_000)]


def test_a_rejected_post_only_order_quotes_the_bbo_as_a_price() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    result = only(m.send(order(2, ALICE, "buy", "100000", "0.1", tif="Alo")), OrderResult)
    assert result.error == "Post only order would have immediately matched, bbo was 100000. asset=0"


def test_a_post_only_order_that_does_not_cross_rests() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    result = only(m.send(order(2, ALICE, "buy", "99999", "0.1", tif="Alo")), OrderResult)
    assert (result.status, result.resting_sz) == ("resting", 10_000)


@pytest.mark.parametrize(
    ("px", "sz", "market", "error"),
    [
        (0, 10_000, "BTC", "Order has invalid price or size."),
        (1_000_000, 0, "BTC", "Order has invalid price or size."),
        (1_000_000, 10_000, "DOGE", "unknown market 'DOGE'"),
    ],
)
def test_impossible_orders_are_rejected(px: int, sz: int, market: str, error: str) -> None:
    m = matcher()
    msg = NewOrder(ts=1, oid=7, account=ALICE, market=market, is_buy=True, px=px, sz=sz)
    result = only(m.send(msg), OrderResult)
    assert (result.status, result.error, result.oid) == ("rejected", error, 7)


def test_an_account_can_trade_against_its_own_resting_order() -> None:
    m = matcher()
    m.send(order(1, ALICE, "sell", "100000", "0.1"))
    outs = m.send(order(2, ALICE, "buy", "100000", "0.1"))
    assert [(f.account, f.is_maker) for f in of_type(outs, FillLeg)] == [
        (ALICE, False),
        (ALICE, True),
    ]


def test_trade_ids_count_per_market() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.2"))
    m.send(order(2, BOB, "sell", "3500", "1", market="ETH"))
    btc_first = m.send(order(3, ALICE, "buy", "100000", "0.1"))
    eth_first = m.send(order(4, ALICE, "buy", "3500", "1", market="ETH"))
    btc_second = m.send(order(5, ALICE, "buy", "100000", "0.1"))
    assert [t.tid for t in of_type(btc_first + btc_second, Trade)] == [1, 2]
    assert [t.tid for t in of_type(eth_first, Trade)] == [1]


# ------------------------------------------------------------------ cancels


def test_canceling_a_partly_filled_order_reports_what_had_filled() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.2", cloid="0xb0b"))
    m.send(order(2, ALICE, "buy", "100000", "0.05"))
    result = only(m.send(cancel(1, BOB)), OrderResult)
    assert (result.status, result.filled_sz, result.resting_sz) == ("canceled", 5_000, 0)
    assert result.cloid == "0xb0b"
    assert resting_oids(m) == []


def test_a_cancel_for_someone_elses_order_is_rejected_and_the_order_stays() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.2"))
    result = only(m.send(cancel(1, ALICE)), OrderResult)
    assert result.status == "cancelRejected"
    assert result.error == "Order was never placed, already canceled, or filled."
    assert resting_oids(m) == [(1, 20_000)]


@pytest.mark.parametrize("market", ["BTC", "ETH", "DOGE"])
def test_a_cancel_for_a_gone_or_unknown_order_is_rejected(market: str) -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    m.send(order(2, ALICE, "buy", "100000", "0.1"))
    result = only(m.send(cancel(1, BOB, market)), OrderResult)
    assert result.status == "cancelRejected"


# ------------------------------------------------------------------ index ticks


def test_an_index_tick_sets_the_mark_for_every_risk_partition_and_the_public_feed() -> None:
    m = matcher()
    outs = m.send(IndexTick(ts=5, market="BTC", px=1_000_000))
    updates = [o for o in outs if isinstance(o.message, MarkUpdate)]
    assert [o.partition for o in updates] == [0, 1, 2, 3]
    assert {o.message for o in updates} == {
        MarkUpdate(ts=5, market="BTC", mark_px=1_000_000, index_px=1_000_000)
    }
    public = [o for o in outs if isinstance(o.message, MarkPrice)]
    assert [(o.topic, o.partition) for o in public] == [("market.events", partition_for("BTC", 4))]


@pytest.mark.parametrize(("market", "px"), [("BTC", 0), ("BTC", -5), ("DOGE", 100)])
def test_a_meaningless_index_tick_is_ignored(market: str, px: int) -> None:
    m = matcher()
    assert m.send(IndexTick(ts=5, market=market, px=px)) == []
    assert m.core.take_changes() == {}


# ------------------------------------------------------------------ snapshots


def test_only_markets_that_changed_are_persisted() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    m.send(order(2, BOB, "sell", "3500", "1", market="ETH"))
    m.commit()
    m.send(order(3, ALICE, "buy", "99000", "0.1"))
    m.send(cancel(9, ALICE, "ETH"))  # rejected: nothing changes in ETH
    assert list(m.core.take_changes()) == ["book:BTC"]


def test_a_restored_book_keeps_every_orders_queue_position() -> None:
    m = matcher()
    m.send(order(1, BOB, "sell", "100000", "0.1"))
    m.send(order(2, CAROL, "sell", "100000", "0.1"))
    m.send(order(3, BOB, "sell", "99999", "0.1"))
    m.send(order(4, CAROL, "buy", "99000", "0.1"))
    m.send(order(5, ALICE, "buy", "99000", "0.1"))
    m.commit()
    restored = m.restarted(lambda p: MatcherCore(MARKETS, p))
    assert (
        resting_oids(restored)
        == resting_oids(m)
        == [(4, 10_000), (5, 10_000), (3, 10_000), (1, 10_000), (2, 10_000)]
    )
    taker = order(6, ALICE, "buy", "100000", "0.25")
    after = restored.send(taker)
    assert comparable(after) == comparable(m.send(taker))
    assert [f.oid for f in of_type(after, FillLeg) if f.is_maker] == [3, 1, 2]
    assert [t.tid for t in of_type(after, Trade)] == [1, 2, 3]


# ------------------------------------------------------------------ properties

ACCOUNTS = [ALICE, BOB, CAROL]


@st.composite
def matcher_inputs(draw: Any) -> list[Message]:
    """Orders around one price in two markets, cancels of earlier oids, index ticks."""
    messages: list[Message] = []
    for step in range(draw(st.integers(1, 50))):
        market = draw(st.sampled_from(["BTC", "ETH"]))
        kind = draw(st.sampled_from(["order", "order", "order", "cancel", "tick"]))
        if kind == "order":
            messages.append(
                NewOrder(
                    ts=step,
                    oid=step + 1,
                    account=draw(st.sampled_from(ACCOUNTS)),
                    market=market,
                    is_buy=draw(st.booleans()),
                    px=draw(st.integers(995, 1005)),
                    sz=draw(st.integers(1, 8)),
                    tif=draw(st.sampled_from(["Gtc", "Gtc", "Ioc", "Alo"])),
                )
            )
        elif kind == "cancel":
            messages.append(
                CancelRequest(
                    ts=step,
                    oid=draw(st.integers(1, step + 1)),
                    account=draw(st.sampled_from(ACCOUNTS)),
                    market=market,
                )
            )
        else:
            messages.append(IndexTick(ts=step, market=market, px=draw(st.integers(990, 1010))))
    return messages


def _closed_remainder(msg: NewOrder, result: OrderResult | None) -> int:
    """Lots that left the order without trading: a cancel or an IOC's unfilled rest."""
    if result is None:
        return 0
    if result.status == "canceled" or (msg.tif == "Ioc" and result.status != "rejected"):
        return msg.sz - result.filled_sz
    return 0


@given(inputs=matcher_inputs())
@settings(max_examples=120, deadline=None)
def test_every_lot_is_filled_resting_or_closed_and_books_never_cross(
    inputs: list[Message],
) -> None:
    m = matcher()
    core: MatcherCore = m.core  # type: ignore[assignment]
    outs: list[Output] = []
    for msg in inputs:
        outs += m.send(msg)
        for st_ in core.states.values():
            bid, ask = st_.book.best_bid(), st_.book.best_ask()
            assert bid is None or ask is None or bid < ask

    legs = of_type(outs, FillLeg)
    by_tid: dict[tuple[str, int], list[FillLeg]] = {}
    for leg in legs:
        by_tid.setdefault((leg.market, leg.tid), []).append(leg)
    for pair in by_tid.values():
        taker, maker = pair
        assert (taker.is_maker, maker.is_maker) == (False, True)
        assert taker.is_buy != maker.is_buy
        assert (taker.px, taker.sz) == (maker.px, maker.sz)
    for market in ("BTC", "ETH"):
        tids = sorted(tid for mk, tid in by_tid if mk == market)
        assert tids == list(range(1, len(tids) + 1))

    last_result: dict[int, OrderResult] = {}
    for r in of_type(outs, OrderResult):
        if r.status != "cancelRejected":
            last_result[r.oid] = r
    resting = {o.oid: o.sz for st_ in core.states.values() for o in st_.book.resting()}
    for msg in inputs:
        if not isinstance(msg, NewOrder):
            continue
        result = last_result.get(msg.oid)
        if result is not None and result.status == "badAloPxRejected":
            assert msg.oid not in resting
            continue
        filled = sum(leg.sz for leg in legs if leg.oid == msg.oid)
        closed = _closed_remainder(msg, result)
        assert filled + resting.get(msg.oid, 0) + closed == msg.sz, msg


@given(inputs=matcher_inputs(), split=st.integers(0, 50), commits=st.sets(st.integers(0, 50)))
@settings(max_examples=100, deadline=None)
def test_a_restarted_matcher_behaves_exactly_like_the_one_that_never_stopped(
    inputs: list[Message], split: int, commits: set[int]
) -> None:
    original = matcher()
    restarted = restart_midway(
        original, lambda p: MatcherCore(MARKETS, p), list(inputs), split, commits
    )
    for market in ("BTC", "ETH"):
        a: MatcherCore = original.core  # type: ignore[assignment]
        b: MatcherCore = restarted.core  # type: ignore[assignment]
        if market in a.states or market in b.states:
            assert a.states[market].book.resting() == b.states[market].book.resting()


@given(inputs=matcher_inputs())
@settings(max_examples=50, deadline=None)
def test_a_replay_rebuilds_the_same_state_without_emitting(inputs: list[Message]) -> None:
    live, replay = matcher(), matcher()
    for msg in inputs:
        live.send(msg)
        assert replay.send(msg, live=False) == []
    assert live.core.take_changes() == replay.core.take_changes()
