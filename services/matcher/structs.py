"""The matcher's msgspec structs: resting orders, triggers, snapshots and clock state.

They live apart from the logic because the logic modules may be compiled with mypyc
(see libs/common/native.py), and mypyc cannot compile a msgspec Struct class:
this module always runs as plain Python, compiled or not.
"""

from __future__ import annotations

import msgspec

from libs.common.markets import MarketParams
from libs.common.schemas import ChildOrder

VALID = "valid"


class OrderRecord(msgspec.Struct, kw_only=True):
    """A resting order as persisted (the book's ``RestingOrder``, field for field)."""

    oid: int
    account: str
    is_buy: bool
    px: int
    sz: int
    orig_sz: int
    ts: int
    cloid: str | None = None
    reduce_only: bool = False
    filled_ntl: int = 0
    seq: int = 0  # rest order within the book: a level's queue is rebuilt in this order


class MarkState(msgspec.Struct, kw_only=True):
    ema_basis: int = 0  # EMA of (mid - oracle), in micro-ticks
    ema_ts: int = 0  # event time of the last EMA sample; 0 before the first


class FundingState(msgspec.Struct, kw_only=True):
    next_sample_ts: int = 0
    next_funding_ts: int = 0
    premium_sum: int = 0
    samples: int = 0
    last_premium_ppb: int = 0
    rate_ppb: int = 0
    recent_rates: list[int] = msgspec.field(default_factory=list)
    cum_index: int = 0


class TriggerOrder(msgspec.Struct, kw_only=True):
    """A stop-loss or take-profit waiting off the book for the mark to cross its trigger."""

    oid: int
    account: str
    is_buy: bool
    px: int
    sz: int
    trigger_px: int
    tpsl: str
    is_market: bool
    reduce_only: bool
    position_tpsl: bool
    ts: int
    cloid: str | None = None

    def fires_at(self, mark: int) -> bool:
        # A sell protects a long: its stop fires as the price falls, its target as it rises.
        rising = (self.tpsl == "tp") != self.is_buy
        return mark >= self.trigger_px if rising else mark <= self.trigger_px


class PendingChildren(msgspec.Struct, kw_only=True):
    """TP/SL orders of a normalTpsl parent, placed once the parent has filled."""

    account: str
    children: list[ChildOrder]


class MarketSnapshot(msgspec.Struct, kw_only=True):
    """Everything a market's engine needs to continue exactly where it was."""

    market: str
    orders: list[OrderRecord]
    triggers: list[TriggerOrder]
    pending: dict[int, PendingChildren]
    positions: dict[str, int]
    mark: MarkState
    funding: FundingState
    index_px: int = 0
    mark_px: int = 0
    last_px: int = 0
    external_mid: int = 0
    next_tid: int = 1
    seq: int = 0
    halted: bool = False
    oracle_status: str = VALID
    last_snapshot_ts: int = 0
    ts: int = 0
    book_ts: int = 0
    overrides: MarketParams = msgspec.field(default_factory=MarketParams)  # run-time changes
    # The book's next rest sequence number; 0 in the old single-field layout, whose orders
    # carry no sequence numbers and are listed in priority order.
    order_seq: int = 0


class Schedules(msgspec.Struct, kw_only=True):
    """Dead man's switches: the event time at which each account's orders are canceled."""

    at: dict[str, int] = msgspec.field(default_factory=dict)
