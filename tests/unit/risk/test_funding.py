"""Funding: size x oracle price x rate per interval, paid through a cumulative index,
rounded so that payers never pay less and receivers never get more than exact, with the
difference kept in the ledger: payments plus residual sum to exactly zero."""

from __future__ import annotations

from libs.common.schemas import FundingPayment, FundingUpdate, UpdateLeverage
from tests.unit.cores import Driver, of_type
from tests.unit.risk.support import (
    ALICE,
    BOB,
    account,
    conserved,
    core,
    deposit,
    funding,
    ledger,
    leg,
    mark,
    risk,
    usd,
)


def _pair(size: str = "0.1") -> Driver:
    """Alice long and Bob short ``size`` BTC at 100000, each with $10,000."""
    r = risk()
    for who in (ALICE, BOB):
        r.send(deposit(who, "10000"))
    r.send(leg(ALICE, "buy", "100000", size, maker=True))
    r.send(leg(BOB, "sell", "100000", size, maker=False))
    return r


def test_longs_pay_shorts_size_times_oracle_price_times_rate() -> None:
    r = _pair()
    before = {who: account(r, who).collateral for who in (ALICE, BOB)}
    # 0.1 BTC x 100000 x 0.00125% = $0.125
    payments = of_type(r.send(funding(12_500, "100000")), FundingPayment)
    assert payments == [
        FundingPayment(
            ts=3_600_000,
            account=ALICE,
            market="BTC",
            szi=10_000,
            rate_ppb=12_500,
            usd=-usd("0.125"),
        ),
        FundingPayment(
            ts=3_600_000, account=BOB, market="BTC", szi=-10_000, rate_ppb=12_500, usd=usd("0.125")
        ),
    ]
    assert account(r, ALICE).collateral == before[ALICE] - usd("0.125")
    assert account(r, BOB).collateral == before[BOB] + usd("0.125")
    totals = account(r, ALICE).positions["BTC"].funding
    assert (totals.all_time, totals.since_open, totals.since_change) == (-usd("0.125"),) * 3
    # the index moved by rate x oracle price, in 1e-9 micro-dollars per lot
    assert core(r).marks["BTC"].cum_funding_index == 12_500 * 1_000_000
    assert ledger(r).funding_residual == {"BTC": 0}


def test_a_negative_rate_makes_shorts_pay() -> None:
    r = _pair()
    payments = of_type(r.send(funding(-40_000, "100000")), FundingPayment)
    assert [p.usd for p in payments] == [usd("0.4"), -usd("0.4")]


def test_rounding_favours_the_venue_and_the_residual_closes_the_sum() -> None:
    r = _pair("0.00001")  # one lot: $1 of notional
    # $1 x 0.00125% = 12.5 micro-dollars: the long pays 13, the short gets 12
    payments = of_type(r.send(funding(12_500, "100000")), FundingPayment)
    assert [p.usd for p in payments] == [-13, 12]
    assert ledger(r).funding_residual == {"BTC": 1}
    assert sum(p.usd for p in payments) + ledger(r).funding_residual["BTC"] == 0
    assert conserved(r) == usd("20000")


def test_without_an_oracle_price_the_index_price_of_the_last_mark_is_used() -> None:
    r = _pair()
    r.send(mark("100500", index="99000"))
    update = FundingUpdate(ts=9, market="BTC", rate_ppb=10_000, mark_px=1_005_000, cum_index=0)
    payments = of_type(r.send(update), FundingPayment)
    assert [p.usd for p in payments] == [-usd("0.099"), usd("0.099")]  # 0.1 x 99000 x 0.001%


def test_an_isolated_position_pays_funding_from_its_margin() -> None:
    r = risk()
    r.send(deposit(ALICE, "10000"))
    r.send(UpdateLeverage(ts=2, account=ALICE, market="BTC", leverage=10, is_cross=False))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    collateral = account(r, ALICE).collateral
    r.send(funding(12_500, "100000"))
    pos = account(r, ALICE).positions["BTC"]
    assert pos.isolated_margin == usd("1000") - usd("0.125")
    assert account(r, ALICE).collateral == collateral


def test_a_position_opened_after_a_settlement_pays_from_the_next_one() -> None:
    r = _pair()
    r.send(funding(12_500, "100000"))
    r.send(deposit("0x" + "c3" * 20, "1000"))
    r.send(leg("0x" + "c3" * 20, "buy", "100000", "0.1", maker=True))
    r.send(leg(BOB, "sell", "100000", "0.1", maker=False))
    payments = of_type(r.send(funding(12_500, "100000", ts=7_200_000)), FundingPayment)
    assert [p.usd for p in payments] == [-usd("0.125"), usd("0.25"), -usd("0.125")]
