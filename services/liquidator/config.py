"""The liquidator's parameters: slicing, cooldown, price limits, the backstop threshold."""

from __future__ import annotations

import msgspec

from libs.common.settings import Settings

USD = 1_000_000


class LiquidatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``slice_threshold``: notional (micro-USDC) above which a position goes into the
    book in slices of ``slice_ppm`` of its size, ``cooldown_ms`` apart; a liquidation
    order is limited to ``max_slippage_ppm`` from the mark. Below
    ``backstop_num / backstop_den`` of maintenance (2/3) the backstop vault takes over.
    ``fee_allowance_ppm`` of a slice's notional is kept back for its fees when the order's
    limit is set short of the price that would leave the account below zero."""

    slice_threshold: int = 100_000 * USD
    slice_ppm: int = 200_000
    cooldown_ms: int = 1_000
    max_slippage_ppm: int = 50_000
    fee_allowance_ppm: int = 3_000
    backstop_num: int = 2
    backstop_den: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.slice_ppm <= 1_000_000:
            raise ValueError("a slice must be more than 0 and at most 100% of the position")
        if not 0 <= self.max_slippage_ppm < 1_000_000 or self.cooldown_ms < 0:
            raise ValueError("slippage must be below 100% and the cooldown non-negative")
        if not 0 < self.backstop_num < self.backstop_den:
            raise ValueError("the backstop threshold must be a fraction below 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> LiquidatorConfig:
        return cls(
            slice_threshold=settings.liquidator_slice_threshold_usd * USD,
            slice_ppm=settings.liquidator_slice_ppm,
            cooldown_ms=settings.liquidator_cooldown_ms,
            max_slippage_ppm=settings.liquidator_max_slippage_ppm,
        )
