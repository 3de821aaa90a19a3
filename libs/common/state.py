"""Schemas of the hot state that services keep in Redis and the gateway reads.

Risk writes these per account into its partition's state hash (field ``a:<address>``),
and the market's mark into every partition (field ``m:<market>``); the gateway decodes
them to answer ``/info`` without touching the state machines. Units as in schemas.py.
"""

from __future__ import annotations

import msgspec

ACCOUNT_PREFIX = "a:"
MARK_PREFIX = "m:"


class FundingTotals(msgspec.Struct, kw_only=True):
    """Funding received (positive) or paid (negative) in micro-USDC."""

    all_time: int = 0
    since_open: int = 0
    since_change: int = 0


class PositionState(msgspec.Struct, kw_only=True):
    """A position: signed size in lots and its exact cost basis in micro-USDC.

    ``isolated_margin`` is the margin fenced off for an isolated position (0 when
    cross); ``funding_index`` is the market's cumulative funding index at the position's
    last settlement. ``liquidating`` and ``margin_call_pct`` track an isolated position's
    own liquidation trigger and margin-call level (the cross account keeps its own)."""

    market: str
    szi: int = 0
    entry_ntl: int = 0
    leverage: int = 0
    realized_pnl: int = 0
    is_cross: bool = True
    isolated_margin: int = 0
    funding_index: int = 0
    funding: FundingTotals = msgspec.field(default_factory=FundingTotals)
    liquidating: bool = False
    margin_call_pct: int = 0


class PendingModify(msgspec.Struct, kw_only=True):
    """A modify sent to the matcher and not yet answered: the order's new terms."""

    req_id: str
    is_buy: bool
    px: int
    sz: int
    tif: str = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    hold_px: int = 0


class OpenOrderState(msgspec.Struct, kw_only=True):
    """An order risk accepted and the margin it holds while it rests.

    ``hold_px`` is the price the hold values the order at (the worse of its price and
    the mark when placed); ``kind``, ``trigger_px`` and ``tpsl`` describe trigger
    orders; a TP/SL child names its ``parent`` and is not ``placed`` until the parent
    fills; ``canceling`` marks an order whose margin cancel is on its way; ``modify``
    holds the terms of an unanswered modify."""

    oid: int
    market: str
    is_buy: bool
    px: int
    sz: int
    orig_sz: int
    hold: int
    filled_ntl: int = 0
    reduce_only: bool = False
    cloid: str | None = None
    ts: int = 0
    hold_px: int = 0
    kind: str = "limit"
    tif: str = "Gtc"
    trigger_px: int = 0
    tpsl: str = ""
    parent: int = 0
    placed: bool = True
    canceling: bool = False
    modify: PendingModify | None = None


class LeverageSetting(msgspec.Struct, frozen=True, kw_only=True):
    leverage: int
    is_cross: bool = True


class AccountState(msgspec.Struct, kw_only=True):
    """One account as risk keeps it. ``collateral`` is the cross balance (isolated margin
    lives on its position); fee rates are ppm, ``None`` meaning the market's default.
    ``margin_mode`` is ``cross`` or ``portfolio`` (``libs.common.portfolio``): how the
    cross positions' initial and maintenance requirements are computed. ``assets`` holds
    collateral other than USDC, in lots of the market of the same name
    (``libs.common.collateral``); ``collateral`` (USDC) may then go negative: a USDC
    liability that the assets back."""

    address: str
    collateral: int = 0
    positions: dict[str, PositionState] = msgspec.field(default_factory=dict)
    orders: dict[int, OpenOrderState] = msgspec.field(default_factory=dict)
    leverage: dict[str, LeverageSetting] = msgspec.field(default_factory=dict)
    taker_fee_ppm: int | None = None
    maker_fee_ppm: int | None = None
    margin_call_pct: int = 0
    liquidating: bool = False
    updated: int = 0
    margin_mode: str = "cross"
    assets: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def holds(self) -> int:
        return sum(o.hold for o in self.orders.values())


class MarkState(msgspec.Struct, kw_only=True):
    """A market as risk last saw it. ``cum_funding_index`` is risk's own cumulative
    index, the sum over settlements of ``rate_ppb * oracle_px`` (what a lot pays, in
    1e-9 micro-USDC); ``open_interest`` is in lots, one side."""

    market: str
    mark_px: int
    index_px: int
    ts: int
    cum_funding_index: int = 0
    oracle_status: str = "valid"
    open_interest: int = 0


ORDER_SLOTS = 16  # a place action gives oids to an order and up to 15 TP/SL children
MAX_PARTITIONS = 1024


def order_id(offset: int, partition: int, slot: int = 0) -> int:
    """The deterministic oid of an order placed by the risk.in record at ``offset`` of
    ``partition``: unique across partitions, and the same on every replay."""
    return (offset * ORDER_SLOTS + slot) * MAX_PARTITIONS + partition


LIQUIDATION_OID_BIT = 1 << 62  # oids of the liquidator's orders: disjoint from risk's


def liquidation_order_id(offset: int, partition: int, slot: int = 0) -> int:
    """The oid of a liquidation order emitted by the liquidations record at ``offset`` of
    ``partition``: risk's scheme with a high bit set, so the two never collide."""
    return LIQUIDATION_OID_BIT | order_id(offset, partition, slot)


def is_liquidation_order(oid: int) -> bool:
    return bool(oid & LIQUIDATION_OID_BIT)


# The venue's own accounts in risk: the insurance fund (liquidation fees, its share of
# trading fees) and the LP-funded backstop vault that takes positions over at the mark.
INSURANCE_FUND_ACCOUNT = "0x" + "00" * 19 + "f1"
BACKSTOP_VAULT_ACCOUNT = "0x" + "00" * 19 + "b1"
VENUE_ACCOUNTS = frozenset({INSURANCE_FUND_ACCOUNT, BACKSTOP_VAULT_ACCOUNT})

VAULT_PREFIX = "vault:"


class VaultStake(msgspec.Struct, kw_only=True):
    """One LP's stake in a vault: its shares, the event time its last deposit unlocks,
    when it first entered, and the micro-USDC it has put in and taken out (for PnL)."""

    shares: int = 0
    locked_until: int = 0
    entered: int = 0
    deposited: int = 0
    withdrawn: int = 0


class VaultShares(msgspec.Struct, kw_only=True):
    """The LP ledger of a vault account, kept by the vault's own risk partition (field
    ``vault:<address>``). NAV per share = the vault account's value at its marks /
    ``total_shares``; ``stakes[vault]`` is the venue's own stake (the vault's equity
    before its first LP deposit)."""

    vault: str
    total_shares: int = 0
    stakes: dict[str, VaultStake] = msgspec.field(default_factory=dict)
    updated: int = 0

    def worth(self, shares: int, equity: int) -> int:
        """What ``shares`` are worth at a vault equity, rounded down (the vault's way);
        nothing when the vault has no shares or no equity."""
        if self.total_shares <= 0 or equity <= 0:
            return 0
        return shares * equity // self.total_shares


L2_PREFIX = "l2:"
MARKET_CTX_PREFIX = "ctx:"
MARKET_SPEC_PREFIX = "spec:"  # a MarketSpec changed at run time (absent: the table's)
L2_DEPTH = 20


class L2View(msgspec.Struct, kw_only=True):
    """Top levels per side, as (price, size, orders) triples, best first.

    Written by the market's matcher (field ``l2:<market>`` of its partition's state hash)
    after every batch that changed the book."""

    market: str
    seq: int
    ts: int
    bids: list[tuple[int, int, int]]
    asks: list[tuple[int, int, int]]


class MarketContext(msgspec.Struct, kw_only=True):
    """A market's live context (``ctx:<market>``): prices, funding, open interest, state."""

    market: str
    ts: int = 0
    mark_px: int = 0
    index_px: int = 0
    mid_px: int = 0
    last_px: int = 0
    impact_bid_px: int = 0
    impact_ask_px: int = 0
    premium_ppb: int = 0
    funding_rate_ppb: int = 0
    cum_funding_index: int = 0
    open_interest: int = 0
    state: str = "open"
    oracle_status: str = "valid"
