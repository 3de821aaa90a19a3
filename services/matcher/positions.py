"""Each account's position in this market, tracked from the matcher's own fills.

Every position change in a market is sequenced by its matcher (trades, backstop
takeovers, ADL closes), so this is exact, and reduce-only can be enforced per fill.
"""

from __future__ import annotations


class Positions:
    """Signed sizes in lots by account, and the open interest (sum of longs)."""

    __slots__ = ("open_interest", "sizes")

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        self.sizes: dict[str, int] = dict(sizes or {})
        self.open_interest = sum(s for s in self.sizes.values() if s > 0)

    def get(self, account: str) -> int:
        return self.sizes.get(account, 0)

    def reducible(self, account: str, is_buy: bool) -> int:
        """How much an order on this side may fill without increasing exposure."""
        size = self.sizes.get(account, 0)
        if is_buy:
            return -size if size < 0 else 0
        return size if size > 0 else 0

    def apply(self, account: str, is_buy: bool, sz: int) -> int:
        """Record a fill; returns the position before it."""
        before = self.sizes.get(account, 0)
        after = before + sz if is_buy else before - sz
        self.open_interest += max(after, 0) - max(before, 0)
        if after:
            self.sizes[account] = after
        else:
            self.sizes.pop(account, None)
        return before
