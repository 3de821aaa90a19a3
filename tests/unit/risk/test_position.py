"""Position accounting: an exact cost basis, split without losing a micro-dollar."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.markets import load_markets
from libs.common.money import usd_to_units
from libs.common.state import PositionState
from services.risk.position import apply_fill

BTC = load_markets().by_name("BTC")


def fill(pos: PositionState, side: str, price: str, size: str) -> int:
    return apply_fill(pos, side == "buy", BTC.price_units(price), BTC.size_units(size))


def test_buying_opens_a_long_at_the_fill_notional() -> None:
    pos = PositionState(market="BTC")
    assert fill(pos, "buy", "100000", "0.1") == 0
    assert (pos.szi, pos.entry_ntl) == (10_000, usd_to_units("10000"))


def test_adding_at_another_price_adds_notional() -> None:
    pos = PositionState(market="BTC")
    fill(pos, "buy", "100000", "0.1")
    fill(pos, "buy", "100001", "0.2")
    assert (pos.szi, pos.entry_ntl) == (30_000, usd_to_units("30000.2"))


def test_closing_a_long_in_two_steps_realizes_the_exact_total() -> None:
    pos = PositionState(market="BTC")
    fill(pos, "buy", "100000", "0.1")
    fill(pos, "buy", "100001", "0.2")
    # a third of $30,000.2 is $10,000.0666...: the closed third takes the floor
    first = fill(pos, "sell", "101000", "0.1")
    assert first == usd_to_units("10100") - 10_000_066_666
    assert pos.entry_ntl == 20_000_133_334
    second = fill(pos, "sell", "101000", "0.2")
    assert second == usd_to_units("20200") - 20_000_133_334
    # 0.3 BTC sold at 101000 for $30,300 against a $30,000.2 basis
    assert first + second == pos.realized_pnl == usd_to_units("299.8")
    assert (pos.szi, pos.entry_ntl) == (0, 0)


def test_a_short_bought_back_lower_gains() -> None:
    pos = PositionState(market="BTC")
    fill(pos, "sell", "100000", "0.1")
    assert (pos.szi, pos.entry_ntl) == (-10_000, usd_to_units("10000"))
    assert fill(pos, "buy", "99000", "0.1") == usd_to_units("100")
    assert (pos.szi, pos.entry_ntl) == (0, 0)


def test_selling_through_zero_closes_the_long_and_opens_a_short_at_the_fill() -> None:
    pos = PositionState(market="BTC")
    fill(pos, "buy", "100000", "0.1")
    assert fill(pos, "sell", "99000", "0.3") == -usd_to_units("100")
    assert (pos.szi, pos.entry_ntl) == (-20_000, usd_to_units("19800"))
    assert pos.realized_pnl == -usd_to_units("100")


def test_leverage_is_left_alone() -> None:
    pos = PositionState(market="BTC", leverage=7)
    fill(pos, "buy", "100000", "0.1")
    fill(pos, "sell", "100000", "0.1")
    assert pos.leverage == 7


fills = st.lists(
    st.tuples(st.booleans(), st.integers(1, 2_000_000), st.integers(1, 50_000)),
    min_size=1,
    max_size=30,
)


class ExactAverageCost:
    """The textbook average-cost position in exact fractions."""

    def __init__(self) -> None:
        self.size = 0
        self.basis = Fraction(0)
        self.realized = Fraction(0)

    def apply(self, is_buy: bool, px: int, sz: int) -> None:
        signed = sz if is_buy else -sz
        if self.size == 0 or (self.size > 0) == is_buy:
            self.size += signed
            self.basis += px * sz
            return
        closed = min(sz, abs(self.size))
        closed_basis = self.basis * closed / abs(self.size)
        sign = 1 if self.size > 0 else -1
        self.realized += sign * (px * closed - closed_basis)
        self.basis -= closed_basis
        self.size += signed
        if sz > closed:
            self.basis = Fraction(px * (sz - closed))

    def value_at(self, px: int) -> Fraction:
        """Realized plus unrealized PnL if the position were marked at ``px``."""
        sign = 1 if self.size > 0 else -1
        return self.realized + sign * (abs(self.size) * px - self.basis)


@given(fills=fills, mark=st.integers(1, 2_000_000))
@settings(max_examples=300, deadline=None)
def test_no_micro_dollar_is_created_or_lost_over_any_fills(
    fills: list[tuple[bool, int, int]], mark: int
) -> None:
    pos = PositionState(market="BTC")
    exact = ExactAverageCost()
    cash = 0  # what the fills paid (negative) and received
    reductions = 0
    for is_buy, px, sz in fills:
        reduces = pos.szi != 0 and (pos.szi > 0) != is_buy
        before = pos.realized_pnl
        assert apply_fill(pos, is_buy, px, sz) == pos.realized_pnl - before
        exact.apply(is_buy, px, sz)
        cash += -px * sz if is_buy else px * sz
        reductions += reduces

        assert pos.szi == exact.size
        assert pos.entry_ntl >= 0
        assert (pos.entry_ntl == 0) == (pos.szi == 0)
        signed_basis = pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl
        # every micro-dollar paid is either realized or still in the basis
        assert pos.realized_pnl == cash + signed_basis
        # so realized plus unrealized at any mark is exactly the textbook value
        sign = 1 if pos.szi > 0 else -1
        upnl = sign * (abs(pos.szi) * mark - pos.entry_ntl)
        assert pos.realized_pnl + upnl == exact.value_at(mark)
        # each partial close leaves less than one micro-dollar of rounding in the basis
        assert 0 <= pos.entry_ntl - exact.basis < max(1, reductions)
    if pos.szi == 0:
        assert pos.realized_pnl == exact.realized == cash
