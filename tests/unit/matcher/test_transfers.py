"""Backstop takeovers and ADL closes: position changes the matcher executes as fills of
their own kind, at the given price, so its positions (and reduce-only) stay exact."""

from __future__ import annotations

import pytest

from libs.common.schemas import FillLeg
from libs.common.topics import partition_for
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, VAULT, Venue, px, sz


def test_the_backstop_vault_takes_over_a_long_at_the_given_price() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")
    venue.trade(CAROL, BOB, "100000", "0.1")  # the next trade id is 3
    sent = venue.transfer(ALICE, VAULT, from_is_long=True, size_text="0.5", price_text="95000")
    assert [(o.topic, o.partition) for o in sent.outputs] == [
        ("risk.in", partition_for(ALICE, 4)),
        ("risk.in", partition_for(VAULT, 4)),
    ]
    assert sent.fills == [
        FillLeg(
            ts=venue.now,
            account=ALICE,
            market="BTC",
            oid=0,
            is_buy=False,
            px=px("95000"),
            sz=sz("0.5"),
            is_maker=False,
            tid=3,
            order_closed=False,
            kind="backstop",
            counterparty=VAULT,
        ),
        FillLeg(
            ts=venue.now,
            account=VAULT,
            market="BTC",
            oid=0,
            is_buy=True,
            px=px("95000"),
            sz=sz("0.5"),
            is_maker=True,
            tid=3,
            order_closed=False,
            kind="backstop",
            counterparty=ALICE,  # so the vault's risk partition knows whose case it was
        ),
    ]
    assert sent.trades == []  # not a trade on the public tape
    assert (venue.position(ALICE), venue.position(VAULT)) == ("0", "0.5")
    assert venue.engine().positions.open_interest == sz("0.6")


def test_an_adl_close_moves_part_of_a_short_to_its_counterparty() -> None:
    venue = Venue()
    venue.trade(BOB, ALICE, "100000", "0.5")  # Alice short 0.5, Bob long 0.5
    sent = venue.transfer(
        ALICE, BOB, from_is_long=False, size_text="0.2", price_text="120000", kind="adl"
    )
    assert [(f.account, f.is_buy, f.px, f.sz, f.kind, f.counterparty) for f in sent.fills] == [
        (ALICE, True, px("120000"), sz("0.2"), "adl", BOB),
        (BOB, False, px("120000"), sz("0.2"), "adl", ALICE),
    ]
    assert (venue.position(ALICE), venue.position(BOB)) == ("-0.3", "0.3")


@pytest.mark.parametrize(
    ("from_is_long", "size_text", "held"),
    [
        (True, "0.6", sz("0.5")),  # more than the long holds
        (False, "0.1", 0),  # Alice is long, not short
    ],
)
def test_a_transfer_larger_than_the_position_is_rejected(
    from_is_long: bool, size_text: str, held: int
) -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")
    sent = venue.transfer(
        ALICE, VAULT, from_is_long=from_is_long, size_text=size_text, price_text="95000"
    )
    assert sent.statuses == [(0, "transferRejected")]
    assert sent.result.error == f"Cannot transfer {sz(size_text)} lots: the position holds {held}."
    assert sent.fills == []
    assert venue.position(ALICE) == "0.5"


def test_a_transfer_to_the_same_account_is_rejected() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")
    sent = venue.transfer(ALICE, ALICE, from_is_long=True, size_text="0.5", price_text="95000")
    assert sent.result.status == "transferRejected"


def test_after_a_takeover_reduce_only_orders_of_the_closed_account_go() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")
    take_profit = venue.sell(ALICE, "110000", "0.5", reduce_only=True)
    sent = venue.transfer(ALICE, VAULT, from_is_long=True, size_text="0.5", price_text="95000")
    assert (take_profit.oid, "reduceOnlyCanceled") in sent.statuses
    assert venue.resting() == []


def test_after_a_partial_takeover_reduce_only_is_capped_to_what_is_left() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")
    venue.transfer(ALICE, VAULT, from_is_long=True, size_text="0.4", price_text="95000")
    venue.buy(CAROL, "99000", "1")
    sent = venue.sell(ALICE, "99000", "0.5", tif="Ioc", reduce_only=True)
    assert sent.traded() == [(CAROL, ALICE, "99000", "0.1")]


def test_an_adl_counterparty_closed_flat_loses_its_reduce_only_orders() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.5")  # Bob is short 0.5
    cover = venue.buy(BOB, "90000", "0.5", reduce_only=True)
    sent = venue.transfer(
        ALICE, BOB, from_is_long=True, size_text="0.5", price_text="100000", kind="adl"
    )
    assert venue.position(BOB) == "0"
    assert (cover.oid, "reduceOnlyCanceled") in sent.statuses
