"""Margin: unrealized PnL, requirements rounded in the venue's favour, holds, headroom."""

from __future__ import annotations

from libs.common.markets import load_markets
from libs.common.money import usd_to_units
from libs.common.state import AccountState, OpenOrderState, PositionState
from services.risk.margin import (
    MarginView,
    initial_margin,
    maintenance_margin,
    order_hold,
    unrealized_pnl,
)

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
SOL = MARKETS.by_name("SOL")


def usd(text: str) -> int:
    return usd_to_units(text)


def btc_px(text: str) -> int:
    return BTC.price_units(text)


def long_btc(size: str, entry: str) -> PositionState:
    lots = BTC.size_units(size)
    return PositionState(market="BTC", szi=lots, entry_ntl=lots * btc_px(entry))


def test_a_long_gains_and_a_short_loses_when_the_mark_rises() -> None:
    long = long_btc("0.1", "100000")
    short = PositionState(market="BTC", szi=-10_000, entry_ntl=usd("10000"))
    assert unrealized_pnl(long, btc_px("101000")) == usd("100")
    assert unrealized_pnl(short, btc_px("101000")) == -usd("100")
    assert unrealized_pnl(long, btc_px("99000")) == -usd("100")


def test_requirements_round_up_to_the_next_micro_dollar() -> None:
    assert initial_margin(usd("10000"), 20) == usd("500")
    assert initial_margin(21, 20) == 2
    # BTC's maintenance rate is 1 / (2 x 50x) = 1%
    assert maintenance_margin(usd("10000"), BTC) == usd("100")
    assert maintenance_margin(101, BTC) == 2
    # SOL allows 20x, so 2.5%
    assert maintenance_margin(usd("1000"), SOL) == usd("25")


def test_an_order_holds_initial_margin_and_the_taker_fee_at_the_worse_price() -> None:
    # 0.1 BTC at 100000 with 20x: $500 margin plus a $4.5 taker fee
    assert order_hold(BTC, 20, btc_px("100000"), 10_000, mark_px=0) == usd("504.5")
    assert order_hold(BTC, 20, btc_px("100000"), 10_000, btc_px("99000")) == usd("504.5")
    # a mark above the limit price values the order at the mark: $10,100
    assert order_hold(BTC, 20, btc_px("100000"), 10_000, btc_px("101000")) == usd("509.545")
    assert order_hold(BTC, 50, btc_px("100000"), 10_000, 0) == usd("204.5")


def test_the_margin_view_of_a_two_market_account() -> None:
    sol_lots = SOL.size_units("100")
    account = AccountState(
        address="alice",
        collateral=usd("5000"),
        positions={
            "BTC": long_btc("0.1", "100000"),
            "SOL": PositionState(
                market="SOL", szi=-sol_lots, entry_ntl=sol_lots * SOL.price_units("150"), leverage=5
            ),
        },
        orders={
            7: OpenOrderState(
                oid=7, market="BTC", is_buy=True, px=1, sz=1, orig_sz=1, hold=usd("50")
            )
        },
    )
    view = MarginView(account, {"BTC": btc_px("99000"), "SOL": SOL.price_units("160")}, MARKETS)
    # BTC long down $100, SOL short (100 at 150) down $1,000
    assert view.equity == usd("3900")
    assert view.notional == usd("9900") + usd("16000")
    # BTC at the default 20x, SOL at its own 5x
    assert view.initial == usd("495") + usd("3200")
    assert view.maintenance == usd("99") + usd("400")
    assert view.holds == usd("50")
    assert view.available == usd("3900") - usd("3695") - usd("50")
    # withdrawals keep max(initial, 10% of notional) = $3,695
    assert view.withdrawable == usd("155")


def test_withdrawable_never_goes_negative() -> None:
    account = AccountState(
        address="a", collateral=usd("100"), positions={"BTC": long_btc("1", "100000")}
    )
    view = MarginView(account, {"BTC": btc_px("100000")}, MARKETS)
    assert view.available < 0
    assert view.withdrawable == 0


def test_a_flat_position_counts_for_nothing() -> None:
    account = AccountState(
        address="a", collateral=usd("100"), positions={"BTC": PositionState(market="BTC")}
    )
    view = MarginView(account, {}, MARKETS)
    assert (view.equity, view.initial, view.maintenance, view.notional) == (usd("100"), 0, 0, 0)


def test_a_position_without_a_mark_is_valued_at_its_entry_price() -> None:
    account = AccountState(
        address="a", collateral=usd("1000"), positions={"BTC": long_btc("0.1", "100000")}
    )
    view = MarginView(account, {}, MARKETS)
    assert view.equity == usd("1000")
    assert view.initial == usd("500")


def test_a_long_without_a_mark_has_no_unrealized_gain() -> None:
    # 2 BTC bought at 100000 and 1 BTC at 100001: average 100000.333..., not a whole tick
    pos = long_btc("2", "100000")
    pos.szi += BTC.size_units("1")
    pos.entry_ntl += BTC.size_units("1") * btc_px("100001")
    account = AccountState(address="a", collateral=usd("30000"), positions={"BTC": pos})
    assert MarginView(account, {}, MARKETS).equity == usd("30000")  # actually $30,000.20


def test_the_ten_percent_transfer_requirement_rounds_up() -> None:
    # 0.00003 BTC marked at 1234.5: notional $0.037035, 10% of it is $0.0037035
    pos = long_btc("0.00003", "1234.5")
    account = AccountState(address="a", collateral=usd("1"), positions={"BTC": pos})
    view = MarginView(account, {"BTC": btc_px("1234.5")}, MARKETS)
    assert view.withdrawable == usd("1") - usd("0.003704")  # actually 1 - 0.003703
