"""The limit order book: price-time priority, self-trade prevention, reduce-only makers,
cancels, depth, impact prices, and its invariants against a reference book."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.book import REDUCE_ONLY, SELF_TRADE, Book, RestingOrder
from services.matcher.positions import Positions
from tests.unit.matcher.scenario import px, sz

ALICE, BOB, CAROL = "alice", "bob", "carol"


def resting(
    oid: int, account: str, is_buy: bool, price: str, size: str, *, reduce_only: bool = False
) -> RestingOrder:
    lots = sz(size)
    return RestingOrder(
        oid=oid,
        account=account,
        is_buy=is_buy,
        px=px(price),
        sz=lots,
        orig_sz=lots,
        ts=oid,
        reduce_only=reduce_only,
    )


def _book_with_asks() -> Book:
    """Asks: Bob 0.1 and Carol 0.3 at 100,000 (Bob first), Alice 0.2 at 100,001."""
    book = Book("BTC")
    book.rest(resting(1, ALICE, False, "100001", "0.2"))
    book.rest(resting(2, BOB, False, "100000", "0.1"))
    book.rest(resting(3, CAROL, False, "100000", "0.3"))
    return book


def test_best_prices_and_crossing() -> None:
    book = _book_with_asks()
    book.rest(resting(4, BOB, True, "99990", "1"))
    assert (book.best_bid(), book.best_ask()) == (px("99990"), px("100000"))
    assert book.would_cross(True, px("100000"))
    assert not book.would_cross(True, px("99999"))
    assert book.would_cross(False, px("99990"))
    assert not book.would_cross(False, px("99991"))
    assert not Book("ETH").would_cross(True, 1)


def test_a_buy_takes_the_cheapest_ask_first_then_the_oldest_at_that_price() -> None:
    book, positions = _book_with_asks(), Positions()
    matches, remaining, removed = book.match(True, px("100001"), sz("0.5"), "dave", positions)
    assert [(m.maker.oid, m.px, m.sz, m.maker_done) for m in matches] == [
        (2, px("100000"), sz("0.1"), True),
        (3, px("100000"), sz("0.3"), True),
        (1, px("100001"), sz("0.1"), False),
    ]
    assert (remaining, removed) == (0, [])
    assert book.best_ask() == px("100001")
    assert (book.orders[1].sz, book.orders[1].orig_sz) == (sz("0.1"), sz("0.2"))
    # Alice's ask had sold 0.1 at 100,001: $10,000.10 so far.
    assert book.orders[1].filled_ntl == 10_000_100_000


def test_every_fill_updates_both_positions_and_the_open_interest() -> None:
    book, positions = _book_with_asks(), Positions()
    book.match(True, px("100001"), sz("0.5"), "dave", positions)
    assert positions.sizes == {
        "dave": sz("0.5"),
        BOB: -sz("0.1"),
        CAROL: -sz("0.3"),
        ALICE: -sz("0.1"),
    }
    assert positions.open_interest == sz("0.5")


def test_a_buy_stops_at_its_limit_and_returns_what_is_left() -> None:
    book = _book_with_asks()
    matches, remaining, _ = book.match(True, px("100000"), sz("1"), "dave", Positions())
    assert sum(m.sz for m in matches) == sz("0.4")
    assert remaining == sz("0.6")
    assert book.best_ask() == px("100001")


def test_a_sell_below_every_bid_takes_nothing() -> None:
    book = Book("BTC")
    book.rest(resting(1, ALICE, True, "99000", "0.1"))
    assert book.match(False, px("99001"), sz("0.1"), BOB, Positions()) == ([], sz("0.1"), [])
    assert book.orders[1].sz == sz("0.1")


def test_the_takers_own_resting_orders_are_expired_and_matching_goes_on_behind_them() -> None:
    book = _book_with_asks()
    positions = Positions()
    # Bob buys 0.2 up to 100,000: his own 0.1 ask is first in line, so it is removed and
    # Bob trades with Carol's 0.3 behind it.
    matches, remaining, removed = book.match(True, px("100000"), sz("0.2"), BOB, positions)
    assert [(m.maker.oid, m.sz) for m in matches] == [(3, sz("0.2"))]
    assert [(o.oid, status) for o, status in removed] == [(2, SELF_TRADE)]
    assert remaining == 0
    assert 2 not in book.orders
    assert book.level(False, px("100000")) == (sz("0.1"), 1)
    assert positions.sizes == {BOB: sz("0.2"), CAROL: -sz("0.2")}


def test_a_level_of_only_the_takers_own_orders_is_emptied_without_a_trade() -> None:
    book = Book("BTC")
    book.rest(resting(1, ALICE, False, "100000", "0.1"))
    book.rest(resting(2, ALICE, False, "100000", "0.2"))
    matches, remaining, removed = book.match(True, px("100000"), sz("0.5"), ALICE, Positions())
    assert (matches, remaining) == ([], sz("0.5"))
    assert [(o.oid, s) for o, s in removed] == [(1, SELF_TRADE), (2, SELF_TRADE)]
    assert book.best_ask() is None
    assert book.orders == {}


def test_a_reduce_only_maker_fills_only_what_closes_its_position_and_the_rest_goes() -> None:
    book = Book("BTC")
    positions = Positions({BOB: sz("0.1")})  # Bob is long 0.1
    book.rest(resting(1, BOB, False, "100000", "0.5", reduce_only=True))
    book.rest(resting(2, CAROL, False, "100000", "0.5"))
    matches, remaining, removed = book.match(True, px("100000"), sz("0.3"), ALICE, positions)
    assert [(m.maker.oid, m.sz, m.maker_done) for m in matches] == [
        (1, sz("0.1"), False),
        (2, sz("0.2"), False),
    ]
    assert [(o.oid, o.sz, s) for o, s in removed] == [(1, sz("0.4"), REDUCE_ONLY)]
    assert remaining == 0
    assert positions.sizes == {ALICE: sz("0.3"), CAROL: -sz("0.2")}
    assert book.reduce_only_resting == 0


def test_a_reduce_only_maker_with_nothing_to_reduce_leaves_without_trading() -> None:
    book = Book("BTC")
    book.rest(resting(1, BOB, False, "100000", "0.5", reduce_only=True))
    matches, remaining, removed = book.match(True, px("100000"), sz("0.3"), ALICE, Positions())
    assert (matches, remaining) == ([], sz("0.3"))
    assert [(o.oid, s) for o, s in removed] == [(1, REDUCE_ONLY)]
    assert book.best_ask() is None


def test_cancel_removes_the_order_and_an_emptied_level() -> None:
    book = _book_with_asks()
    assert book.cancel(2) is not None
    assert book.cancel(3) is not None
    assert book.best_ask() == px("100001")
    assert book.cancel(3) is None
    assert book.cancel(99) is None
    assert [o.oid for o in book.resting()] == [1]


def test_a_cancel_in_the_middle_keeps_the_others_queue_positions() -> None:
    book = Book("BTC")
    for oid, who in ((1, ALICE), (2, BOB), (3, CAROL)):
        book.rest(resting(oid, who, True, "100000", "0.1"))
    book.cancel(2)
    matches, _, _ = book.match(False, px("100000"), sz("0.2"), "dave", Positions())
    assert [m.maker.oid for m in matches] == [1, 3]


def test_shrinking_an_order_keeps_its_place_in_the_queue() -> None:
    book = Book("BTC")
    book.rest(resting(1, ALICE, True, "100000", "0.5"))
    book.rest(resting(2, BOB, True, "100000", "0.1"))
    book.shrink(1, sz("0.2"))
    assert book.level(True, px("100000")) == (sz("0.3"), 2)
    matches, _, _ = book.match(False, px("100000"), sz("0.25"), CAROL, Positions())
    assert [(m.maker.oid, m.sz) for m in matches] == [(1, sz("0.2")), (2, sz("0.05"))]


def test_depth_aggregates_each_level_best_first() -> None:
    book = _book_with_asks()
    book.rest(resting(4, BOB, True, "99990", "1"))
    book.rest(resting(5, ALICE, True, "99995", "0.5"))
    bids, asks = book.depth(20)
    assert bids == [(px("99995"), sz("0.5"), 1), (px("99990"), sz("1"), 1)]
    assert asks == [(px("100000"), sz("0.4"), 2), (px("100001"), sz("0.2"), 1)]
    assert book.depth(1) == ([bids[0]], [asks[0]])


def test_resting_lists_bids_then_asks_each_in_priority_order() -> None:
    book = _book_with_asks()
    book.rest(resting(4, BOB, True, "99990", "1"))
    book.rest(resting(5, ALICE, True, "99995", "0.5"))
    book.rest(resting(6, CAROL, True, "99995", "0.5"))
    assert [o.oid for o in book.resting()] == [5, 6, 4, 2, 3, 1]


def test_touched_levels_are_reported_once_in_change_order_then_forgotten() -> None:
    book = _book_with_asks()
    assert book.take_touched() == [(False, px("100001")), (False, px("100000"))]
    book.rest(resting(4, BOB, True, "99990", "1"))
    book.match(True, px("100001"), sz("0.5"), "dave", Positions())
    book.cancel(4)
    assert book.take_touched() == [
        (True, px("99990")),
        (False, px("100000")),
        (False, px("100001")),
    ]
    assert book.take_touched() == []


def test_impact_prices_average_a_market_order_of_the_impact_notional() -> None:
    book = Book("BTC")
    book.rest(resting(1, ALICE, False, "100000", "0.1"))  # $10,000
    book.rest(resting(2, ALICE, False, "100010", "0.5"))
    book.rest(resting(3, BOB, True, "99990", "0.1"))
    book.rest(resting(4, BOB, True, "99900", "1"))
    # Buying $20,000: 0.1 at 100,000 then 0.1 at 100,010 -> 100,005 on average.
    assert book.impact_price(False, 20_000_000_000) == px("100005")
    # Selling $20,000: 0.1 at 99,990 then 0.10012 at 99,900 (the last lot rounds up),
    # averaging 99,944.97..., rounded down to the tick against the seller.
    assert book.impact_price(True, 20_000_000_000) == 999_449
    # Neither side can absorb $200,000.
    assert book.impact_price(False, 200_000_000_000) is None
    assert book.impact_price(True, 200_000_000_000) is None
    assert Book("BTC").impact_price(True, 1) is None


# ------------------------------------------------------------------ against a reference


@dataclass
class _Ref:
    seq: int
    oid: int
    account: str
    is_buy: bool
    px: int
    sz: int


class ReferenceBook:
    """The obvious quadratic book: a list, sorted on every match; own orders expire."""

    def __init__(self) -> None:
        self.orders: list[_Ref] = []

    def match(
        self, account: str, is_buy: bool, price: int, size: int
    ) -> tuple[list[tuple[int, int, int]], int, list[int]]:
        def crosses(o: _Ref) -> bool:
            return o.is_buy != is_buy and (o.px <= price if is_buy else o.px >= price)

        queue = sorted(
            (o for o in self.orders if crosses(o)),
            key=lambda o: (o.px if is_buy else -o.px, o.seq),
        )
        fills, expired = [], []
        for o in queue:
            if size == 0:
                break
            if o.account == account:
                expired.append(o.oid)
                o.sz = 0
                continue
            qty = min(size, o.sz)
            o.sz -= qty
            size -= qty
            fills.append((o.oid, o.px, qty))
        self.orders = [o for o in self.orders if o.sz > 0]
        return fills, size, expired


actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.sampled_from([ALICE, BOB, CAROL]),
            st.booleans(),
            st.integers(990, 1010),  # ticks near 100.0 keep the book dense
            st.integers(1, 30),
        ),
        st.tuples(st.just("cancel"), st.just(""), st.booleans(), st.integers(0, 60), st.just(0)),
    ),
    max_size=60,
)


@given(actions=actions)
@settings(max_examples=100, deadline=None)
def test_matching_agrees_with_the_reference_and_the_book_never_crosses(
    actions: list[tuple[str, str, bool, int, int]],
) -> None:
    book, ref, positions = Book("BTC"), ReferenceBook(), Positions()
    submitted: dict[int, int] = {}
    filled: dict[int, int] = {}
    canceled: dict[int, int] = {}
    for seq, (kind, account, is_buy, price, size) in enumerate(actions):
        if kind == "cancel":
            gone = book.cancel(price)
            if gone is not None:
                canceled[gone.oid] = gone.sz
                ref.orders = [o for o in ref.orders if o.oid != gone.oid]
            continue
        oid = seq
        submitted[oid] = size
        matches, remaining, removed = book.match(is_buy, price, size, account, positions)
        expected, expected_left, expected_expired = ref.match(account, is_buy, price, size)
        assert [(m.maker.oid, m.px, m.sz) for m in matches] == expected
        assert remaining == expected_left
        assert [o.oid for o, status in removed if status == SELF_TRADE] == expected_expired
        for m in matches:
            assert m.px == m.maker.px  # every fill at the resting order's price
            filled[m.maker.oid] = filled.get(m.maker.oid, 0) + m.sz
            filled[oid] = filled.get(oid, 0) + m.sz
        for gone, _ in removed:
            canceled[gone.oid] = gone.sz
        if remaining:
            book.rest(
                RestingOrder(
                    oid=oid,
                    account=account,
                    is_buy=is_buy,
                    px=price,
                    sz=remaining,
                    orig_sz=size,
                    ts=seq,
                )
            )
            ref.orders.append(_Ref(seq, oid, account, is_buy, price, remaining))
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
    left = {o.oid: o.sz for o in book.resting()}
    assert left == {o.oid: o.sz for o in ref.orders}
    for oid, size in submitted.items():
        assert filled.get(oid, 0) + left.get(oid, 0) + canceled.get(oid, 0) == size
    assert set(book.orders) == set(left)
    assert sum(positions.sizes.values()) == 0
    depth_bids, depth_asks = book.depth(1 << 30)
    assert sum(s for _, s, _ in depth_bids + depth_asks) == sum(left.values())
