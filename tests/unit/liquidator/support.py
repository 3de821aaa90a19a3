"""The whole waterfall in-process: risk, matcher and liquidator cores on every partition
of their input logs, wired by the in-memory bus with the production partitioner."""

from __future__ import annotations

from libs.common import topics
from libs.common.markets import load_markets
from libs.common.money import usd_to_units
from libs.common.schemas import (
    Deposit,
    LiquidationStep,
    MarkUpdate,
    OrderUpdate,
    PlaceOrder,
    Tif,
    UpdateLeverage,
)
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    AccountState,
)
from libs.common.topics import partition_for
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from services.matcher.engine import MatcherCore
from services.risk.config import RiskConfig
from services.risk.engine import RiskCore
from tests.unit.cores import Bus, of_type

MARKETS = load_markets()
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
DAVE = "0x" + "d4" * 20
FUND = INSURANCE_FUND_ACCOUNT
VAULT = BACKSTOP_VAULT_ACCOUNT

# One key per risk.in partition, so a mark can reach all of them as the matcher's does.
PARTITION_KEYS = {partition_for(f"k{i}", 4): f"k{i}" for i in range(64)}


def usd(text: str) -> int:
    return usd_to_units(text)


def px(text: str, market: str = "BTC") -> int:
    return MARKETS.by_name(market).price_units(text)


def lots(text: str, market: str = "BTC") -> int:
    return MARKETS.by_name(market).size_units(text)


def exchange(config: LiquidatorConfig | None = None, risk: RiskConfig | None = None) -> Bus:
    bus = Bus()
    bus.attach(topics.RISK_IN, lambda p: RiskCore(MARKETS, p, risk))
    bus.attach(topics.MATCHER_IN, lambda p: MatcherCore(MARKETS, p))
    bus.attach(topics.LIQUIDATIONS, lambda p: LiquidatorCore(p, config))
    return bus


def deposit(bus: Bus, account: str, amount: str) -> None:
    bus.publish(topics.RISK_IN, account, Deposit(ts=0, account=account, usd=usd(amount)))


def isolated(bus: Bus, account: str, market: str, leverage: int) -> None:
    msg = UpdateLeverage(ts=0, account=account, market=market, leverage=leverage, is_cross=False)
    bus.publish(topics.RISK_IN, account, msg)


def place(
    bus: Bus,
    account: str,
    side: str,
    price: str,
    size: str,
    *,
    market: str = "BTC",
    tif: Tif = "Gtc",
    ts: int = 1,
) -> OrderUpdate:
    req = f"{account[-4:]}-{len(bus.log)}"
    msg = PlaceOrder(
        ts=ts,
        account=account,
        market=market,
        is_buy=side == "buy",
        px=px(price, market),
        sz=lots(size, market),
        tif=tif,
        req_id=req,
    )
    outs = bus.publish(topics.RISK_IN, account, msg)
    (answer,) = [u for u in of_type(outs, OrderUpdate) if u.req_id == req]
    return answer


def mark(bus: Bus, price: str, ts: int, market: str = "BTC") -> list[LiquidationStep]:
    """The matcher's mark to every risk partition; returns the audit steps it caused."""
    start = len(bus.log)
    for partition in range(4):
        key = PARTITION_KEYS[partition]
        msg = MarkUpdate(ts=ts, market=market, mark_px=px(price, market), index_px=0)
        bus.publish(topics.RISK_IN, key, msg)
    return of_type(bus.log[start:], LiquidationStep)


def risk_cores(bus: Bus) -> list[RiskCore]:
    return [
        d.core  # type: ignore[misc]
        for (topic, _), d in sorted(bus.drivers.items())
        if topic == topics.RISK_IN
    ]


def accounts(bus: Bus) -> dict[str, AccountState]:
    found: dict[str, AccountState] = {}
    for core in risk_cores(bus):
        found.update({a: core.accounts[a] for a in core.accounts.keys()})
    return found


def collateral(bus: Bus, account: str) -> int:
    acct = accounts(bus).get(account)
    return acct.collateral if acct else 0


def szi(bus: Bus, account: str, market: str = "BTC") -> int:
    acct = accounts(bus).get(account)
    pos = acct.positions.get(market) if acct else None
    return pos.szi if pos else 0


def money(bus: Bus) -> int:
    """Every micro-dollar in the system: accounts (trader, vault, fund, counterparties)
    with their positions at cost, and the fee and residual accounts of every partition.
    Equals deposits less withdrawals when nothing is in flight."""
    total = 0
    for core in risk_cores(bus):
        total += core.venue.total
        for acct in core.accounts.values():
            total += acct.collateral
            for pos in acct.positions.values():
                basis = pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl
                total += pos.isolated_margin - basis
    return total


def bad_debt(bus: Bus) -> int:
    return sum(core.venue.bad_debt for core in risk_cores(bus))


def open_cases(bus: Bus) -> list[str]:
    found: list[str] = []
    for (topic, _), d in sorted(bus.drivers.items()):
        if topic == topics.LIQUIDATIONS:
            core: LiquidatorCore = d.core  # type: ignore[assignment]
            found.extend(core.cases.keys())
    return found


def steps(bus: Bus, account: str | None = None) -> list[LiquidationStep]:
    found = of_type(bus.log, LiquidationStep)
    return [s for s in found if account is None or s.account == account]
