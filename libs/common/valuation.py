"""An account valued at given prices as risk decides on it, for what-if questions.

The same formulas risk's decisions use (``libs.common.margin`` for positions and
liquidation prices, ``libs.common.collateral`` for collateral assets at their haircut,
``libs.common.portfolio`` for a portfolio-margin account's requirement), and the same
trigger rule (``margin.below_maintenance``): the cross account is liquidated when its
equity falls below its maintenance requirement (or, with no cross position left, when
its USDC is below zero behind collateral assets: ``collateral.liability_on_assets``, a
case that sells them), an isolated position when its own margin plus unrealized PnL
does. At the current marks and oracle prices every number
equals what ``clearinghouseState`` reports. Money is integer micro-USDC.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import NamedTuple

from libs.common.collateral import liability_on_assets
from libs.common.margin import below_maintenance
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.portfolio import cross_terms, price_move, scenario_grid
from libs.common.state import AccountState


class PositionValue(NamedTuple):
    """One position at the prices: what it is measured against and whether it fails.

    ``equity`` and ``maintenance`` are the cross account's for a cross position (they
    fall together) and the position's own for an isolated one."""

    spec: MarketSpec
    szi: int
    is_cross: bool
    mark_px: int  # the price it was valued at; 0 when the market has none (at cost)
    entry_ntl: int
    value: int  # notional at the mark
    upnl: int
    maintenance_own: int  # this position's maintenance alone
    liquidation_px: Fraction | None
    equity: int
    maintenance: int
    liquidated: bool


class AccountValue(NamedTuple):
    """The account at the prices: cross equity (collateral assets included at their
    haircut), the cross requirements (portfolio ones in portfolio mode), withdrawable,
    and each position in universe order."""

    equity: int
    initial: int
    maintenance: int
    withdrawable: int
    account_value: int
    margin_used: int
    liquidated: bool
    positions: tuple[PositionValue, ...]


def account_value(
    account: AccountState | None,
    marks: Mapping[str, int],
    markets: MarketRegistry,
    prices: Mapping[str, tuple[int, bool]],
) -> AccountValue:
    """``marks``: each market's mark in ticks; ``prices``: each market's oracle price in
    ticks and whether it is valid (collateral assets are valued at it)."""
    acct = account or AccountState(address="")
    summary, assets, initial, maintenance, withdrawable = cross_terms(acct, marks, markets, prices)
    equity = summary.cross_equity + assets.equity
    crossed = any(p.szi and p.is_cross for p in acct.positions.values())
    cross_liquidated = below_maintenance(equity, maintenance) or liability_on_assets(
        acct.collateral, assets.equity, crossed
    )
    positions = []
    for row in summary.positions:
        if row.pos.is_cross:
            own_equity, own_maintenance, failed = equity, maintenance, cross_liquidated
        else:
            own_equity, own_maintenance = row.margin_used, row.terms.maintenance
            failed = below_maintenance(own_equity, own_maintenance)
        positions.append(
            PositionValue(
                spec=row.spec,
                szi=row.pos.szi,
                is_cross=row.pos.is_cross,
                mark_px=marks.get(row.spec.name) or 0,
                entry_ntl=row.pos.entry_ntl,
                value=row.terms.notional,
                upnl=row.upnl,
                maintenance_own=row.terms.maintenance,
                liquidation_px=row.liquidation_px,
                equity=own_equity,
                maintenance=own_maintenance,
                liquidated=failed,
            )
        )
    return AccountValue(
        equity=equity,
        initial=initial,
        maintenance=maintenance,
        withdrawable=withdrawable,
        account_value=summary.account_value + assets.equity,
        margin_used=initial + summary.isolated_margin_used,
        liquidated=cross_liquidated,
        positions=tuple(positions),
    )


def scenario_names(markets: MarketRegistry) -> list[str]:
    """The named moves a what-if may pick: the portfolio-margin grid's scenarios."""
    return [scenario.name for scenario in scenario_grid(markets).scenarios]


def scenario_marks(marks: Mapping[str, int], markets: MarketRegistry, name: str) -> dict[str, int]:
    """Every mark moved by the grid scenario ``name`` (each market by its own shock, in
    ticks rounded away from zero as the portfolio requirement moves them)."""
    grid = scenario_grid(markets)
    for scenario in grid.scenarios:
        if scenario.name == name:
            moved = dict(marks)
            for spec, ppm in zip(markets, scenario.moves_ppm, strict=True):
                px = marks.get(spec.name)
                if px:
                    moved[spec.name] = max(1, px + price_move(px, ppm))
            return moved
    raise ValueError(f"unknown scenario {name!r}")


__all__ = ["AccountValue", "PositionValue", "account_value", "scenario_marks", "scenario_names"]
