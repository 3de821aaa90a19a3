"""A crash through the whole waterfall: 10,000 leveraged longs and a 10% drop in one
second.

    python -m bench.liquidator [--quick] [--accounts N] [--drop-pct P] [--vault-usd V]
                               [--vault-safety-ppm S] [--vault-stress-ppm M]

Every partition of risk, matcher and liquidator runs as its pure core, in-process, wired
by the in-memory bus (FIFO, the production partitioner): no Kafka, so this measures the
decisions and the messages between them, not the transport. Setup (not timed): N long
traders (leverage 5x-45x, so some stay safe, some go into the book, some to the
backstop, some below zero), 40 shorts that sold them the position at 100,000 (the ADL
counterparties), a market maker with a thin ladder of bids, a funded insurance fund and
backstop vault. Then, timed: the BTC mark falls by ``P``% in ten steps of 100 ms, and
holds at the bottom, one mark a second, until no case is open and every account is
above maintenance or flat.

The garbage collector is set up as the services set it up (``libs/common/runtime/heap.py``:
larger thresholds, the state built by the setup frozen before the crash, as a service
freezes its state once restored).

Reported: cases and the records processed, liquidations per second (cases opened and
finished, per second of processing), the event time until everything is back above
maintenance or closed, each stage's count, and the bad debt left. Last line:
``liquidations_per_sec=<n>``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from libs.common import topics
from libs.common.markets import load_markets
from libs.common.runtime import heap
from libs.common.schemas import (
    Deposit,
    LiquidationStep,
    LiquidationTrigger,
    MarkUpdate,
    PlaceOrder,
    UpdateLeverage,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT, INSURANCE_FUND_ACCOUNT
from libs.common.topics import partition_for
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from services.matcher.engine import MatcherCore
from services.risk.engine import RiskCore
from tests.unit.cores import Bus

MARKETS = load_markets()
START_PX = 1_000_000  # 100000.0
USD = 1_000_000
KEYS = {partition_for(f"k{i}", 4): f"k{i}" for i in range(64)}


def exchange(config: LiquidatorConfig | None = None) -> Bus:
    bus = Bus()
    bus.attach(topics.RISK_IN, lambda p: RiskCore(MARKETS, p))
    bus.attach(topics.MATCHER_IN, lambda p: MatcherCore(MARKETS, p))
    bus.attach(topics.LIQUIDATIONS, lambda p: LiquidatorCore(p, config))
    return bus


def mark(bus: Bus, px: int, ts: int) -> None:
    for partition in range(4):
        msg = MarkUpdate(ts=ts, market="BTC", mark_px=px, index_px=0)
        bus.publish(topics.RISK_IN, KEYS[partition], msg)


def order(account: str, is_buy: bool, px: int, sz: int, tif: str = "Gtc") -> PlaceOrder:
    return PlaceOrder(
        ts=1,
        account=account,
        market="BTC",
        is_buy=is_buy,
        px=px,
        sz=sz,
        tif=tif,  # type: ignore[arg-type]
    )


def setup(
    accounts: int,
    seed: int,
    vault_usd: int = 500_000_000,
    config: LiquidatorConfig | None = None,
) -> tuple[Bus, list[str]]:
    rng = random.Random(seed)
    bus = exchange(config)
    longs = [f"0x{rng.getrandbits(160):040x}" for _ in range(accounts)]
    shorts = [f"0x{rng.getrandbits(160):040x}" for _ in range(40)]
    maker = f"0x{rng.getrandbits(160):040x}"
    for who, usd in (
        (INSURANCE_FUND_ACCOUNT, 50_000),
        (BACKSTOP_VAULT_ACCOUNT, vault_usd),
        (maker, 1_000_000_000),
    ):
        bus.publish(topics.RISK_IN, who, Deposit(ts=1, account=who, usd=usd * USD))
    mark(bus, START_PX, 1)
    sizes = [rng.randint(1, 30) * 1_000 for _ in longs]  # 0.01-0.3 BTC
    per_short = -(-sum(sizes) // len(shorts))
    for who in shorts:
        cash = per_short * START_PX // rng.randint(3, 15)
        bus.publish(topics.RISK_IN, who, Deposit(ts=1, account=who, usd=cash))
        bus.publish(topics.RISK_IN, who, order(who, False, START_PX, per_short))
    for who, sz in zip(longs, sizes, strict=True):
        leverage = rng.randint(5, 45)
        cash = sz * START_PX // leverage + sz * START_PX // 1000
        bus.publish(topics.RISK_IN, who, Deposit(ts=1, account=who, usd=cash))
        change = UpdateLeverage(ts=1, account=who, market="BTC", leverage=50, is_cross=True)
        bus.publish(topics.RISK_IN, who, change)
        bus.publish(topics.RISK_IN, who, order(who, True, START_PX, sz, "Ioc"))
    for step in range(1, 60):  # a thin ladder: 0.5 BTC every 0.25% under the start
        bus.publish(topics.RISK_IN, maker, order(maker, True, START_PX - step * 2_500, 50_000))
    bus.log.clear()
    return bus, longs


def risk_cores(bus: Bus) -> list[RiskCore]:
    found = []
    for (topic, _), driver in sorted(bus.drivers.items()):
        if topic == topics.RISK_IN:
            assert isinstance(driver.core, RiskCore)
            found.append(driver.core)
    return found


def open_cases(bus: Bus) -> int:
    count = 0
    for (topic, _), driver in bus.drivers.items():
        if topic == topics.LIQUIDATIONS:
            assert isinstance(driver.core, LiquidatorCore)
            count += len(driver.core.cases)
    return count


def below_maintenance(bus: Bus) -> int:
    """Accounts with a position and equity under maintenance (cross or isolated)."""
    count = 0
    for core in risk_cores(bus):
        ex = core.exposures
        for address in core.accounts.keys():
            acct = core.accounts[address]
            if not acct.positions or address in (BACKSTOP_VAULT_ACCOUNT,):
                continue
            row = ex.row(address)
            if ex.equity(row) < int(ex.maintenance[row]):
                count += 1
    return count


def bad_debt(bus: Bus) -> int:
    """Losses nobody covered: written-off isolated deficits and negative balances of
    accounts with nothing left to liquidate."""
    total = 0
    for core in risk_cores(bus):
        total += core.venue.bad_debt
        for acct in core.accounts.values():
            if not acct.positions and acct.collateral < 0:
                total -= acct.collateral
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 accounts")
    parser.add_argument("--accounts", type=int, default=0)
    parser.add_argument("--drop-pct", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--vault-usd", type=int, default=500_000_000, help="the vault's funds")
    parser.add_argument(
        "--vault-safety-ppm",
        type=int,
        default=LiquidatorConfig().vault_safety_ppm,
        help="takeovers keep the vault's equity at this multiple of its maintenance (ppm)",
    )
    parser.add_argument(
        "--vault-stress-ppm",
        type=int,
        default=LiquidatorConfig().vault_stress_ppm,
        help="...after a move of this much against its positions (ppm, 0: none)",
    )
    args = parser.parse_args()
    accounts = args.accounts or (2_000 if args.quick else 10_000)

    heap.tune()
    started = time.perf_counter()
    config = LiquidatorConfig(
        vault_safety_ppm=args.vault_safety_ppm, vault_stress_ppm=args.vault_stress_ppm
    )
    bus, _ = setup(accounts, args.seed, args.vault_usd, config)
    took = time.perf_counter() - started
    print(f"setup: {accounts} longs, 40 shorts and a bid ladder in {took:.1f} s")
    heap.settle()

    bottom = START_PX * (100 - args.drop_pct) // 100
    ts = 1_000
    began = time.perf_counter()
    for step in range(1, 11):  # the crash: ten marks in one second
        mark(bus, START_PX - (START_PX - bottom) * step // 10, ts)
        ts += 100
    settled_ts = ts
    rounds = 0
    while (open_cases(bus) or below_maintenance(bus)) and rounds < 120:
        ts += 1_000
        mark(bus, bottom, ts)
        settled_ts = ts
        rounds += 1
    elapsed = time.perf_counter() - began

    triggers = sum(isinstance(o.message, LiquidationTrigger) for o in bus.log)
    stages = Counter(
        o.message.stage
        for o in bus.log
        if isinstance(o.message, LiquidationStep) and o.message.account == o.key.decode()
    )
    records = len(bus.log)
    print(f"crash: BTC -{args.drop_pct}% in 1 s, then one mark a second at the bottom")
    print(f"liquidation cases: {triggers}; records processed: {records} in {elapsed:.2f} s")
    print("steps: " + ", ".join(f"{k}={stages[k]}" for k in sorted(stages)))
    print(f"open cases at the end: {open_cases(bus)}; below maintenance: {below_maintenance(bus)}")
    print(f"event time until all above maintenance or closed: {settled_ts - 1_000} ms")
    fund = vault = vault_maintenance = 0
    for core in risk_cores(bus):
        if INSURANCE_FUND_ACCOUNT in core.accounts:
            fund = core.accounts[INSURANCE_FUND_ACCOUNT].collateral
        if BACKSTOP_VAULT_ACCOUNT in core.accounts:
            vault_acct = core.accounts[BACKSTOP_VAULT_ACCOUNT]
            row = core.exposures.row(vault_acct.address)
            vault = core.exposures.equity(row)
            vault_maintenance = core.exposures.maintenance_of(row)
    print(
        f"insurance fund: ${fund / USD:,.2f}; vault equity: ${vault / USD:,.2f}"
        f" (maintenance ${vault_maintenance / USD:,.2f})"
    )
    print(f"bad_debt_usd={bad_debt(bus) / USD:.6f}")
    print(f"liquidations_per_sec={triggers / elapsed:.0f}")


if __name__ == "__main__":
    main()
