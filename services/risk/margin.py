"""Margin: equity, initial and maintenance requirements, holds, all in micro-USDC.

Requirements round up (in the venue's favour), equity is exact. Until tiered tables
land (#5) a market has one tier: initial = notional / leverage and maintenance rate
= 1 / (2 x max leverage).
"""

from __future__ import annotations

from collections.abc import Mapping

from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.money import div_ceil, mul_ratio
from libs.common.state import AccountState, PositionState


def unrealized_pnl(pos: PositionState, mark_px: int) -> int:
    """Value at mark minus cost basis, signed by side."""
    value = abs(pos.szi) * mark_px
    return value - pos.entry_ntl if pos.szi > 0 else pos.entry_ntl - value


def initial_margin(notional: int, leverage: int) -> int:
    return div_ceil(notional, leverage)


def maintenance_margin(notional: int, spec: MarketSpec) -> int:
    return div_ceil(notional, 2 * spec.max_leverage)


def order_hold(spec: MarketSpec, leverage: int, px: int, sz: int, mark_px: int) -> int:
    """Initial margin at the worse of order price and mark, plus the taker fee."""
    notional = max(px, mark_px) * sz
    return initial_margin(notional, leverage) + mul_ratio(
        notional, spec.taker_fee_ppm, round_up=True
    )


class MarginView:
    """An account's margin at the current marks (positions without a mark use entry)."""

    def __init__(self, account: AccountState, marks: Mapping[str, int], markets: MarketRegistry):
        self.equity = account.collateral
        self.initial = 0
        self.maintenance = 0
        self.notional = 0
        for market, pos in sorted(account.positions.items()):
            if pos.szi == 0:
                continue
            spec = markets.by_name(market)
            mark = marks.get(market)
            # Without a mark yet, a position is worth its cost: no gain, no loss.
            notional = abs(pos.szi) * mark if mark else pos.entry_ntl
            self.notional += notional
            self.equity += unrealized_pnl(pos, mark) if mark else 0
            self.initial += initial_margin(notional, pos.leverage or spec.default_leverage)
            self.maintenance += maintenance_margin(notional, spec)
        self.holds = account.holds

    @property
    def available(self) -> int:
        """What new orders may reserve: equity less position margin and holds."""
        return self.equity - self.initial - self.holds

    @property
    def withdrawable(self) -> int:
        floor = max(self.initial, div_ceil(self.notional, 10))
        return max(0, self.equity - floor - self.holds)
