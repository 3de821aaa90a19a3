"""A price-time priority limit order book for one market (pure, no I/O).

Levels are kept in a dict of FIFO queues keyed by price plus a sorted list of prices per
side, so the best price is found in O(1) and a new level costs one bisect insert.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator

import msgspec


class RestingOrder(msgspec.Struct, kw_only=True):
    oid: int
    account: str
    is_buy: bool
    px: int
    sz: int
    orig_sz: int
    ts: int
    cloid: str | None = None


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """One execution against a resting order; ``maker_done`` when it left the book."""

    maker: RestingOrder
    px: int
    sz: int
    maker_done: bool


class _Side:
    __slots__ = ("is_bid", "levels", "prices")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []  # ascending
        self.levels: dict[int, deque[RestingOrder]] = {}

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def add(self, order: RestingOrder) -> None:
        level = self.levels.get(order.px)
        if level is None:
            level = self.levels[order.px] = deque()
            bisect.insort(self.prices, order.px)
        level.append(order)

    def remove_level(self, px: int) -> None:
        del self.levels[px]
        idx = bisect.bisect_left(self.prices, px)
        del self.prices[idx]

    def in_priority(self) -> Iterator[RestingOrder]:
        prices = reversed(self.prices) if self.is_bid else iter(self.prices)
        for px in prices:
            yield from self.levels[px]


class Book:
    """The resting orders of one market and the matching of incoming ones."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)
        self.orders: dict[int, RestingOrder] = {}

    def best_bid(self) -> int | None:
        return self.bids.best()

    def best_ask(self) -> int | None:
        return self.asks.best()

    def would_cross(self, is_buy: bool, px: int) -> bool:
        opposite = self.asks.best() if is_buy else self.bids.best()
        if opposite is None:
            return False
        return px >= opposite if is_buy else px <= opposite

    def match(self, is_buy: bool, px: int, sz: int) -> tuple[list[Match], int]:
        """Take liquidity up to ``sz`` at prices no worse than ``px``; returns the rest."""
        side = self.asks if is_buy else self.bids
        matches: list[Match] = []
        remaining = sz
        while remaining > 0:
            best = side.best()
            if best is None or (best > px if is_buy else best < px):
                break
            level = side.levels[best]
            while level and remaining > 0:
                maker = level[0]
                qty = min(remaining, maker.sz)
                maker.sz -= qty
                remaining -= qty
                done = maker.sz == 0
                if done:
                    level.popleft()
                    del self.orders[maker.oid]
                matches.append(Match(maker=maker, px=best, sz=qty, maker_done=done))
            if not level:
                side.remove_level(best)
        return matches, remaining

    def rest(self, order: RestingOrder) -> None:
        (self.bids if order.is_buy else self.asks).add(order)
        self.orders[order.oid] = order

    def cancel(self, oid: int) -> RestingOrder | None:
        order = self.orders.pop(oid, None)
        if order is None:
            return None
        side = self.bids if order.is_buy else self.asks
        level = side.levels[order.px]
        level.remove(order)
        if not level:
            side.remove_level(order.px)
        return order

    def resting(self) -> list[RestingOrder]:
        """Every resting order, bids then asks, each side in priority order."""
        return [*self.bids.in_priority(), *self.asks.in_priority()]

    def depth(
        self, levels: int = 20
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Aggregated (price, size, order count) per level, best first."""

        def side_depth(side: _Side) -> list[tuple[int, int, int]]:
            prices = reversed(side.prices) if side.is_bid else iter(side.prices)
            out = []
            for px in prices:
                level = side.levels[px]
                out.append((px, sum(o.sz for o in level), len(level)))
                if len(out) == levels:
                    break
            return out

        return side_depth(self.bids), side_depth(self.asks)
