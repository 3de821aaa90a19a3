"""What every price source delivers: exact prices per market, stamped with event time.

A source is anything with ``async run(emit)`` that calls ``emit`` with batches of prices
until it is cancelled: the simulator, a replayed file, a live exchange adapter. A batch's
``now`` is the time at which it was observed; the aggregator reads time from it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import msgspec

Clock = Callable[[], int]
"""Milliseconds since the epoch (wall clock in production, a fake one in tests)."""


class SourcePrice(msgspec.Struct, frozen=True, kw_only=True):
    """One source's price for one market, received at ``ts`` (epoch ms)."""

    ts: int
    source: str
    market: str
    price: Decimal


class QuoteBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Prices observed together at ``now``: one simulator step, one replayed instant, or
    one exchange message."""

    now: int
    prices: tuple[SourcePrice, ...]


Emit = Callable[[QuoteBatch], None]


class PriceSource(Protocol):
    """A feed of prices for the oracle; ``run`` returns only when the feed is exhausted."""

    @property
    def name(self) -> str: ...

    async def run(self, emit: Emit) -> None: ...
