"""Portfolio margin: the requirement of a set of positions as their worst loss over a
grid of price scenarios, shared by risk (its decisions) and the gateway (its views).

The grid (``MarketRegistry.portfolio`` and each market's ``pm_*`` parameters) holds,
for every shock step ``k`` (a percentage of the market's volatility) and both signs:

- ``all+k`` / ``all-k``: every market moves together by its own shock;
- ``<M>+k`` / ``<M>-k``: market ``M`` moves by its shock and every other market follows
  in the same direction by its own shock times the pair's correlation (the product of
  both markets' correlations with the market-wide factor, a one-factor model).

The ``stress`` case breaks the correlations: every market moves against the position by
its stress shock, no leg offsets another, and the cross maintenance of the positions at
those prices is added. The requirement is

    initial     = max(worst grid loss, stress, sum of floors) + provision
    maintenance = max(ceil(initial x maintenance_ppm / 1e6), cross maintenance)

where a position's floor (its minimum delta requirement) is its initial margin at the
highest leverage its tier allows, and the provision is the taker fee to close plus the
market's funding provision. Moves are integer ppm; a move in ticks is
``ceil(px x |ppm| / 1e6)`` with the move's sign; a scenario's P&L is ``sum(szi x move)``
micro-USDC exactly. See docs/risk.md for the worked numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from libs.common.collateral import AssetValues, asset_values, haircut_value
from libs.common.margin import (
    PPM,
    TRANSFER_MARGIN_DIVISOR,
    AccountSummary,
    clearinghouse_state,
    margin_table,
)
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.money import div_ceil, format_usd
from libs.common.state import AccountState

CROSS = "cross"
PORTFOLIO = "portfolio"
MARGIN_MODES = (CROSS, PORTFOLIO)
STRESS = "stress"
FLOOR = "floor"


class Scenario(NamedTuple):
    """A named move of every market of the registry, in signed ppm (registry order)."""

    name: str
    moves_ppm: tuple[int, ...]


class ScenarioGrid(NamedTuple):
    """The grid of a registry: its scenarios, and each market's stress shock in ppm."""

    scenarios: tuple[Scenario, ...]
    stress_ppm: tuple[int, ...]
    maintenance_ppm: int


_GRIDS: dict[tuple[object, ...], ScenarioGrid] = {}


def scenario_grid(markets: MarketRegistry) -> ScenarioGrid:
    """The registry's scenarios in a fixed order: correlated moves by step and sign,
    then each market's own moves (with the others following) by step and sign."""
    grid = markets.portfolio
    specs = list(markets)
    key = (grid, *((s.name, s.pm_volatility_ppm, s.pm_correlation_ppm) for s in specs))
    cached = _GRIDS.get(key)
    if cached is not None:
        return cached
    scenarios: list[Scenario] = []
    for step in grid.shock_steps_pct:
        shocks = [spec.pm_volatility_ppm * step // 100 for spec in specs]
        for sign, label in ((1, "+"), (-1, "-")):
            scenarios.append(Scenario(f"all{label}{step}", tuple(sign * s for s in shocks)))
    for lead, lead_spec in enumerate(specs):
        for step in grid.shock_steps_pct:
            moves = []
            for other, spec in enumerate(specs):
                shock = spec.pm_volatility_ppm * step // 100
                if other != lead:
                    pair = lead_spec.pm_correlation_ppm * spec.pm_correlation_ppm
                    shock = shock * pair // (PPM * PPM)
                moves.append(shock)
            for sign, label in ((1, "+"), (-1, "-")):
                name = f"{lead_spec.name}{label}{step}"
                scenarios.append(Scenario(name, tuple(sign * m for m in moves)))
    stress = tuple(spec.pm_volatility_ppm * grid.stress_step_pct // 100 for spec in specs)
    built = _GRIDS[key] = ScenarioGrid(tuple(scenarios), stress, grid.maintenance_ppm)
    return built


def price_move(px: int, ppm: int) -> int:
    """A move of ``ppm`` from ``px`` in ticks, rounded away from zero (a larger shock)."""
    step = div_ceil(px * abs(ppm), PPM)
    return step if ppm >= 0 else -step


class Leg(NamedTuple):
    """A cross position for the grid: market, signed size in lots, price in ticks."""

    spec: MarketSpec
    szi: int
    px: int


class LegTerms(NamedTuple):
    """One leg's share of the requirement outside the grid."""

    stress: int  # its loss in the stress case plus its cross maintenance after it
    floor: int  # its initial margin at the highest leverage of its tier
    provision: int  # the taker fee to close it plus its funding provision
    cross_maintenance: int


def leg_terms(leg: Leg, stress_ppm: int) -> LegTerms:
    if leg.szi == 0:
        return LegTerms(0, 0, 0, 0)
    table = margin_table(leg.spec)
    q = abs(leg.szi)
    notional = q * leg.px
    move = price_move(leg.px, stress_ppm)
    stressed_px = leg.px - move if leg.szi > 0 else leg.px + move
    return LegTerms(
        q * move + table.maintenance(q * max(stressed_px, 0)),
        div_ceil(notional, table.max_leverage_at(notional)),
        div_ceil(notional * max(leg.spec.taker_fee_ppm, 0), PPM)
        + div_ceil(notional * leg.spec.pm_funding_provision_ppm, PPM),
        table.maintenance(notional),
    )


class PortfolioMargin(NamedTuple):
    """The requirement and how it was reached (``binding``: a scenario name, ``stress``
    or ``floor``); ``losses`` has every grid scenario's loss (0 for a gain)."""

    initial: int
    maintenance: int
    binding: str
    worst_loss: int
    stress: int
    floor: int
    provision: int
    cross_maintenance: int
    losses: tuple[tuple[str, int], ...]


def portfolio_margin(legs: Sequence[Leg], markets: MarketRegistry) -> PortfolioMargin:
    """The portfolio requirement of ``legs`` (at most one per market)."""
    grid = scenario_grid(markets)
    index = {spec.name: n for n, spec in enumerate(markets)}
    losses: list[tuple[str, int]] = []
    for scenario in grid.scenarios:
        pnl = 0
        for leg in legs:
            pnl += leg.szi * price_move(leg.px, scenario.moves_ppm[index[leg.spec.name]])
        losses.append((scenario.name, max(0, -pnl)))
    stress = floor = provision = cross_maintenance = 0
    for leg in legs:
        terms = leg_terms(leg, grid.stress_ppm[index[leg.spec.name]])
        stress += terms.stress
        floor += terms.floor
        provision += terms.provision
        cross_maintenance += terms.cross_maintenance
    binding, worst = "", 0
    for name, loss in losses:
        if loss > worst:
            binding, worst = name, loss
    need, binding = (worst, binding) if worst else (0, "")
    if stress > need:
        need, binding = stress, STRESS
    if floor > need:
        need, binding = floor, FLOOR
    initial = need + provision
    maintenance = max(div_ceil(initial * grid.maintenance_ppm, PPM), cross_maintenance)
    return PortfolioMargin(
        initial,
        maintenance,
        binding,
        worst,
        stress,
        floor,
        provision,
        cross_maintenance,
        tuple(losses),
    )


def account_legs(
    account: AccountState, marks: Mapping[str, int], markets: MarketRegistry
) -> list[Leg]:
    """An account's cross positions at the marks (at the entry price, rounded down, for a
    market without a mark yet), in registry order."""
    legs = []
    for spec in markets:
        pos = account.positions.get(spec.name)
        if pos is None or pos.szi == 0 or not pos.is_cross:
            continue
        px = marks.get(spec.name) or pos.entry_ntl // abs(pos.szi)
        legs.append(Leg(spec, pos.szi, px))
    return legs


def account_portfolio_margin(
    account: AccountState, marks: Mapping[str, int], markets: MarketRegistry
) -> PortfolioMargin:
    return portfolio_margin(account_legs(account, marks, markets), markets)


def _usd(micro: int) -> str:
    return format_usd(micro) if micro else "0.0"


class CrossTerms(NamedTuple):
    """The cross account as risk decides on it: its summary, its collateral assets, its
    requirements (the portfolio ones in portfolio margin) and what a withdrawal may take."""

    summary: AccountSummary
    assets: AssetValues
    initial: int
    maintenance: int
    withdrawable: int


def cross_terms(
    acct: AccountState,
    marks: Mapping[str, int],
    markets: MarketRegistry,
    prices: Mapping[str, tuple[int, bool]],
) -> CrossTerms:
    """Withdrawable keeps the requirement or 10% of the cross notional, whichever is more,
    counts assets only while their oracle is valid, and never lends USDC out against
    them."""
    summary = AccountSummary(acct, marks, markets)
    assets = asset_values(acct, prices, markets)
    initial, maintenance = summary.cross_initial, summary.cross_maintenance
    if acct.margin_mode == PORTFOLIO:
        pm = account_portfolio_margin(acct, marks, markets)
        initial, maintenance = pm.initial, pm.maintenance
    keep = max(initial, div_ceil(summary.cross_notional, TRANSFER_MARGIN_DIVISOR))
    withdrawable = max(0, summary.cross_equity + assets.usable - summary.holds - keep)
    if acct.assets:
        withdrawable = min(withdrawable, max(0, acct.collateral))
    return CrossTerms(summary, assets, initial, maintenance, withdrawable)


def clearinghouse_document(
    account: AccountState | None,
    marks: Mapping[str, int],
    markets: MarketRegistry,
    now_ms: int,
    prices: Mapping[str, tuple[int, bool]],
) -> dict[str, Any]:
    """``clearinghouseState`` as risk decides on the account: collateral assets count in
    account value at their haircut value, a portfolio-margin account shows its portfolio
    requirements, and withdrawable is what risk would let out (assets toward it only
    while their oracle is valid, and no USDC borrowed out against them)."""
    document = clearinghouse_state(account, marks, markets, now_ms)
    acct = account or AccountState(address="")
    if not acct.assets and acct.margin_mode != PORTFOLIO:
        return document
    summary, assets, initial, maintenance, withdrawable = cross_terms(acct, marks, markets, prices)
    document["crossMarginSummary"]["accountValue"] = _usd(summary.cross_equity + assets.equity)
    document["crossMarginSummary"]["totalMarginUsed"] = _usd(initial)
    document["marginSummary"]["accountValue"] = _usd(summary.account_value + assets.equity)
    document["marginSummary"]["totalMarginUsed"] = _usd(initial + summary.isolated_margin_used)
    document["crossMaintenanceMarginUsed"] = _usd(maintenance)
    document["withdrawable"] = _usd(withdrawable)
    return document


def portfolio_margin_document(
    account: AccountState | None,
    marks: Mapping[str, int],
    markets: MarketRegistry,
    now_ms: int,
    prices: Mapping[str, tuple[int, bool]] | None = None,
) -> dict[str, Any]:
    """``portfolioMargin`` (our extension to /info): the account's mode, its portfolio
    requirement with the scenario that binds and every scenario's loss, the cross
    requirements of the same positions to compare, and its collateral assets at the
    oracle ``prices`` (price, valid) with their haircut values, as decimal strings."""
    acct = account or AccountState(address="")
    pm = account_portfolio_margin(acct, marks, markets)
    cross = AccountSummary(acct, marks, markets)
    assets = []
    asset_equity = 0
    for asset in sorted(acct.assets):
        spec = markets.collateral.get(asset)
        px, valid = (prices or {}).get(asset, (0, False))
        lots = acct.assets[asset]
        value = haircut_value(spec, lots * px) if spec is not None and px > 0 else 0
        asset_equity += value
        assets.append(
            {
                "asset": asset,
                "balance": markets.by_name(asset).format_size(lots),
                "value": _usd(value),
                "oracleValid": valid,
            }
        )
    return {
        "marginMode": acct.margin_mode,
        "accountValue": _usd(cross.cross_equity + asset_equity),
        "initialMargin": _usd(pm.initial),
        "maintenanceMargin": _usd(pm.maintenance),
        "bindingScenario": pm.binding or None,
        "worstScenarioLoss": _usd(pm.worst_loss),
        "stressRequirement": _usd(pm.stress),
        "floorRequirement": _usd(pm.floor),
        "provision": _usd(pm.provision),
        "crossInitialMargin": _usd(cross.cross_initial),
        "crossMaintenanceMargin": _usd(cross.cross_maintenance),
        "scenarios": [{"name": name, "loss": _usd(loss)} for name, loss in pm.losses],
        "collateralAssets": assets,
        "time": now_ms,
    }


__all__ = [
    "CROSS",
    "FLOOR",
    "MARGIN_MODES",
    "PORTFOLIO",
    "STRESS",
    "Leg",
    "LegTerms",
    "PortfolioMargin",
    "Scenario",
    "ScenarioGrid",
    "account_legs",
    "account_portfolio_margin",
    "clearinghouse_document",
    "leg_terms",
    "portfolio_margin",
    "portfolio_margin_document",
    "price_move",
    "scenario_grid",
]
