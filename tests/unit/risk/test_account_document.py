"""clearinghouseState for accounts with collateral assets or in portfolio margin: the
numbers the gateway renders are the ones risk decides with (requirement, account value,
withdrawable), not the plain cross-margin view of USDC alone."""

from __future__ import annotations

from libs.common.collateral import oracle_prices
from libs.common.money import format_usd
from libs.common.portfolio import clearinghouse_document
from libs.common.schemas import BalanceUpdate, Deposit, SetMarginMode
from tests.unit.cores import Driver, of_type
from tests.unit.risk.support import (
    ALICE,
    account,
    core,
    deposit,
    leg,
    lots,
    mark,
    risk,
    withdraw,
)


def document(r: Driver) -> dict:  # type: ignore[type-arg]
    c = core(r)
    states = {m.market: m for m in c.marks.values()}
    marks = {name: state.mark_px for name, state in states.items()}
    return clearinghouse_document(account(r, ALICE), marks, c.markets, 0, oracle_prices(states))


def risk_view(r: Driver) -> tuple[int, int]:
    """(maintenance, withdrawable) as risk's own checks see them."""
    c = core(r)
    row = c.exposures.row_of[ALICE]
    withdrawable = c._withdrawable(account(r, ALICE))
    if account(r, ALICE).assets:
        withdrawable = min(withdrawable, max(0, account(r, ALICE).collateral))
    return c.exposures.maintenance_of(row), withdrawable


def test_a_hedged_portfolio_account_shows_its_portfolio_requirement() -> None:
    r = risk()
    r.send(mark("100000"))
    r.send(mark("4000", "ETH"))
    r.send(deposit(ALICE, "75300"))
    r.send(leg(ALICE, "buy", "100000", "10", maker=True))
    r.send(leg(ALICE, "sell", "4000", "250", maker=True, market="ETH"))
    before = document(r)
    assert before["crossMaintenanceMarginUsed"] == "20000"  # cross: 1% + 1% of $1M each
    r.send(SetMarginMode(ts=6, account=ALICE, mode="portfolio", req_id="m"))
    after = document(r)
    maintenance, withdrawable = risk_view(r)
    # the portfolio requirement of the pair: $67,950 initial, $40,770 maintenance
    assert after["crossMarginSummary"]["totalMarginUsed"] == "67950"
    assert after["crossMaintenanceMarginUsed"] == format_usd(maintenance) == "40770"
    assert (after["withdrawable"], withdrawable) == ("0.0", 0)
    assert after["marginSummary"]["accountValue"] == "75000"


def test_collateral_assets_count_in_account_value_and_withdrawable_follows_risk() -> None:
    r = risk()
    r.send(mark("100000"))
    r.send(Deposit(ts=1, account=ALICE, usd=0, asset="BTC", amount=lots("5")))
    r.send(deposit(ALICE, "1000"))
    doc = document(r)
    # 5 BTC at 100,000 with the 5% haircut: $475,000, plus $1,000 of USDC
    assert doc["marginSummary"]["accountValue"] == "476000"
    # USDC is never borrowed out against BTC: at most the $1,000 of USDC leaves
    assert doc["withdrawable"] == format_usd(risk_view(r)[1]) == "1000"
    # a 1 BTC long ($15 maker fee) must keep 10% of its value, $10,000: the BTC covers it
    # while its oracle is valid, so the $985 of USDC left may still go
    r.send(leg(ALICE, "buy", "100000", "1", maker=True))
    assert document(r)["withdrawable"] == format_usd(risk_view(r)[1]) == "985"
    # with the oracle stale the BTC still counts in value, not toward withdrawals
    r.send(mark("100000", status="stale"))
    stale = document(r)
    assert stale["marginSummary"]["accountValue"] == "475985"
    assert (stale["withdrawable"], risk_view(r)[1]) == ("0.0", 0)
    (out,) = of_type(r.send(withdraw(ALICE, "1")), BalanceUpdate)
    assert out.error == "Insufficient balance."
