"""The liquidator's persisted state: a case and the vault's unwind of one market.

msgspec Struct classes cannot be compiled with mypyc, so they live here, in a plain
module, and the compiled modules (``cases``, ``waterfall``, ``adl``, ``unwind``: see
libs/common/native.py) import them.
"""

from __future__ import annotations

import msgspec

from libs.common.schemas import AdlCandidates, LiquidatedPosition


class LiquidationCase(msgspec.Struct, kw_only=True):
    """A liquidation in progress and what it waits for: an order's result
    (``pending_oid``), transfers to be seen filled (``awaiting``), the fund's answer
    (``claim``) or the ADL candidates of every risk partition (``adl_px`` set).
    ``asset_value`` is what the account's collateral assets count for; ``converted`` once
    the case asked risk to sell them (once per case)."""

    account: str
    opened: int
    equity: int
    maintenance: int
    market: str = ""
    case_id: str = ""
    triggers: int = 1
    stage: str = "triggered"
    collateral: int = 0
    positions: list[LiquidatedPosition] = msgspec.field(default_factory=list)
    pending_oid: int = 0
    pending_sz: int = 0
    last_slice_ts: int = -1
    book_failed: bool = False
    awaiting: int = 0
    claim: int = 0
    adl_market: str = ""
    adl_px: int = 0
    adl_answers: list[AdlCandidates] = msgspec.field(default_factory=list)
    adl_request: str = ""
    requests: int = 0
    credit_seen: bool = False
    debt_open: bool = False
    order_equity: int = 0
    window: int = -1
    window_ntl: int = 0
    held_window: int = -1
    steps: int = 0
    asset_value: int = 0
    converted: bool = False


class VaultUnwind(msgspec.Struct, kw_only=True):
    """The unwind of one market's vault position: the notional sent in the current
    interval (``window`` = event time // interval; what an order did not fill is given
    back), the order awaiting its result (``pending_mark``: the mark it was sent at) and
    when the last one went out (one per ``cooldown_ms``, so an empty book is not asked at
    every mark)."""

    market: str
    window: int = -1
    window_ntl: int = 0
    pending_oid: int = 0
    pending_sz: int = 0
    pending_mark: int = 0
    last_ts: int = -1
    orders: int = 0
    steps: int = 0
