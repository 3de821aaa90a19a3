"""The dashboard's /info answers from given state: what-if requests (prices, scenarios,
refusals) and the venue document."""

from __future__ import annotations

from fractions import Fraction

import pytest

from libs.common.markets import load_markets
from libs.common.money import usd_to_units
from libs.common.state import AccountState, MarketContext, MarkState, PositionState
from libs.common.valuation import account_value
from services.gateway.dashboard import (
    WhatIfError,
    distance_pct,
    venue_document,
    what_if,
    what_if_marks,
    what_if_prices,
)

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
USER = "0x" + "a1" * 20


def states(**prices: str) -> dict[str, MarkState]:
    out = {}
    for name, px in prices.items():
        ticks = MARKETS.by_name(name).price_units(px)
        out[name] = MarkState(market=name, mark_px=ticks, index_px=ticks, ts=1)
    return out


def long_btc() -> AccountState:
    """$550 less a $4.5 fee, long 0.1 BTC from $100,000."""
    lots = BTC.size_units("0.1")
    return AccountState(
        address=USER,
        collateral=usd_to_units("545.5"),
        positions={
            "BTC": PositionState(market="BTC", szi=lots, entry_ntl=lots * BTC.price_units("100000"))
        },
    )


def test_what_if_moves_only_the_markets_asked_and_values_the_account() -> None:
    answer = what_if(
        USER, {"prices": {"BTC": "95000"}}, long_btc(), states(BTC="100000", ETH="3500"), MARKETS, 7
    )
    assert answer["marks"] == {"BTC": "95000", "ETH": "3500"}
    # 545.5 - 0.1 x 5,000 = $45.5 against 1% of $9,500
    assert (answer["crossAccountValue"], answer["maintenanceMargin"]) == ("45.5", "95")
    assert answer["liquidated"] is True
    (btc,) = answer["positions"]
    assert btc["liquidationPx"] == "95500"
    assert btc["liquidationDistancePct"] == "-0.52631579"  # already 0.5% past it
    assert (btc["unrealizedPnl"], btc["liquidated"]) == ("-500", True)


def test_at_the_current_marks_the_position_is_4_5_percent_from_liquidation() -> None:
    answer = what_if(USER, {}, long_btc(), states(BTC="100000"), MARKETS, 7)
    assert answer["liquidated"] is False
    assert answer["positions"][0]["liquidationDistancePct"] == "4.5"
    assert answer["scenario"] is None


def test_a_scenario_applies_first_and_explicit_prices_override_it() -> None:
    marks = {"BTC": BTC.price_units("100000"), "ETH": 350_000}
    moved, scenario = what_if_marks(
        {"scenario": "all-100", "prices": {"ETH": "3000"}}, MARKETS, marks
    )
    assert scenario == "all-100"
    assert moved == {"BTC": BTC.price_units("96000"), "ETH": 300_000}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prices": {"DOGE": "1"}}, "unknown market 'DOGE'"),
        ({"prices": {"BTC": "-5"}}, "price of BTC must be positive, got '-5'"),
        ({"prices": {"BTC": "0"}}, "price of BTC must be positive, got '0'"),
        ({"prices": {"BTC": "ninety"}}, "not a decimal number: 'ninety'"),
        ({"prices": {"BTC": 90000.5}}, "price of BTC must be a decimal string, got 90000.5"),
        ({"prices": {"BTC": "90000.05"}}, "price of BTC 90000.05 has more than 1 decimals"),
        ({"prices": ["BTC", "90000"]}, "prices must be an object of market to price"),
        ({"scenario": "crash"}, "unknown scenario 'crash'"),
        ({"scenario": 5}, "scenario must be a scenario name"),
    ],
)
def test_bad_what_if_requests_are_refused_with_the_reason(body: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(WhatIfError) as refused:
        what_if_marks(body, MARKETS, {"BTC": BTC.price_units("100000")})
    assert message in str(refused.value)


def test_a_moved_market_moves_its_collateral_price_and_keeps_its_validity() -> None:
    current = states(BTC="100000", ETH="3500")
    current["ETH"].oracle_status = "stale"
    marks = {"BTC": BTC.price_units("90000"), "ETH": current["ETH"].mark_px}
    prices = what_if_prices(current, marks)
    assert prices == {"BTC": (BTC.price_units("90000"), True), "ETH": (350_000, False)}


def test_distance_is_signed_by_side() -> None:
    assert distance_pct(10, 1000, Fraction(900)) == "10"
    assert distance_pct(-10, 1000, Fraction(1100)) == "10"
    assert distance_pct(-10, 1000, Fraction(950)) == "-5"
    assert distance_pct(10, 1000, None) is None


def test_the_venue_document_shows_markets_funds_and_scenarios() -> None:
    ctx = MarketContext(
        market="BTC",
        mark_px=BTC.price_units("100010"),
        index_px=BTC.price_units("100000"),
        last_px=BTC.price_units("100020"),
        funding_rate_ppb=12_500,
        open_interest=BTC.size_units("1.5"),
        oracle_status="stale",
    )
    fund = AccountState(address="0x" + "00" * 19 + "f1", collateral=usd_to_units("1234.5"))
    valued = account_value(fund, {}, MARKETS, {})
    doc = venue_document(MARKETS, {"BTC": ctx}, {"insuranceFund": (fund.address, valued)}, 9)
    btc, eth, _ = doc["markets"]
    assert btc == {
        "coin": "BTC",
        "oraclePx": "100000",
        "markPx": "100010",
        "lastPx": "100020",
        "midPx": "0.0",
        "oracleStatus": "stale",
        "state": "open",
        "funding": "0.0000125",
        "openInterest": "1.5",
    }
    assert eth["markPx"] == "0.0" and eth["oracleStatus"] == "valid"
    assert doc["insuranceFund"]["accountValue"] == "1234.5"
    assert "all-150" in doc["scenarios"]
