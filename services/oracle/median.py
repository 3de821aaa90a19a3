"""Weighted median: the price that no group of sources holding less than half the weight
can move.

Sort the prices; the median is the first price at which the running weight passes half
the total. When the running weight lands exactly on half, the median is the midpoint of
that price and the next one (so equal weights give the ordinary median).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal


def doubled_weighted_median(points: Iterable[tuple[int, int]]) -> int:
    """Twice the weighted median of ``(price, weight)`` pairs: an integer even when the
    median is a half-way point, so callers can stay in integer arithmetic.

    Weights must be positive; raises ``ValueError`` on an empty input."""
    ordered = sorted(points)
    if not ordered:
        raise ValueError("weighted median of no prices")
    total = 0
    for _, weight in ordered:
        if weight <= 0:
            raise ValueError(f"weights must be positive, got {weight}")
        total += weight
    running = 0
    for i, (price, weight) in enumerate(ordered):
        running += weight
        if 2 * running > total:
            return 2 * price
        if 2 * running == total:
            return price + ordered[i + 1][0]
    raise AssertionError("unreachable: the running weight reaches the total")


def weighted_median(points: Iterable[tuple[int, int]]) -> Decimal:
    """The weighted median of ``(price, weight)`` pairs, exactly (a price or a half-way
    point)."""
    return Decimal(doubled_weighted_median(points)) / 2
