"""Candles of a known trade sequence, checked to the tick and the lot."""

from __future__ import annotations

from services.marketdata.candles import INTERVALS, Candle, as_row, bucket_start, fold, from_row

T0 = 1_700_000_040_000  # 2023-11-14 22:14:00 UTC, a whole minute


def run(trades: list[tuple[int, int, int]], interval: str) -> list[Candle]:
    """Every candle the trades produce at one interval, in order."""
    finished: list[Candle] = []
    current: Candle | None = None
    for ts, px, sz in trades:
        nxt = fold(current, INTERVALS[interval], ts, px, sz)
        assert nxt is not None
        if current is not None and nxt.t != current.t:
            finished.append(current)
        current = nxt
    assert current is not None
    return [*finished, current]


TRADES = [
    (T0 + 1_000, 100_000, 3),
    (T0 + 20_000, 100_500, 1),
    (T0 + 59_999, 99_800, 2),
    (T0 + 60_000, 99_900, 5),  # next minute, and the next 5-minute bucket
    (T0 + 61_000, 101_000, 1),
    (T0 + 5 * 60_000 + 1, 98_000, 4),  # after three empty minutes
]


def test_one_minute_candles() -> None:
    assert run(TRADES, "1m") == [
        Candle(t=T0, o=100_000, h=100_500, low=99_800, c=99_800, v=6, n=3),
        Candle(t=T0 + 60_000, o=99_900, h=101_000, low=99_900, c=101_000, v=6, n=2),
        Candle(t=T0 + 300_000, o=98_000, h=98_000, low=98_000, c=98_000, v=4, n=1),
    ]


def test_five_minute_candles_are_epoch_aligned() -> None:
    start = bucket_start(T0, INTERVALS["5m"])
    assert start == T0 - 240_000  # 22:10
    assert run(TRADES, "5m") == [
        Candle(t=start, o=100_000, h=100_500, low=99_800, c=99_800, v=6, n=3),
        Candle(t=start + 300_000, o=99_900, h=101_000, low=98_000, c=98_000, v=10, n=3),
    ]


def test_day_candle_holds_everything() -> None:
    (day,) = run(TRADES, "1d")
    assert day == Candle(t=1_699_920_000_000, o=100_000, h=101_000, low=98_000, c=98_000, v=16, n=6)


def test_a_late_trade_does_not_rewrite_a_newer_candle() -> None:
    current = Candle(t=T0 + 60_000, o=1, h=1, low=1, c=1, v=1, n=1)
    assert fold(current, INTERVALS["1m"], T0 + 59_000, 5, 5) is None


def test_rows_round_trip() -> None:
    candle = Candle(t=T0, o=10**18, h=10**18 + 1, low=1, c=2, v=3, n=4)
    assert from_row(as_row(candle)) == candle
