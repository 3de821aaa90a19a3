"""The mark price: the median of three estimates of where the perp trades.

1. the oracle plus an EMA of (book mid - oracle): the book's persistent premium;
2. the median of best bid, best ask and last trade;
3. an external perp mid, when a source supplies one.
Estimates that are missing are replaced by the oracle, so an empty book marks at the
oracle. The EMA is time-weighted by event time: a sample ``dt`` ms after the previous
one moves it by ``dt / (tau + dt)`` of the gap, exactly, in integer micro-ticks.
"""

from __future__ import annotations

from typing import Final

from services.matcher.structs import MarkState

EMA_SCALE: Final = 1_000_000  # the EMA is kept in micro-ticks so small premiums survive


def median3(a: int, b: int, c: int) -> int:
    return max(min(a, b), min(max(a, b), c))


def update_basis(state: MarkState, mid: int | None, oracle: int, ts: int, tau_ms: int) -> None:
    """Fold one (mid - oracle) sample into the EMA; a one-sided book adds no sample."""
    if mid is None:
        return
    sample = (mid - oracle) * EMA_SCALE
    if state.ema_ts == 0:
        state.ema_basis = sample
    else:
        dt = max(0, ts - state.ema_ts)
        state.ema_basis += (sample - state.ema_basis) * dt // (tau_ms + dt)
    state.ema_ts = ts


def mark_price(
    state: MarkState,
    oracle: int,
    best_bid: int | None,
    best_ask: int | None,
    last_px: int | None,
    external_mid: int | None,
) -> int:
    """The mark in ticks (see the module docstring); never below one tick."""
    first = oracle + _round_div(state.ema_basis, EMA_SCALE) if state.ema_ts else oracle
    if best_bid is not None and best_ask is not None and last_px:
        second = median3(best_bid, best_ask, last_px)
    else:
        second = oracle
    third = external_mid or oracle
    return max(1, median3(first, second, third))


def _round_div(numerator: int, denominator: int) -> int:
    """Integer division rounding half away from zero."""
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q
