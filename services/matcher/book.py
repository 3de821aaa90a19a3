"""A price-time priority limit order book for one market (pure, no I/O).

Each side keeps a sorted list of prices and, per price, a level: an insertion-ordered
dict of orders (FIFO by construction, O(1) cancel) with its running total size. Every
level an operation touches is remembered, so the engine can publish exact L2 deltas.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Final

from mypy_extensions import mypyc_attr

from services.matcher.positions import Positions
from services.matcher.structs import OrderRecord

SELF_TRADE: Final = "selfTradeCanceled"
REDUCE_ONLY: Final = "reduceOnlyCanceled"


# Compiled, instances of an "acyclic" class are not tracked by the garbage collector (they
# hold only strings, numbers and other acyclic objects); "free_list_len" keeps the memory
# of the last freed instance for the next one.
@mypyc_attr(acyclic=True)
class RestingOrder:
    """An order on the book (persisted as an ``OrderRecord``). A plain class rather than
    a msgspec Struct: compiled, its fields are read directly, and it is read on every
    operation."""

    __slots__ = (
        "account",
        "cloid",
        "filled_ntl",
        "is_buy",
        "oid",
        "orig_sz",
        "px",
        "reduce_only",
        "seq",
        "sz",
        "ts",
    )

    def __init__(
        self,
        *,
        oid: int,
        account: str,
        is_buy: bool,
        px: int,
        sz: int,
        orig_sz: int,
        ts: int,
        cloid: str | None = None,
        reduce_only: bool = False,
        filled_ntl: int = 0,
        seq: int = 0,
    ) -> None:
        self.oid = oid
        self.account = account
        self.is_buy = is_buy
        self.px = px
        self.sz = sz
        self.orig_sz = orig_sz
        self.ts = ts
        self.cloid = cloid
        self.reduce_only = reduce_only
        self.filled_ntl = filled_ntl
        self.seq = seq

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RestingOrder) and self.record() == other.record()

    def __repr__(self) -> str:
        return repr(self.record())

    def record(self) -> OrderRecord:
        return OrderRecord(
            oid=self.oid,
            account=self.account,
            is_buy=self.is_buy,
            px=self.px,
            sz=self.sz,
            orig_sz=self.orig_sz,
            ts=self.ts,
            cloid=self.cloid,
            reduce_only=self.reduce_only,
            filled_ntl=self.filled_ntl,
            seq=self.seq,
        )

    @staticmethod
    def from_record(r: OrderRecord) -> RestingOrder:
        return RestingOrder(
            oid=r.oid,
            account=r.account,
            is_buy=r.is_buy,
            px=r.px,
            sz=r.sz,
            orig_sz=r.orig_sz,
            ts=r.ts,
            cloid=r.cloid,
            reduce_only=r.reduce_only,
            filled_ntl=r.filled_ntl,
            seq=r.seq,
        )


@mypyc_attr(acyclic=True, free_list_len=1)
class Match:
    """One execution against a resting order; ``maker_done`` when it left the book."""

    __slots__ = ("maker", "maker_done", "px", "sz")

    def __init__(self, *, maker: RestingOrder, px: int, sz: int, maker_done: bool) -> None:
        self.maker = maker
        self.px = px
        self.sz = sz
        self.maker_done = maker_done


# Returned (never mutated) when an incoming order crosses nothing.
_NO_MATCHES: Final[list[Match]] = []
_NO_REMOVALS: Final[list[tuple[RestingOrder, str]]] = []


class _Level:
    __slots__ = ("orders", "size")

    def __init__(self) -> None:
        self.orders: dict[int, RestingOrder] = {}
        self.size = 0


class _Side:
    __slots__ = ("is_bid", "levels", "prices")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []  # ascending
        self.levels: dict[int, _Level] = {}

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def level_for(self, px: int) -> _Level:
        level = self.levels.get(px)
        if level is None:
            level = self.levels[px] = _Level()
            bisect.insort(self.prices, px)
        return level

    def drop_level(self, px: int) -> None:
        del self.levels[px]
        del self.prices[bisect.bisect_left(self.prices, px)]

    def prices_best_first(self) -> Iterator[int]:
        return reversed(self.prices) if self.is_bid else iter(self.prices)


class Book:
    """The resting orders of one market and the matching of incoming ones."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)
        self.orders: dict[int, RestingOrder] = {}
        self.touched: dict[tuple[bool, int], None] = {}
        # Orders rested, changed or removed since the last take_dirty(), in change order:
        # what the engine persists for this book after a batch.
        self.dirty: dict[int, None] = {}
        self.next_seq = 1  # each rest takes the next number: a level's queue order
        self.reduce_only_resting = 0

    # ------------------------------------------------------------ queries

    def best_bid(self) -> int | None:
        return self.bids.best()

    def best_ask(self) -> int | None:
        return self.asks.best()

    def would_cross(self, is_buy: bool, px: int) -> bool:
        opposite = self.asks.best() if is_buy else self.bids.best()
        if opposite is None:
            return False
        return px >= opposite if is_buy else px <= opposite

    def level(self, is_bid: bool, px: int) -> tuple[int, int]:
        """(total size, order count) at a price; (0, 0) when empty."""
        level = (self.bids if is_bid else self.asks).levels.get(px)
        return (level.size, len(level.orders)) if level else (0, 0)

    def depth(self, levels: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Aggregated (price, size, order count) per level, best first."""

        def side_depth(side: _Side) -> list[tuple[int, int, int]]:
            out = []
            for px in side.prices_best_first():
                level = side.levels[px]
                out.append((px, level.size, len(level.orders)))
                if len(out) == levels:
                    break
            return out

        return side_depth(self.bids), side_depth(self.asks)

    def impact_price(self, sell: bool, notional: int) -> int | None:
        """Average price (ticks, rounded against the trader) of a market order of
        ``notional`` micro-USDC into the bids (``sell``) or asks; None if too thin."""
        side = self.bids if sell else self.asks
        need = notional
        size = cost = 0
        for px in side.prices_best_first():
            available = side.levels[px].size
            take = min(available, -(-need // px))
            size += take
            cost += take * px
            need -= take * px
            if need <= 0:
                return cost // size if sell else -(-cost // size)
        return None

    def resting(self) -> list[RestingOrder]:
        """Every resting order, bids then asks, each side in priority order."""
        out: list[RestingOrder] = []
        for side in (self.bids, self.asks):
            for px in side.prices_best_first():
                out.extend(side.levels[px].orders.values())
        return out

    # ------------------------------------------------------------ changes

    def rest(self, order: RestingOrder) -> None:
        """Put an order at the back of its price level's queue."""
        order.seq = self.next_seq
        self.next_seq += 1
        self.insert(order)

    def insert(self, order: RestingOrder) -> None:
        """Rest an order keeping its sequence number (restoring a book in rest order)."""
        side = self.bids if order.is_buy else self.asks
        level = side.level_for(order.px)
        level.orders[order.oid] = order
        level.size += order.sz
        self.orders[order.oid] = order
        self.touched[(order.is_buy, order.px)] = None
        self.dirty[order.oid] = None
        self.reduce_only_resting += order.reduce_only

    def cancel(self, oid: int) -> RestingOrder | None:
        order = self.orders.pop(oid, None)
        if order is None:
            return None
        side = self.bids if order.is_buy else self.asks
        level = side.levels[order.px]
        del level.orders[oid]
        level.size -= order.sz
        if not level.orders:
            side.drop_level(order.px)
        self.touched[(order.is_buy, order.px)] = None
        self.dirty[oid] = None
        self.reduce_only_resting -= order.reduce_only
        return order

    def shrink(self, oid: int, new_sz: int) -> None:
        """Reduce a resting order's size in place: it keeps its time priority."""
        order = self.orders[oid]
        level = (self.bids if order.is_buy else self.asks).levels[order.px]
        level.size -= order.sz - new_sz
        order.sz = new_sz
        self.touched[(order.is_buy, order.px)] = None
        self.dirty[oid] = None

    def match(
        self, is_buy: bool, px: int, sz: int, account: str, positions: Positions
    ) -> tuple[list[Match], int, list[tuple[RestingOrder, str]]]:
        """Take liquidity up to ``sz`` at prices no worse than ``px``, updating positions
        fill by fill.

        A resting order of the taker's own account is never traded against: it is
        removed (self-trade prevention, expire maker). A reduce-only resting order fills
        only what reduces its owner's position at that moment; the rest of it is removed.
        Returns the executions, the size left, and the removed orders with the status."""
        side = self.asks if is_buy else self.bids
        best = side.best()
        if best is None or (best > px if is_buy else best < px):
            return _NO_MATCHES, sz, _NO_REMOVALS  # the common passive order: nothing to do
        matches: list[Match] = []
        removed: list[tuple[RestingOrder, str]] = []
        remaining = sz
        while remaining > 0:
            best = side.best()
            if best is None or (best > px if is_buy else best < px):
                break
            level = side.levels[best]
            orders = level.orders
            while orders and remaining > 0:
                maker = next(iter(orders.values()))
                if maker.account == account:
                    self._remove(level, maker)
                    removed.append((maker, SELF_TRADE))
                    continue
                qty = remaining if remaining < maker.sz else maker.sz
                if maker.reduce_only:
                    qty = min(qty, positions.reducible(maker.account, maker.is_buy))
                    if qty == 0:
                        self._remove(level, maker)
                        removed.append((maker, REDUCE_ONLY))
                        continue
                maker.sz -= qty
                maker.filled_ntl += qty * best
                self.dirty[maker.oid] = None
                level.size -= qty
                remaining -= qty
                positions.apply(account, is_buy, qty)
                positions.apply(maker.account, maker.is_buy, qty)
                done = maker.sz == 0
                if done:
                    del orders[maker.oid]
                    del self.orders[maker.oid]
                    self.reduce_only_resting -= maker.reduce_only
                matches.append(Match(maker=maker, px=best, sz=qty, maker_done=done))
            self.touched[(not is_buy, best)] = None
            if not orders:
                side.drop_level(best)
        return matches, remaining, removed

    def _remove(self, level: _Level, order: RestingOrder) -> None:
        self.dirty[order.oid] = None
        del level.orders[order.oid]
        del self.orders[order.oid]
        level.size -= order.sz
        self.reduce_only_resting -= order.reduce_only

    def take_touched(self) -> list[tuple[bool, int]]:
        """Levels changed since the last call, as (is_bid, price), in change order."""
        touched = list(self.touched)
        self.touched.clear()
        return touched

    def take_dirty(self) -> list[int]:
        """Orders rested, changed or removed since the last call, in change order."""
        dirty = list(self.dirty)
        self.dirty.clear()
        return dirty
