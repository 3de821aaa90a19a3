"""The limit order book: price-time priority, cancels, depth, and its invariants."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.markets import load_markets
from services.matcher.book import Book, RestingOrder

BTC = load_markets().by_name("BTC")
ALICE, BOB, CAROL = "alice", "bob", "carol"


def px(text: str) -> int:
    return BTC.price_units(text)


def sz(text: str) -> int:
    return BTC.size_units(text)


def resting(oid: int, account: str, is_buy: bool, price: str, size: str) -> RestingOrder:
    lots = sz(size)
    return RestingOrder(
        oid=oid, account=account, is_buy=is_buy, px=px(price), sz=lots, orig_sz=lots, ts=oid
    )


def _book_with_asks() -> Book:
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
    book = _book_with_asks()
    matches, remaining = book.match(True, px("100001"), sz("0.5"))
    assert [(m.maker.oid, m.px, m.sz, m.maker_done) for m in matches] == [
        (2, px("100000"), sz("0.1"), True),
        (3, px("100000"), sz("0.3"), True),
        (1, px("100001"), sz("0.1"), False),
    ]
    assert remaining == 0
    assert book.best_ask() == px("100001")
    assert book.orders[1].sz == sz("0.1")
    assert book.orders[1].orig_sz == sz("0.2")


def test_a_buy_stops_at_its_limit_and_returns_what_is_left() -> None:
    book = _book_with_asks()
    matches, remaining = book.match(True, px("100000"), sz("1"))
    assert sum(m.sz for m in matches) == sz("0.4")
    assert remaining == sz("0.6")
    assert book.best_ask() == px("100001")


def test_a_sell_below_every_bid_takes_nothing() -> None:
    book = Book("BTC")
    book.rest(resting(1, ALICE, True, "99000", "0.1"))
    assert book.match(False, px("99001"), sz("0.1")) == ([], sz("0.1"))
    assert book.orders[1].sz == sz("0.1")


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
    for oid in (1, 2, 3):
        book.rest(resting(oid, ALICE, True, "100000", "0.1"))
    book.cancel(2)
    matches, _ = book.match(False, px("100000"), sz("0.2"))
    assert [m.maker.oid for m in matches] == [1, 3]


def test_depth_aggregates_each_level_best_first() -> None:
    book = _book_with_asks()
    book.rest(resting(4, BOB, True, "99990", "1"))
    book.rest(resting(5, ALICE, True, "99995", "0.5"))
    bids, asks = book.depth()
    assert bids == [(px("99995"), sz("0.5"), 1), (px("99990"), sz("1"), 1)]
    assert asks == [(px("100000"), sz("0.4"), 2), (px("100001"), sz("0.2"), 1)]
    assert book.depth(levels=1) == ([bids[0]], [asks[0]])


def test_resting_lists_bids_then_asks_each_in_priority_order() -> None:
    book = _book_with_asks()
    book.rest(resting(4, BOB, True, "99990", "1"))
    book.rest(resting(5, ALICE, True, "99995", "0.5"))
    book.rest(resting(6, CAROL, True, "99995", "0.5"))
    assert [o.oid for o in book.resting()] == [5, 6, 4, 2, 3, 1]


# ------------------------------------------------------------------ against a reference


@dataclass
class _Ref:
    seq: int
    oid: int
    is_buy: bool
    px: int
    sz: int


class ReferenceBook:
    """The obvious quadratic book: a list, sorted on every match."""

    def __init__(self) -> None:
        self.orders: list[_Ref] = []

    def match(self, is_buy: bool, price: int, size: int) -> tuple[list[tuple[int, int, int]], int]:
        def crosses(o: _Ref) -> bool:
            return o.is_buy != is_buy and (o.px <= price if is_buy else o.px >= price)

        queue = sorted(
            (o for o in self.orders if crosses(o)),
            key=lambda o: (o.px if is_buy else -o.px, o.seq),
        )
        fills = []
        for o in queue:
            if size == 0:
                break
            qty = min(size, o.sz)
            o.sz -= qty
            size -= qty
            fills.append((o.oid, o.px, qty))
        self.orders = [o for o in self.orders if o.sz > 0]
        return fills, size


actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.booleans(),
            st.integers(990, 1010),  # ticks near 100.0 keep the book dense
            st.integers(1, 30),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 60), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@given(actions=actions)
@settings(max_examples=150, deadline=None)
def test_matching_agrees_with_the_reference_and_the_book_never_crosses(
    actions: list[tuple[str, bool | int, int, int]],
) -> None:
    book, ref = Book("BTC"), ReferenceBook()
    submitted: dict[int, int] = {}
    filled: dict[int, int] = {}
    canceled: dict[int, int] = {}
    for seq, (kind, arg, price, size) in enumerate(actions):
        if kind == "cancel":
            gone = book.cancel(int(arg))
            if gone is not None:
                canceled[gone.oid] = gone.sz
                ref.orders = [o for o in ref.orders if o.oid != gone.oid]
            continue
        is_buy, oid = bool(arg), seq
        submitted[oid] = size
        matches, remaining = book.match(is_buy, price, size)
        expected, expected_left = ref.match(is_buy, price, size)
        assert [(m.maker.oid, m.px, m.sz) for m in matches] == expected
        assert remaining == expected_left
        for m in matches:
            filled[m.maker.oid] = filled.get(m.maker.oid, 0) + m.sz
            filled[oid] = filled.get(oid, 0) + m.sz
        if remaining:
            book.rest(
                RestingOrder(
                    oid=oid,
                    account=ALICE,
                    is_buy=is_buy,
                    px=price,
                    sz=remaining,
                    orig_sz=size,
                    ts=seq,
                )
            )
            ref.orders.append(_Ref(seq, oid, is_buy, price, remaining))
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
    left = {o.oid: o.sz for o in book.resting()}
    assert left == {o.oid: o.sz for o in ref.orders}
    for oid, size in submitted.items():
        assert filled.get(oid, 0) + left.get(oid, 0) + canceled.get(oid, 0) == size
    assert set(book.orders) == set(left)
