"""Mark price and funding as the matcher publishes them: marks on every oracle tick to
every risk partition and market.events; premium samples every 5 s from the impact prices;
the hourly rate at each interval, by event time."""

from __future__ import annotations

from libs.common.schemas import FundingRate, FundingUpdate, MarkPrice, MarkUpdate
from libs.common.topics import partition_for
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, DAVE, HOUR, T0, Venue, px, registry

ORACLE = px("100000")
BASE_RATE = 12_500  # 0.01% interest per 8 hours, paid hourly: 0.00125%


def test_an_index_tick_sets_the_mark_for_every_risk_partition_and_the_public_feed() -> None:
    venue = Venue()
    sent = venue.tick("100000")
    updates = [o for o in sent.outputs if isinstance(o.message, MarkUpdate)]
    assert [(o.topic, o.partition) for o in updates] == [("risk.in", p) for p in range(4)]
    assert {o.message for o in updates} == {
        MarkUpdate(ts=T0 + 1, market="BTC", mark_px=ORACLE, index_px=ORACLE)
    }
    public = [o for o in sent.outputs if isinstance(o.message, MarkPrice)]
    assert [(o.topic, o.partition) for o in public] == [("market.events", partition_for("BTC", 4))]
    assert public[0].message == MarkPrice(ts=T0 + 1, market="BTC", mark_px=ORACLE, index_px=ORACLE)


def test_an_empty_or_one_sided_book_marks_at_the_oracle() -> None:
    venue = Venue()
    assert venue.tick("100000").of(MarkPrice)[0].mark_px == ORACLE
    venue.buy(BOB, "100500", "1")
    assert venue.tick("100000").of(MarkPrice)[0].mark_px == ORACLE


def _premium_book(venue: Venue) -> None:
    """A book trading $50 over a 100,000 oracle: bid 100,040, ask 100,060, last 100,050."""
    venue.sell(DAVE, "100050", "0.1")
    venue.buy(ALICE, "100050", "0.1")
    venue.buy(BOB, "100040", "0.1")
    venue.sell(CAROL, "100060", "0.1")


def test_the_mark_follows_a_persistent_book_premium_then_the_ema_lets_it_go() -> None:
    venue = Venue()
    _premium_book(venue)
    first = venue.tick("100000")
    # oracle + basis = 100,050; median(bid, ask, last) = 100,050; oracle = 100,000.
    assert first.of(MarkPrice)[0].mark_px == px("100050")
    # 150 s later the oracle catches up to 100,100 and the book has not moved: the basis
    # halves its way from +50 to -50, to 0, and the mark is the oracle again.
    later = venue.tick("100100", at=venue.now + 150_000)
    assert later.of(MarkPrice)[0].mark_px == px("100100")
    assert venue.engine().mark.ema_basis == 0


def test_an_external_perp_mid_is_the_third_estimate() -> None:
    venue = Venue()
    _premium_book(venue)
    assert venue.tick("100000", external="99990").of(MarkPrice)[0].mark_px == px("100050")
    venue2 = Venue()
    venue2.buy(BOB, "99000", "0.1")
    venue2.sell(CAROL, "101000", "0.1")
    venue2.trade(ALICE, DAVE, "100500", "0.1")
    # No basis sample yet; median(99,000, 101,000, 100,500) = 100,500; external 100,300.
    sent = venue2.tick("100000", external="100300")
    assert sent.of(MarkPrice)[0].mark_px == px("100300")


def test_the_mark_is_published_while_the_oracle_is_stale() -> None:
    venue = Venue()
    venue.tick("100000")
    sent = venue.tick("100000", status="stale")
    assert len(sent.of(MarkUpdate)) == 4
    assert sent.of(MarkPrice)[0].mark_px == ORACLE


# ------------------------------------------------------------------ funding


MINUTE = 60_000


def _run(venue: Venue, first: int, last: int) -> list[FundingRate]:
    """An oracle tick at 100,000 every minute from minute ``first`` to ``last`` after T0
    (both included); returns the funding rates they produced."""
    rates: list[FundingRate] = []
    for minute in range(first, last + 1):
        rates += venue.tick("100000", at=T0 + minute * MINUTE).of(FundingRate)
    return rates


def test_a_flat_book_pays_the_interest_rate_on_the_hour() -> None:
    venue = Venue()
    assert _run(venue, 1, 59) == []
    engine = venue.engine()
    assert engine.funding.next_funding_ts == T0 + HOUR
    # The first tick only sets the clocks; each later one takes a sample.
    assert engine.funding.samples == 58

    sent = venue.tick("100000", at=T0 + HOUR)
    (rate,) = sent.of(FundingRate)
    assert rate == FundingRate(
        ts=T0 + HOUR,
        market="BTC",
        rate_ppb=BASE_RATE,
        premium_ppb=0,
        mark_px=ORACLE,
        index_px=ORACLE,
        cum_index=BASE_RATE * ORACLE,
    )
    updates = [o for o in sent.outputs if isinstance(o.message, FundingUpdate)]
    assert [(o.topic, o.partition) for o in updates] == [("risk.in", p) for p in range(4)]
    assert {o.message for o in updates} == {
        FundingUpdate(
            ts=T0 + HOUR,
            market="BTC",
            rate_ppb=BASE_RATE,
            mark_px=ORACLE,
            cum_index=BASE_RATE * ORACLE,
            oracle_px=ORACLE,
        )
    }
    assert (engine.funding.samples, engine.funding.next_funding_ts) == (0, T0 + 2 * HOUR)


def test_the_first_tick_only_sets_the_clocks() -> None:
    venue = Venue()
    venue.tick("100000", at=T0 + 2_500)
    funding = venue.engine().funding
    assert (funding.next_sample_ts, funding.next_funding_ts) == (T0 + 5_000, T0 + HOUR)
    assert funding.samples == 0
    venue.tick("100000", at=T0 + 4_999)
    assert funding.samples == 0
    venue.tick("100000", at=T0 + 5_000)
    assert (funding.samples, funding.next_sample_ts) == (1, T0 + 10_000)


def _bids_a_tenth_of_a_percent_over(venue: Venue) -> None:
    """$20k of bids at 100,100 against a 100,000 oracle: a +0.1% premium."""
    venue.buy(BOB, "100100", "0.3")
    venue.sell(CAROL, "100200", "0.3")


def test_buyers_paying_over_the_oracle_raise_the_rate() -> None:
    venue = Venue()
    _bids_a_tenth_of_a_percent_over(venue)
    (rate,) = _run(venue, 1, 60)
    # 0.1% premium - 0.05% clamp = 0.05% per 8 hours: 0.00625% an hour.
    assert (rate.premium_ppb, rate.rate_ppb) == (1_000_000, 62_500)
    ctx = venue.engine().context()
    assert (ctx.impact_bid_px, ctx.impact_ask_px) == (px("100100"), px("100200"))
    assert (ctx.premium_ppb, ctx.funding_rate_ppb) == (1_000_000, 62_500)
    assert ctx.cum_funding_index == 62_500 * rate.mark_px


def test_sellers_under_the_oracle_make_the_rate_negative() -> None:
    venue = Venue()
    venue.buy(BOB, "99800", "0.3")
    venue.sell(CAROL, "99900", "0.3")
    (rate,) = _run(venue, 1, 60)
    assert (rate.premium_ppb, rate.rate_ppb) == (-1_000_000, -62_500)


def test_the_rate_is_capped_at_four_percent_an_hour() -> None:
    venue = Venue()
    venue.buy(BOB, "140000", "0.2")  # impact bid 40% over the oracle
    venue.sell(CAROL, "150000", "0.2")
    (rate,) = _run(venue, 1, 60)
    assert (rate.premium_ppb, rate.rate_ppb) == (400_000_000, 40_000_000)


def test_each_interval_averages_only_its_own_samples_and_the_index_accumulates() -> None:
    venue = Venue()
    _bids_a_tenth_of_a_percent_over(venue)
    (first,) = _run(venue, 1, 60)
    venue.cancel_all(BOB)
    venue.cancel_all(CAROL)
    (second,) = _run(venue, 61, 120)
    assert (first.rate_ppb, second.rate_ppb) == (62_500, BASE_RATE)
    assert second.cum_index == 62_500 * first.mark_px + BASE_RATE * second.mark_px


def test_a_smoothed_rate_averages_the_recent_intervals() -> None:
    venue = Venue(registry(funding_smoothing=2))
    _bids_a_tenth_of_a_percent_over(venue)
    (first,) = _run(venue, 1, 60)
    venue.cancel_all(BOB)
    venue.cancel_all(CAROL)
    (second,) = _run(venue, 61, 120)
    assert (first.rate_ppb, second.rate_ppb) == (62_500, (62_500 + BASE_RATE) // 2)


def test_funding_waits_for_a_valid_oracle_then_settles_late() -> None:
    venue = Venue()
    _run(venue, 1, 59)
    assert venue.tick("100000", status="stale", at=T0 + HOUR).of(FundingRate) == []
    (late,) = venue.tick("100000", at=T0 + HOUR + 5_000).of(FundingRate)
    assert (late.ts, late.rate_ppb) == (T0 + HOUR + 5_000, BASE_RATE)
    assert venue.engine().funding.next_funding_ts == T0 + 2 * HOUR


def test_a_half_hour_interval_pays_half_the_hourly_rate() -> None:
    venue = Venue(registry(funding_interval_ms=HOUR // 2))
    (rate,) = _run(venue, 1, 30)
    assert rate.rate_ppb == BASE_RATE // 2
