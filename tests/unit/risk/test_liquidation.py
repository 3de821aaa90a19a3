"""Mark to market: margin calls, liquidation triggers and their order, oracle gating."""

from __future__ import annotations

from libs.common import metrics
from libs.common.schemas import (
    ActionResult,
    BadDebtNotice,
    BalanceUpdate,
    Deposit,
    InsuranceAnswer,
    InsuranceClaim,
    InsuranceCredit,
    LiquidationReport,
    LiquidationStatus,
    LiquidationTrigger,
    MarginCall,
    TransferIn,
    UsdTransfer,
)
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    liquidation_order_id,
    order_id,
)
from services.risk.config import RiskConfig
from services.risk.engine import BAD_DEBT_OPEN, RiskCore
from tests.unit.cores import Driver, of_type, only
from tests.unit.risk.support import (
    ALICE,
    BOB,
    CAROL,
    MARKETS,
    account,
    deposit,
    ledger,
    leg,
    lots,
    mark,
    result,
    risk,
    usd,
    withdraw,
)


def _longs(deposits: dict[str, str]) -> Driver:
    """Each account long 0.1 BTC from 100000 as maker ($1.5 fee)."""
    r = risk()
    for address, amount in deposits.items():
        r.send(deposit(address, amount))
        r.send(leg(address, "buy", "100000", "0.1", maker=True))
    return r


def test_triggers_go_out_largest_shortfall_first_then_by_account() -> None:
    # at 94000 each lost $600 and must keep 1% of $9,400 = $94
    r = _longs({ALICE: "601.5", BOB: "551.5", CAROL: "601.5"})
    triggers = of_type(r.send(mark("94000")), LiquidationTrigger)
    assert [(t.account, t.equity, t.maintenance) for t in triggers] == [
        (BOB, -usd("50"), usd("94")),  # $144 short
        (ALICE, 0, usd("94")),  # $94 short, and Alice's address sorts before Carol's
        (CAROL, 0, usd("94")),
    ]


def test_no_liquidation_on_a_price_whose_oracle_is_not_valid() -> None:
    r = _longs({ALICE: "601.5"})
    assert of_type(r.send(mark("94000", status="stale")), LiquidationTrigger) == []
    assert not account(r, ALICE).liquidating
    assert len(of_type(r.send(mark("94000")), LiquidationTrigger)) == 1


def test_margin_calls_announce_each_level_once_on_the_way_up() -> None:
    r = _longs({ALICE: "1001.5"})  # $1,000 of collateral behind 0.1 BTC

    def calls(price: str) -> list[int]:
        return [c.level_pct for c in of_type(r.send(mark(price)), MarginCall)]

    # usage = maintenance / equity: at 91900 $91.9 / $190 = 48%, at 91800
    # $91.8 / $180 = 51%, at 91000 $91 / $100 = 91%
    assert calls("91900") == []
    assert calls("91800") == [50]
    assert calls("91700") == []
    assert calls("91000") == [80]
    assert account(r, ALICE).margin_call_pct == 80
    assert calls("99000") == []  # back to safety: the level resets quietly
    assert account(r, ALICE).margin_call_pct == 0
    assert calls("91000") == [80]  # straight past both levels: the highest is announced


def test_a_deposit_lifts_an_account_out_of_liquidation() -> None:
    r = _longs({ALICE: "601.5"})
    r.send(mark("94000"))
    assert account(r, ALICE).liquidating
    r.send(Deposit(ts=9, account=ALICE, usd=usd("100")))
    assert not account(r, ALICE).liquidating


def test_an_account_without_positions_is_never_liquidated() -> None:
    r = risk()
    r.send(deposit(ALICE, "10"))
    assert r.send(mark("50000")) == []


def test_an_account_in_liquidation_reports_each_change_and_its_recovery() -> None:
    r = _longs({ALICE: "601.5"})
    r.send(mark("94000"))  # equity $0 against $94: in liquidation
    (update,) = of_type(r.send(mark("93900")), LiquidationStatus)
    assert (update.reason, update.below, update.equity) == ("mark", True, -usd("10"))
    # a deposit lifts her above maintenance: the last status tells the liquidator so
    (last,) = of_type(r.send(deposit(ALICE, "200")), LiquidationStatus)
    assert (last.reason, last.below, last.equity) == ("change", False, usd("190"))
    assert of_type(r.send(mark("93800")), LiquidationStatus) == []


def test_the_venues_own_accounts_are_never_triggered() -> None:
    r = _longs({INSURANCE_FUND_ACCOUNT: "601.5", BACKSTOP_VAULT_ACCOUNT: "601.5"})
    assert of_type(r.send(mark("90000")), LiquidationTrigger) == []


def test_results_of_liquidation_orders_go_back_to_the_liquidator() -> None:
    r = risk()
    oid = liquidation_order_id(7, 2)
    outs = r.send(result(ALICE, oid, "filled", filled=lots("0.05")))
    (report,) = of_type(outs, LiquidationReport)
    assert (report.account, report.oid, report.status, report.filled_sz) == (
        ALICE,
        oid,
        "filled",
        lots("0.05"),
    )
    assert of_type(r.send(result(ALICE, order_id(7, 2), "filled")), LiquidationReport) == []


def _claim(usd_text: str) -> InsuranceClaim:
    return InsuranceClaim(
        ts=5,
        account=INSURANCE_FUND_ACCOUNT,
        beneficiary=ALICE,
        usd=usd(usd_text),
        case_id="liquidations/1/7",
    )


def test_a_fund_smaller_than_the_claim_pays_all_it_has() -> None:
    r = risk()
    r.send(deposit(INSURANCE_FUND_ACCOUNT, "50"))
    outs = r.send(_claim("90"))
    answer = only(outs, InsuranceAnswer)
    assert (answer.usd, answer.paid, answer.granted, answer.balance) == (
        usd("90"),
        usd("50"),
        False,
        0,
    )
    credit = only(outs, InsuranceCredit)
    assert (credit.account, credit.usd) == (ALICE, usd("50"))
    paid = only(outs, BalanceUpdate)  # the fund's own history on account.events
    assert (paid.account, paid.delta, paid.collateral, paid.reason, paid.req_id) == (
        INSURANCE_FUND_ACCOUNT,
        -usd("50"),
        0,
        "insuranceClaim",
        "liquidations/1/7",
    )
    # an empty fund pays nothing and moves nothing
    outs = r.send(_claim("90"))
    assert (only(outs, InsuranceAnswer).paid, of_type(outs, InsuranceCredit)) == (0, [])


def test_the_fund_pays_down_to_its_floor_and_reports_its_drawdown() -> None:
    r = risk(config=RiskConfig(insurance_floor=usd("300")))
    r.send(deposit(INSURANCE_FUND_ACCOUNT, "1000"))
    answer = only(r.send(_claim("400")), InsuranceAnswer)
    assert (answer.paid, answer.granted, answer.balance) == (usd("400"), True, usd("600"))
    answer = only(r.send(_claim("400")), InsuranceAnswer)
    assert (answer.paid, answer.granted, answer.balance) == (usd("300"), False, usd("300"))
    assert ledger(r).insurance_peak == usd("1000")
    assert metrics.INSURANCE_FUND_DRAWDOWN._value.get() == 700.0
    assert metrics.INSURANCE_FUND_DRAWDOWN_RATIO._value.get() == 0.7
    # fees refill it: the drawdown shrinks, the peak stays
    r.send(
        TransferIn(
            ts=6, account=INSURANCE_FUND_ACCOUNT, source="venue", usd=usd("200"), transfer_id="f"
        )
    )
    assert metrics.INSURANCE_FUND_DRAWDOWN._value.get() == 500.0
    assert ledger(r).insurance_peak == usd("1000")


def test_withdrawals_and_transfers_wait_while_a_case_has_unabsorbed_bad_debt() -> None:
    r = risk()
    r.send(deposit(ALICE, "1000"))
    opened = BadDebtNotice(ts=3, account=BOB, case_id="liquidations/2/9", open=True, usd=7)
    r.send(opened)
    held = only(r.send(withdraw(ALICE, "100")), BalanceUpdate)
    assert (held.delta, held.error) == (0, BAD_DEBT_OPEN)
    move = UsdTransfer(ts=4, account=ALICE, destination=CAROL, usd=usd("100"), req_id="t")
    assert only(r.send(move), ActionResult).error == BAD_DEBT_OPEN
    assert account(r, ALICE).collateral == usd("1000")
    # the hold survives a restart: it is in the snapshot
    r.commit()
    r = r.restarted(lambda p: RiskCore(MARKETS, p))
    assert only(r.send(withdraw(ALICE, "100")), BalanceUpdate).error == BAD_DEBT_OPEN
    r.send(BadDebtNotice(ts=5, account=BOB, case_id="liquidations/2/9", open=False))
    done = only(r.send(withdraw(ALICE, "100")), BalanceUpdate)
    assert (done.delta, done.error, done.collateral) == (-usd("100"), None, usd("900"))


def test_the_vaults_positions_go_to_the_liquidator_after_its_fills_and_marks() -> None:
    r = risk()
    r.send(deposit(BACKSTOP_VAULT_ACCOUNT, "100000"))
    r.send(deposit(ALICE, "100000"))
    taken = of_type(
        r.send(leg(BACKSTOP_VAULT_ACCOUNT, "buy", "94500", "2", maker=True, kind="backstop")),
        LiquidationStatus,
    )
    assert [(s.account, s.reason, s.below) for s in taken] == [
        (BACKSTOP_VAULT_ACCOUNT, "backstop", False)
    ]
    (pos,) = taken[0].positions
    assert (pos.market, pos.szi, pos.entry_ntl) == ("BTC", lots("2"), usd("189000"))
    # the mark of a market it holds: its positions at the new mark, its equity
    (marked,) = of_type(r.send(mark("94000")), LiquidationStatus)
    assert (marked.reason, marked.positions[0].mark_px, marked.equity) == (
        "mark",
        940_000,
        usd("99000"),
    )
    # an ordinary account's fill sends nothing; nor a mark of a market the vault lacks
    assert (
        of_type(r.send(leg(ALICE, "buy", "3500", "1", maker=True, market="ETH")), LiquidationStatus)
        == []
    )
    assert of_type(r.send(mark("3400", "ETH")), LiquidationStatus) == []
