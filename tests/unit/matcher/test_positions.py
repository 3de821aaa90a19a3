"""Positions tracked from the matcher's own fills: what reduce-only may fill, open interest."""

from __future__ import annotations

import pytest

from services.matcher.positions import Positions
from tests.unit.matcher.scenario import sz


@pytest.mark.parametrize(
    ("position", "is_buy", "reducible"),
    [
        (sz("0.3"), False, sz("0.3")),  # a long may sell what it holds
        (sz("0.3"), True, 0),  # ... but buying would grow it
        (-sz("0.2"), True, sz("0.2")),  # a short may buy back what it owes
        (-sz("0.2"), False, 0),
    ],
)
def test_reduce_only_may_fill_exactly_the_open_position(
    position: int, is_buy: bool, reducible: int
) -> None:
    assert Positions({"alice": position}).reducible("alice", is_buy) == reducible


def test_a_flat_account_can_reduce_nothing() -> None:
    positions = Positions()
    assert positions.get("alice") == 0
    assert positions.reducible("alice", True) == positions.reducible("alice", False) == 0


def test_fills_move_the_position_and_return_where_it_started() -> None:
    positions = Positions()
    assert positions.apply("alice", True, sz("0.5")) == 0
    assert positions.apply("alice", False, sz("0.2")) == sz("0.5")
    assert positions.get("alice") == sz("0.3")
    # Selling 0.5 more flips Alice to a 0.2 short.
    assert positions.apply("alice", False, sz("0.5")) == sz("0.3")
    assert positions.get("alice") == -sz("0.2")


def test_a_closed_position_is_forgotten() -> None:
    positions = Positions({"alice": sz("0.1")})
    positions.apply("alice", False, sz("0.1"))
    assert positions.sizes == {}


def test_open_interest_is_the_sum_of_the_longs() -> None:
    positions = Positions({"alice": sz("0.5"), "bob": -sz("0.5")})
    assert positions.open_interest == sz("0.5")
    positions.apply("carol", True, sz("0.2"))  # Carol buys 0.2 from Bob
    positions.apply("bob", False, sz("0.2"))
    assert positions.open_interest == sz("0.7")
    positions.apply("alice", False, sz("0.7"))  # Alice sells to Bob: she ends 0.2 short
    positions.apply("bob", True, sz("0.7"))
    assert positions.sizes == {"alice": -sz("0.2"), "carol": sz("0.2")}
    assert positions.open_interest == sz("0.2")
