"""Collateral other than USDC: its value toward margin, shared by risk and the gateway.

An asset is held in lots of the perp market of the same name and valued at that
market's oracle (index) price: ``lots x index_px`` micro-USDC exactly, less the haircut
of each tier on the value within it (brackets, so the haircut grows with size and the
value stays continuous), rounded down. Liabilities stay in USDC. While the market's
oracle is not ``valid`` the asset still counts in equity at the oracle's price (and no
liquidation is triggered on it), but for nothing toward new risk: orders, withdrawals,
transfers, leverage and mode changes. See docs/risk.md, "Multi-asset collateral".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from libs.common.markets import CollateralSpec, MarketRegistry
from libs.common.state import AccountState, MarkState

PPM = 1_000_000
VALID = "valid"


def haircut_value(spec: CollateralSpec, raw: int) -> int:
    """What ``raw`` micro-USDC of the asset counts for: each tier's share of it at
    ``1 - haircut``, summed exactly and rounded down once."""
    if raw <= 0:
        return 0
    tiers = spec.haircuts
    kept = 0
    for n, tier in enumerate(tiers):
        if raw <= tier.lower_bound:
            break
        upper = tiers[n + 1].lower_bound if n + 1 < len(tiers) else raw
        kept += (min(raw, upper) - tier.lower_bound) * (PPM - tier.haircut_ppm)
    return kept // PPM


def liability_on_assets(usdc: int, asset_value: int, cross_position: bool) -> bool:
    """Risk's second trigger rule: USDC below zero behind collateral assets that count for
    something, with no cross position left. The liquidator then sells the assets to repay
    it (docs/liquidator.md, the waterfall's collateral step)."""
    return usdc < 0 and asset_value > 0 and not cross_position


def lots_to_cover(spec: CollateralSpec, px: int, usd: int, held: int) -> int:
    """The fewest of ``held`` lots whose value at ``px`` after the haircut
    (:func:`haircut_value` of those lots alone) is at least ``usd``; all of them when
    they fall short. The value grows with the lots, so a binary search finds it."""
    if usd <= 0 or held <= 0 or px <= 0:
        return 0
    if haircut_value(spec, held * px) < usd:
        return held
    low, high = 1, held  # the answer lies in [low, high]
    while low < high:
        mid = (low + high) // 2
        if haircut_value(spec, mid * px) >= usd:
            high = mid
        else:
            low = mid + 1
    return low


class AssetValues(NamedTuple):
    """An account's collateral assets: toward equity, and toward new risk."""

    equity: int
    usable: int


def asset_values(
    account: AccountState, prices: Mapping[str, tuple[int, bool]], markets: MarketRegistry
) -> AssetValues:
    """``prices``: per asset the oracle (index) price in ticks and whether it is valid.
    An asset without a price yet counts for nothing."""
    equity = usable = 0
    for asset in sorted(account.assets):
        lots = account.assets[asset]
        spec = markets.collateral.get(asset)
        px, valid = prices.get(asset, (0, False))
        if spec is None or lots <= 0 or px <= 0:
            continue
        value = haircut_value(spec, lots * px)
        equity += value
        if valid:
            usable += value
    return AssetValues(equity, usable)


def oracle_prices(marks: Mapping[str, MarkState]) -> dict[str, tuple[int, bool]]:
    """The price and validity of each market's oracle, from risk's mark states."""
    return {
        name: (state.index_px or state.mark_px, state.oracle_status == VALID)
        for name, state in marks.items()
    }


__all__ = [
    "AssetValues",
    "asset_values",
    "haircut_value",
    "liability_on_assets",
    "lots_to_cover",
    "oracle_prices",
]
