"""The simulated source: one GBM-with-jumps path per market, seen through several named
sources that disagree a little, plus scripted faults.

Each step multiplies a market's level by ``exp(mu - sigma^2/2 + sigma*Z + J)``: ``sigma``
is ``volatility_bps`` per step, ``mu`` is ``drift_bps``, and with probability
``jump_rate`` a jump ``J ~ N(0, (jump_sigmas*sigma)^2)`` is added. Each source reports
the level times its own ``exp(noise_ratio*sigma*Z_s)``. Floats stay inside: a price
leaves as ``start * Decimal(repr(level))`` rounded to 10 significant digits, exact and
reproducible, and a market with zero volatility and no drift reports exactly its start
price.

Every market and source has its own generator seeded from ``(seed, market, source)``, so
adding a market or a source does not change the others' paths.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence
from decimal import Decimal

from services.oracle.config import Fault, MarketPath, SimulatorConfig
from services.oracle.sources.base import Clock, Emit, QuoteBatch, SourcePrice

log = logging.getLogger(__name__)

_BPS = 10_000


SIGNIFICANT_DIGITS = 10
"""Simulated prices carry 10 significant digits, like an exchange's quote."""


def _factor(bps: Decimal) -> Decimal:
    return 1 + bps / _BPS


def _quoted(price: Decimal) -> Decimal:
    exponent = price.adjusted() - (SIGNIFICANT_DIGITS - 1)
    return price.quantize(Decimal(1).scaleb(exponent)).normalize()


class MarketSimulator:
    """The true path of one market and what each source reports of it."""

    def __init__(
        self,
        market: str,
        path: MarketPath,
        sources: Sequence[str],
        seed: int,
        faults: Sequence[Fault] = (),
    ) -> None:
        if path.start is None:
            raise ValueError(f"{market}: no start price")
        self.market = market
        self.start = path.start
        self.sigma = path.volatility_bps / _BPS
        self.mu = path.drift_bps / _BPS
        self.jump_rate = path.jump_rate
        self.jump_sigma = path.jump_sigmas * self.sigma
        self.noise = path.noise_ratio * self.sigma
        self.sources = tuple(sources)
        self.level = 1.0
        self.shift = Decimal(1)
        self._rng = random.Random(f"{seed}/{market}")
        self._source_rng = {s: random.Random(f"{seed}/{market}/{s}") for s in self.sources}
        self._faults = tuple(f for f in faults if not f.market or f.market == market)
        self._shifted: set[int] = set()
        self._frozen: dict[int, Decimal] = {}

    def step(self) -> None:
        """Advance the true level by one step (always the same draws, whatever the
        parameters, so a path does not depend on which features are on)."""
        z = self._rng.gauss(0.0, 1.0)
        u = self._rng.random()
        j = self._rng.gauss(0.0, 1.0)
        jump = self.jump_sigma * j if u < self.jump_rate else 0.0
        self.level *= math.exp(self.mu - self.sigma * self.sigma / 2 + self.sigma * z + jump)

    def true_price(self) -> Decimal:
        return self.start * self.shift * Decimal(repr(self.level))

    def quotes(self, elapsed_ms: int, ts: int) -> list[SourcePrice]:
        """What each source reports now, after the faults active at ``elapsed_ms``."""
        for i, fault in enumerate(self._faults):
            if fault.kind == "shift" and fault.active(elapsed_ms) and i not in self._shifted:
                self._shifted.add(i)
                self.shift *= _factor(fault.bps)
        true = self.true_price()
        out = []
        for source in self.sources:
            z = self._source_rng[source].gauss(0.0, 1.0)
            price: Decimal | None = true * Decimal(repr(math.exp(self.noise * z)))
            for i, fault in enumerate(self._faults):
                if fault.source != source or fault.kind == "shift":
                    continue
                if not fault.active(elapsed_ms):
                    self._frozen.pop(i, None)
                    continue
                price = self._apply(i, fault, price, elapsed_ms)
            if price is not None:
                out.append(
                    SourcePrice(ts=ts, source=source, market=self.market, price=_quoted(price))
                )
        return out

    def _apply(
        self, index: int, fault: Fault, price: Decimal | None, elapsed_ms: int
    ) -> Decimal | None:
        if price is None or fault.kind == "outage":
            return None
        if fault.kind == "frozen":
            return self._frozen.setdefault(index, price)
        if fault.kind == "spike":
            return price * _factor(fault.bps)
        # drift: slide linearly to ``bps`` away over the fault's duration
        progress = Decimal(elapsed_ms - fault.start_ms) / Decimal(fault.duration_ms)
        return price * _factor(fault.bps * progress)


class Simulator:
    """All simulated markets, stepped together; ``step(now)`` gives one batch."""

    def __init__(
        self, config: SimulatorConfig, sources: Sequence[str], markets: Sequence[str]
    ) -> None:
        self.step_ms = config.step_ms
        self.markets: list[MarketSimulator] = []
        for name in markets:
            path = config.markets.get(name)
            if path is None or path.start is None:
                log.warning("no start price: market not simulated", extra={"market": name})
                continue
            self.markets.append(MarketSimulator(name, path, sources, config.seed, config.faults))
        self._started: int | None = None

    def step(self, now: int) -> QuoteBatch:
        """The sources' prices at ``now``; the first call is the start of the fault clock
        and reports the start prices (before any move)."""
        if self._started is None:
            self._started = now
        else:
            for market in self.markets:
                market.step()
        elapsed = now - self._started
        prices = [q for market in self.markets for q in market.quotes(elapsed, now)]
        return QuoteBatch(now=now, prices=tuple(prices))


class SimulatedFeed:
    """The simulator on a timer: one batch every ``step_ms``, stamped on an exact grid
    from the first step (so every step lands on the cadence); a process that fell more
    than a step behind skips the missed steps rather than bursting them."""

    name = "simulator"

    def __init__(self, simulator: Simulator, clock: Clock) -> None:
        self.simulator = simulator
        self.clock = clock

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        step_ms = self.simulator.step_ms
        first_ms, first_at = self.clock(), loop.time()
        k = 0
        while True:
            emit(self.simulator.step(first_ms + k * step_ms))
            k += 1
            behind = loop.time() - (first_at + k * step_ms / 1000)
            if behind > step_ms / 1000:
                k += int(behind * 1000) // step_ms
            await asyncio.sleep(max(0.0, first_at + k * step_ms / 1000 - loop.time()))
