"""Risk's own parameters (market parameters live in config/markets.toml)."""

from __future__ import annotations

import msgspec

from libs.common.settings import Settings


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``margin_call_levels``: maintenance usage (percent of equity) whose crossing is
    announced; fee shares (ppm of every fee) to the insurance fund and the backstop
    vault, the rest to the venue; ``liquidation_fee_ppm`` of a liquidation fill's notional
    goes to the insurance fund, at most the account's equity left after it, except
    ``vault_liquidation_fee_share_ppm`` of it, which goes to the backstop vault (the LPs'
    premium); an LP's deposit into the vault is locked for ``vault_lockup_ms`` after its
    last deposit; ``insurance_floor`` (micro-USDC) is the balance the fund never pays
    claims below."""

    margin_call_levels: tuple[int, ...] = (50, 80)
    insurance_fee_share_ppm: int = 200_000
    vault_fee_share_ppm: int = 300_000
    liquidation_fee_ppm: int = 2_500
    insurance_floor: int = 0
    vault_liquidation_fee_share_ppm: int = 500_000
    vault_lockup_ms: int = 4 * 86_400_000

    def __post_init__(self) -> None:
        levels = self.margin_call_levels
        if list(levels) != sorted(set(levels)) or any(not 0 < lv < 100 for lv in levels):
            raise ValueError("margin call levels must rise strictly within 1..99")
        shares = (self.insurance_fee_share_ppm, self.vault_fee_share_ppm)
        if min(shares) < 0 or sum(shares) > 1_000_000:
            raise ValueError("fee shares must be non-negative and add up to at most 100%")
        if self.insurance_floor < 0:
            raise ValueError("the insurance fund's floor must be non-negative")
        if not 0 <= self.vault_liquidation_fee_share_ppm <= 1_000_000:
            raise ValueError("the vault's share of liquidation fees must lie within 0..100%")
        if self.vault_lockup_ms < 0:
            raise ValueError("the vault lock-up must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskConfig:
        levels = tuple(int(v) for v in settings.risk_margin_call_levels.split(",") if v.strip())
        return cls(
            margin_call_levels=levels,
            insurance_fee_share_ppm=settings.risk_insurance_fee_share_ppm,
            vault_fee_share_ppm=settings.risk_vault_fee_share_ppm,
            liquidation_fee_ppm=settings.risk_liquidation_fee_ppm,
            insurance_floor=settings.risk_insurance_floor_usd * 1_000_000,
            vault_liquidation_fee_share_ppm=settings.risk_vault_liquidation_fee_share_ppm,
            vault_lockup_ms=settings.risk_vault_lockup_ms,
        )
