"""The backstop vault's unwind: the positions it took over go back into the book as
ordinary reduce-only IOC orders, in slices bounded by size (a fraction of the position,
a notional cap per interval of event time) and by price impact (a limit within a set
distance of the mark). Exact integers only."""

from __future__ import annotations

from libs.common.money import div_ceil
from libs.common.schemas import LiquidatedPosition
from services.liquidator.config import LiquidatorConfig
from services.liquidator.structs import VaultUnwind
from services.liquidator.waterfall import PPM, lots_within


def slice_lots(pos: LiquidatedPosition, state: VaultUnwind, ts: int, cfg: LiquidatorConfig) -> int:
    """Lots of the next unwind order at event time ``ts``: ``unwind_slice_ppm`` of the
    position (at least one lot), no more than the interval's notional cap leaves; 0 when
    the cap is spent (the rest waits for the next interval)."""
    size = abs(pos.szi)
    used = state.window_ntl if ts // cfg.unwind_interval_ms == state.window else 0
    room = lots_within(cfg.unwind_max_notional - used, pos.mark_px)
    return min(size, max(1, size * cfg.unwind_slice_ppm // PPM), room)


def limit_px(pos: LiquidatedPosition, cfg: LiquidatorConfig) -> int:
    """The worst price of an unwind order: ``unwind_max_distance_ppm`` from the mark,
    rounded towards the mark so it never lies further."""
    if pos.szi > 0:  # the vault sells
        return max(1, div_ceil(pos.mark_px * (PPM - cfg.unwind_max_distance_ppm), PPM))
    return pos.mark_px * (PPM + cfg.unwind_max_distance_ppm) // PPM
