"""The liquidator's parameters: slicing, cooldown, price limits, the backstop threshold,
the per-interval cap on what one account pushes into the book, and the vault's unwind."""

from __future__ import annotations

import msgspec

from libs.common.settings import Settings

USD = 1_000_000
PPM = 1_000_000


class LiquidatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``slice_threshold``: notional (micro-USDC) above which a position goes into the
    book in slices of ``slice_ppm`` of its size, ``cooldown_ms`` apart; a liquidation
    order is limited to ``max_slippage_ppm`` from the mark. Below
    ``backstop_num / backstop_den`` of maintenance (2/3) the backstop vault takes over.
    ``fee_allowance_ppm`` of a slice's notional is kept back for its fees when the order's
    limit is set short of the price that would leave the account below zero.

    ``max_book_notional`` (micro-USDC at the mark, 0 = no cap) bounds what one case sends
    into the book per ``book_interval_ms`` of event time (epoch-aligned windows); what it
    holds back waits for the next window. The vault unwinds a position it took over in
    reduce-only IOC slices of at most ``unwind_slice_ppm`` of it and at most
    ``unwind_max_notional`` per ``unwind_interval_ms``, its limit at most
    ``unwind_max_distance_ppm`` from the mark, one per ``cooldown_ms`` and market
    (``unwind_slice_ppm`` 0 = no unwind).

    The vault takes a case over only if, after it, its equity stays at or above
    ``vault_safety_ppm`` (1.5x) of its maintenance; each of the liquidator's partitions
    uses at most its equal share of that headroom. With ``vault_stress_ppm`` (0: off)
    that must hold even after a move of that much against every position it holds
    (its gross notional) and takes over."""

    slice_threshold: int = 100_000 * USD
    slice_ppm: int = 200_000
    cooldown_ms: int = 1_000
    max_slippage_ppm: int = 50_000
    fee_allowance_ppm: int = 3_000
    backstop_num: int = 2
    backstop_den: int = 3
    max_book_notional: int = 1_000_000 * USD
    book_interval_ms: int = 1_000
    unwind_slice_ppm: int = 0
    unwind_max_notional: int = 100_000 * USD
    unwind_interval_ms: int = 10_000
    unwind_max_distance_ppm: int = 5_000
    vault_safety_ppm: int = 1_500_000
    vault_stress_ppm: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.slice_ppm <= 1_000_000:
            raise ValueError("a slice must be more than 0 and at most 100% of the position")
        if not 0 <= self.max_slippage_ppm < 1_000_000 or self.cooldown_ms < 0:
            raise ValueError("slippage must be below 100% and the cooldown non-negative")
        if not 0 < self.backstop_num < self.backstop_den:
            raise ValueError("the backstop threshold must be a fraction below 1")
        if self.max_book_notional < 0 or self.book_interval_ms <= 0:
            raise ValueError("the book cap must be non-negative and its interval positive")
        if not 0 <= self.unwind_slice_ppm <= 1_000_000 or self.unwind_interval_ms <= 0:
            raise ValueError("an unwind slice must be within 0..100% and its interval positive")
        if self.unwind_max_notional <= 0 or not 0 < self.unwind_max_distance_ppm < 1_000_000:
            raise ValueError("the unwind cap must be positive and its distance within 0..100%")
        if self.vault_safety_ppm < PPM:
            raise ValueError("the vault's safety factor must be at least 1x its maintenance")
        if not 0 <= self.vault_stress_ppm < PPM:
            raise ValueError("the vault's stress move must be within 0..100%")

    @classmethod
    def from_settings(cls, settings: Settings) -> LiquidatorConfig:
        return cls(
            slice_threshold=settings.liquidator_slice_threshold_usd * USD,
            slice_ppm=settings.liquidator_slice_ppm,
            cooldown_ms=settings.liquidator_cooldown_ms,
            max_slippage_ppm=settings.liquidator_max_slippage_ppm,
            max_book_notional=settings.liquidator_max_book_notional_per_interval_usd * USD,
            book_interval_ms=settings.liquidator_book_interval_ms,
            unwind_slice_ppm=settings.liquidator_unwind_slice_ppm,
            unwind_max_notional=settings.liquidator_unwind_max_notional_per_interval_usd * USD,
            unwind_interval_ms=settings.liquidator_unwind_interval_ms,
            unwind_max_distance_ppm=settings.liquidator_unwind_max_distance_ppm,
            vault_safety_ppm=settings.liquidator_vault_safety_ppm,
            vault_stress_ppm=settings.liquidator_vault_stress_ppm,
        )
