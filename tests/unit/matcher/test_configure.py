"""Operator changes of a listed market at run time: the matcher applies a change on top
of the market as it stands, publishes the result, hands it to every risk partition in
the same record, and keeps it across a restart on top of the market table it reads."""

from __future__ import annotations

import msgspec

from libs.common import topics
from libs.common.markets import MarketParams, MarketRegistry
from libs.common.schemas import ConfigureMarket, MarketConfigured
from libs.common.state import MARKET_SPEC_PREFIX
from libs.common.topics import Topics
from services.matcher.engine import MatcherCore
from tests.unit.matcher.scenario import ALICE, BOB, BTC, MARKETS, T0, Venue, registry

RISK_PARTITIONS = Topics("").partitions(topics.RISK_IN)


def configure(venue: Venue, req_id: str = "cfg", **changes: object) -> list[MarketConfigured]:
    """The public answers (market.events) to one change."""
    message = ConfigureMarket(
        ts=venue._stamp(None),
        market="BTC",
        params=MarketParams(**changes),  # type: ignore[arg-type]
        operator="token",
        reason="test",
        req_id=req_id,
    )
    sent = venue.send(message)
    return [o.message for o in sent.outputs if o.topic == topics.MARKET_EVENTS]


def test_a_raised_minimum_order_value_holds_for_new_orders_from_that_record_on() -> None:
    venue = Venue()
    assert venue.order(ALICE, "buy", "100000", "0.0002").result.status == "resting"  # $20

    before = len(venue.log)
    (event,) = configure(venue, min_order_usd=50_000_000)

    # one public answer on market.events and the same event for each risk partition
    to_risk = [o for o in venue.log[before:] if o.topic == topics.RISK_IN]
    assert sorted(o.partition for o in to_risk) == list(range(RISK_PARTITIONS))
    assert all(o.message == event for o in to_risk)
    assert (event.error, event.spec.min_order_usd, event.req_id) == ("", 50_000_000, "cfg")
    assert event.overrides == MarketParams(min_order_usd=50_000_000)

    refused = venue.order(BOB, "buy", "100000", "0.0002")
    assert refused.result.status == "minTradeNtlRejected"
    assert refused.result.error == "Order must have minimum value of $50."
    assert venue.order(BOB, "buy", "100000", "0.0005").result.status == "resting"  # $50
    # the order that was resting before the change still rests, untouched
    assert [(o.account, o.sz) for o in venue.engine().book.resting()] == [
        (ALICE, 20),
        (BOB, 50),
    ]


def test_a_change_that_contradicts_the_market_is_refused_and_changes_nothing() -> None:
    venue = Venue()
    before = len(venue.log)
    (event,) = configure(venue, maker_fee_ppm=-1_000)  # a rebate above the taker fee
    assert "maker_fee_ppm" in event.error
    assert event.spec == BTC
    assert [o.topic for o in venue.log[before:]] == [topics.MARKET_EVENTS]  # not to risk
    assert venue.engine().spec == BTC

    (tiers,) = configure(venue, max_leverage=20)  # BTC has three tiers: give them too
    assert tiers.error == "BTC: give margin_tiers with max_leverage (the market has 3 tiers)"


def test_changes_accumulate_and_survive_a_restart_on_top_of_an_edited_table() -> None:
    venue = Venue()
    configure(venue, taker_fee_ppm=600, req_id="a")
    (second,) = configure(venue, min_order_usd=25_000_000, req_id="b")
    assert (second.spec.taker_fee_ppm, second.spec.min_order_usd) == (600, 25_000_000)
    assert second.overrides == MarketParams(taker_fee_ppm=600, min_order_usd=25_000_000)

    venue.driver.commit()
    persisted = msgspec.msgpack.decode(venue.driver.persisted[MARKET_SPEC_PREFIX + "BTC"])
    assert persisted["min_order_usd"] == 25_000_000  # the gateway's view in Redis

    # The table is edited meanwhile (another field): the restart applies both.
    edited: MarketRegistry = registry(price_band_ppm=500_000)
    restarted = venue.driver.restarted(lambda p: MatcherCore(edited, p))
    core = restarted.core
    assert isinstance(core, MatcherCore)
    spec = core.engines["BTC"].spec
    assert (spec.taker_fee_ppm, spec.min_order_usd, spec.price_band_ppm) == (
        600,
        25_000_000,
        500_000,
    )
    # a change back to the table's value leaves no override behind
    venue2 = Venue(start=T0)
    configure(venue2, taker_fee_ppm=600, req_id="c")
    (back,) = configure(venue2, taker_fee_ppm=MARKETS.by_name("BTC").taker_fee_ppm, req_id="d")
    assert back.overrides == MarketParams()
