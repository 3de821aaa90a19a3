"""Market specs: tick and lot rules, rounding, notional, and the TOML market table."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.markets import MarketSpec, load_markets
from libs.common.money import UnitError, usd_to_units

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ETH = MARKETS.by_name("ETH")
SOL = MARKETS.by_name("SOL")

FAST = settings(max_examples=200, deadline=None)
market_specs = st.sampled_from(list(MARKETS))


# ------------------------------------------------------------------ the market table


def test_the_default_table_lists_btc_eth_sol_in_asset_order() -> None:
    assert MARKETS.names == ["BTC", "ETH", "SOL"]
    assert [MARKETS.by_asset(i).name for i in range(3)] == ["BTC", "ETH", "SOL"]
    assert (BTC.px_decimals, ETH.px_decimals, SOL.px_decimals) == (1, 2, 4)


def test_default_fees_leverage_and_minimum_order() -> None:
    assert (BTC.taker_fee_ppm, BTC.maker_fee_ppm) == (450, 150)
    assert (BTC.max_leverage, BTC.default_leverage) == (50, 20)
    assert (SOL.max_leverage, SOL.default_leverage) == (20, 10)
    assert BTC.min_order_usd == 10_000_000


def test_unknown_markets_are_unit_errors() -> None:
    with pytest.raises(UnitError, match="unknown market 'DOGE'"):
        MARKETS.by_name("DOGE")
    with pytest.raises(UnitError, match="unknown asset 3"):
        MARKETS.by_asset(3)
    with pytest.raises(UnitError):
        MARKETS.by_asset(-1)


def _table(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "markets.toml"
    path.write_text(body)
    return path


def test_a_table_without_default_leverage_or_minimum_uses_max_leverage_and_ten_dollars(
    tmp_path: Path,
) -> None:
    path = _table(
        tmp_path,
        '[[market]]\nname = "DOGE"\nsz_decimals = 0\nmax_leverage = 10\n'
        "taker_fee_ppm = 500\nmaker_fee_ppm = 100\n",
    )
    (doge,) = load_markets(path)
    assert doge.default_leverage == 10
    assert doge.min_order_usd == 10_000_000
    assert doge.px_decimals == 6


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ("sz_decimals = 7\nmax_leverage = 10", "sz_decimals must be within 0..6"),
        ("sz_decimals = 2\nmax_leverage = 10\ndefault_leverage = 11", "default_leverage"),
        ("sz_decimals = 2\nmax_leverage = 10\ndefault_leverage = 0", "default_leverage"),
    ],
)
def test_a_table_with_impossible_units_or_leverage_is_refused(
    tmp_path: Path, fields: str, problem: str
) -> None:
    path = _table(
        tmp_path,
        f'[[market]]\nname = "X"\n{fields}\ntaker_fee_ppm = 450\nmaker_fee_ppm = 150\n',
    )
    with pytest.raises(ValueError, match=problem):
        load_markets(path)


def test_a_table_naming_a_market_twice_is_refused(tmp_path: Path) -> None:
    one = 'name = "BTC"\nsz_decimals = 5\nmax_leverage = 50\ntaker_fee_ppm = 1\nmaker_fee_ppm = 1\n'
    path = _table(tmp_path, f"[[market]]\n{one}\n[[market]]\n{one}")
    with pytest.raises(ValueError, match="duplicate market names"):
        load_markets(path)


# ------------------------------------------------------------------ prices


@pytest.mark.parametrize(
    ("spec", "text", "ticks"),
    [
        (BTC, "100000", 1_000_000),
        (BTC, "12345", 123_450),
        (BTC, "1234.5", 12_345),
        (BTC, "123456", 1_234_560),  # six figures, but whole prices are always allowed
        (BTC, "98765432", 987_654_320),
        (BTC, "0.1", 1),
        (ETH, "3500.2", 350_020),
        (ETH, "1234.5", 123_450),
        (ETH, "0.01", 1),
        (SOL, "150.12", 1_501_200),
        (SOL, "1.2345", 12_345),
        (SOL, "0.0001", 1),
    ],
)
def test_valid_prices_become_ticks(spec: MarketSpec, text: str, ticks: int) -> None:
    assert spec.price_units(text) == ticks


@pytest.mark.parametrize(
    ("spec", "text", "problem"),
    [
        (BTC, "100000.5", "significant figures"),
        (BTC, "12345.6", "significant figures"),
        (BTC, "12345.67", "more than 1 decimals"),
        (ETH, "1234.56", "significant figures"),
        (ETH, "3500.255", "more than 2 decimals"),
        (SOL, "150.123", "significant figures"),
        (SOL, "0.00012", "more than 4 decimals"),
        (BTC, "0", "must be positive"),
        (BTC, "-100000", "must be positive"),
    ],
)
def test_prices_breaking_the_tick_rules_are_refused(
    spec: MarketSpec, text: str, problem: str
) -> None:
    with pytest.raises(UnitError, match=problem):
        spec.price_units(text)


def _figures_and_whole(text: str) -> tuple[int, bool]:
    """Significant figures and wholeness of a decimal string, read off its digits."""
    value = Decimal(text)
    digits = value.normalize().as_tuple().digits
    return len(digits), value == value.to_integral_value()


@given(spec=market_specs, ticks=st.integers(1, 10**12))
@FAST
def test_a_price_is_accepted_exactly_when_whole_or_at_most_five_figures(
    spec: MarketSpec, ticks: int
) -> None:
    text = spec.format_price(ticks)
    figures, whole = _figures_and_whole(text)
    if whole or figures <= 5:
        assert spec.price_units(text) == ticks
    else:
        with pytest.raises(UnitError, match="significant figures"):
            spec.price_units(text)


@pytest.mark.parametrize(
    ("spec", "value", "ticks"),
    [
        (BTC, "100123.456", 1_001_230),  # above 10^5: the nearest whole price
        (BTC, "12345.67", 123_460),  # 5 figures: 12346
        (BTC, "1234.567", 12_346),  # 5 figures would be 1234.6; BTC ticks allow it
        (BTC, "99.99999", 1_000),  # 5 figures round up to 100.00, one decimal: 100.0
        (ETH, "3456.789", 345_680),
        (ETH, "1.234567", 123),  # the tick (0.01) binds before 5 figures do
        (SOL, "0.123456789", 1_235),
        (SOL, "150.1234", 1_501_200),
    ],
)
def test_round_price_gives_the_nearest_valid_price(
    spec: MarketSpec, value: str, ticks: int
) -> None:
    assert spec.round_price(Decimal(value)) == ticks


@given(
    spec=market_specs,
    value=st.decimals(min_value=Decimal("0.01"), max_value=10**9, places=9),
)
@FAST
def test_round_price_lands_on_an_accepted_price_within_half_a_step(
    spec: MarketSpec, value: Decimal
) -> None:
    ticks = spec.round_price(value)
    if value < Decimal(1).scaleb(-spec.px_decimals) / 2:  # the smallest price is one tick
        assert ticks == 1
        return
    assert spec.price_units(spec.format_price(ticks)) == ticks
    shown = Decimal(spec.format_price(ticks))
    half_step = max(value * Decimal("0.00005"), Decimal(1).scaleb(-spec.px_decimals) / 2)
    if value >= 10**5:
        half_step = Decimal("0.5")
    assert abs(shown - value) <= half_step


def test_round_price_of_a_tiny_positive_value_is_one_tick() -> None:
    assert BTC.round_price(Decimal("0.04")) == 1


def test_round_price_refuses_zero_and_negative_values() -> None:
    with pytest.raises(UnitError):
        BTC.round_price(Decimal(0))
    with pytest.raises(UnitError):
        BTC.round_price(Decimal("-1"))


# ------------------------------------------------------------------ sizes and notional


@pytest.mark.parametrize(
    ("spec", "text", "lots"),
    [(BTC, "0.1", 10_000), (BTC, "0.00001", 1), (ETH, "2.5", 25_000), (SOL, "12.34", 1_234)],
)
def test_sizes_become_lots(spec: MarketSpec, text: str, lots: int) -> None:
    assert spec.size_units(text) == lots
    assert spec.format_size(lots) == text


@pytest.mark.parametrize(
    ("spec", "text"), [(BTC, "0.000001"), (SOL, "0.001"), (BTC, "0"), (ETH, "-1")]
)
def test_sizes_finer_than_a_lot_or_not_positive_are_refused(spec: MarketSpec, text: str) -> None:
    with pytest.raises(UnitError):
        spec.size_units(text)


def test_notional_of_a_tenth_of_a_bitcoin_at_100k_is_ten_thousand_dollars() -> None:
    notional = MarketSpec.notional(BTC.price_units("100000"), BTC.size_units("0.1"))
    assert notional == usd_to_units("10000")


@given(spec=market_specs, ticks=st.integers(1, 10**9), lots=st.integers(1, 10**9))
@FAST
def test_notional_in_micro_dollars_is_price_times_size_exactly(
    spec: MarketSpec, ticks: int, lots: int
) -> None:
    price = Decimal(spec.format_price(ticks))
    size = Decimal(spec.format_size(lots))
    assert MarketSpec.notional(ticks, lots) == usd_to_units(price * size)


# ------------------------------------------------------------------ changes at run time


def test_an_operator_change_reads_the_tables_keys_and_units() -> None:
    from libs.common.markets import MarginTier, parse_params, reconfigure

    params = parse_params(
        {
            "taker_fee_ppm": 500,
            "min_order_usd": "12.5",
            "max_leverage": 40,
            "margin_tiers": [
                {"lower_bound_usd": "0", "max_leverage": 40},
                {"lower_bound_usd": "5000000", "max_leverage": 20},
            ],
        }
    )
    spec = reconfigure(BTC, params)
    assert (spec.taker_fee_ppm, spec.min_order_usd, spec.max_leverage) == (500, 12_500_000, 40)
    assert spec.margin_tiers == (
        MarginTier(lower_bound=0, max_leverage=40),
        MarginTier(lower_bound=5_000_000_000_000, max_leverage=20),
    )
    assert (spec.name, spec.asset, spec.sz_decimals) == ("BTC", 0, 5)
    # a single-tier market's tier follows its max leverage
    flat = msgspec.structs.replace(SOL, margin_tiers=(MarginTier(lower_bound=0, max_leverage=20),))
    assert reconfigure(flat, parse_params({"max_leverage": 15})).margin_tiers == (
        MarginTier(lower_bound=0, max_leverage=15),
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, "changes must be a non-empty object"),
        ({"sz_decimals": 3}, "sz_decimals cannot change on a listed market"),
        ({"funding_interval_ms": 60_000}, "funding_interval_ms cannot change"),
        ({"fee": 1}, "unknown market parameter 'fee'"),
        ({"taker_fee_ppm": "500"}, "taker_fee_ppm must be an integer"),
        ({"taker_fee_ppm": True}, "taker_fee_ppm must be a number"),
        ({"min_order_usd": "ten"}, "invalid market parameter"),
        ({"taker_fee_ppm": 200_000}, "taker_fee_ppm must be within 0..100000, got 200000"),
        ({"maker_fee_ppm": -500}, "maker_fee_ppm must be within -taker_fee_ppm..taker_fee_ppm"),
        ({"default_leverage": 60}, "default_leverage must be within 1..max_leverage"),
        ({"max_leverage": 20}, "give margin_tiers with max_leverage"),
        (
            {"margin_tiers": [{"lower_bound_usd": "0", "max_leverage": 50}, {"x": 1}]},
            "each margin tier has lower_bound_usd and max_leverage",
        ),
        (
            {
                "margin_tiers": [
                    {"lower_bound_usd": "0", "max_leverage": 50},
                    {"lower_bound_usd": "100", "max_leverage": 60},
                ]
            },
            "margin tier leverage must not rise with the bound",
        ),
    ],
)
def test_a_change_that_cannot_apply_is_refused_with_the_reason(
    changes: dict[str, object], error: str
) -> None:
    from libs.common.markets import parse_params, reconfigure

    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(".", r"\.")):
        reconfigure(BTC, parse_params(changes))


@given(
    market=market_specs,
    taker=st.integers(0, 2_000),
    maker=st.integers(-500, 500),
    band=st.integers(1, 1_000_000),
    lev=st.integers(1, 60),
    min_usd=st.integers(0, 10**9),
)
@FAST
def test_overrides_rebuild_exactly_the_changed_market(
    market: MarketSpec, taker: int, maker: int, band: int, lev: int, min_usd: int
) -> None:
    from libs.common.markets import (
        MarginTier,
        MarketParams,
        differences,
        reconfigure,
        with_overrides,
    )

    params = MarketParams(
        taker_fee_ppm=taker,
        maker_fee_ppm=max(-taker, min(maker, taker)),
        price_band_ppm=band,
        max_leverage=lev,
        default_leverage=min(lev, market.default_leverage),
        margin_tiers=(MarginTier(lower_bound=0, max_leverage=lev),),
        min_order_usd=min_usd,
    )
    changed = reconfigure(market, params)
    kept = differences(market, changed)
    # what a state machine keeps rebuilds the same market from the table
    assert with_overrides(market, kept) == changed
    assert set(kept.changes()) <= set(params.changes())
    assert differences(market, market) == MarketParams()


def test_a_lower_default_leverage_must_keep_portfolio_margin_above_cross() -> None:
    from libs.common.markets import check_portfolio, parse_params, reconfigure

    # BTC's largest portfolio shock is 6%: at 20x (5% initial) a lone position needs more
    # under portfolio margin than under cross; at 10x (10%) it would need less
    check_portfolio(reconfigure(BTC, parse_params({"default_leverage": 25})), MARKETS.portfolio)
    lower = reconfigure(BTC, parse_params({"default_leverage": 10}))
    with pytest.raises(ValueError, match=r"largest portfolio shock \(60000 ppm\)"):
        check_portfolio(lower, MARKETS.portfolio)
