"""The liquidator's persisted state: a case, the vault's unwind of one market and what
the partition knows of the vault's capacity.

msgspec Struct classes cannot be compiled with mypyc, so they live here, in a plain
module, and the compiled modules (``cases``, ``waterfall``, ``adl``, ``unwind``: see
libs/common/native.py) import them.
"""

from __future__ import annotations

import msgspec

from libs.common.schemas import AdlCandidates, LiquidatedPosition, VaultMarketTerms


class LiquidationCase(msgspec.Struct, kw_only=True):
    """A liquidation in progress and what it waits for: an order's result
    (``pending_oid``), transfers to be seen filled (``awaiting``), the fund's answer
    (``claim``) or the ADL candidates of every risk partition (``adl_px`` set).
    ``asset_value`` is what the account's collateral assets count for; ``converted`` once
    the case asked risk to sell them (once per case). ``parked`` is the event time at
    which neither the vault nor ADL could take the case's positions (-1: not parked):
    it waits for a vault status with room for ``parked_need`` or for the cooldown.
    ``vault_requests`` are its takeovers' request ids, so a refused one is released.
    ``recovered``: a status said the account is no longer below maintenance while some
    of its transfers were still on their way; the case ends once they are in."""

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
    adl_at_mark: bool = False
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
    parked: int = -1
    parked_need: int = 0
    vault_requests: list[str] = msgspec.field(default_factory=list)
    recovered: bool = False


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


class VaultReservation(msgspec.Struct, kw_only=True):
    """A takeover this partition sent to the vault (the transfer's ``req_id``) and the
    headroom it uses (``need``), until a vault status reflects it."""

    req_id: str
    need: int


class VaultCapacity(msgspec.Struct, kw_only=True):
    """The vault's last status as this partition saw it (``known`` once one arrived):
    equity, maintenance, gross notional, the terms of each market, and ``applied``, how many of this
    partition's takeovers had landed on the vault. ``pending`` are the takeovers whose
    need is still reserved (largest need first; ``reserved`` is their sum): each status
    counting more of them landed releases as many, the smallest first, since it does not
    say which (the rest stay reserved: never less than what is really in flight)."""

    known: bool = False
    ts: int = -1
    equity: int = 0
    maintenance: int = 0
    notional: int = 0
    terms: list[VaultMarketTerms] = msgspec.field(default_factory=list)
    applied: int = 0
    pending: list[VaultReservation] = msgspec.field(default_factory=list)
    reserved: int = 0
