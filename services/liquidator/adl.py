"""Auto-deleveraging: which opposite positions close at the bankruptcy price, and how much.

Candidates are ranked by profit times leverage, ``(mark / entry) x (notional / account
value)`` for a long and ``(entry / mark) x (notional / account value)`` for a short, the
highest first, ties by account address; exact fractions, so the order is the same on
every machine. Only positions on the opposite side that are in profit at the mark are
closed: an account with no position in the market, or one already losing on it, never
bears any of the loss.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from libs.common.schemas import AdlCandidate


def score(candidate: AdlCandidate, mark_px: int) -> Fraction:
    size = abs(candidate.szi)
    value = mark_px * size
    if candidate.entry_ntl <= 0 or candidate.account_value <= 0 or value <= 0:
        return Fraction(0)
    leverage = Fraction(value, candidate.account_value)
    if candidate.szi > 0:
        return Fraction(value, candidate.entry_ntl) * leverage
    return Fraction(candidate.entry_ntl, value) * leverage


def in_profit(candidate: AdlCandidate, mark_px: int) -> bool:
    """The position is worth more at the mark than it cost (a short: cost more than it
    is worth): only such positions are deleveraged, never one already losing."""
    value = abs(candidate.szi) * mark_px
    return value > candidate.entry_ntl if candidate.szi > 0 else value < candidate.entry_ntl


def ranked(candidates: list[AdlCandidate], mark_px: int) -> list[AdlCandidate]:
    """The candidates in profit at the mark, highest score first, ties by address."""
    eligible = [c for c in candidates if in_profit(c, mark_px)]
    return sorted(eligible, key=lambda c: (-score(c, mark_px), c.account))


class AdlClose(NamedTuple):
    account: str
    counterparty_is_long: bool
    sz: int


def allocate(candidates: list[AdlCandidate], mark_px: int, size: int) -> tuple[list[AdlClose], int]:
    """Close ``size`` lots against the ranked candidates, each up to its whole position;
    returns the closes and the lots nobody could take."""
    closes = []
    remaining = size
    for candidate in ranked(candidates, mark_px):
        if remaining == 0:
            break
        take = min(remaining, abs(candidate.szi))
        closes.append(AdlClose(candidate.account, candidate.szi > 0, take))
        remaining -= take
    return closes, remaining
