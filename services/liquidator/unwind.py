"""The backstop vault's unwind: the positions it took over go back into the book as
ordinary reduce-only IOC orders, in slices bounded by size (a fraction of the position,
a notional cap per interval of event time) and by price impact (a limit within a set
distance of the mark). Exact integers only."""

from __future__ import annotations

import msgspec

from libs.common.money import div_ceil
from libs.common.schemas import LiquidatedPosition
from services.liquidator.config import LiquidatorConfig
from services.liquidator.waterfall import PPM, lots_within


class VaultUnwind(msgspec.Struct, kw_only=True):
    """The unwind of one market's vault position: the notional sent in the current
    interval (``window`` = event time // interval; what an order did not fill is given
    back), the order awaiting its result (``pending_mark``: the mark it was sent at) and
    when the last one went out (one per ``cooldown_ms``, so an empty book is not asked at
    every mark)."""

    market: str
    window: int = -1
    window_ntl: int = 0
    pending_oid: int = 0
    pending_sz: int = 0
    pending_mark: int = 0
    last_ts: int = -1
    orders: int = 0
    steps: int = 0


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
