"""Funding arithmetic: premium from impact prices, the interval rate, the clocks."""

from __future__ import annotations

import pytest

from services.matcher.funding import HOUR_MS, align_next, interval_rate, premium_ppb
from tests.unit.matcher.scenario import T0, px

ORACLE = px("100000")
INTEREST = 100_000  # 0.01% per 8 hours, in parts per billion
CLAMP = 500_000  # 0.05%
CAP = 40_000_000  # 4% per hour


@pytest.mark.parametrize(
    ("impact_bid", "impact_ask", "premium"),
    [
        ("100100", "100200", 1_000_000),  # buyers pay 0.1% over the oracle
        ("99800", "99900", -1_000_000),  # sellers give 0.1% under it
        ("99990", "100010", 0),  # the book straddles the oracle
        (None, None, 0),  # too thin on both sides
        ("100100", None, 1_000_000),
        (None, "99900", -1_000_000),
    ],
)
def test_the_premium_is_how_far_impact_prices_sit_outside_the_oracle(
    impact_bid: str | None, impact_ask: str | None, premium: int
) -> None:
    bid = px(impact_bid) if impact_bid else None
    ask = px(impact_ask) if impact_ask else None
    assert premium_ppb(bid, ask, ORACLE) == premium


def test_the_premium_rounds_toward_zero_and_needs_an_oracle() -> None:
    assert premium_ppb(4, 5, 3) == 333_333_333
    assert premium_ppb(1, 2, 3) == -333_333_333
    assert premium_ppb(4, 5, 0) == 0


@pytest.mark.parametrize(
    ("premium", "hourly"),
    [
        (0, 12_500),  # no premium: the interest, 0.01%/8h = 0.00125% an hour
        (300_000, 12_500),  # within the clamp of the interest: still the interest
        (1_000_000, 62_500),  # 0.1% premium: 0.1% - 0.05% clamp = 0.05%/8h
        (-1_000_000, -62_500),  # -0.1% + 0.05% clamp
        (400_000_000, CAP),  # a 40% premium: 4.99%/h, capped at 4%/h
        (-400_000_000, -CAP),
    ],
)
def test_the_hourly_rate_is_premium_plus_clamped_interest_over_eight_capped(
    premium: int, hourly: int
) -> None:
    assert interval_rate(premium, INTEREST, CLAMP, CAP, HOUR_MS) == hourly


def test_a_shorter_interval_pays_and_caps_pro_rata() -> None:
    half_hour = HOUR_MS // 2
    assert interval_rate(0, INTEREST, CLAMP, CAP, half_hour) == 6_250
    assert interval_rate(400_000_000, INTEREST, CLAMP, CAP, half_hour) == CAP // 2


@pytest.mark.parametrize(
    ("ts", "period", "expected"),
    [
        (T0, HOUR_MS, T0 + HOUR_MS),  # strictly after: a tick on the hour waits an hour
        (T0 + 1, HOUR_MS, T0 + HOUR_MS),
        (T0 + HOUR_MS - 1, HOUR_MS, T0 + HOUR_MS),
        (12_345, 5_000, 15_000),
    ],
)
def test_clocks_align_to_the_next_multiple_of_their_period(
    ts: int, period: int, expected: int
) -> None:
    assert align_next(ts, period) == expected
