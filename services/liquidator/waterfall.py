"""The waterfall's arithmetic: when the backstop takes over, how big a slice is, the
worst price of a liquidation order, and the bankruptcy price. Exact integers only."""

from __future__ import annotations

from libs.common.schemas import LiquidatedPosition
from services.liquidator.config import LiquidatorConfig

PPM = 1_000_000


def _div_ceil(numerator: int, denominator: int) -> int:
    """``libs.common.money.div_ceil``, compiled with this module (no Python call)."""
    return -((-numerator) // denominator)


def notional(pos: LiquidatedPosition) -> int:
    return abs(pos.szi) * pos.mark_px


def below_backstop(equity: int, maintenance: int, config: LiquidatorConfig) -> bool:
    """Equity under the backstop threshold (2/3 of maintenance by default)."""
    return equity * config.backstop_den < maintenance * config.backstop_num


def largest(positions: list[LiquidatedPosition]) -> LiquidatedPosition:
    """The position with the largest notional at its mark; ties by market name."""
    if len(positions) == 1:
        return positions[0]
    return min(positions, key=lambda p: (-notional(p), p.market))


def slice_size(pos: LiquidatedPosition, config: LiquidatorConfig) -> int:
    """Lots of the next liquidation order: the whole position up to the threshold,
    otherwise ``slice_ppm`` of it (at least one lot)."""
    size = abs(pos.szi)
    if notional(pos) <= config.slice_threshold:
        return size
    return max(1, size * config.slice_ppm // PPM)


def lots_within(budget: int, mark_px: int) -> int:
    """Whole lots whose notional at ``mark_px`` fits in ``budget`` (none if it is spent)."""
    return max(0, budget) // mark_px if mark_px > 0 else 0


def limit_px(pos: LiquidatedPosition, sz: int, equity: int, config: LiquidatorConfig) -> int:
    """The worst price a liquidation order of ``sz`` lots accepts: ``max_slippage_ppm``
    from the mark, and never past the price at which the slice would take the account's
    equity (less an allowance for the fees) below zero. Returns 0 when no price would
    (the book cannot help: the backstop takes over)."""
    mark = pos.mark_px
    budget = equity - _div_ceil(sz * mark * config.fee_allowance_ppm, PPM)
    if budget <= 0:
        return 0
    if pos.szi > 0:
        slipped = mark * (PPM - config.max_slippage_ppm) // PPM
        return max(1, slipped, mark - budget // sz)
    slipped = _div_ceil(mark * (PPM + config.max_slippage_ppm), PPM)
    return min(slipped, mark + budget // sz)


def bankruptcy_px(pos: LiquidatedPosition, equity: int) -> int:
    """The price at which closing ``pos`` leaves the account's equity at zero (the
    other positions at their marks), rounded so the account keeps at least zero:
    ``equity + szi x (px - mark) >= 0``. Never below one tick."""
    size = abs(pos.szi)
    px = pos.mark_px - equity // size if pos.szi > 0 else pos.mark_px + equity // size
    return max(1, px)
