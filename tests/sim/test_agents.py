"""The agents' decisions with hand-worked numbers, and their reproducibility: the same
seed and the same observations give the same orders."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.markets import load_markets
from sim.agents import (
    AccountView,
    CancelAll,
    FundingArbitrageur,
    MarketMaker,
    MarketView,
    NoiseTaker,
    Observation,
    Place,
    SetLeverage,
    TrendFollower,
    make_agent,
)

BTC = load_markets().by_name("BTC")


def obs(
    oracle: str, position: str = "0", funding: str = "0", now: int = 0, value: str = "100000"
) -> Observation:
    view = MarketView(BTC, Decimal(oracle), Decimal(oracle), Decimal(funding))
    account = AccountView(Decimal(value), {"BTC": Decimal(position)})
    return Observation(now, {"BTC": view}, account)


def test_market_maker_quotes_around_the_oracle() -> None:
    mm = MarketMaker(
        "mm",
        "BTC",
        1,
        {"levels": 2, "spread_bps": 10, "step_bps": 10, "size_usd": 5000, "size_jitter_pct": 0},
    )
    # $5000 at 100000 is 0.05 BTC; the top is 5 bps either side, the next 15 bps
    assert mm.decide(obs("100000")) == [
        CancelAll("BTC"),
        Place("BTC", True, "99950", "0.05", "Alo"),
        Place("BTC", False, "100050", "0.05", "Alo"),
        Place("BTC", True, "99850", "0.05", "Alo"),
        Place("BTC", False, "100150", "0.05", "Alo"),
    ]


def test_market_maker_skews_against_its_inventory() -> None:
    params = {
        "levels": 1,
        "spread_bps": 10,
        "size_usd": 5000,
        "size_jitter_pct": 0,
        "max_inventory_usd": 100_000,
        "skew_bps": 20,
    }
    mm = MarketMaker("mm", "BTC", 1, params)
    # long 0.5 BTC = $50000, half the limit: the centre moves 10 bps down to 99900;
    # bid 99900 x 0.9995 = 99850.05 -> 99850, ask 99900 x 1.0005 = 99949.95 -> 99950
    assert mm.decide(obs("100000", position="0.5"))[1:] == [
        Place("BTC", True, "99850", "0.05", "Alo"),
        Place("BTC", False, "99950", "0.05", "Alo"),
    ]
    # at the limit ($100000 long) it stops bidding and asks 20 bps under the oracle + 5
    assert mm.decide(obs("100000", position="1"))[1:] == [
        Place("BTC", False, "99850", "0.05", "Alo"),
    ]


def test_noise_taker_buys_through_the_oracle_and_flattens_beyond_its_limit() -> None:
    params = {"rate": 1, "buy_bias": 1, "min_usd": 1000, "max_usd": 1000, "slippage_bps": 50}
    taker = NoiseTaker("n", "BTC", 1, params)
    assert taker.decide(obs("100000")) == [Place("BTC", True, "100500", "0.01", "Ioc")]
    seller = NoiseTaker("n", "BTC", 1, {**params, "buy_bias": 0, "max_position_usd": 50000})
    assert seller.decide(obs("100000")) == [Place("BTC", False, "99500", "0.01", "Ioc")]
    # short $60000, beyond the $50000 limit: it buys back whatever its coin said
    assert seller.decide(obs("100000", position="-0.6")) == [
        Place("BTC", True, "100500", "0.01", "Ioc")
    ]
    quiet = NoiseTaker("n", "BTC", 1, {**params, "rate": 0})
    assert quiet.decide(obs("100000")) == []


def test_trend_follower_goes_in_with_its_conviction_and_flips_on_the_crossover() -> None:
    params = {
        "fast": 1,
        "slow": 3,
        "threshold_bps": 20,
        "notional_usd": 20000,
        "leverage": 25,
        "initial": "long",
        "slippage_bps": 50,
    }
    trend = TrendFollower("t", "BTC", 1, params)
    assert trend.setup() == [SetLeverage("BTC", 25)]
    # no crossover yet: the conviction holds, $20000 long = 0.2 BTC, IOC 50 bps through
    assert trend.decide(obs("100000")) == [Place("BTC", True, "100500", "0.2", "Ioc")]
    # fast EMA 99000 < slow 99500 x 0.998: short $20000 = 0.2020202 BTC, so it sells
    # 0.2 + 0.20202 (rounded down to the lot) at 99000 x 0.995 = 98505
    assert trend.decide(obs("99000", position="0.2")) == [
        Place("BTC", False, "98505", "0.40202", "Ioc")
    ]
    # holding the target: nothing to do
    assert trend.decide(obs("99000", position="-0.20202")) == []


def test_a_position_is_capped_by_the_margin_the_account_can_post() -> None:
    trend = TrendFollower("t", "BTC", 1, {"notional_usd": 20000, "leverage": 10, "initial": "long"})
    # $1000 of value at 10x, 80% of it used: $8000, 0.08 BTC at 100000
    assert trend.decide(obs("100000", value="1000")) == [
        Place("BTC", True, "100500", "0.08", "Ioc")
    ]
    # an account with nothing left does not trade at all
    assert trend.decide(obs("100000", value="-5")) == []


def test_funding_arbitrageur_shorts_a_high_rate_and_closes_when_it_fades() -> None:
    arb = FundingArbitrageur("f", "BTC", 1, {"threshold": "0.00005", "notional_usd": 20000})
    assert arb.decide(obs("100000", funding="0.0001")) == [
        Place("BTC", False, "99500", "0.2", "Ioc")
    ]
    # between half the threshold and the threshold: keep the short
    assert arb.decide(obs("100000", position="-0.2", funding="0.00003")) == []
    # below half of it: close, reduce-only
    assert arb.decide(obs("100000", position="-0.2", funding="0.00001")) == [
        Place("BTC", True, "100500", "0.2", "Ioc", reduce_only=True)
    ]
    # negative funding: shorts pay, so it goes long
    assert arb.decide(obs("100000", funding="-0.0001")) == [
        Place("BTC", True, "100500", "0.2", "Ioc")
    ]


def _play(kind: str, seed: int, params: dict[str, object]) -> list[list[object]]:
    agent = make_agent(kind, 0, "BTC", seed, params)
    prices = ["100000", "100100", "99800", "99500", "99900", "100300", "100200", "99000"]
    return [list(agent.decide(obs(px, now=i * 1000))) for i, px in enumerate(prices * 3)]


def test_same_seed_same_decisions_and_another_seed_differs() -> None:
    cases: tuple[tuple[str, dict[str, object]], ...] = (
        ("market_maker", {"levels": 3}),
        ("noise", {"rate": 0.5}),
        ("trend", {"initial": "short"}),
        ("funding_arb", {}),
    )
    for kind, params in cases:
        assert _play(kind, 42, params) == _play(kind, 42, params), kind
    assert _play("market_maker", 42, {}) != _play("market_maker", 43, {})
    assert _play("noise", 42, {}) != _play("noise", 43, {})


@settings(max_examples=200, deadline=None)
@given(
    oracle=st.integers(min_value=1_000, max_value=500_000),
    position=st.integers(min_value=-300, max_value=300),
    levels=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=10**6),
)
def test_market_maker_quotes_are_valid_and_never_cross(
    oracle: int, position: int, levels: int, seed: int
) -> None:
    mm = MarketMaker("mm", "BTC", seed, {"levels": levels, "spread_bps": 2, "step_bps": 1})
    intents = mm.decide(obs(str(oracle), position=str(Decimal(position) / 100)))
    places = [i for i in intents if isinstance(i, Place)]
    assert places, "a maker below its inventory limit on one side always quotes the other"
    bids = [BTC.price_units(p.px) for p in places if p.is_buy]
    asks = [BTC.price_units(p.px) for p in places if not p.is_buy]
    for p in places:
        assert BTC.size_units(p.sz) > 0  # on the lot, positive
    if bids and asks:
        assert max(bids) < min(asks)
