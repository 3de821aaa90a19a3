"""Margin for risk's decisions: the venue's shared formulas (``libs.common.margin``),
so risk decides with exactly the numbers the gateway shows."""

from __future__ import annotations

from libs.common.margin import (
    AccountSummary,
    MarginTable,
    PositionTerms,
    chosen_leverage,
    fee_amount,
    hold_price,
    initial_margin,
    liquidation_price,
    maintenance_margin,
    margin_table,
    order_hold,
    position_terms,
    signed_basis,
    summarize,
    unrealized_pnl,
)

__all__ = [
    "AccountSummary",
    "MarginTable",
    "PositionTerms",
    "chosen_leverage",
    "fee_amount",
    "hold_price",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
    "margin_table",
    "order_hold",
    "position_terms",
    "signed_basis",
    "summarize",
    "unrealized_pnl",
]
