"""Fee tiers from the 14 whole days before today."""

from __future__ import annotations

import pytest

from services.marketdata.fees import (
    DAY_MS,
    USD,
    AccountVolume,
    FeeSchedule,
    Tier,
    add_fill,
    load_schedule,
    roll_day,
)

SCHEDULE = FeeSchedule(
    [
        Tier(0, 450, 150),
        Tier(5_000_000 * USD, 400, 120),
        Tier(2_000_000_000 * USD, 260, -10),
    ]
)
DAY0 = 19_700


def test_the_shipped_table_starts_at_the_market_default_and_ends_with_rebates() -> None:
    schedule = load_schedule()
    assert (schedule.tiers[0].taker_ppm, schedule.tiers[0].maker_ppm) == (450, 150)
    assert schedule.tiers[-1].maker_ppm < 0


def test_a_schedule_must_start_at_zero_and_increase() -> None:
    with pytest.raises(ValueError):
        FeeSchedule([Tier(1, 1, 1)])
    with pytest.raises(ValueError):
        FeeSchedule([Tier(0, 1, 1), Tier(0, 1, 1)])


def test_tier_moves_the_day_after_the_volume_and_back_after_fourteen_days() -> None:
    v = AccountVolume()
    v = add_fill(v, DAY0 * DAY_MS + 5, 3_000_000 * USD, is_maker=True)
    v = add_fill(v, DAY0 * DAY_MS + 9, 2_000_000 * USD, is_maker=False)
    assert v.window(DAY0 + 1) == (3_000_000 * USD, 2_000_000 * USD)
    same_day, tier = roll_day(v, DAY0, SCHEDULE)
    assert tier is None  # today's volume counts from tomorrow
    v, tier = roll_day(same_day, DAY0 + 1, SCHEDULE)
    assert tier == Tier(5_000_000 * USD, 400, 120)
    v, tier = roll_day(v, DAY0 + 14, SCHEDULE)
    assert tier is None  # day DAY0 is still one of the 14
    v, tier = roll_day(v, DAY0 + 15, SCHEDULE)
    assert tier == Tier(0, 450, 150)
    assert v.is_empty()


def test_maker_rebate_tier() -> None:
    v = add_fill(AccountVolume(), DAY0 * DAY_MS, 2_000_000_000 * USD, is_maker=True)
    _, tier = roll_day(v, DAY0 + 1, SCHEDULE)
    assert tier is not None and tier.maker_ppm == -10
