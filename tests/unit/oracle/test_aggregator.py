"""The aggregation core: outliers, staleness and quorum, the circuit breaker, overrides,
and when an index is published. Five sources with the reference weights; BTC ticks are
0.1 USDC, so 100000 USDC is 1,000,000 ticks."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import codec
from services.oracle.aggregator import (
    HALTED,
    INSUFFICIENT_SOURCES,
    OUTLIER,
    STALE,
    STALE_SOURCE,
    TOO_VOLATILE,
    VALID,
    Override,
    OverrideRefused,
    index_ticks,
)
from services.oracle.config import Rules
from services.oracle.median import weighted_median
from tests.unit.oracle.reference import (
    BTC,
    MARKETS,
    NAMES,
    SOURCES,
    T0,
    aggregator,
    everyone,
    feed,
    last,
    px,
    quotes,
)

HONEST = {"okx": "100010", "bybit": "99990", "coinbase": "100020", "kraken": "99980"}

# ---------------------------------------------------------------- one bad source


def test_one_source_at_plus_50_percent_leaves_the_index_at_the_honest_median() -> None:
    agg = aggregator()
    update = last(feed(agg, 0, {"binance": "150000", **HONEST}))
    # honest: 99980 (1), 99990 (2), 100010 (2), 100020 (1): half the weight is reached
    # exactly at 99990, so the median is halfway to 100010.
    assert update.status == VALID
    assert update.px == px("100000")
    rejected = {v.source: v.rejected for v in update.verdicts}
    assert rejected == {"binance": OUTLIER, "okx": "", "bybit": "", "coinbase": "", "kraken": ""}
    assert [(q.source, q.weight) for q in update.sources] == [
        ("okx", 2),
        ("bybit", 2),
        ("coinbase", 1),
        ("kraken", 1),
    ]
    assert update.median == Decimal(px("100010"))  # before rejection, Binance pulled it up


@pytest.mark.parametrize("liar", NAMES)
@pytest.mark.parametrize("factor", ["1.5", "0.5", "1000"])
def test_no_single_source_moves_the_index_beyond_the_honest_median(liar: str, factor: str) -> None:
    honest = {"binance": "100030", **HONEST}
    prices = dict(honest)
    prices[liar] = str(Decimal(prices[liar]) * Decimal(factor))
    weights = {s.name: s.weight for s in SOURCES}
    honest_median = weighted_median((px(p), weights[s]) for s, p in honest.items() if s != liar)
    update = last(feed(aggregator(), 0, prices))
    assert update.status == VALID
    assert update.px == honest_median


@settings(max_examples=200, deadline=None)
@given(
    honest=st.lists(st.integers(-40, 40), min_size=4, max_size=4),
    liar=st.sampled_from(NAMES),
    lie=st.integers(1, 10**9),
    outlier_bps=st.sampled_from([100, 9_999]),
)
def test_the_index_stays_within_the_honest_prices_whatever_one_source_says(
    honest: list[int], liar: str, lie: int, outlier_bps: int
) -> None:
    """With rejection on or effectively off, any valid index lies within the honest
    range: no single source carries half of the weight."""
    others = [s for s in NAMES if s != liar]
    prices = {s: str(100_000 + d) for s, d in zip(others, honest, strict=True)}
    prices[liar] = str(Decimal(lie) / 10)
    update = last(feed(aggregator(Rules(outlier_bps=outlier_bps)), 0, prices))
    if update.status == VALID:
        assert px(str(100_000 + min(honest))) <= update.px <= px(str(100_000 + max(honest)))


# ---------------------------------------------------------------- staleness and quorum


def test_stale_sources_drop_out_and_quorum_decides_validity() -> None:
    agg = aggregator()  # staleness 5 s, quorum 3 sources of weight 5
    assert last(feed(agg, 0, everyone("100000"))).status == VALID

    # Coinbase and Kraken go quiet; the big three carry on and still make the quorum.
    for second in range(1, 7):
        update = last(
            feed(agg, second * 1000, {"binance": "100100", "okx": "100100", "bybit": "100100"})
        )
    assert update.status == VALID
    assert update.px == px("100100")
    stale = {v.source: (v.rejected, v.age_ms) for v in update.verdicts if v.rejected}
    assert stale == {"coinbase": (STALE_SOURCE, 6000), "kraken": (STALE_SOURCE, 6000)}
    assert {q.source for q in update.sources} == {"binance", "okx", "bybit"}

    # Binance and OKX go quiet too; Coinbase and Kraken come back: 3 sources of weight 4.
    for second in range(7, 13):
        update = last(
            feed(agg, second * 1000, {"bybit": "100200", "coinbase": "100200", "kraken": "100200"})
        )
    assert update.status == INSUFFICIENT_SOURCES
    assert update.px == px("100100")  # the last valid price
    assert update.reason == "3 agreeing sources of weight 4; quorum is 3 sources of weight 5"

    # Binance is back: weight 7, valid again at the new level.
    update = last(feed(agg, 13_000, {"binance": "100200", "bybit": "100200"}))
    assert update.status == VALID
    assert update.px == px("100200")

    # Nobody for more than 5 s: stale, still at the last valid price.
    update = last(agg.advance(T0 + 19_000))
    assert update.status == STALE
    assert update.px == px("100200")
    assert all(v.rejected == STALE_SOURCE for v in update.verdicts)


def test_a_source_is_stale_only_past_its_own_bound() -> None:
    rules = Rules(staleness_ms=5000)
    agg = aggregator(rules)
    feed(agg, 0, everyone("100000"))
    update = last(feed(agg, 5000, {"binance": "100000", "okx": "100000"}))
    assert not any(v.rejected for v in update.verdicts)  # exactly 5000 ms old: still fresh
    update = last(feed(agg, 6000, {"binance": "100000", "okx": "100000"}))
    assert {v.source for v in update.verdicts if v.rejected} == {"bybit", "coinbase", "kraken"}


def test_sources_that_never_reported_are_missing_and_quorum_counts_them_out() -> None:
    update = last(feed(aggregator(), 0, {"binance": "100000", "okx": "100000"}))
    assert update.status == INSUFFICIENT_SOURCES
    assert update.px == 0  # no valid price yet
    assert [v.rejected for v in update.verdicts] == ["", "", "missing", "missing", "missing"]


def test_an_index_before_any_source_reported_is_stale_with_no_price() -> None:
    update = last(aggregator().advance(T0))
    assert (update.status, update.px) == (STALE, 0)


def test_outliers_can_cost_the_quorum() -> None:
    # Two camps of weight 4, 4% apart: the median falls halfway, 2% from both camps.
    prices = {"binance": "100000", "coinbase": "100000", "okx": "104000", "bybit": "104000"}
    update = last(feed(aggregator(), 0, prices))
    assert update.status == INSUFFICIENT_SOURCES
    assert update.median == Decimal(px("102000"))
    assert [v.rejected for v in update.verdicts] == [OUTLIER] * 4 + ["missing"]


# ---------------------------------------------------------------- circuit breaker


def steady(agg_seconds: range, price: str, agg: object) -> None:
    for second in agg_seconds:
        feed(agg, second * 1000, everyone(price))  # type: ignore[arg-type]


def test_a_20_percent_jump_from_all_sources_trips_and_is_accepted_after_confirmation() -> None:
    agg = aggregator()  # breaker 10% within 60 s, confirmation 5 s
    steady(range(0, 10), "100000", agg)

    tripped = last(feed(agg, 10_000, everyone("120000")))
    assert tripped.status == TOO_VOLATILE
    assert tripped.px == px("100000")  # the last valid price is held
    assert tripped.breaker_tripped
    assert tripped.reason.startswith("120000 is +20.00% from 100000 within 60000 ms")
    assert {q.source for q in tripped.sources} == set(NAMES)  # the evidence

    for second in range(11, 15):
        held = last(feed(agg, second * 1000, everyone("120000")))
        assert (held.status, held.px, held.breaker_tripped) == (TOO_VOLATILE, px("100000"), False)

    confirmed = last(feed(agg, 15_000, everyone("120000")))
    assert confirmed.status == VALID
    assert confirmed.px == px("120000")
    assert confirmed.reason == "move of +20.00% confirmed after 5000 ms"
    # the new level is the reference now: staying there is plainly valid
    after = last(feed(agg, 16_000, everyone("120100")))
    assert (after.status, after.px, after.reason) == (VALID, px("120100"), "")


def test_a_jump_from_one_source_alone_never_passes() -> None:
    agg = aggregator()
    steady(range(0, 5), "100000", agg)
    second = 5
    for liar in NAMES:  # each source alone, for two minutes
        for _ in range(120):
            prices = everyone("100000")
            prices[liar] = "120000"
            update = last(feed(agg, second * 1000, prices))
            assert (update.status, update.px) == (VALID, px("100000"))
            assert {v.source: v.rejected for v in update.verdicts}[liar] == OUTLIER
            second += 1


def test_a_move_that_reverts_within_the_confirmation_clears_the_breaker() -> None:
    agg = aggregator()
    steady(range(0, 3), "100000", agg)
    assert last(feed(agg, 3000, everyone("89000"))).status == TOO_VOLATILE
    back = last(feed(agg, 4000, everyone("100050")))
    assert (back.status, back.px) == (VALID, px("100050"))
    assert back.reason == "breaker cleared: the move reverted"


def test_a_new_level_that_keeps_moving_restarts_the_confirmation() -> None:
    agg = aggregator()
    steady(range(0, 3), "100000", agg)
    feed(agg, 3000, everyone("120000"))
    feed(agg, 6000, everyone("125000"))  # 4% away from the pending level: start over
    held = last(feed(agg, 9000, everyone("125000")))
    assert (held.status, held.px) == (TOO_VOLATILE, px("100000"))
    assert held.reason.endswith("held 3000 of 5000 ms")
    assert last(feed(agg, 11_000, everyone("125000"))).px == px("125000")


def test_small_steps_that_add_up_beyond_the_bound_within_the_window_trip_it() -> None:
    agg = aggregator(Rules(significant_move_bps=0))
    price = Decimal(100_000)
    statuses = []
    for second in range(0, 12):  # +1% a second: 11% above the window's low after 11 s
        statuses.append(last(feed(agg, second * 1000, everyone(str(price)))).status)
        price = (price * Decimal("1.01")).quantize(Decimal(1))
    assert statuses[:10] == [VALID] * 10
    assert statuses[-1] == TOO_VOLATILE


def test_quorum_loss_during_confirmation_restarts_it() -> None:
    agg = aggregator()
    steady(range(0, 3), "100000", agg)
    feed(agg, 3000, everyone("120000"))
    # Nobody reports again: the reports of 3 s grow older but confirm nothing, and 6 s
    # later they are stale.
    waiting = agg.advance(T0 + 9000)
    assert [(u.ts - T0, u.status) for u in waiting] == [
        *((t, TOO_VOLATILE) for t in (4000, 5000, 6000, 7000, 8000)),
        (9000, STALE),
    ]
    assert waiting[-2].reason.endswith("held 0 of 5000 ms")
    back = last(feed(agg, 10_000, everyone("120000")))
    assert back.status == TOO_VOLATILE and not back.breaker_tripped  # still the same trip
    assert back.reason.endswith("held 0 of 5000 ms")
    assert last(feed(agg, 15_000, everyone("120000"))).status == VALID


# ---------------------------------------------------------------- operator overrides


def test_freeze_holds_the_index_halted_until_released() -> None:
    agg = aggregator()
    feed(agg, 0, everyone("100000"))
    audit, update = agg.override(
        Override(ts=T0 + 500, market="BTC", action="freeze", operator="alice", reason="drill")
    )
    assert audit.action == "freeze" and audit.px == px("100000") and audit.operator == "alice"
    assert audit.ts == T0 + 500
    assert (update.status, update.px) == (HALTED, px("100000"))
    assert update.reason == "frozen at 100000 by alice: drill"

    assert feed(agg, 1000, everyone("100500")) == []  # nothing new to say before the cadence
    frozen = last(feed(agg, 1500, everyone("100500")))
    assert (frozen.status, frozen.px) == (HALTED, px("100000"))

    audit, released = agg.override(Override(ts=T0 + 1600, market="BTC", action="release"))
    assert audit.action == "release"
    assert (released.status, released.px) == (VALID, px("100500"))


def test_set_publishes_the_operators_price_and_the_breaker_measures_from_it() -> None:
    agg = aggregator()
    feed(agg, 0, everyone("100000"))
    audit, update = agg.override(
        Override(ts=T0 + 100, market="BTC", action="set", px=px("80000"), operator="bob")
    )
    assert (audit.px, update.status, update.px) == (px("80000"), HALTED, px("80000"))
    _, released = agg.override(Override(ts=T0 + 200, market="BTC", action="release"))
    # the sources still say 100000: 25% away from the operator's price
    assert (released.status, released.px) == (TOO_VOLATILE, px("80000"))


def test_overrides_that_cannot_apply_are_refused_and_change_nothing() -> None:
    agg = aggregator()
    with pytest.raises(OverrideRefused, match="no valid price to freeze"):
        agg.override(Override(ts=T0, market="BTC", action="freeze"))
    with pytest.raises(OverrideRefused, match="not under an override"):
        agg.override(Override(ts=T0, market="BTC", action="release"))
    with pytest.raises(OverrideRefused, match="unknown market"):
        agg.override(Override(ts=T0, market="DOGE", action="set", px=1))
    with pytest.raises(OverrideRefused, match="positive price"):
        agg.override(Override(ts=T0, market="BTC", action="set", px=0))
    assert last(feed(agg, 0, everyone("100000"))).status == VALID


# ---------------------------------------------------------------- publication


def test_a_market_is_published_at_its_cadence_and_at_once_on_a_significant_move() -> None:
    agg = aggregator(Rules(cadence_ms=1000, significant_move_bps=20))
    published = []
    for tenth in range(0, 30):  # a batch every 100 ms
        price = "100000" if tenth < 25 else "100300"  # +0.3% at 2.5 s
        published += [u.ts - T0 for u in feed(agg, tenth * 100, everyone(price))]
    assert published == [0, 1000, 2000, 2500]
    small = [u.ts - T0 for u in feed(agg, 3000, everyone("100310"))]  # +0.01%: not yet
    assert small == []
    assert [u.ts - T0 for u in feed(agg, 3500, everyone("100310"))] == [3500]


def test_cadence_ticks_that_fell_due_are_evaluated_at_their_own_times() -> None:
    agg = aggregator()
    feed(agg, 0, everyone("100000"))
    updates = agg.advance(T0 + 7000)
    assert [(u.ts - T0, u.status) for u in updates] == [
        (1000, VALID),
        (2000, VALID),
        (3000, VALID),
        (4000, VALID),
        (5000, VALID),
        (6000, STALE),  # 6 s old now
        (7000, STALE),
    ]
    live = aggregator()
    feed(live, 0, everyone("100000"))
    assert [u.ts - T0 for u in live.advance(T0 + 7000, catch_up=False)] == [7000]


def test_time_never_runs_backwards_and_older_prices_do_not_replace_newer_ones() -> None:
    agg = aggregator()
    feed(agg, 5000, everyone("100000"))
    assert agg.advance(T0 + 1000, quotes(1000, everyone("100500"))) == []
    assert agg.now == T0 + 5000
    update = last(agg.advance(T0 + 6000))
    assert update.px == px("100000")


def test_unusable_prices_are_ignored() -> None:
    agg = aggregator()
    bad = quotes(0, {"binance": "0", "okx": "-5", "bybit": "NaN", "unknown": "100000"})
    bad += quotes(0, {"binance": "100000"}, market="DOGE")
    assert [agg.observe(p) for p in bad] == [False] * 5


def test_source_prices_round_half_even_to_the_tick() -> None:
    agg = aggregator()
    exact = quotes(0, {"binance": "100000.05", "okx": "100000.15", "bybit": "100000.25"})
    for price in exact:
        agg.observe(price)
    update = last(agg.advance(T0))
    assert [v.px for v in update.verdicts[:3]] == [1_000_000, 1_000_002, 1_000_002]


@settings(max_examples=500, deadline=None)
@given(doubled=st.integers(1, 10**14), market=st.sampled_from(["BTC", "ETH", "SOL"]))
def test_index_prices_round_exactly_like_the_market_rounds_prices(
    doubled: int, market: str
) -> None:
    spec = MARKETS.by_name(market)
    exact = (Decimal(doubled) / 2).scaleb(-spec.px_decimals)
    assert index_ticks(spec, doubled) == spec.round_price(exact)


def test_index_prices_have_five_significant_figures_or_whole_dollars() -> None:
    assert index_ticks(BTC, 2 * 1_234_567) == 1_234_570  # 123456.7 -> 123457
    assert index_ticks(BTC, 2 * 99_999) == 99_999  # 9999.9 already has 5 figures
    assert index_ticks(BTC, 2 * 123_455 + 1) == 123_460  # 12345.55 -> 12346 (5 figures)
    assert index_ticks(BTC, 2 * 12_345 + 1) == 12_346  # 1234.55 -> 1234.6, half to even


def test_the_same_inputs_give_the_same_index_ticks_byte_for_byte() -> None:
    def run() -> list[bytes]:
        agg = aggregator()
        out = []
        for second in range(0, 40):
            price = "100000" if second < 20 else "121000"
            prices = everyone(price)
            if second % 7 == 0:
                prices.pop("kraken")
            prices["okx"] = "150000" if second % 5 == 0 else prices["okx"]
            out += [codec.encode(u.index_tick()) for u in feed(agg, second * 1000, prices)]
            out += [codec.encode(u.oracle_price()) for u in agg.advance(T0 + second * 1000 + 500)]
        return out

    first, second = run(), run()
    assert first == second and len(first) >= 40
    statuses = {msgspec.msgpack.decode(b)["status"] for b in first}
    assert statuses == {VALID, TOO_VOLATILE}
