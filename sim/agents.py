"""The simulator's traders as pure decision code: given what an agent observes at one
tick (the market as the public API shows it, its own account), the orders and cancels
it sends. No I/O and no clock: time is the observation's; randomness is the agent's own
generator, seeded from ``(seed, kind, index)``, so the same seed and the same
observations give the same decisions.

- ``MarketMaker`` quotes a ladder around the oracle, skewed against its inventory.
- ``NoiseTaker`` sends random IOC orders (a buy bias pushes the perp rich or cheap).
- ``TrendFollower`` holds a leveraged position in the direction of a moving-average
  crossover (and may start with a conviction, long or short).
- ``FundingArbitrageur`` takes the side that receives funding when the rate is high.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from libs.common.markets import MarketSpec

BPS = Decimal(10_000)


@dataclass(frozen=True)
class MarketView:
    """One market as the public API showed it at a tick (``metaAndAssetCtxs``)."""

    spec: MarketSpec
    oracle_px: Decimal
    mark_px: Decimal
    funding_rate: Decimal = Decimal(0)  # per funding interval, as the API reports it


@dataclass(frozen=True)
class AccountView:
    """The agent's own account (``clearinghouseState``): value and signed positions."""

    account_value: Decimal
    positions: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    now_ms: int
    markets: Mapping[str, MarketView]
    account: AccountView


@dataclass(frozen=True)
class Place:
    """An order in the API's decimal strings (already on the market's tick and lot)."""

    market: str
    is_buy: bool
    px: str
    sz: str
    tif: str = "Gtc"
    reduce_only: bool = False


@dataclass(frozen=True)
class CancelAll:
    """Cancel every resting order of this agent in ``market``."""

    market: str


@dataclass(frozen=True)
class SetLeverage:
    market: str
    leverage: int
    is_cross: bool = True


Intent = Place | CancelAll | SetLeverage


def price_str(spec: MarketSpec, value: Decimal) -> str:
    """The nearest valid price of the market, as the API's string."""
    return spec.format_price(spec.round_price(value))


def size_str(spec: MarketSpec, coins: Decimal) -> str | None:
    """``coins`` rounded down to the lot, or None when that is no lot at all."""
    lots = int((coins * 10**spec.sz_decimals).to_integral_value(ROUND_DOWN))
    return spec.format_size(lots) if lots > 0 else None


def _dec(params: Mapping[str, Any], name: str, default: str) -> Decimal:
    return Decimal(str(params.get(name, default)))


class Agent:
    """The shape every strategy has: a name, a market, a seeded generator."""

    kind = "agent"

    def __init__(self, name: str, market: str, seed: int, params: Mapping[str, Any]) -> None:
        self.name = name
        self.market = market
        self.params = dict(params)
        self.rng = random.Random(f"{seed}/{name}")

    def setup(self) -> list[Intent]:
        """What to send once, before the first tick (leverage)."""
        leverage = self.params.get("leverage")
        return [SetLeverage(self.market, int(leverage))] if leverage else []

    def decide(self, obs: Observation) -> list[Intent]:
        raise NotImplementedError

    def _capped(self, target: Decimal, px: Decimal, account_value: Decimal) -> Decimal:
        """``target`` coins, or less: at most ``max_margin_pct`` (80) percent of the
        account's value used as margin at the agent's leverage."""
        leverage = self.params.get("leverage")
        if not leverage or target == 0:
            return target
        usable = (
            max(Decimal(0), account_value)
            * int(leverage)
            * _dec(self.params, "max_margin_pct", "80")
            / 100
        )
        limit = usable / px
        return max(-limit, min(limit, target))

    def _toward(
        self,
        view: MarketView,
        position: Decimal,
        target: Decimal,
        slippage_bps: Decimal,
        account_value: Decimal,
    ) -> list[Intent]:
        """An IOC order that moves the position to ``target`` coins (capped by the margin
        the account can post), if it is worth an order (twice the market's minimum)."""
        ref = view.oracle_px
        target = self._capped(target, ref, account_value)
        delta = target - position
        if abs(delta) * ref < Decimal(view.spec.min_order_usd) / 10**6 * 2:
            return []
        is_buy = delta > 0
        sz = size_str(view.spec, abs(delta))
        if sz is None:
            return []
        px = ref * (1 + slippage_bps / BPS if is_buy else 1 - slippage_bps / BPS)
        closing = target == 0  # flattening only ever shrinks the position
        return [Place(self.market, is_buy, price_str(view.spec, px), sz, "Ioc", closing)]


class MarketMaker(Agent):
    """Quotes ``levels`` bids and asks every tick, ``spread_bps`` wide at the top and
    ``step_bps`` apart, ``size_usd`` each (times a random factor within
    ``size_jitter_pct``, 20 by default), around the oracle
    moved by ``premium_bps`` and skewed against inventory: at ``max_inventory_usd`` the
    centre sits ``skew_bps`` below (long) or above (short) the oracle and the side that
    would add to the inventory is not quoted."""

    kind = "market_maker"

    def decide(self, obs: Observation) -> list[Intent]:
        view = obs.markets[self.market]
        p = self.params
        levels = int(p.get("levels", 3))
        spread, step = _dec(p, "spread_bps", "10"), _dec(p, "step_bps", "5")
        size_usd, max_inv = _dec(p, "size_usd", "5000"), _dec(p, "max_inventory_usd", "100000")
        skew, premium = _dec(p, "skew_bps", "20"), _dec(p, "premium_bps", "0")
        jitter_pct = int(p.get("size_jitter_pct", 20))
        oracle = view.oracle_px
        inventory = obs.account.positions.get(self.market, Decimal(0)) * oracle
        ratio = max(Decimal(-1), min(Decimal(1), inventory / max_inv))
        centre = oracle * (1 + (premium - ratio * skew) / BPS)
        intents: list[Intent] = [CancelAll(self.market)]
        for i in range(levels):
            jitter = Decimal(self.rng.randint(100 - jitter_pct, 100 + jitter_pct)) / 100
            sz = size_str(view.spec, size_usd * jitter / oracle)
            if sz is None:
                continue
            away = (spread / 2 + step * i) / BPS
            if ratio < 1:
                bid = price_str(view.spec, centre * (1 - away))
                intents.append(Place(self.market, True, bid, sz, "Alo"))
            if ratio > -1:
                ask = price_str(view.spec, centre * (1 + away))
                intents.append(Place(self.market, False, ask, sz, "Alo"))
        return intents


class NoiseTaker(Agent):
    """With probability ``rate`` per tick, an IOC order of ``min_usd``-``max_usd`` at up to
    ``slippage_bps`` through the oracle, a buy with probability ``buy_bias``; beyond
    ``max_position_usd`` it only trades back toward flat."""

    kind = "noise"

    def decide(self, obs: Observation) -> list[Intent]:
        view = obs.markets[self.market]
        p = self.params
        act, side, amount = self.rng.random(), self.rng.random(), self.rng.random()
        if act >= float(p.get("rate", 0.3)):
            return []
        lo, hi = _dec(p, "min_usd", "500"), _dec(p, "max_usd", "5000")
        notional = lo + (hi - lo) * Decimal(repr(round(amount, 6)))
        is_buy = side < float(p.get("buy_bias", 0.5))
        position = obs.account.positions.get(self.market, Decimal(0)) * view.oracle_px
        limit = _dec(p, "max_position_usd", "50000")
        if abs(position) >= limit:
            is_buy = position < 0
        slip = _dec(p, "slippage_bps", "50")
        px = view.oracle_px * (1 + slip / BPS if is_buy else 1 - slip / BPS)
        sz = size_str(view.spec, notional / view.oracle_px)
        if sz is None:
            return []
        return [Place(self.market, is_buy, price_str(view.spec, px), sz, "Ioc")]


class TrendFollower(Agent):
    """Holds ``notional_usd`` long when the fast EMA of the oracle (``fast`` ticks) is
    ``threshold_bps`` above the slow one (``slow`` ticks), short when below, and keeps its
    side in between; ``initial`` ("long", "short" or "flat") is its conviction before the
    first crossover. Trades at ``leverage`` with IOC orders."""

    kind = "trend"

    def __init__(self, name: str, market: str, seed: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, market, seed, params)
        self.fast: Decimal | None = None
        self.slow: Decimal | None = None
        self.side = {"long": 1, "short": -1}.get(str(params.get("initial", "flat")), 0)

    def decide(self, obs: Observation) -> list[Intent]:
        view = obs.markets[self.market]
        p = self.params
        px = view.oracle_px
        fast_a = 2 / (Decimal(int(p.get("fast", 5))) + 1)
        slow_a = 2 / (Decimal(int(p.get("slow", 20))) + 1)
        self.fast = px if self.fast is None else self.fast + fast_a * (px - self.fast)
        self.slow = px if self.slow is None else self.slow + slow_a * (px - self.slow)
        threshold = _dec(p, "threshold_bps", "20") / BPS
        if self.fast > self.slow * (1 + threshold):
            self.side = 1
        elif self.fast < self.slow * (1 - threshold):
            self.side = -1
        target = self.side * _dec(p, "notional_usd", "20000") / px
        position = obs.account.positions.get(self.market, Decimal(0))
        slippage = _dec(p, "slippage_bps", "50")
        return self._toward(view, position, target, slippage, obs.account.account_value)


class FundingArbitrageur(Agent):
    """Short ``notional_usd`` when the funding rate is above ``threshold`` (longs pay, so
    the short receives), long when below minus it, flat once it is back within half of
    it; the hedge it would hold elsewhere is outside the venue."""

    kind = "funding_arb"

    def __init__(self, name: str, market: str, seed: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, market, seed, params)
        self.side = 0

    def decide(self, obs: Observation) -> list[Intent]:
        view = obs.markets[self.market]
        p = self.params
        threshold = _dec(p, "threshold", "0.00005")
        rate = view.funding_rate
        if rate > threshold:
            self.side = -1
        elif rate < -threshold:
            self.side = 1
        elif abs(rate) < threshold / 2:
            self.side = 0
        target = self.side * _dec(p, "notional_usd", "20000") / view.oracle_px
        position = obs.account.positions.get(self.market, Decimal(0))
        slippage = _dec(p, "slippage_bps", "50")
        return self._toward(view, position, target, slippage, obs.account.account_value)


STRATEGIES: dict[str, type[Agent]] = {
    cls.kind: cls for cls in (MarketMaker, NoiseTaker, TrendFollower, FundingArbitrageur)
}


def make_agent(kind: str, index: int, market: str, seed: int, params: Mapping[str, Any]) -> Agent:
    """The ``index``-th agent of a kind; its generator depends on the seed, kind, index."""
    return STRATEGIES[kind](f"{kind}-{index}", market, seed, params)
