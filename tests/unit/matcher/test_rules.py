"""Per-market rules from configuration: minimum order value, the price band around the
oracle, the open-order limit, the kill switch, and reduce-only trading while the oracle
is not valid. (Ticks, five significant figures and lots are checked where decimal
strings become integers, in MarketSpec: see tests/unit/common/test_markets.py.)"""

from __future__ import annotations

import pytest

from libs.common.schemas import MarketStatus, NewOrder
from tests.unit.matcher.scenario import (
    ALICE,
    BOB,
    CAROL,
    MARKETS,
    T0,
    Venue,
    px,
    registry,
    sz,
)

MIN_VALUE_ERROR = "Order must have minimum value of $10."
BAND_ERROR = "Order price cannot be more than 80% away from the reference price"


@pytest.mark.parametrize("name", ["BTC", "ETH", "SOL"])
def test_every_market_trades_by_the_configured_rules(name: str) -> None:
    spec = MARKETS.by_name(name)
    assert (spec.min_order_usd, spec.price_band_ppm, spec.max_open_orders) == (
        10_000_000,
        800_000,
        1000,
    )
    assert (spec.market_slippage_ppm, spec.mark_ema_ms, spec.premium_sample_ms) == (
        50_000,
        150_000,
        5_000,
    )
    assert (spec.funding_interval_ms, spec.interest_8h_ppb, spec.premium_clamp_ppb) == (
        3_600_000,
        100_000,
        500_000,
    )
    assert (spec.funding_cap_hourly_ppb, spec.book_snapshot_ms) == (40_000_000, 10_000)
    impact = {"BTC": 20_000_000_000, "ETH": 20_000_000_000, "SOL": 6_000_000_000}
    assert spec.impact_notional_usd == impact[name]


# ------------------------------------------------------------------ minimum order value


@pytest.mark.parametrize(
    ("market", "price", "size", "status"),
    [
        ("BTC", "100000", "0.0001", "resting"),  # exactly $10
        ("BTC", "99990", "0.0001", "minTradeNtlRejected"),  # $9.999
        ("ETH", "3500", "0.0029", "resting"),  # $10.15
        ("ETH", "3500", "0.0028", "minTradeNtlRejected"),  # $9.80
    ],
)
def test_orders_under_ten_dollars_are_refused(
    market: str, price: str, size: str, status: str
) -> None:
    venue = Venue()
    result = venue.buy(ALICE, price, size, market=market).result
    assert result.status == status
    if status != "resting":
        assert result.error == MIN_VALUE_ERROR
        assert venue.resting(market) == []


def test_a_market_orders_value_is_judged_at_the_mark() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.sell(BOB, "100000", "1")
    result = venue.market_order(ALICE, "buy", "0.00009").result  # $9 at the mark
    assert (result.status, result.error) == ("minTradeNtlRejected", MIN_VALUE_ERROR)


def test_reduce_only_orders_may_close_less_than_ten_dollars() -> None:
    venue = Venue()
    venue.trade(ALICE, BOB, "100000", "0.1")
    venue.buy(CAROL, "100000", "1")
    sent = venue.sell(ALICE, "100000", "0.00005", tif="Ioc", reduce_only=True)  # $5
    assert (sent.result.status, sent.result.filled_sz) == ("filled", sz("0.00005"))


# ------------------------------------------------------------------ price band


@pytest.mark.parametrize(
    ("side", "price", "status"),
    [
        ("buy", "180000", "resting"),  # 80% over a 100,000 oracle is the limit
        ("buy", "180010", "oracleRejected"),
        ("sell", "20000", "resting"),  # 80% under it
        ("sell", "19999", "oracleRejected"),
    ],
)
def test_prices_more_than_80_percent_from_the_oracle_are_refused(
    side: str, price: str, status: str
) -> None:
    venue = Venue()
    venue.tick("100000")
    result = venue.order(ALICE, "buy" if side == "buy" else "sell", price, "0.001").result
    assert result.status == status
    if status == "oracleRejected":
        assert result.error == BAND_ERROR


def test_the_band_follows_the_oracle_and_is_open_before_the_first_price() -> None:
    venue = Venue()
    assert venue.buy(ALICE, "500000", "0.001").result.status == "resting"
    venue.tick("150000")
    assert venue.buy(ALICE, "270000", "0.001").result.status == "resting"
    assert venue.buy(ALICE, "270010", "0.001").result.status == "oracleRejected"
    assert venue.sell(ALICE, "500000", "0.001").result.status == "oracleRejected"


def test_a_market_order_with_a_price_beyond_the_band_is_refused() -> None:
    venue = Venue()
    venue.tick("100000")
    result = venue.market_order(ALICE, "buy", "0.1", limit="190000").result
    assert (result.status, result.error) == ("oracleRejected", BAND_ERROR)


# ------------------------------------------------------------------ open orders


def test_an_account_may_have_at_most_1000_open_orders_in_a_market() -> None:
    venue = Venue()
    for _ in range(1000):
        assert venue.buy(ALICE, "90000", "0.001").result.status == "resting"
    refused = venue.buy(ALICE, "90000", "0.001").result
    assert (refused.status, refused.error) == ("rejected", "Too many open orders (1000).")
    assert venue.buy(BOB, "90000", "0.001").result.status == "resting"
    venue.cancel(ALICE, 1)
    assert venue.buy(ALICE, "90000", "0.001").result.status == "resting"


def test_trigger_orders_count_as_open_orders() -> None:
    venue = Venue(registry(max_open_orders=2))
    venue.tick("100000")
    venue.buy(ALICE, "90000", "0.001")
    venue.trigger(ALICE, "buy", "0.001", trigger="105000", tpsl="sl", reduce_only=False)
    refused = venue.buy(ALICE, "90000", "0.001").result
    assert (refused.status, refused.error) == ("rejected", "Too many open orders (2).")
    refused_stop = venue.trigger(
        ALICE, "buy", "0.001", trigger="106000", tpsl="sl", reduce_only=False
    ).result
    assert refused_stop.status == "rejected"


def test_orders_that_leave_the_book_free_their_slot() -> None:
    venue = Venue(registry(max_open_orders=1))
    venue.sell(ALICE, "100000", "0.1")
    venue.buy(BOB, "100000", "0.1")  # fills Alice's order
    assert venue.sell(ALICE, "100000", "0.1").result.status == "resting"


# ------------------------------------------------------------------ kill switch


def test_a_halted_market_refuses_new_orders_but_keeps_and_cancels_resting_ones() -> None:
    venue = Venue()
    venue.tick("100000")
    resting = venue.buy(ALICE, "99000", "0.1")
    halt = venue.control("halt", reason="exchange maintenance")
    (status,) = halt.of(MarketStatus)
    assert (status.state, status.reason) == ("halted", "exchange maintenance")
    assert venue.engine().context().state == "halted"

    refused = venue.sell(BOB, "99000", "0.1").result
    assert (refused.status, refused.error) == (
        "rejected",
        "Trading is halted for this market. asset=0",
    )
    refused_modify = venue.modify(ALICE, resting.oid, "buy", "99500", "0.1").result
    assert (refused_modify.status, refused_modify.error) == (
        "modifyRejected",
        "Trading is halted for this market. asset=0",
    )
    assert venue.resting() == [(resting.oid, "99000", "0.1")]
    assert venue.control("halt").of(MarketStatus) == []  # already halted

    assert venue.cancel(ALICE, resting.oid).result.status == "canceled"
    resume = venue.control("resume")
    assert [(s.state, s.reason) for s in resume.of(MarketStatus)] == [("open", "resume by ops")]
    assert venue.sell(BOB, "99000", "0.1").result.status == "resting"


def test_halting_one_market_leaves_the_others_open() -> None:
    venue = Venue()
    venue.control("halt")
    assert venue.buy(ALICE, "3400", "1", market="ETH").result.status == "resting"


# ------------------------------------------------------------------ oracle validity


@pytest.mark.parametrize("oracle_status", ["stale", "insufficient_sources", "too_volatile"])
def test_while_the_oracle_is_not_valid_only_reduce_only_orders_trade(oracle_status: str) -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.1")
    venue.buy(CAROL, "99000", "1")
    sent = venue.tick("99500", status=oracle_status)
    assert [(s.state, s.reason) for s in sent.of(MarketStatus)] == [
        ("reduce_only", f"oracle {oracle_status}")
    ]
    assert venue.engine().context().state == "reduce_only"

    opening = venue.sell(BOB, "99000", "0.1").result
    assert (opening.status, opening.error) == (
        "rejected",
        "Only reduce-only orders are accepted while the oracle price is not valid. asset=0",
    )
    closing = venue.sell(ALICE, "99000", "0.1", tif="Ioc", reduce_only=True)
    assert closing.traded() == [(CAROL, ALICE, "99000", "0.1")]

    back = venue.tick("99500")
    assert [s.state for s in back.of(MarketStatus)] == ["open"]
    assert venue.sell(BOB, "99000", "0.1").result.status == "filled"


def test_a_halt_during_an_oracle_outage_resumes_to_reduce_only() -> None:
    venue = Venue()
    venue.tick("100000", status="stale")
    venue.control("halt")
    resume = venue.control("resume")
    assert [s.state for s in resume.of(MarketStatus)] == ["reduce_only"]


# ------------------------------------------------------------------ malformed orders


@pytest.mark.parametrize(
    ("ticks", "lots", "market", "error"),
    [
        (0, sz("0.1"), "BTC", "Order has invalid price or size."),
        (-px("100000"), sz("0.1"), "BTC", "Order has invalid price or size."),
        (px("100000"), 0, "BTC", "Order has invalid price or size."),
        (px("100000"), sz("0.1"), "DOGE", "unknown market 'DOGE'"),
    ],
)
def test_impossible_orders_are_rejected(ticks: int, lots: int, market: str, error: str) -> None:
    venue = Venue()
    msg = NewOrder(
        ts=T0, oid=7, account=ALICE, market=market, is_buy=True, px=ticks, sz=lots, req_id="r"
    )
    sent = venue.send(msg, 7, "r")
    assert (sent.result.status, sent.result.error, sent.result.oid) == ("rejected", error, 7)
