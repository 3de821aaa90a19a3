"""Driving a risk core with the numbers a trader writes: prices, sizes and dollars as
decimal strings, converted exactly to the market's ticks, lots and micro-USDC."""

from __future__ import annotations

from typing import Any

from libs.common import topics
from libs.common.margin import AccountSummary
from libs.common.markets import MarketRegistry, load_markets
from libs.common.money import usd_to_units
from libs.common.schemas import (
    Deposit,
    FillLeg,
    FundingUpdate,
    MarkUpdate,
    NewOrder,
    OrderResult,
    PlaceOrder,
    Tif,
    Withdraw,
)
from libs.common.state import AccountState
from services.risk.config import RiskConfig
from services.risk.engine import RiskCore
from services.risk.ledger import VenueLedger
from tests.unit.cores import Driver, only

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ETH = MARKETS.by_name("ETH")
SOL = MARKETS.by_name("SOL")
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20


def usd(text: str) -> int:
    return usd_to_units(text)


def px(text: str, market: str = "BTC") -> int:
    return MARKETS.by_name(market).price_units(text)


def lots(text: str, market: str = "BTC") -> int:
    return MARKETS.by_name(market).size_units(text)


def risk(
    partition: int = 0, markets: MarketRegistry = MARKETS, config: RiskConfig | None = None
) -> Driver:
    return Driver(RiskCore(markets, partition, config), topics.RISK_IN, partition)


def core(driver: Driver) -> RiskCore:
    found = driver.core
    assert isinstance(found, RiskCore)
    return found


def account(driver: Driver, address: str) -> AccountState:
    return core(driver).accounts[address]


def ledger(driver: Driver) -> VenueLedger:
    return core(driver).venue


def summary(driver: Driver, address: str) -> AccountSummary:
    c = core(driver)
    marks = {m.market: m.mark_px for m in c.marks.values()}
    return AccountSummary(c.accounts[address], marks, c.markets)


def deposit(address: str, amount: str, ts: int = 1) -> Deposit:
    return Deposit(ts=ts, account=address, usd=usd(amount), req_id=f"dep-{address[:4]}")


def withdraw(address: str, amount: str) -> Withdraw:
    return Withdraw(ts=2, account=address, usd=usd(amount), req_id="wd")


def place(
    address: str,
    side: str,
    price: str,
    size: str,
    *,
    tif: Tif = "Gtc",
    reduce_only: bool = False,
    market: str = "BTC",
    cloid: str | None = "0x01",
    ts: int = 3,
    **fields: Any,
) -> PlaceOrder:
    spec = MARKETS.by_name(market)
    return PlaceOrder(
        ts=ts,
        account=address,
        market=market,
        is_buy=side == "buy",
        px=spec.price_units(price) if price != "0" else 0,
        sz=spec.size_units(size),
        tif=tif,
        reduce_only=reduce_only,
        cloid=cloid,
        req_id="place",
        **fields,
    )


def leg(
    address: str,
    side: str,
    price: str,
    size: str,
    *,
    maker: bool,
    oid: int = 99,
    tid: int = 1,
    closed: bool = False,
    market: str = "BTC",
    kind: str = "trade",
    ts: int = 4,
) -> FillLeg:
    spec = MARKETS.by_name(market)
    return FillLeg(
        ts=ts,
        account=address,
        market=market,
        oid=oid,
        is_buy=side == "buy",
        px=spec.price_units(price),
        sz=spec.size_units(size),
        is_maker=maker,
        tid=tid,
        order_closed=closed,
        kind=kind,
    )


def mark(
    price: str,
    market: str = "BTC",
    *,
    ts: int = 5,
    status: str = "valid",
    open_interest: int = 0,
    index: str | None = None,
) -> MarkUpdate:
    spec = MARKETS.by_name(market)
    mark_px = spec.price_units(price)
    return MarkUpdate(
        ts=ts,
        market=market,
        mark_px=mark_px,
        index_px=spec.price_units(index) if index else mark_px,
        oracle_status=status,
        open_interest=open_interest,
    )


def funding(rate_ppb: int, oracle: str, market: str = "BTC", ts: int = 3_600_000) -> FundingUpdate:
    spec = MARKETS.by_name(market)
    return FundingUpdate(
        ts=ts,
        market=market,
        rate_ppb=rate_ppb,
        mark_px=spec.price_units(oracle),
        cum_index=0,
        oracle_px=spec.price_units(oracle),
    )


def result(
    address: str,
    oid: int,
    status: str,
    filled: int = 0,
    resting: int = 0,
    *,
    req_id: str = "",
    price: int = 0,
    market: str = "BTC",
) -> OrderResult:
    return OrderResult(
        ts=6,
        account=address,
        market=market,
        oid=oid,
        status=status,
        filled_sz=filled,
        resting_sz=resting,
        req_id=req_id,
        px=price,
    )


def placed_oid(driver: Driver, order: PlaceOrder) -> int:
    """Place an order that must be accepted; returns its oid."""
    return only(driver.send(order), NewOrder).oid


def conserved(driver: Driver) -> int:
    """Accounts' equity at any common mark plus the ledger: deposits less withdrawals.

    Written with cost bases so it needs no mark: collateral and isolated margin less
    each position's signed cost basis (the positions of all accounts cancel at a
    common mark when their sizes sum to zero). The fee shares paid out to the insurance
    fund's and the vault's accounts are transfers in flight here (one partition)."""
    c = core(driver)
    total = c.venue.total + c.venue.insurance_paid + c.venue.vault_paid
    for acct in c.accounts.values():
        total += acct.collateral
        for pos in acct.positions.values():
            total += pos.isolated_margin - (pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl)
    return total
