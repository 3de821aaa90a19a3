"""The simulated source: seeded and reproducible, GBM with the configured volatility and
jumps, exact start prices in a still market, and scripted faults that do what they say."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from libs.common.settings import Settings
from services.oracle.aggregator import OUTLIER, STALE_SOURCE, VALID, Aggregator
from services.oracle.config import Fault, MarketPath, Rules, SimulatorConfig, load_oracle_config
from services.oracle.record import as_csv, simulate
from services.oracle.sources.base import QuoteBatch
from services.oracle.sources.replay import format_ticks
from services.oracle.sources.simulated import SimulatedFeed, Simulator
from tests.unit.oracle.reference import BTC, NAMES, SOURCES, T0

STILL = MarketPath(start=Decimal("100000"), volatility_bps=0, jump_rate=0.5, jump_sigmas=10)


def simulator(path: MarketPath, *faults: Fault, seed: int = 7) -> Simulator:
    config = SimulatorConfig(seed=seed, step_ms=1000, markets={"BTC": path}, faults=faults)
    return Simulator(config, NAMES, ["BTC"])


def run(sim: Simulator, steps: int) -> list[dict[str, Decimal]]:
    """Each step's prices by source."""
    return [{p.source: p.price for p in sim.step(T0 + k * 1000).prices} for k in range(steps)]


def test_zero_volatility_reports_exactly_the_start_price_forever() -> None:
    # jumps and source noise are scaled by the volatility, so they vanish with it
    still = MarketPath(
        start=Decimal("100000"), volatility_bps=0, jump_rate=1.0, jump_sigmas=10, noise_ratio=0.5
    )
    for step in run(simulator(still), 500):
        assert step == dict.fromkeys(NAMES, Decimal(100000))


def test_the_same_seed_gives_the_same_prices_and_another_seed_does_not() -> None:
    path = MarketPath(
        start=Decimal("100000"), volatility_bps=10, jump_rate=0.01, jump_sigmas=8, noise_ratio=0.25
    )
    assert run(simulator(path), 200) == run(simulator(path), 200)
    assert run(simulator(path, seed=8), 200) != run(simulator(path), 200)


def true_returns(path: MarketPath, steps: int) -> list[float]:
    sim = simulator(path)
    market = sim.markets[0]
    levels = []
    for _ in range(steps):
        market.step()
        levels.append(market.level)
    return [math.log(b / a) for a, b in itertools.pairwise(levels)]


def test_one_steps_move_has_the_configured_volatility() -> None:
    returns = true_returns(MarketPath(start=Decimal(1), volatility_bps=10), 4000)
    assert 0.00095 < statistics.stdev(returns) < 0.00105  # 10 bps, within 5%
    assert abs(statistics.mean(returns)) < 0.00005


def test_jumps_fatten_the_tails_at_the_configured_rate() -> None:
    plain = true_returns(MarketPath(start=Decimal(1), volatility_bps=10), 4000)
    jumpy = true_returns(
        MarketPath(start=Decimal(1), volatility_bps=10, jump_rate=0.05, jump_sigmas=10), 4000
    )

    def beyond_5_sigma(returns: list[float]) -> int:
        return sum(abs(r) > 0.005 for r in returns)

    assert beyond_5_sigma(plain) == 0
    # 5% of steps jump, and a N(0, 10 sigma) jump lands beyond 5 sigma 62% of the time: ~3%
    assert 60 < beyond_5_sigma(jumpy) < 190


def test_drift_moves_the_level_by_the_configured_amount_per_step() -> None:
    returns = true_returns(MarketPath(start=Decimal(1), volatility_bps=0, drift_bps=5), 100)
    assert all(abs(r - 0.0005) < 1e-12 for r in returns)


def fault(kind: str, source: str = "kraken", bps: int = 0, **times: int) -> Fault:
    return msgspec.convert(
        {
            "kind": kind,
            "source": source,
            "bps": bps,
            "start_ms": 10_000,
            "duration_ms": 10_000,
            **times,
        },
        Fault,
    )


MOVING = MarketPath(start=Decimal("100000"), volatility_bps=10)


def test_an_outage_silences_one_source_for_its_duration() -> None:
    steps = run(simulator(MOVING, fault("outage")), 30)
    seen = [s for s, step in enumerate(steps) if "kraken" in step]
    assert seen == [*range(0, 10), *range(20, 30)]
    assert all(len(step) == 4 for step in steps[10:20])


def test_a_frozen_source_repeats_its_price_while_the_others_move() -> None:
    steps = run(simulator(MOVING, fault("frozen")), 30)
    frozen = {steps[s]["kraken"] for s in range(10, 20)}
    assert len(frozen) == 1
    assert len({steps[s]["binance"] for s in range(10, 20)}) == 10
    assert steps[20]["kraken"] != steps[19]["kraken"]


def test_a_spike_reports_one_source_far_away_and_drift_slides_there() -> None:
    spiked = run(simulator(STILL, fault("spike", bps=5000)), 25)
    assert [s["kraken"] for s in spiked[9:12]] == [100000, 150000, 150000]
    assert spiked[20]["kraken"] == 100000 and spiked[15]["binance"] == 100000
    drift = run(simulator(STILL, fault("drift", bps=1000)), 25)
    assert [drift[s]["kraken"] for s in (10, 15, 19, 20)] == [100000, 105000, 109000, 100000]


def test_a_shift_moves_every_source_and_stays() -> None:
    steps = run(simulator(STILL, fault("shift", source="", bps=2000, duration_ms=0)), 40)
    assert steps[9] == dict.fromkeys(NAMES, Decimal(100000))
    assert steps[10] == steps[39] == dict.fromkeys(NAMES, Decimal(120000))


def test_faults_target_their_market_only() -> None:
    config = SimulatorConfig(
        markets={"BTC": STILL, "ETH": msgspec.structs.replace(STILL, start=Decimal(3500))},
        faults=(msgspec.structs.replace(fault("outage"), market="ETH"),),
    )
    batch = Simulator(config, NAMES, ["BTC", "ETH"])
    prices = [batch.step(T0 + k * 1000) for k in range(12)][-1].prices
    assert [(p.market, p.source) for p in prices].count(("BTC", "kraken")) == 1
    assert ("ETH", "kraken") not in [(p.market, p.source) for p in prices]


@pytest.mark.parametrize(
    ("kind", "first", "last"),
    [
        ("spike", OUTLIER, OUTLIER),  # 30% off from the first moment
        ("drift", "", OUTLIER),  # slides out of the 1% band
        ("outage", "", STALE_SOURCE),  # its last price ages out after 5 s
        ("frozen", "", None),  # depends on how far the market wanders
    ],
)
def test_one_faulty_source_never_moves_the_index_off_the_honest_path(
    kind: str, first: str, last: str | None
) -> None:
    path = MarketPath(start=Decimal("100000"), volatility_bps=20, noise_ratio=0.25)
    faulty = fault(kind, bps=-3000, start_ms=20_000, duration_ms=60_000)
    sims = simulator(path, faulty), simulator(path)
    agg = Aggregator(Rules(significant_move_bps=0), SOURCES, [BTC])
    honest = Aggregator(Rules(significant_move_bps=0), SOURCES[:4], [BTC])
    verdicts = []
    for k in range(100):
        now = T0 + k * 1000
        batch, clean = sims[0].step(now), sims[1].step(now)
        update = agg.advance(now, batch.prices)[-1]
        reference = honest.advance(now, [p for p in clean.prices if p.source != "kraken"])[-1]
        assert update.status == VALID
        # the index never leaves the range of the four honest sources
        honest_px = [q.px for q in reference.sources]
        assert min(honest_px) <= update.px <= max(honest_px)
        if 20 <= k < 80:
            verdicts.append({v.source: v.rejected for v in update.verdicts}["kraken"])
    assert verdicts[0] == first
    if last is not None:
        assert verdicts[-1] == last


def test_recording_the_drill_again_gives_the_committed_tick_file_byte_for_byte() -> None:
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "oracle"
    settings = Settings()
    config = load_oracle_config(settings, fixtures / "drill.toml")
    prices = simulate(config, settings.markets, 60, 1_767_225_600_000)
    assert len(prices) == 876  # 60 steps x 3 markets x 5 sources, less the outages
    assert format_ticks(prices) == (fixtures / "ticks.jsonl").read_text()
    assert as_csv(prices) == (fixtures / "ticks.csv").read_text()


async def test_the_feed_stamps_its_steps_on_an_exact_grid() -> None:
    config = SimulatorConfig(step_ms=100, markets={"BTC": STILL})
    feed = SimulatedFeed(Simulator(config, NAMES, ["BTC"]), clock=lambda: T0 + 7)
    batches: list[QuoteBatch] = []
    task = asyncio.create_task(feed.run(batches.append))
    for _ in range(500):  # up to 5 s
        if len(batches) >= 4:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [b.now - T0 for b in batches[:4]] == [7, 107, 207, 307]  # whatever the clock says
    assert all(len(b.prices) == 5 for b in batches)
