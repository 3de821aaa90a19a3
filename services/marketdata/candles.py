"""Candles: open, high, low, close, volume and trade count per market and interval.

A trade falls in the bucket ``[t, t + interval)`` with ``t = ts - ts % interval`` (UTC,
epoch aligned, as Hyperliquid's). Prices are ticks and volume lots, both exact.
"""

from __future__ import annotations

import msgspec

from libs.common.schemas import CANDLE_INTERVALS

MINUTE_MS = 60_000
INTERVALS = CANDLE_INTERVALS


class Candle(msgspec.Struct, frozen=True, array_like=True):
    """One bucket: open time, prices in ticks, volume in lots, number of trades."""

    t: int
    o: int
    h: int
    low: int
    c: int
    v: int
    n: int


def bucket_start(ts: int, interval_ms: int) -> int:
    return ts - ts % interval_ms


def fold(candle: Candle | None, interval_ms: int, ts: int, px: int, sz: int) -> Candle | None:
    """The candle after a trade, or None when the trade is older than ``candle``'s bucket.

    A trade in a later bucket starts a new candle; the caller has already published the
    previous one, so only the current bucket is state."""
    t = bucket_start(ts, interval_ms)
    if candle is None or t > candle.t:
        return Candle(t=t, o=px, h=px, low=px, c=px, v=sz, n=1)
    if t < candle.t:
        return None
    return Candle(
        t=t,
        o=candle.o,
        h=max(candle.h, px),
        low=min(candle.low, px),
        c=px,
        v=candle.v + sz,
        n=candle.n + 1,
    )


def as_row(candle: Candle) -> list[int]:
    """The candle as a JSON-safe row (the table's changelog format)."""
    return [candle.t, candle.o, candle.h, candle.low, candle.c, candle.v, candle.n]


def from_row(row: list[int]) -> Candle:
    t, o, h, low, c, v, n = row
    return Candle(t=t, o=o, h=h, low=low, c=c, v=v, n=n)
