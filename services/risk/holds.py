"""Holds: the margin an account's open orders reserve.

An order reserves initial margin for the part of it that can open exposure, valued at
its ``hold_px`` (the worse of its price and the mark when it was placed), plus the
taker fee on all of it. The part that can only reduce the position reserves no margin:
the position's size is handed out to the orders on the reducing side oldest first (oid
order), so two orders can never both count on closing the same lots. Reduce-only
orders and TP/SL children hold nothing. Holds are brought up to date whenever the
position or the orders of a market change, so a fill converts its share of the hold
into position margin and a cancel releases it; a hold is never negative.

An order's hold depends on its own terms, the position's size, the leverage, the taker
rate and the market, and on other orders only through what the older ones claim of the
position (``claim``). So when one order appears, changes or goes away and nothing else
did, only its own hold can move, unless what it claims changed and a younger order still
counts on the unclaimed rest. ``Holds`` reprices just that order then, and the whole
market when a younger order's share moved or the position, leverage, fee or market
changed.
"""

from __future__ import annotations

from libs.common.margin import order_hold
from libs.common.markets import MarketSpec
from libs.common.state import AccountState, OpenOrderState

# (account, market spec, position size, leverage, taker ppm): what a market's holds used
Terms = tuple[AccountState, MarketSpec, int, int, int]


def opening_size(sz: int, is_buy: bool, szi: int, reducible: int) -> tuple[int, int]:
    """(lots that open exposure, reducible lots left) for an order of ``sz`` lots when
    ``reducible`` lots of the position are still unclaimed by older orders."""
    if szi == 0 or (szi > 0) == is_buy:
        return sz, reducible
    reduces = min(sz, reducible)
    return sz - reduces, reducible - reduces


def claim(order: OpenOrderState, szi: int) -> int:
    """The lots of the position ``szi`` that ``order`` counts on closing, ahead of any
    younger order: its size when it can open exposure on the side that reduces it."""
    if szi == 0 or order.reduce_only or order.hold_px <= 0 or order.is_buy == (szi > 0):
        return 0
    return order.sz


def counts_on_older(order: OpenOrderState, szi: int) -> bool:
    """Whether the order's hold depends on what older orders claim: it, or the modify it
    awaits, would reduce the position."""
    if szi == 0:
        return False
    reducing = szi < 0  # the side (is_buy) that reduces the position
    if not order.reduce_only and order.hold_px > 0 and order.is_buy == reducing:
        return True
    pending = order.modify
    return (
        pending is not None
        and not pending.reduce_only
        and pending.hold_px > 0
        and pending.is_buy == reducing
    )


def reprice_holds(acct: AccountState, spec: MarketSpec, leverage: int, taker_ppm: int) -> bool:
    """Recompute the holds of the account's orders in ``spec``'s market from scratch;
    returns whether any changed."""
    return bool(_reprice_market(acct, spec, leverage, taker_ppm))


def _reprice_market(
    acct: AccountState, spec: MarketSpec, leverage: int, taker_ppm: int
) -> list[tuple[OpenOrderState, int]]:
    """Every hold of the market, oldest order first; returns (order, hold before) of
    those that changed."""
    market = spec.name
    orders = sorted((o for o in acct.orders.values() if o.market == market), key=lambda o: o.oid)
    changed: list[tuple[OpenOrderState, int]] = []
    if not orders:
        return changed
    pos = acct.positions.get(market)
    szi = pos.szi if pos else 0
    reducible = {True: abs(szi), False: abs(szi)}
    for order in orders:
        hold = _hold(order, spec, leverage, taker_ppm, szi, reducible)
        if hold != order.hold:
            changed.append((order, order.hold))
            order.hold = hold
    return changed


class HoldChange:
    """What one repricing did, so that a refused order or modify can be undone: the
    holds it changed (order, hold before) and the terms the market's holds had been
    computed with before it."""

    __slots__ = ("changed", "key", "terms")

    def __init__(
        self,
        key: tuple[str, str],
        terms: Terms | None,
        changed: list[tuple[OpenOrderState, int]],
    ) -> None:
        self.key = key
        self.terms = terms
        self.changed = changed

    @property
    def added(self) -> int:
        """How much the account's holds grew (negative: shrank)."""
        return sum(order.hold - before for order, before in self.changed)


class Holds:
    """Keeps the holds of a partition's accounts up to date, repricing only what a change
    can move.

    Remembers per account and market the terms its holds were last computed with (the
    account object, the market spec, position size, leverage and taker rate): while they
    are the same, one order's change reprices that order alone (or with one pass over the
    account's orders, when it claims part of the position); when any differs, or nothing
    is remembered (a restart: this is never snapshotted), the whole market is recomputed.
    """

    def __init__(self) -> None:
        self._terms: dict[tuple[str, str], Terms] = {}

    def reprice(
        self, acct: AccountState, spec: MarketSpec, leverage: int, taker_ppm: int
    ) -> HoldChange:
        """Recompute every hold of the account in the market: after anything the holds
        depend on other than one order changed."""
        key = (acct.address, spec.name)
        before = self._terms.get(key)
        changed = _reprice_market(acct, spec, leverage, taker_ppm)
        self._terms[key] = (acct, spec, _szi(acct, spec.name), leverage, taker_ppm)
        return HoldChange(key, before, changed)

    def reprice_order(
        self,
        acct: AccountState,
        spec: MarketSpec,
        leverage: int,
        taker_ppm: int,
        oid: int,
        claimed: int,
    ) -> HoldChange:
        """Bring the market's holds up to date after order ``oid`` alone appeared, changed
        or went away; ``claimed`` is what it claimed of the position before (0 if new)."""
        market = spec.name
        key = (acct.address, market)
        szi = _szi(acct, market)
        known = self._terms.get(key)
        if (
            known is None
            or known[0] is not acct
            or known[1] is not spec
            or known[2:] != (szi, leverage, taker_ppm)
        ):
            return self.reprice(acct, spec, leverage, taker_ppm)
        order = acct.orders.get(oid)
        if order is not None and order.market != market:
            order = None
        claims = claim(order, szi) if order is not None else 0
        reducible = abs(szi)
        if claims != claimed or (order is not None and counts_on_older(order, szi)):
            older, younger_counts = _older_claims(acct, market, oid, szi)
            if claims != claimed and younger_counts and older + min(claims, claimed) < reducible:
                # a younger order's share of the position moves: recompute them all
                return self.reprice(acct, spec, leverage, taker_ppm)
            reducible = max(0, reducible - older)
        changed: list[tuple[OpenOrderState, int]] = []
        if order is not None:
            reducing = szi < 0
            left = {reducing: reducible, not reducing: abs(szi)}
            hold = _hold(order, spec, leverage, taker_ppm, szi, left)
            if hold != order.hold:
                changed.append((order, order.hold))
                order.hold = hold
        return HoldChange(key, known, changed)

    def undo(self, change: HoldChange) -> None:
        """Put back the holds a repricing changed, and the terms they were computed with."""
        for order, hold in change.changed:
            order.hold = hold
        if change.terms is None:
            self._terms.pop(change.key, None)
        else:
            self._terms[change.key] = change.terms


def _older_claims(acct: AccountState, market: str, oid: int, szi: int) -> tuple[int, bool]:
    """In one pass over the account's orders: what the orders of the market older than
    ``oid`` claim of the position (exact below its size, at least its size otherwise),
    and whether a younger one counts on what is left. Stops once the position is all
    claimed: nothing after can change then."""
    reducible = abs(szi)
    reducing = szi < 0
    older = 0
    younger_counts = False
    for other in acct.orders.values():
        if other.market != market or other.oid == oid:
            continue
        if other.oid < oid:
            if other.is_buy == reducing and not other.reduce_only and other.hold_px > 0:
                older += other.sz
                if older >= reducible:
                    break
        elif not younger_counts and (other.is_buy == reducing or other.modify is not None):
            younger_counts = counts_on_older(other, szi)
    return older, younger_counts


def _szi(acct: AccountState, market: str) -> int:
    pos = acct.positions.get(market)
    return pos.szi if pos else 0


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
