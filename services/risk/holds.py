"""Holds: the margin an account's open orders reserve.

An order reserves initial margin for the part of it that can open exposure, valued at
its ``hold_px`` (the worse of its price and the mark when it was placed), plus the
taker fee on all of it. The part that can only reduce the position reserves no margin:
the position's size is handed out to the orders on the reducing side oldest first (oid
order), so two orders can never both count on closing the same lots. Reduce-only
orders and TP/SL children hold nothing. Holds are recomputed for a market whenever the
position or the orders there change, so a fill converts its share of the hold into
position margin and a cancel releases it; a hold is never negative.
"""

from __future__ import annotations

from libs.common.margin import order_hold
from libs.common.markets import MarketSpec
from libs.common.state import AccountState, OpenOrderState


def opening_size(sz: int, is_buy: bool, szi: int, reducible: int) -> tuple[int, int]:
    """(lots that open exposure, reducible lots left) for an order of ``sz`` lots when
    ``reducible`` lots of the position are still unclaimed by older orders."""
    if szi == 0 or (szi > 0) == is_buy:
        return sz, reducible
    reduces = min(sz, reducible)
    return sz - reduces, reducible - reduces


def reprice_holds(acct: AccountState, spec: MarketSpec, leverage: int, taker_ppm: int) -> bool:
    """Recompute the holds of the account's orders in ``spec``'s market; returns whether
    any changed."""
    market = spec.name
    orders = sorted((o for o in acct.orders.values() if o.market == market), key=lambda o: o.oid)
    if not orders:
        return False
    pos = acct.positions.get(market)
    szi = pos.szi if pos else 0
    reducible = {True: abs(szi), False: abs(szi)}
    changed = False
    for order in orders:
        hold = _hold(order, spec, leverage, taker_ppm, szi, reducible)
        if hold != order.hold:
            order.hold = hold
            changed = True
    return changed


def _hold(
    order: OpenOrderState,
    spec: MarketSpec,
    leverage: int,
    taker_ppm: int,
    szi: int,
    reducible: dict[bool, int],
) -> int:
    pending = order.modify
    unclaimed = reducible[pending.is_buy] if pending is not None else 0
    hold = 0
    if not order.reduce_only and order.hold_px > 0:
        open_sz, reducible[order.is_buy] = opening_size(
            order.sz, order.is_buy, szi, reducible[order.is_buy]
        )
        hold = order_hold(
            spec, leverage, open_sz, order.sz, order.hold_px, taker_ppm, abs(szi) * order.hold_px
        )
    if pending is not None and not pending.reduce_only and pending.hold_px > 0:
        # Until the matcher answers, the order may have either terms: hold the larger.
        new_open, _ = opening_size(pending.sz, pending.is_buy, szi, unclaimed)
        new_hold = order_hold(
            spec,
            leverage,
            new_open,
            pending.sz,
            pending.hold_px,
            taker_ppm,
            abs(szi) * pending.hold_px,
        )
        hold = max(hold, new_hold)
    return hold
