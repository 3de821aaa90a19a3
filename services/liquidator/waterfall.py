"""The waterfall's arithmetic: when the backstop takes over, how big a slice is, the
worst price of a liquidation order, the bankruptcy price, and how much of the vault's
headroom a takeover uses. Exact integers only."""

from __future__ import annotations

from libs.common.schemas import LiquidatedPosition, VaultMarketTerms
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


def market_terms(terms: list[VaultMarketTerms], market: str) -> tuple[int, int]:
    """The market's top maintenance rate and transfer fee (ppm) as the vault's status
    gave them; a market it did not name counts its whole notional as maintenance."""
    for term in terms:
        if term.market == market:
            return term.maintenance_ppm, term.fee_ppm
    return PPM, 0


def takeover_need(
    pos: LiquidatedPosition,
    lots: int,
    px: int,
    terms: list[VaultMarketTerms],
    config: LiquidatorConfig,
) -> int:
    """What taking ``lots`` of ``pos`` over at ``px`` uses of the vault's headroom
    (equity less safety x maintenance, less the stress move on its notional): its loss
    against the mark (none at the mark), the transfer fee it pays, the safety factor
    times the most maintenance the lots can add, at the market's top rate whatever the
    vault already holds (maintenance grows by at most that rate per dollar of notional),
    and the stress move on the lots' notional."""
    maintenance_ppm, fee_ppm = market_terms(terms, pos.market)
    mark = pos.mark_px
    loss = lots * (px - mark) if pos.szi > 0 else lots * (mark - px)
    fee = _div_ceil(lots * px * fee_ppm, PPM)
    added = _div_ceil(lots * mark * maintenance_ppm, PPM)
    stress = _div_ceil(lots * mark * config.vault_stress_ppm, PPM)
    return max(0, loss) + fee + _div_ceil(added * config.vault_safety_ppm, PPM) + stress


def vault_share(
    equity: int, maintenance: int, notional: int, config: LiquidatorConfig, partitions: int
) -> int:
    """One liquidator partition's share of the vault's headroom: ``floor((equity -
    ceil(safety x maintenance) - ceil(stress x notional)) / partitions)`` (negative
    when the vault is short)."""
    held = _div_ceil(maintenance * config.vault_safety_ppm, PPM)
    held += _div_ceil(notional * config.vault_stress_ppm, PPM)
    return (equity - held) // partitions


def lots_that_fit(
    pos: LiquidatedPosition,
    lots: int,
    px: int,
    terms: list[VaultMarketTerms],
    config: LiquidatorConfig,
    room: int,
) -> int:
    """The most of ``lots`` whose takeover at ``px`` needs no more than ``room`` (the
    need grows with the lots: a binary search)."""
    low, high = 0, lots
    while low < high:
        middle = (low + high + 1) // 2
        if takeover_need(pos, middle, px, terms, config) <= room:
            low = middle
        else:
            high = middle - 1
    return low
