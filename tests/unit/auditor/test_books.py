"""Conservation over risk's persisted state, with hand-worked numbers."""

from __future__ import annotations

import msgspec

from libs.common.runtime import Output
from libs.common.schemas import BalanceUpdate
from libs.common.state import AccountState, PositionState
from services.auditor.books import Books
from services.risk.engine import VENUE_KEY
from services.risk.ledger import VenueLedger

encode = msgspec.msgpack.encode


def balance(delta: int, reason: str, error: str | None = None) -> Output:
    msg = BalanceUpdate(ts=1, account="0xa", collateral=0, delta=delta, reason=reason, error=error)
    return Output("account.events", 0, b"0xa", msg, "risk.in/0/1/0")


def test_a_long_and_a_short_with_fees_close_to_the_micro_dollar() -> None:
    books = Books()
    for out in (balance(10_000_000_000, "deposit"), balance(5_000_000_000, "deposit")):
        books.watch(out)
    books.watch(balance(-1_000_000_000, "withdraw"))
    books.watch(balance(0, "withdraw", error="Insufficient balance."))  # refused: not counted
    # 0.1 BTC traded at 100000 (10,000 USDC notional), taker fee 4.5 USDC, maker 1.5:
    # the long paid 10,000 into its basis, the short received it.
    long = AccountState(
        address="0xa",
        collateral=9_000_000_000 - 4_500_000,
        positions={"BTC": PositionState(market="BTC", szi=10_000, entry_ntl=10_000_000_000)},
    )
    short = AccountState(
        address="0xb",
        collateral=5_000_000_000 - 1_500_000,
        positions={"BTC": PositionState(market="BTC", szi=-10_000, entry_ntl=10_000_000_000)},
    )
    venue = VenueLedger(fees=6_000_000, insurance=1_200_000, vault=1_800_000, venue=3_000_000)
    books.add_partition({"a:0xa": encode(long), VENUE_KEY: encode(venue)})
    books.add_partition({"a:0xb": encode(short)})
    assert books.deposits == 15_000_000_000 and books.withdrawals == 1_000_000_000
    assert books.basis == 0 and books.venue == 6_000_000
    assert books.held == 14_000_000_000
    assert books.imbalance == 0 and books.problems() == []


def test_a_missing_leg_shows_as_unnetted_size_and_a_micro_dollar_as_imbalance() -> None:
    books = Books()
    books.watch(balance(1_000_000, "deposit"))
    acct = AccountState(
        address="0xa",
        collateral=1_000_001,
        positions={"ETH": PositionState(market="ETH", szi=3, entry_ntl=7)},
    )
    books.add_partition({"a:0xa": encode(acct)})
    assert books.imbalance == 1_000_001 - 7 - 1_000_000
    problems = books.problems()
    assert "imbalance -6 micro-USDC" in problems[0]
    assert problems[1] == "positions in ETH do not net to zero: 3 lots"
