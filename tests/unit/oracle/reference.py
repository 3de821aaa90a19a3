"""The reference setup the oracle tests share: five sources with the reference weights
(Binance 3, OKX 2, Bybit 2, Coinbase 1, Kraken 1), the default rules, the BTC market."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from libs.common.markets import load_markets
from services.oracle.aggregator import Aggregator, IndexUpdate
from services.oracle.config import Rules, SourceRule
from services.oracle.sources.base import SourcePrice

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
SOURCES = (
    SourceRule(name="binance", weight=3),
    SourceRule(name="okx", weight=2),
    SourceRule(name="bybit", weight=2),
    SourceRule(name="coinbase", weight=1),
    SourceRule(name="kraken", weight=1),
)
NAMES = tuple(s.name for s in SOURCES)
T0 = 1_700_000_000_000


def px(text: str) -> int:
    """A BTC price in ticks (0.1 USDC)."""
    return BTC.price_units(text)


def aggregator(rules: Rules | None = None) -> Aggregator:
    return Aggregator(rules or Rules(), SOURCES, [BTC])


def quotes(at_ms: int, prices: Mapping[str, str], market: str = "BTC") -> list[SourcePrice]:
    """Source prices received at ``T0 + at_ms``."""
    return [
        SourcePrice(ts=T0 + at_ms, source=s, market=market, price=Decimal(p))
        for s, p in prices.items()
    ]


def everyone(price: str) -> dict[str, str]:
    return dict.fromkeys(NAMES, price)


def feed(agg: Aggregator, at_ms: int, prices: Mapping[str, str]) -> list[IndexUpdate]:
    return agg.advance(T0 + at_ms, quotes(at_ms, prices))


def last(updates: list[IndexUpdate]) -> IndexUpdate:
    assert updates, "nothing was published"
    return updates[-1]
