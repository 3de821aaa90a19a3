"""The vault's risk partition tells every liquidator partition what the vault can carry.

$100,000 lands on the vault: a status with that equity and no maintenance. It takes
1 BTC over from Carol at the mark of 100,000: equity unchanged, maintenance 1% of
$100,000 (BTC's 50x tier) = $1,000, notional $100,000, and one takeover counted for
Carol's liquidator partition. The mark falls to 98,000: equity $98,000, maintenance $980,
notional $98,000. A mark that
changes nothing, or a fill of another account, sends nothing."""

from __future__ import annotations

from libs.common import topics
from libs.common.schemas import Deposit, FillLeg, MarkUpdate, VaultMarketTerms, VaultStatus
from libs.common.topics import partition_for
from services.risk.engine import RiskCore
from tests.unit.cores import Bus, of_type
from tests.unit.risk.support import ALICE, BOB, CAROL, MARKETS, lots, px, usd
from tests.unit.risk.test_vault import VAULT, broadcast, send, venue


def statuses(bus: Bus, start: int) -> list[VaultStatus]:
    return of_type(bus.log[start:], VaultStatus)


def mark(bus: Bus, price: str, ts: int) -> None:
    broadcast(bus, MarkUpdate(ts=ts, market="BTC", mark_px=px(price), index_px=px(price)))


def test_the_vault_partition_reports_equity_maintenance_and_takeovers() -> None:
    bus = venue()
    for who in (ALICE, BOB):
        send(bus, who, Deposit(ts=1, account=who, usd=usd("10000")))
    mark(bus, "100000", 2)
    start = len(bus.log)
    send(bus, VAULT, Deposit(ts=3, account=VAULT, usd=usd("100000")))
    (first,) = {(s.equity, s.maintenance, s.takeovers) for s in statuses(bus, start)}
    assert first == (usd("100000"), 0, ())
    # one copy per liquidator partition, from the vault's risk partition
    copies = [o for o in bus.log[start:] if isinstance(o.message, VaultStatus)]
    assert sorted(o.partition for o in copies) == [0, 1, 2, 3]
    terms = {t.market: t for t in copies[0].message.terms}
    assert terms["BTC"] == VaultMarketTerms(market="BTC", maintenance_ppm=50_000, fee_ppm=0)

    start = len(bus.log)
    for who, buys, other in ((VAULT, True, CAROL), (CAROL, False, VAULT)):
        leg = FillLeg(
            ts=4,
            account=who,
            market="BTC",
            oid=0,
            is_buy=buys,
            px=px("100000"),
            sz=lots("1"),
            is_maker=who == VAULT,
            tid=7,
            order_closed=False,
            kind="backstop",
            counterparty=other,
        )
        send(bus, who, leg)
    (after_fill,) = {
        (s.equity, s.maintenance, s.notional, s.takeovers) for s in statuses(bus, start)
    }
    counted = [0, 0, 0, 0]
    counted[partition_for(CAROL, 4)] = 1
    assert (
        after_fill
        == (
            usd("100000"),
            usd("1000"),
            usd("100000"),  # 1 BTC at the mark
            tuple(counted[: partition_for(CAROL, 4) + 1]),
        )
    )

    start = len(bus.log)
    mark(bus, "98000", 5)
    (after_mark,) = {(s.ts, s.equity, s.maintenance, s.notional) for s in statuses(bus, start)}
    assert after_mark == (5, usd("98000"), usd("980"), usd("98000"))

    start = len(bus.log)
    mark(bus, "98000", 6)  # nothing changed
    send(
        bus,
        ALICE,
        FillLeg(
            ts=7,
            account=ALICE,
            market="BTC",
            oid=0,
            is_buy=True,
            px=px("98000"),
            sz=lots("0.01"),
            is_maker=False,
            tid=8,
            order_closed=False,
            kind="backstop",
            counterparty=BOB,
        ),
    )
    assert statuses(bus, start) == []


def test_the_reported_state_survives_a_restart_of_the_vault_partition() -> None:
    bus = venue()
    send(bus, VAULT, Deposit(ts=1, account=VAULT, usd=usd("100000")))
    partition = partition_for(VAULT, 4)
    driver = bus.drivers[(topics.RISK_IN, partition)]
    driver.commit()
    restarted = driver.restarted(lambda p: RiskCore(MARKETS, p))
    core: RiskCore = restarted.core  # type: ignore[assignment]
    assert core.venue.vault_reported[:2] == [usd("100000"), 0]
    # the same deposit state: a repeated check sends nothing
    assert of_type(restarted.send(Deposit(ts=2, account=VAULT, usd=0)), VaultStatus) == []
