"""Settling fills and funding into an account: collateral, isolated margin, totals.

A cross position settles against the account's collateral. An isolated position
settles against its own margin: when it grows, the initial margin for the added size
moves from collateral into it (the fee too is paid from collateral, both were held);
when it shrinks, its PnL and the closing fee settle against its margin and the closed
share of what is left returns to collateral. A loss beyond an isolated position's margin
never reaches collateral: it is written off to the ledger as bad debt for the insurance
fund (#6).
"""

from __future__ import annotations

from typing import NamedTuple

from libs.common.margin import PPB, initial_margin, margin_table
from libs.common.markets import MarketSpec
from libs.common.state import AccountState, LeverageSetting, PositionState
from services.risk.position import apply_fill


class FillOutcome(NamedTuple):
    """What a fill did: realized PnL, the position before it, and any isolated deficit
    written off."""

    closed_pnl: int
    start_position: int
    bad_debt: int


def open_position(market: str, setting: LeverageSetting, cum_index: int) -> PositionState:
    return PositionState(
        market=market,
        leverage=setting.leverage,
        is_cross=setting.is_cross,
        funding_index=cum_index,
    )


def settle_fill(
    acct: AccountState,
    spec: MarketSpec,
    setting: LeverageSetting,
    is_buy: bool,
    px: int,
    sz: int,
    fee: int,
    cum_index: int,
) -> FillOutcome:
    """Apply one fill leg of ``sz`` lots at ``px`` paying ``fee`` to the account."""
    market = spec.name
    pos = acct.positions.get(market)
    if pos is None:
        pos = acct.positions[market] = open_position(market, setting, cum_index)
    start = pos.szi
    closed = min(sz, abs(start)) if start and (start > 0) != is_buy else 0
    opened = sz - closed
    pnl = apply_fill(pos, is_buy, px, sz)
    bad_debt = 0
    if pos.is_cross:
        acct.collateral += pnl - fee
    else:
        closing_fee = fee * closed // sz
        if closed:
            pos.isolated_margin += pnl - closing_fee
            if closed == abs(start):
                released = pos.isolated_margin
            else:
                released = max(pos.isolated_margin, 0) * closed // abs(start)
            if released < 0:
                bad_debt, released = -released, 0
                pos.isolated_margin = 0
            pos.isolated_margin -= released
            acct.collateral += released
        if opened:
            leverage = min(
                pos.leverage or spec.default_leverage,
                margin_table(spec).max_leverage_at(abs(pos.szi) * px),
            )
            margin = initial_margin(px * opened, leverage)
            acct.collateral -= margin
            pos.isolated_margin += margin
        acct.collateral -= fee - closing_fee
    if start == 0 or (pos.szi != 0 and (pos.szi > 0) != (start > 0)):
        pos.funding.since_open = pos.funding.since_change = 0
        pos.funding_index = cum_index
    else:
        pos.funding.since_change = 0
    if pos.szi == 0:
        acct.positions.pop(market)
    return FillOutcome(pnl, start, bad_debt)


def funding_received(szi: int, index_delta: int) -> int:
    """What a position receives (negative: pays) for a move of the funding index:
    ``-szi x delta / 1e9`` micro-USDC, rounded down, so a payer pays the exact amount
    rounded up and a receiver gets it rounded down; the venue keeps the difference."""
    return (-szi * index_delta) // PPB


def settle_funding(pos: PositionState, acct: AccountState, cum_index: int) -> int:
    """Pay or receive funding up to ``cum_index``; returns what the account received."""
    received = funding_received(pos.szi, cum_index - pos.funding_index)
    pos.funding_index = cum_index
    if pos.is_cross:
        acct.collateral += received
    else:
        pos.isolated_margin += received
    totals = pos.funding
    totals.all_time += received
    totals.since_open += received
    totals.since_change += received
    return received
