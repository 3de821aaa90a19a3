"""Every fill exactly once: lost and doubled legs, trades and account fills are named."""

from __future__ import annotations

from libs.common.schemas import AccountFill, FillLeg, Trade
from services.auditor.fills import FillLedger


def leg(account: str, is_buy: bool, tid: int = 7, oid: int = 11, sz: int = 100) -> FillLeg:
    return FillLeg(
        ts=1,
        account=account,
        market="BTC",
        oid=oid,
        is_buy=is_buy,
        px=1_000_000,
        sz=sz,
        is_maker=not is_buy,
        tid=tid,
        order_closed=False,
    )


def account_fill(account: str, is_buy: bool, tid: int = 7) -> AccountFill:
    return AccountFill(
        ts=1,
        account=account,
        market="BTC",
        oid=11,
        is_buy=is_buy,
        px=1_000_000,
        sz=100,
        fee=0,
        is_maker=False,
        tid=tid,
        closed_pnl=0,
        start_position=0,
    )


def trade(tid: int = 7) -> Trade:
    return Trade(
        ts=1,
        market="BTC",
        px=1_000_000,
        sz=100,
        taker_is_buy=True,
        buyer="0xa",
        seller="0xb",
        tid=tid,
    )


def complete() -> FillLedger:
    ledger = FillLedger()
    ledger.leg(leg("0xa", True))
    ledger.leg(leg("0xb", False))
    ledger.trade(trade())
    ledger.account_fill(account_fill("0xa", True))
    ledger.account_fill(account_fill("0xb", False))
    ledger.record("risk.in", "matcher.in/0/5/0")
    ledger.record("risk.in", "matcher.in/0/5/1")
    return ledger


def test_a_whole_fill_passes() -> None:
    ledger = complete()
    assert ledger.fills == 1 and ledger.problems() == []


def test_a_lost_leg_and_its_missing_account_fill_are_named() -> None:
    ledger = FillLedger()
    ledger.leg(leg("0xa", True))
    ledger.trade(trade())
    ledger.account_fill(account_fill("0xa", True))
    assert ledger.problems() == ["fill BTC#7 has 1 legs on risk.in, not 2"]


def test_a_doubled_record_and_account_fill_are_named() -> None:
    ledger = complete()
    ledger.record("risk.in", "matcher.in/0/5/1")
    ledger.account_fill(account_fill("0xb", False))
    assert ledger.problems() == [
        "record risk.in:matcher.in/0/5/1 is on the log 2 times",
        "fill BTC#7: 2 account fills of 0xb, not 1",
    ]


def test_a_transfer_needs_no_trade_but_a_book_fill_does() -> None:
    ledger = FillLedger()
    for account, is_buy in (("0xa", True), ("0xb", False)):
        ledger.leg(leg(account, is_buy, tid=8, oid=0))  # a backstop takeover: oid 0
        ledger.account_fill(account_fill(account, is_buy, tid=8))
    assert ledger.problems() == []
    ledger.leg(leg("0xa", True, tid=9))
    ledger.leg(leg("0xb", False, tid=9, sz=99))
    problems = ledger.problems()
    assert problems[0].startswith("fill BTC#9: legs do not match")
    assert "fill BTC#9: 0 trades on market.events, not 1" in problems
