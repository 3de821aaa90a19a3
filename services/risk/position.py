"""Position accounting: applying a fill to a position with an exact cost basis."""

from __future__ import annotations

from libs.common.state import PositionState


def apply_fill(pos: PositionState, is_buy: bool, px: int, sz: int) -> int:
    """Change ``pos`` by a fill and return the realized PnL in micro-USDC.

    The cost basis (``entry_ntl``) is split exactly when a position is reduced: the
    closed part takes ``floor(basis * closed / size)`` and the remainder stays with the
    open part, so no micro-dollar is created or lost over any sequence of fills.
    """
    signed = sz if is_buy else -sz
    size = pos.szi
    if size == 0 or (size > 0) == is_buy:
        pos.szi = size + signed
        pos.entry_ntl += px * sz
        return 0
    closed = min(sz, abs(size))
    basis_closed = pos.entry_ntl * closed // abs(size)
    pnl = (px * closed - basis_closed) if size > 0 else (basis_closed - px * closed)
    pos.entry_ntl -= basis_closed
    pos.szi = size + signed
    opened = sz - closed
    if opened:  # flipped through zero: the rest opens a new position at this price
        pos.entry_ntl = px * opened
    elif pos.szi == 0:
        pos.entry_ntl = 0
    pos.realized_pnl += pnl
    return pnl
