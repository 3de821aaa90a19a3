"""The backstop vault unwinds what it took over through ordinary reduce-only IOC orders:
a quarter of the position at a time, at most $100,000 of notional per 10 s of event
time, never more than 0.5% from the mark; every order and its result audited."""

from __future__ import annotations

from libs.common.schemas import AccountFill, LiquidatedPosition, NewOrder
from services.liquidator import unwind
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from services.liquidator.unwind import VaultUnwind
from tests.unit.cores import Bus, of_type
from tests.unit.liquidator.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FUND,
    VAULT,
    accounts,
    collateral,
    deposit,
    exchange,
    lots,
    mark,
    money,
    place,
    px,
    steps,
    szi,
    usd,
)

CONFIG = LiquidatorConfig(
    unwind_slice_ppm=250_000,
    unwind_max_notional=usd("100000"),
    unwind_interval_ms=10_000,
    unwind_max_distance_ppm=5_000,
)


def liquidator_cores(bus: Bus) -> list[LiquidatorCore]:
    return [d.core for d in bus.drivers.values() if isinstance(d.core, LiquidatorCore)]


def test_slices_are_bounded_by_size_by_the_intervals_notional_and_by_distance() -> None:
    pos = LiquidatedPosition(
        market="BTC", szi=lots("2"), entry_ntl=usd("189000"), mark_px=px("94500"), maintenance=0
    )
    fresh = VaultUnwind(market="BTC")
    assert unwind.slice_lots(pos, fresh, 1_000, CONFIG) == lots("0.5")  # a quarter
    spent = VaultUnwind(market="BTC", window=0, window_ntl=usd("82687.5"))
    # $17,312.50 left in the interval: 0.18320 BTC at 94,500
    assert unwind.slice_lots(pos, spent, 3_000, CONFIG) == lots("0.1832")
    assert unwind.slice_lots(pos, spent, 10_000, CONFIG) == lots("0.5")  # the next interval
    # 0.5% under 94,500 is 94,027.5; 0.5% over is 94,972.5
    assert unwind.limit_px(pos, CONFIG) == 940_275
    short = LiquidatedPosition(
        market="BTC", szi=-lots("2"), entry_ntl=usd("189000"), mark_px=px("94500"), maintenance=0
    )
    assert unwind.limit_px(short, CONFIG) == 949_725


def test_the_vault_sends_what_it_took_over_back_into_the_book_in_bounded_slices() -> None:
    bus = exchange(CONFIG)
    for who, amount in (
        (ALICE, "12000"),
        (BOB, "20000"),
        (DAVE, "5000"),
        (CAROL, "1000000"),
        (FUND, "1000"),
        (VAULT, "100000"),
    ):
        deposit(bus, who, amount)
    place(bus, BOB, "sell", "100000", "1.2")
    place(bus, DAVE, "sell", "100000", "0.8")
    place(bus, ALICE, "buy", "100000", "2", tif="Ioc")
    deposits = money(bus)
    place(bus, CAROL, "buy", "94400", "0.5")
    place(bus, CAROL, "buy", "94300", "1")
    place(bus, CAROL, "buy", "93000", "5")  # beyond 0.5% from the mark: never hit
    # 94,500: Alice's $910 is under 2/3 of maintenance; the vault takes 2 BTC at the mark
    # and, on its status after the takeover, sells a quarter of it at once
    mark(bus, "94500", 1_000)
    for ts in (2_000, 3_000, 4_000, 10_000, 11_000):
        mark(bus, "94500", ts)
    sold = [(f.ts, f.px, f.sz) for f in of_type(bus.log, AccountFill) if f.account == VAULT]
    assert sold[1:] == [  # the first is the takeover
        (1_000, px("94400"), lots("0.5")),
        (2_000, px("94300"), lots("0.375")),  # a quarter of 1.5
        (3_000, px("94300"), lots("0.1832")),  # $17,312.50 left of the $100,000
        # 4,000: the interval's cap is spent; 10,000: a new interval, a quarter of 0.9418
        (10_000, px("94300"), lots("0.23545")),
        # 11,000: the 94,300 bid has 0.20635 left; a quarter of 0.70635 fills there
        (11_000, px("94300"), lots("0.17658")),
    ]
    orders = [o for o in of_type(bus.log, NewOrder) if o.account == VAULT]
    assert all(o.tif == "Ioc" and o.reduce_only and not o.is_buy for o in orders)
    assert {o.px for o in orders} == {940_275}
    assert szi(bus, VAULT) == lots("0.52977")
    audit = [s for s in steps(bus, VAULT) if s.stage == "unwind"]
    assert [s.sz for s in audit][:4] == [lots("0.5"), lots("0.5"), lots("0.375"), lots("0.375")]
    assert audit[1].detail == "order filled: filled 50000 of 50000"
    assert {s.case_id for s in audit} == {"unwind/BTC"}
    # no liquidation fee on the vault's own orders: the fund got Alice's nothing
    assert collateral(bus, FUND) == usd("1000")
    assert accounts(bus)[CAROL].positions["BTC"].szi == lots("1.47023")  # what the vault sold
    assert money(bus) == deposits

    # 12,000: 0.02977 left at 94,300, then only the 93,000 bid, beyond the limit
    mark(bus, "94500", 12_000)
    mark(bus, "94500", 13_000)
    assert szi(bus, VAULT) == lots("0.5")
    assert accounts(bus)[CAROL].positions["BTC"].szi == lots("1.5")
    last = [s for s in steps(bus, VAULT) if s.stage == "unwind"][-1]
    assert last.detail == "order iocCancelRejected: filled 0 of 12500"
    # what did not fill is not counted against the interval: 0.23545 + 0.17658 + 0.02977
    # BTC at 94,500
    (core,) = [c for c in liquidator_cores(bus) if c.unwinds.keys()]
    assert core.unwinds["BTC"].window_ntl == usd("41750.1")
    assert money(bus) == deposits
