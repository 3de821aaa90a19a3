"""Funding: premium samples from impact prices, and the hourly rate at each interval.

Rates are integers in parts per billion (1e-9). The 8-hour rate is the average premium
plus the interest term clamped around it: ``P + clamp(I - P, -c, c)``; it is paid
hourly at 1/8 and capped per hour. Settlements move the market's cumulative funding
index by ``rate * mark``, so risk settles any position with one subtraction.
"""

from __future__ import annotations

from typing import Final

PPB: Final = 1_000_000_000


def premium_ppb(impact_bid: int | None, impact_ask: int | None, oracle: int) -> int:
    """How far the book's impact prices sit outside the oracle, as a fraction of it.

    Positive when buyers pay above the oracle (longs pay funding), negative when sellers
    sell below it; zero while both impact prices straddle the oracle or a side is thin."""
    if oracle <= 0:
        return 0
    above = max((impact_bid or 0) - oracle, 0) if impact_bid is not None else 0
    below = max(oracle - impact_ask, 0) if impact_ask is not None else 0
    diff = above - below
    return _div_toward_zero(diff * PPB, oracle)


HOUR_MS: Final = 3_600_000


def interval_rate(
    average_premium: int, interest_8h: int, clamp: int, cap_hourly: int, interval_ms: int
) -> int:
    """The funding rate (ppb) paid for one interval: the 8-hour rate scaled to the
    interval (1/8 for the default hour), capped at the hourly cap scaled likewise."""
    rate_8h = average_premium + max(-clamp, min(clamp, interest_8h - average_premium))
    rate = _div_toward_zero(rate_8h * interval_ms, 8 * HOUR_MS)
    cap = cap_hourly * interval_ms // HOUR_MS
    return max(-cap, min(cap, rate))


def _div_toward_zero(numerator: int, denominator: int) -> int:
    q = abs(numerator) // abs(denominator)
    return q if (numerator >= 0) == (denominator > 0) else -q


def align_next(ts: int, period: int) -> int:
    """The first multiple of ``period`` strictly after ``ts`` (funding on the hour)."""
    return ts - ts % period + period
