"""Collateral other than USDC: haircut brackets that grow with size, liabilities in USDC,
and an asset whose oracle is not valid counting for nothing toward new risk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.collateral import asset_values, haircut_value, lots_to_cover
from libs.common.schemas import (
    BalanceUpdate,
    CollateralSale,
    Deposit,
    LiquidationStatus,
    LiquidationTrigger,
    NewOrder,
    OrderUpdate,
    Withdraw,
)
from libs.common.state import AccountState
from tests.unit.cores import Driver, of_type, only
from tests.unit.risk.support import (
    ALICE,
    MARKETS,
    account,
    core,
    deposit,
    leg,
    lots,
    mark,
    place,
    px,
    risk,
    usd,
    withdraw,
)

BTC_COLLATERAL = MARKETS.collateral["BTC"]
ETH_COLLATERAL = MARKETS.collateral["ETH"]


def put(address: str, asset: str, size: str) -> Deposit:
    return Deposit(ts=1, account=address, usd=0, asset=asset, amount=lots(size, asset))


def take(address: str, asset: str, size: str) -> Withdraw:
    return Withdraw(ts=2, account=address, usd=0, asset=asset, amount=lots(size, asset))


def test_the_haircut_grows_with_size_in_brackets() -> None:
    # BTC: 5% on the first $1M, 10% up to $10M, 25% beyond
    assert haircut_value(BTC_COLLATERAL, usd("500000")) == usd("475000")
    assert haircut_value(BTC_COLLATERAL, usd("1000000")) == usd("950000")
    assert haircut_value(BTC_COLLATERAL, usd("2000000")) == usd("1850000")  # 7.5% overall
    assert haircut_value(BTC_COLLATERAL, usd("20000000")) == usd("16550000")  # 17.25%
    # ETH: 8% on the first $1M
    assert haircut_value(ETH_COLLATERAL, usd("400000")) == usd("368000")
    assert haircut_value(BTC_COLLATERAL, 0) == 0


def test_an_asset_counts_toward_new_risk_only_while_its_oracle_is_valid() -> None:
    acct = AccountState(address=ALICE, assets={"BTC": lots("5"), "ETH": lots("100", "ETH")})
    prices = {"BTC": (px("100000"), True), "ETH": (px("4000", "ETH"), False)}
    assert asset_values(acct, prices, MARKETS) == (usd("843000"), usd("475000"))
    assert asset_values(acct, {}, MARKETS) == (0, 0)  # no price yet: nothing


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**15), st.integers(1, 10**13))
def test_more_of_an_asset_is_worth_more_but_each_dollar_counts_less(raw: int, more: int) -> None:
    low = haircut_value(BTC_COLLATERAL, raw)
    high = haircut_value(BTC_COLLATERAL, raw + more)
    assert 0 <= low <= raw and low <= high
    # the haircut on the added value is at least the average haircut so far
    assert (high - low) * max(raw, 1) <= (low + 1) * more + raw


def _btc_backed(size: str = "5") -> Driver:
    r = risk()
    r.send(mark("100000"))
    r.send(put(ALICE, "BTC", size))
    return r


def test_deposited_btc_backs_orders_and_liabilities_stay_in_usdc() -> None:
    r = _btc_backed()
    ex = core(r).exposures
    row = ex.row_of[ALICE]
    assert (ex.equity(row), ex.available(row)) == (usd("475000"), usd("475000"))
    # 40 BTC at 20x hold $200,000 + the $1,800 taker fee: within $475,000
    only(r.send(place(ALICE, "buy", "100000", "40")), NewOrder)
    r.send(leg(ALICE, "buy", "100000", "40", maker=True))
    acct = account(r, ALICE)
    assert acct.collateral == -usd("600")  # the maker fee: a USDC liability
    assert acct.assets == {"BTC": lots("5")}
    assert ex.equity(row) == usd("474400")


def test_btc_collateral_and_a_btc_long_fall_together_into_liquidation() -> None:
    r = _btc_backed()
    r.send(leg(ALICE, "buy", "100000", "40", maker=True))
    # at 90,000 the long lost $400,000 and the 5 BTC are worth $450,000 x 95% =
    # $427,500: equity -600 - 400,000 + 427,500 = $26,900 against 1% of $3.6M
    assert of_type(r.send(mark("90000", status="stale")), LiquidationTrigger) == []
    (trigger,) = of_type(r.send(mark("90000")), LiquidationTrigger)
    assert (trigger.account, trigger.equity, trigger.maintenance) == (
        ALICE,
        usd("26900"),
        usd("36000"),
    )


def test_no_new_risk_on_an_asset_whose_oracle_is_not_valid() -> None:
    r = _btc_backed()
    r.send(mark("100000", status="stale"))
    ex = core(r).exposures
    row = ex.row_of[ALICE]
    assert (ex.equity(row), ex.available(row)) == (usd("475000"), 0)
    refused = only(r.send(place(ALICE, "buy", "100000", "1")), OrderUpdate)
    assert refused.status == "perpMarginRejected"
    r.send(mark("100000"))  # valid again: the same order passes
    only(r.send(place(ALICE, "buy", "100000", "1")), NewOrder)


def test_withdrawals_keep_the_requirement_with_assets_valued_for_new_risk() -> None:
    r = _btc_backed()
    r.send(leg(ALICE, "buy", "100000", "10", maker=True))  # $1M: keeps $100,000 (10%)
    # USDC cannot be borrowed out against BTC
    (no_usdc,) = of_type(r.send(withdraw(ALICE, "100")), BalanceUpdate)
    assert no_usdc.error == "Insufficient balance."
    # 5 BTC worth $475,000 less the $150 fee; 3.5 BTC leave 1.5 BTC = $142,500 > $100,000
    (out,) = of_type(r.send(take(ALICE, "BTC", "3.5")), BalanceUpdate)
    assert (out.error, out.delta, out.asset_balance) == (None, -lots("3.5"), lots("1.5"))
    # 0.5 BTC more would leave $95,000 - $150 < $100,000: refused, nothing changes
    (refused,) = of_type(r.send(take(ALICE, "BTC", "0.5")), BalanceUpdate)
    assert refused.error == "Insufficient balance."
    assert account(r, ALICE).assets == {"BTC": lots("1.5")}
    # while the oracle is stale the BTC counts for nothing: even 0.01 BTC stays
    r.send(mark("100000", status="stale"))
    (stale,) = of_type(r.send(take(ALICE, "BTC", "0.01")), BalanceUpdate)
    assert stale.error == "Insufficient balance."


def test_unknown_assets_and_bad_amounts_are_refused() -> None:
    r = risk()
    (sol,) = of_type(r.send(put(ALICE, "SOL", "10")), BalanceUpdate)
    assert sol.error == "'SOL' is not accepted as collateral."
    bad = Deposit(ts=1, account=ALICE, usd=5, asset="BTC", amount=lots("1"))
    (mixed,) = of_type(r.send(bad), BalanceUpdate)
    assert mixed.error == "Deposit must be a positive amount of one asset."
    assert ALICE not in core(r).accounts
    r.send(deposit(ALICE, "10"))
    (none,) = of_type(r.send(take(ALICE, "BTC", "1")), BalanceUpdate)
    assert none.error == "Insufficient balance."


def test_a_restarted_core_values_the_assets_again() -> None:
    r = _btc_backed()
    r.commit()
    restored = r.restarted(lambda p: type(core(r))(MARKETS, p))
    ex = core(restored).exposures
    assert ex.equity(ex.row_of[ALICE]) == usd("475000")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7), st.integers(1, 10**7), st.integers(1, 10**13))
def test_the_lots_sold_are_the_fewest_that_cover_the_liability(
    held: int, price: int, owed: int
) -> None:
    sold = lots_to_cover(BTC_COLLATERAL, price, owed, held)
    worth = haircut_value(BTC_COLLATERAL, sold * price)
    if haircut_value(BTC_COLLATERAL, held * price) < owed:
        assert sold == held  # all of them, and still short
    else:
        assert 1 <= sold <= held and worth >= owed
        assert haircut_value(BTC_COLLATERAL, (sold - 1) * price) < owed


def test_a_liability_with_no_position_opens_a_case_only_on_a_valid_oracle() -> None:
    r = _btc_backed()
    r.send(leg(ALICE, "buy", "100000", "1", maker=True))  # $15 maker fee
    r.send(mark("96000", status="stale"))
    # closed at 96,000 as maker: USDC -15 - 4,000 - $14.40 = -$4,029.40 behind 5 BTC;
    # the BTC oracle is stale, so no case opens on it
    outs = r.send(leg(ALICE, "sell", "96000", "1", maker=True, closed=True, ts=6))
    assert of_type(outs, LiquidationTrigger) == []
    assert account(r, ALICE).collateral == -usd("4029.4")
    (trigger,) = of_type(r.send(mark("96000", ts=7)), LiquidationTrigger)
    # 5 BTC x 96,000 x 95% = $456,000: equity $451,970.60, no maintenance, the whole
    # liability and the assets' value in the case's first status
    status = trigger.status
    assert status is not None
    assert (trigger.equity, trigger.maintenance) == (usd("451970.6"), 0)
    assert (status.collateral, status.asset_value, status.positions) == (
        -usd("4029.4"),
        usd("456000"),
        (),
    )
    # an account with USDC of its own and assets is never a case
    r.send(deposit(ALICE, "4029.4"))
    assert account(r, ALICE).liquidating is False


def test_a_sale_that_finds_the_oracle_not_valid_sells_nothing_and_ends_the_case() -> None:
    r = _btc_backed()
    r.send(leg(ALICE, "buy", "100000", "1", maker=True))
    r.send(leg(ALICE, "sell", "96000", "1", maker=True, closed=True, ts=6))  # a case opens
    assert account(r, ALICE).liquidating is True
    r.send(mark("96000", ts=7, status="stale"))
    outs = r.send(CollateralSale(ts=8, account=ALICE, usd=usd("4029.4")))
    # nothing sold, the liquidator told the case is over (below false), no new case until
    # the oracle is valid again
    assert [b for b in of_type(outs, BalanceUpdate) if b.reason == "collateralSale"] == []
    (status,) = of_type(outs, LiquidationStatus)
    assert (status.reason, status.below, status.collateral) == ("convert", False, -usd("4029.4"))
    assert account(r, ALICE).assets == {"BTC": lots("5")}
    assert account(r, ALICE).liquidating is False
    (again,) = of_type(r.send(mark("96000", ts=9)), LiquidationTrigger)
    assert again.account == ALICE
