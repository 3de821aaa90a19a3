"""A USDC liability behind collateral assets, with no position left, is repaid by selling
the assets to the backstop vault at what they counted for (the oracle price after the
haircut): after a liquidation, after the trader closed by hand, and, when the assets fall
short, with the insurance fund covering the rest. Risk, matcher and liquidator cores on
every partition, wired by the in-memory bus."""

from __future__ import annotations

from libs.common import topics
from libs.common.schemas import BalanceUpdate, CollateralSale, Deposit
from tests.unit.cores import Bus, of_type
from tests.unit.liquidator.support import (
    ALICE,
    CAROL,
    DAVE,
    FUND,
    VAULT,
    accounts,
    bad_debt,
    deposit,
    exchange,
    lots,
    mark,
    money,
    open_cases,
    place,
    steps,
    usd,
)


def venue(btc: str) -> Bus:
    """Alice holds ``btc`` BTC as collateral and no USDC, then buys a long from Carol."""
    bus = exchange()
    for who, amount in ((FUND, "100000"), (VAULT, "1000000"), (CAROL, "50000")):
        deposit(bus, who, amount)
    deposit(bus, DAVE, "200000")
    asset = Deposit(ts=0, account=ALICE, usd=0, asset="BTC", amount=lots(btc))
    bus.publish(topics.RISK_IN, ALICE, asset)
    mark(bus, "100000", 1)
    return bus


def long_btc(bus: Bus, size: str) -> None:
    assert place(bus, CAROL, "sell", "100000", size).status == "resting"
    assert place(bus, ALICE, "buy", "100000", size, tif="Ioc").status == "filled"


def sales(bus: Bus) -> list[BalanceUpdate]:
    return [b for b in of_type(bus.log, BalanceUpdate) if b.reason == "collateralSale"]


def test_a_liability_left_by_a_liquidation_is_repaid_from_the_collateral_assets() -> None:
    bus = venue("0.1")
    long_btc(bus, "1")  # the $45 taker fee: USDC -45 behind 0.1 BTC
    assert place(bus, DAVE, "buy", "92000", "1").status == "resting"
    before = money(bus)
    # at 92,100: -45 - 7,900 + 0.1 x 92,100 x 95% = $804.50 against $921 of maintenance
    mark(bus, "92100", 2_000)
    # sold into Dave's bid at 92,000: -45 - 8,000 - $41.40 taker fee - $230 liquidation
    # fee = USDC -$8,316.40, backed by 0.1 BTC worth $8,749.50 after the haircut
    trail = [(s.stage, s.shortfall) for s in steps(bus, ALICE)]
    assert trail == [
        ("triggered", usd("116.5")),
        ("cancel", usd("116.5")),
        ("book", usd("116.5")),
        ("book", 0),
        ("convert", usd("8316.4")),
        ("closed", 0),
    ]
    # the fewest lots covering it: 0.09506 BTC x 92,100 x 95% = $8,317.2747
    # (0.09505 BTC would bring $8,316.3995, a fraction of a cent short)
    alice, vault = accounts(bus)[ALICE], accounts(bus)[VAULT]
    assert alice.assets == {"BTC": lots("0.00494")}
    assert alice.collateral == usd("0.8747")
    assert vault.assets == {"BTC": lots("0.09506")}
    assert vault.collateral == usd("1000000") - usd("8317.2747") + usd("115")  # + fee share
    seller, buyer = sales(bus)
    assert (seller.account, seller.delta, seller.asset_balance) == (
        ALICE,
        usd("8317.2747"),
        lots("0.00494"),
    )
    assert (buyer.account, buyer.delta, buyer.asset_balance) == (
        VAULT,
        -usd("8317.2747"),
        lots("0.09506"),
    )
    # equity unchanged by the sale ($433.10), every dollar accounted for, nothing open
    assert alice.collateral + lots("0.00494") * 921_000 * 95 // 100 == usd("433.1")
    assert money(bus) == before and bad_debt(bus) == 0 and open_cases(bus) == []


def test_a_liability_left_after_closing_by_hand_is_repaid_too() -> None:
    bus = venue("0.1")
    long_btc(bus, "1")
    assert place(bus, DAVE, "buy", "96000", "1").status == "resting"
    mark(bus, "96000", 1_000)
    # Alice sells at 96,000: -45 - 4,000 - $43.20 fee = USDC -$4,088.20, never below
    # maintenance, but the liability is not left standing on 0.1 BTC
    assert place(bus, ALICE, "sell", "96000", "1", tif="Ioc", ts=1_001).status == "filled"
    assert [s.stage for s in steps(bus, ALICE)] == ["triggered", "cancel", "convert", "closed"]
    # 0.04483 BTC x 96,000 x 95% = $4,088.496 (0.04482 BTC: $4,087.584)
    alice = accounts(bus)[ALICE]
    assert (alice.collateral, alice.assets) == (usd("0.296"), {"BTC": lots("0.05517")})
    assert accounts(bus)[VAULT].assets == {"BTC": lots("0.04483")}
    assert open_cases(bus) == []


def test_assets_short_of_the_liability_are_all_sold_after_the_fund_pays_the_deficit() -> None:
    bus = venue("0.01")
    long_btc(bus, "0.18")  # $8.10 taker fee
    before = money(bus)
    fund = accounts(bus)[FUND].collateral
    # a gap to 94,000 with no bids: -8.10 - 1,080 + 0.01 x 94,000 x 95% = -$195.10
    mark(bus, "94000", 1_000)
    assert [s.stage for s in steps(bus, ALICE)] == [
        "triggered",
        "cancel",
        "insurance",
        "insurance",
        "backstop",
        "convert",
        "closed",
    ]
    # the fund covers the $195.10 deficit, the vault takes the long at the mark, and the
    # USDC still owed (-8.10 - 1,080 + 195.10 = -$893) takes every lot, worth exactly $893
    alice = accounts(bus)[ALICE]
    assert (alice.collateral, alice.assets, alice.positions) == (0, {}, {})
    assert accounts(bus)[FUND].collateral == fund - usd("195.1")
    assert accounts(bus)[VAULT].assets == {"BTC": lots("0.01")}
    assert money(bus) == before and bad_debt(bus) == 0 and open_cases(bus) == []


def test_a_sale_request_for_an_account_that_repaid_meanwhile_sells_nothing() -> None:
    bus = venue("0.1")
    deposit(bus, ALICE, "100")  # USDC above zero: nothing owed
    outs = bus.publish(topics.RISK_IN, ALICE, CollateralSale(ts=5, account=ALICE, usd=1))
    assert sales(bus) == [] and of_type(outs, BalanceUpdate) == []
    assert accounts(bus)[ALICE].assets == {"BTC": lots("0.1")}
