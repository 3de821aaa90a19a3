"""A simulated price source: a seeded random walk (geometric, in basis points).

The full simulator (drift, jumps, scripted faults) and the exchange adapters land with
#4. Each step is derived from the seed alone, so two runs give the same path.
"""

from __future__ import annotations

import random
from decimal import Decimal


class RandomWalkSource:
    """Prices per symbol that move by a normal step of ``volatility_bps`` per tick."""

    def __init__(self, start: dict[str, Decimal], volatility_bps: int, seed: int) -> None:
        self.prices = dict(start)
        self.volatility = Decimal(volatility_bps) / Decimal(10_000)
        self.rng = random.Random(seed)

    def step(self) -> dict[str, Decimal]:
        for symbol in sorted(self.prices):
            if self.volatility:
                shock = Decimal(repr(self.rng.gauss(0.0, 1.0))) * self.volatility
                self.prices[symbol] *= 1 + shock
        return dict(self.prices)


def parse_start_prices(text: str) -> dict[str, Decimal]:
    """``"BTC=100000,ETH=3500"`` to a mapping of Decimals."""
    out: dict[str, Decimal] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, _, price = pair.partition("=")
        out[name.strip()] = Decimal(price.strip())
    return out
