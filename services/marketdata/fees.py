"""Fee tiers from rolling 14-day volume.

Each account's fills are summed per UTC day (event time), maker and taker apart. The
tier of day ``D`` is chosen by the total of days ``D-14 .. D-1``: whole days only, so the
rates an account pays never change within a day.
"""

from __future__ import annotations

import tomllib
from itertools import pairwise
from pathlib import Path

import msgspec

DAY_MS = 86_400_000
WINDOW_DAYS = 14
USD = 1_000_000
DEFAULT_FEES_FILE = Path(__file__).resolve().parents[2] / "config" / "fees.toml"


class Tier(msgspec.Struct, frozen=True):
    """Rates (ppm of notional) for accounts with at least ``min_volume`` micro-USDC."""

    min_volume: int
    taker_ppm: int
    maker_ppm: int


class FeeSchedule:
    """The tier table, lowest threshold first; the first tier is the markets' default."""

    def __init__(self, tiers: list[Tier]) -> None:
        if not tiers or tiers[0].min_volume != 0:
            raise ValueError("the first fee tier must start at zero volume")
        if any(a.min_volume >= b.min_volume for a, b in pairwise(tiers)):
            raise ValueError("fee tier thresholds must increase")
        self.tiers = tiers

    def tier_index(self, volume: int) -> int:
        index = 0
        for i, tier in enumerate(self.tiers):
            if volume >= tier.min_volume:
                index = i
        return index


def load_schedule(path: Path | None = None) -> FeeSchedule:
    with (path or DEFAULT_FEES_FILE).open("rb") as fh:
        raw = tomllib.load(fh)
    return FeeSchedule(
        [
            Tier(
                min_volume=int(t["min_volume_usd"]) * USD,
                taker_ppm=int(t["taker_ppm"]),
                maker_ppm=int(t["maker_ppm"]),
            )
            for t in raw["tier"]
        ]
    )


class DayVolume(msgspec.Struct, frozen=True, array_like=True):
    day: int
    maker: int
    taker: int


class AccountVolume(msgspec.Struct, frozen=True, array_like=True):
    """An account's daily volumes (micro-USDC) still inside the window, and its tier."""

    days: tuple[DayVolume, ...] = ()
    tier: int = 0

    def window(self, today: int) -> tuple[int, int]:
        """Maker and taker volume of the 14 whole days before ``today``."""
        inside = [d for d in self.days if today - WINDOW_DAYS <= d.day < today]
        return sum(d.maker for d in inside), sum(d.taker for d in inside)

    def is_empty(self) -> bool:
        return not self.days and self.tier == 0


def add_fill(volume: AccountVolume, ts: int, notional: int, is_maker: bool) -> AccountVolume:
    """Count one fill in its day, forgetting days that can no longer be in any window."""
    today = ts // DAY_MS
    days = [d for d in volume.days if d.day > today - WINDOW_DAYS - 1 and d.day != today]
    current = next((d for d in volume.days if d.day == today), DayVolume(today, 0, 0))
    if is_maker:
        current = DayVolume(today, current.maker + notional, current.taker)
    else:
        current = DayVolume(today, current.maker, current.taker + notional)
    return AccountVolume(days=(*days, current), tier=volume.tier)


def roll_day(
    volume: AccountVolume, today: int, schedule: FeeSchedule
) -> tuple[AccountVolume, Tier | None]:
    """The account at the start of ``today``: its window pruned, and the new tier's rates
    when the tier changed (None when it did not)."""
    days = tuple(d for d in volume.days if d.day >= today - WINDOW_DAYS)
    maker, taker = volume.window(today)
    index = schedule.tier_index(maker + taker)
    rolled = AccountVolume(days=days, tier=index)
    return rolled, (schedule.tiers[index] if index != volume.tier else None)
