"""24-hour statistics of a market: notional volume and the price a day ago.

Trades are summed into one-minute buckets; the window is the last 1440 minutes of event
time (the bucket of the latest event and the 1439 before it). When the window moves
past a bucket its notional leaves the sum and its close becomes the previous day's
price, so ``prev_day_px`` is the last trade at or before 24 hours ago (to the minute);
until a day of history exists it is the first trade seen.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from services.marketdata.candles import MINUTE_MS

WINDOW_MINUTES = 1440


class DayStats(msgspec.Struct, frozen=True, array_like=True):
    """The running window of one market. ``start`` is its oldest minute still counted;
    notional is micro-USDC (ticks x lots), prices are ticks."""

    ntl: int = 0
    prev_day_px: int = 0
    start: int = -1
    first_px: int = 0

    @property
    def day_px(self) -> int:
        return self.prev_day_px or self.first_px


class MinuteBucket(msgspec.Struct, frozen=True, array_like=True):
    ntl: int
    close: int


class Buckets(Protocol):
    """One market's minute buckets (a dict in tests, a changelogged table in the app)."""

    def get(self, minute: int) -> MinuteBucket | None: ...

    def pop(self, minute: int) -> MinuteBucket | None: ...

    def __setitem__(self, minute: int, bucket: MinuteBucket) -> None: ...


def advance(stats: DayStats, buckets: Buckets, ts: int) -> DayStats:
    """Expire the buckets that fell out of the window ending at event time ``ts``."""
    if stats.start < 0:
        return stats
    new_start = ts // MINUTE_MS - WINDOW_MINUTES + 1
    if new_start <= stats.start:
        return stats
    ntl, prev = stats.ntl, stats.prev_day_px
    # Every bucket lies within [start, start + WINDOW_MINUTES): look no further.
    for minute in range(stats.start, min(new_start, stats.start + WINDOW_MINUTES)):
        bucket = buckets.pop(minute)
        if bucket is not None:
            ntl -= bucket.ntl
            prev = bucket.close
    return DayStats(ntl=ntl, prev_day_px=prev, start=new_start, first_px=stats.first_px)


def record_trade(stats: DayStats, buckets: Buckets, ts: int, px: int, sz: int) -> DayStats:
    """Add one trade (after moving the window to its time)."""
    minute = ts // MINUTE_MS
    if stats.start < 0:
        stats = DayStats(start=minute - WINDOW_MINUTES + 1, first_px=px)
    stats = advance(stats, buckets, ts)
    if minute < stats.start:
        return stats  # older than the window: nothing to count
    ntl = px * sz
    old = buckets.get(minute)
    buckets[minute] = MinuteBucket(ntl=(old.ntl if old else 0) + ntl, close=px)
    return DayStats(
        ntl=stats.ntl + ntl,
        prev_day_px=stats.prev_day_px,
        start=stats.start,
        first_px=stats.first_px,
    )
