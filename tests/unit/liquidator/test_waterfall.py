"""The waterfall end to end, in-process: orders and marks in, fills, transfers, fund and
ADL moves out, with the exact amounts each account ends with.

Alice buys 2 BTC at 100,000 as taker ($90 fee) on $12,000: $11,910 of collateral, long
$200,000. Maintenance is 1% of her notional at the mark (BTC tier 0)."""

from __future__ import annotations

from libs.common import topics
from libs.common.schemas import (
    AccountFill,
    BadDebtNotice,
    BalanceUpdate,
    CancelAll,
    LiquidationStep,
    NewOrder,
    OrderUpdate,
    PlaceOrder,
)
from libs.common.state import is_liquidation_order
from services.liquidator.config import LiquidatorConfig
from services.risk.config import RiskConfig
from tests.unit.cores import Bus, of_type
from tests.unit.liquidator.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FUND,
    VAULT,
    accounts,
    bad_debt,
    collateral,
    deposit,
    exchange,
    isolated,
    lots,
    mark,
    money,
    open_cases,
    place,
    px,
    risk_cores,
    steps,
    szi,
    usd,
)


def alice_long_two_btc(fund: str = "1000", config: LiquidatorConfig | None = None) -> Bus:
    """Bob (1.2) and Dave (0.8) sell Alice 2 BTC at 100,000; Carol has cash only."""
    bus = exchange(config)
    for who, amount in (
        (ALICE, "12000"),
        (BOB, "20000"),
        (DAVE, "5000"),
        (CAROL, "100000"),
        (FUND, fund),
        (VAULT, "100000"),
    ):
        deposit(bus, who, amount)
    place(bus, BOB, "sell", "100000", "1.2")
    place(bus, DAVE, "sell", "100000", "0.8")
    assert place(bus, ALICE, "buy", "100000", "2", tif="Ioc").status == "filled"
    assert collateral(bus, ALICE) == usd("11910")
    return bus


DEPOSITS = usd("12000") + usd("20000") + usd("5000") + usd("100000") + usd("100000")


def test_an_account_without_orders_gets_no_cancel_all_but_the_step_is_audited() -> None:
    bus = alice_long_two_btc()
    for price in ("94700", "94600", "94500", "94400"):
        place(bus, CAROL, "buy", price, "0.4")
    first = mark(bus, "94800", 1_000)
    assert [(s.stage, s.detail) for s in first[:2]] == [
        ("triggered", f"equity={usd('1510')} maintenance={usd('1896')}"),
        ("cancel", "no open orders in BTC"),
    ]
    assert [c for c in of_type(bus.log, CancelAll) if c.account == ALICE] == []
    # the same first order as with an order to cancel: 0.4 BTC at 91,309.4
    (order,) = [o for o in of_type(bus.log, NewOrder) if is_liquidation_order(o.oid)]
    assert (order.account, order.sz, order.px) == (ALICE, lots("0.4"), 913_094)


def test_a_large_long_goes_into_a_thin_book_in_slices_with_a_cooldown() -> None:
    bus = alice_long_two_btc()
    for price in ("94700", "94600", "94500", "94400"):
        place(bus, CAROL, "buy", price, "0.4")
    take_profit = PlaceOrder(
        ts=1,
        account=ALICE,
        market="BTC",
        is_buy=False,
        px=px("120000"),
        sz=lots("0.1"),
        reduce_only=True,
    )  # no hold: only the liquidator cancels it
    (resting,) = of_type(bus.publish(topics.RISK_IN, ALICE, take_profit), OrderUpdate)
    assert resting.status == "resting"
    # mark 94,800: equity 11,910 - 10,400 = $1,510 < maintenance $1,896, above 2/3 of it
    first = mark(bus, "94800", 1_000)
    assert [s.stage for s in first] == ["triggered", "cancel", "book", "book"]
    assert first[1].detail == "open orders canceled in BTC"
    assert (first[0].equity, first[0].maintenance, first[0].shortfall) == (
        usd("1510"),
        usd("1896"),
        usd("386"),
    )
    assert first[2].sz == lots("0.4")  # $189,600 is above the $100,000 threshold: 20%
    # 5% under the mark would be 90,060; but no lower than what leaves her solvent after
    # a 0.3% fee allowance: 94,800 - ($1,510 - $113.76) / 0.4 = 91,309.4
    assert first[2].px == 913_094
    orders = [o for o in of_type(bus.log, NewOrder) if is_liquidation_order(o.oid)]
    assert [(o.tif, o.reduce_only, o.is_buy, o.sz) for o in orders] == [
        ("Ioc", True, False, lots("0.4"))
    ]
    (cancel,) = [c for c in of_type(bus.log, CancelAll) if c.account == ALICE]
    assert (cancel.market, cancel.status) == ("BTC", "liquidatedCanceled")
    (canceled,) = [u for u in of_type(bus.log, OrderUpdate) if u.oid == resting.oid][1:]
    assert (canceled.status, canceled.filled_sz) == ("liquidatedCanceled", 0)

    # within the cooldown a mark sends nothing; one second on, the next 20% slice
    assert [s.stage for s in mark(bus, "94800", 1_500)] == []
    second = mark(bus, "94800", 2_000)
    assert [(s.stage, s.sz) for s in second] == [("book", lots("0.32")), ("book", lots("0.32"))]
    third = mark(bus, "94800", 3_000)
    # the last slice lifts her above maintenance: the case ends before the order's report
    assert [(s.stage, s.sz) for s in third] == [("book", lots("0.256")), ("recovered", 0)]
    assert open_cases(bus) == []

    # sold 0.4 @ 94,700, 0.32 + 0.08 @ 94,600, 0.176 @ 94,500: taker 450 ppm plus the
    # 2,500 ppm liquidation fee ($230.88), half to the insurance fund, half to the vault
    assert szi(bus, ALICE) == lots("1.024")
    sold = [(f.px, f.sz, f.fee) for f in of_type(bus.log, AccountFill) if f.account == ALICE]
    assert sold[2:] == [
        (px("94700"), lots("0.4"), usd("17.046") + usd("94.7")),
        (px("94600"), lots("0.32"), usd("13.6224") + usd("75.68")),
        (px("94600"), lots("0.08"), usd("3.4056") + usd("18.92")),
        (px("94500"), lots("0.176"), usd("7.4844") + usd("41.58")),
    ]
    assert collateral(bus, FUND) == usd("1115.44")
    assert collateral(bus, VAULT) == usd("100115.44")
    assert money(bus) == DEPOSITS + usd("1000")


def test_a_gap_through_maintenance_goes_straight_to_the_backstop_vault() -> None:
    bus = alice_long_two_btc()
    # 94,500: equity $910 is under 2/3 of maintenance ($1,890): no book, the vault at mark
    got = mark(bus, "94500", 1_000)
    assert [s.stage for s in got] == ["triggered", "cancel", "backstop", "closed"]
    assert (got[2].px, got[2].sz, got[2].counterparty) == (px("94500"), lots("2"), VAULT)
    assert szi(bus, ALICE) == 0
    assert collateral(bus, ALICE) == usd("910")  # what she had left stays hers
    vault = accounts(bus)[VAULT].positions["BTC"]
    assert (vault.szi, vault.entry_ntl) == (lots("2"), usd("189000"))
    assert collateral(bus, VAULT) == usd("100000")  # no fee on a takeover
    assert money(bus) == DEPOSITS + usd("1000")


def test_negative_equity_after_the_takeover_is_covered_by_the_insurance_fund() -> None:
    bus = alice_long_two_btc()
    got = mark(bus, "94000", 1_000)  # equity 11,910 - 12,000 = -$90
    assert [s.stage for s in got] == [
        "triggered",
        "cancel",
        "insurance",
        "insurance",
        "backstop",
        "closed",
    ]
    assert got[3].detail == "fund covered 90000000; fund balance 910000000"
    assert (collateral(bus, ALICE), szi(bus, ALICE)) == (0, 0)
    assert collateral(bus, FUND) == usd("910")
    assert szi(bus, VAULT) == lots("2")
    assert bad_debt(bus) == 0
    assert money(bus) == DEPOSITS + usd("1000")


def test_a_loss_beyond_an_empty_fund_deleverages_the_most_profitable_most_leveraged_first() -> None:
    bus = alice_long_two_btc(fund="0")
    got = mark(bus, "94000", 1_000)
    assert [s.stage for s in got if s.account == ALICE] == [
        "triggered",
        "cancel",
        "insurance",
        "insurance",
        "adl",
        "adl",
        "adl",
        "closed",
    ]
    assert got[3].detail == "fund cannot cover 90000000; fund balance 0"
    # bankruptcy price: 94,000 + $90 / 2 BTC = 94,045
    assert got[4].px == px("94045")
    # Dave: entry 80,000 / value 9,788 = 8.17; Bob: 120,000 / 27,182 = 4.41: Dave first
    closes = [(s.counterparty, s.sz, s.px) for s in got if s.account == ALICE][5:7]
    assert closes == [(DAVE, lots("0.8"), px("94045")), (BOB, lots("1.2"), px("94045"))]
    # each gives up $45 a BTC against the mark: Dave $36, Bob $54, the $90 Alice lacked
    assert collateral(bus, DAVE) == usd("4988") + usd("4764")
    assert collateral(bus, BOB) == usd("19982") + usd("7146")
    assert (collateral(bus, ALICE), szi(bus, ALICE)) == (0, 0)
    assert (szi(bus, BOB), szi(bus, DAVE)) == (0, 0)
    assert collateral(bus, CAROL) == usd("100000")  # no position, no loss
    notices = [f for f in of_type(bus.log, AccountFill) if f.kind == "adl"]
    assert sorted(f.account for f in notices) == sorted([ALICE, ALICE, BOB, DAVE])
    bob_notice = [s for s in steps(bus, BOB) if s.stage == "adl"]
    assert len(bob_notice) == 1 and bob_notice[0].sz == lots("1.2")
    assert money(bus) == DEPOSITS
    assert bad_debt(bus) == 0


def test_a_fund_smaller_than_the_deficit_pays_what_it_has_and_adl_covers_the_rest() -> None:
    bus = alice_long_two_btc(fund="50")
    got = [s for s in mark(bus, "94000", 1_000) if s.account == ALICE]
    assert [s.stage for s in got] == [
        "triggered",
        "cancel",
        "insurance",
        "insurance",
        "adl",
        "adl",
        "adl",
        "closed",
    ]
    # the fund pays its $50 of the $90: Alice is at -$40 when ADL starts
    answer = got[3]
    assert answer.detail == "fund paid 50000000 of 90000000, 40000000 left; fund balance 0"
    assert (answer.equity, answer.equity_after) == (-usd("90"), -usd("40"))
    # bankruptcy price for the $40 left: 94,000 + $40 / 2 BTC = 94,020
    assert (got[4].px, got[4].shortfall) == (px("94020"), usd("40"))
    closes = [(s.counterparty, s.sz, s.px) for s in got[5:7]]
    assert closes == [(DAVE, lots("0.8"), px("94020")), (BOB, lots("1.2"), px("94020"))]
    # $20 a BTC against the mark: Dave gives up $16, Bob $24: with the fund's $50, $90
    assert collateral(bus, DAVE) == usd("4988") + usd("4784")
    assert collateral(bus, BOB) == usd("19982") + usd("7176")
    assert (collateral(bus, ALICE), szi(bus, ALICE)) == (0, 0)
    assert collateral(bus, FUND) == 0
    paid = [b for b in of_type(bus.log, BalanceUpdate) if b.reason == "insuranceClaim"]
    assert [(b.account, b.delta, b.collateral) for b in paid] == [(FUND, -usd("50"), 0)]
    assert collateral(bus, CAROL) == usd("100000")
    assert money(bus) == DEPOSITS + usd("50")
    assert bad_debt(bus) == 0
    # every risk partition held withdrawals from the -$90 until the case closed
    notices = of_type(bus.log, BadDebtNotice)
    assert [(n.open, n.usd) for n in notices] == [(True, usd("90"))] * 4 + [(False, 0)] * 4
    assert all(not core.venue.open_bad_debt for core in risk_cores(bus))


def test_the_fund_never_pays_below_its_floor() -> None:
    bus = exchange(risk=RiskConfig(insurance_floor=usd("30")))
    for who, amount in (
        (ALICE, "12000"),
        (BOB, "20000"),
        (DAVE, "5000"),
        (CAROL, "100000"),
        (FUND, "50"),
        (VAULT, "100000"),
    ):
        deposit(bus, who, amount)
    place(bus, BOB, "sell", "100000", "1.2")
    place(bus, DAVE, "sell", "100000", "0.8")
    place(bus, ALICE, "buy", "100000", "2", tif="Ioc")
    got = [s for s in mark(bus, "94000", 1_000) if s.account == ALICE]
    # $20 above the $30 floor: ADL covers $70 at 94,000 + $70 / 2 = 94,035
    assert got[3].detail == "fund paid 20000000 of 90000000, 70000000 left; fund balance 30000000"
    assert got[4].px == px("94035")
    assert collateral(bus, FUND) == usd("30")
    assert collateral(bus, DAVE) == usd("4988") + usd("4772")  # 0.8 x $35 = $28 given up
    assert collateral(bus, BOB) == usd("19982") + usd("7158")  # 1.2 x $35 = $42
    assert (collateral(bus, ALICE), szi(bus, ALICE)) == (0, 0)
    assert money(bus) == DEPOSITS + usd("50")


def test_a_cross_account_sells_the_underwater_position_and_keeps_the_other() -> None:
    config = LiquidatorConfig(slice_threshold=usd("1000000"))
    bus = alice_long_two_btc(config=config)
    deposit(bus, BOB, "10000")
    place(bus, BOB, "sell", "3500", "1", market="ETH")
    place(bus, ALICE, "buy", "3500", "1", market="ETH", tif="Ioc")
    place(bus, CAROL, "buy", "94700", "2")
    mark(bus, "3600", 500, market="ETH")  # ETH is in profit
    got = mark(bus, "94850", 1_000)
    assert [s.stage for s in got] == ["triggered", "cancel", "book", "recovered"]
    assert got[2].sz == lots("2")  # under the threshold: whole
    assert szi(bus, ALICE) == 0
    assert szi(bus, ALICE, "ETH") == lots("1", "ETH")  # untouched
    assert open_cases(bus) == []


def test_an_isolated_position_is_taken_over_and_the_cross_account_is_untouched() -> None:
    bus = alice_long_two_btc()
    deposit(bus, BOB, "50000")
    deposit(bus, ALICE, "10000")
    isolated(bus, ALICE, "ETH", 10)
    place(bus, BOB, "sell", "3500", "10", market="ETH")
    place(bus, ALICE, "buy", "3500", "10", market="ETH", tif="Ioc")
    assert accounts(bus)[ALICE].positions["ETH"].isolated_margin == usd("3500")
    before = collateral(bus, ALICE)
    # ETH 3,170: the position's equity 3,500 - 3,300 = $200 < 2/3 x $317: the vault
    got = mark(bus, "3170", 1_000, market="ETH")
    assert [(s.stage, s.market) for s in got] == [
        ("triggered", "ETH"),
        ("cancel", "ETH"),
        ("backstop", "ETH"),
        ("closed", "ETH"),
    ]
    assert szi(bus, VAULT, "ETH") == lots("10", "ETH")
    assert collateral(bus, ALICE) == before + usd("200")  # the margin left comes back
    assert szi(bus, ALICE) == lots("2")  # the cross BTC position is untouched
    assert not accounts(bus)[ALICE].liquidating


def test_every_step_is_audited_with_its_case() -> None:
    bus = alice_long_two_btc()
    mark(bus, "94500", 1_000)
    audit = steps(bus, ALICE)
    assert {s.case_id for s in audit} == {audit[0].case_id}
    assert all(isinstance(s, LiquidationStep) and s.ts == 1_000 for s in audit)
