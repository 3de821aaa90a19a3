"""The 24-hour window: notional volume and the price a day ago."""

from __future__ import annotations

from services.marketdata.candles import MINUTE_MS
from services.marketdata.daystats import DayStats, MinuteBucket, advance, record_trade

HOUR = 60 * MINUTE_MS
DAY = 24 * HOUR
T0 = 1_700_000_040_000


class Buckets(dict[int, MinuteBucket]):
    def pop(self, minute: int) -> MinuteBucket | None:  # type: ignore[override]
        return super().pop(minute, None)


def trade(stats: DayStats, buckets: Buckets, ts: int, px: int, sz: int) -> DayStats:
    return record_trade(stats, buckets, ts, px, sz)


def test_volume_sums_notional_in_micro_usdc_until_it_ages_out() -> None:
    buckets = Buckets()
    s = trade(DayStats(), buckets, T0, 100_000, 3)
    s = trade(s, buckets, T0 + HOUR, 101_000, 2)
    assert s.ntl == 100_000 * 3 + 101_000 * 2
    assert s.day_px == 100_000  # no day of history yet: the first trade
    s = advance(s, buckets, T0 + DAY - MINUTE_MS)  # first trade still inside
    assert s.ntl == 502_000
    s = advance(s, buckets, T0 + DAY)  # its minute has left the window
    assert (s.ntl, s.prev_day_px) == (202_000, 100_000)
    s = trade(s, buckets, T0 + DAY + HOUR + 5, 99_000, 1)
    assert (s.ntl, s.prev_day_px) == (99_000, 101_000)
    assert sorted(buckets) == [(T0 + DAY + HOUR) // MINUTE_MS]


def test_a_long_silence_empties_the_window_and_keeps_the_last_price() -> None:
    buckets = Buckets()
    s = trade(DayStats(), buckets, T0, 100_000, 1)
    s = trade(s, buckets, T0 + 10 * MINUTE_MS, 100_100, 1)
    s = advance(s, buckets, T0 + 30 * DAY)
    assert (s.ntl, s.prev_day_px) == (0, 100_100)
    assert not buckets


def test_the_window_never_moves_backwards() -> None:
    buckets = Buckets()
    s = trade(DayStats(), buckets, T0 + DAY, 100_000, 1)
    assert advance(s, buckets, T0) == s
