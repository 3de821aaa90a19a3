"""Fixed-point money: decimal strings in, integer units inside, decimal strings out."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.money import (
    UnitError,
    decimal_to_units_rounded,
    div_ceil,
    format_ratio,
    format_units,
    format_usd,
    mul_ratio,
    parse_decimal,
    significant_figures,
    to_units,
    usd_to_units,
)

FAST = settings(max_examples=200, deadline=None)


# ------------------------------------------------------------------ to_units


def test_usd_amounts_become_micro_dollars() -> None:
    assert usd_to_units("9998.5") == 9_998_500_000
    assert usd_to_units("0.000001") == 1
    assert usd_to_units("10") == 10_000_000
    assert usd_to_units(Decimal("1e3")) == 1_000_000_000


def test_to_units_keeps_sign_and_trailing_zeros_do_not_count_as_decimals() -> None:
    assert to_units("-2.5", 6) == -2_500_000
    assert to_units("1.500000000", 6) == 1_500_000
    assert to_units("100000", 1) == 1_000_000


@pytest.mark.parametrize("text", ["0.0000001", "1.0000005", "-0.0000001"])
def test_a_usd_amount_finer_than_a_micro_dollar_is_refused(text: str) -> None:
    with pytest.raises(UnitError, match="more than 6 decimals"):
        usd_to_units(text)


@pytest.mark.parametrize("bad", [1.5, True, "abc", "", "NaN", "Infinity", "-inf", None])
def test_floats_bools_and_non_numbers_are_refused(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_decimal(bad)  # type: ignore[arg-type]


@given(units=st.integers(-(10**20), 10**20), decimals=st.integers(0, 8))
@FAST
def test_format_then_parse_gives_back_the_same_units(units: int, decimals: int) -> None:
    assert to_units(format_units(units, decimals), decimals) == units


@given(
    value=st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12
    ),
)
@FAST
def test_parse_then_format_gives_the_canonical_decimal_string(value: Decimal) -> None:
    text = format_units(usd_to_units(str(value)), 6)
    assert Decimal(text) == value
    assert text == "0" or not text.endswith("0") or "." not in text
    assert "e" not in text.lower()


def test_a_huge_amount_with_a_sub_micro_tail_is_refused_not_rounded() -> None:
    with pytest.raises(UnitError):
        usd_to_units("1000000000000000000000.0000001")


# ------------------------------------------------------------------ format_units


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (9_998_500_000, 6, "9998.5"),
        (10_000_000_000, 6, "10000"),
        (1, 6, "0.000001"),
        (-1, 6, "-0.000001"),
        (-4_500_000, 6, "-4.5"),
        (0, 6, "0"),
        (1_000_000, 1, "100000"),
        (1_234_565, 1, "123456.5"),
        (10_000, 5, "0.1"),
        (42, 0, "42"),
    ],
)
def test_format_units_strips_trailing_zeros(units: int, decimals: int, text: str) -> None:
    assert format_units(units, decimals) == text


def test_format_usd_is_micro_dollars_as_a_decimal_string() -> None:
    assert format_usd(4_500_000) == "4.5"
    assert format_usd(-1_500_000) == "-1.5"


# ------------------------------------------------------------------ format_ratio


def test_average_fill_price_of_two_btc_fills() -> None:
    # 0.1 BTC at 100000.0 then 0.2 BTC at 100001.0 (BTC prices have 1 decimal)
    filled_ntl = 1_000_000 * 10_000 + 1_000_010 * 20_000
    assert format_ratio(filled_ntl, 30_000, 1) == "100000.66666667"


def test_an_exact_ratio_has_no_trailing_zeros() -> None:
    assert format_ratio(10_000_000_000, 10_000, 1) == "100000"
    assert format_ratio(3_500_250_000, 1_000_000, 2) == "35.0025"


def test_a_ratio_over_zero_is_zero() -> None:
    assert format_ratio(123, 0, 1) == "0.0"


@given(
    numerator=st.integers(-(10**15), 10**15),
    denominator=st.integers(1, 10**9),
    decimals=st.integers(0, 6),
)
@FAST
def test_format_ratio_is_the_exact_ratio_rounded_to_eight_decimals(
    numerator: int, denominator: int, decimals: int
) -> None:
    exact = Fraction(numerator, denominator * 10**decimals)
    shown = Fraction(Decimal(format_ratio(numerator, denominator, decimals)))
    assert abs(shown - exact) <= Fraction(1, 2 * 10**8)


def test_a_tiny_negative_ratio_is_shown_as_zero() -> None:
    # a 20x position down 1 micro-dollar on a $10,000 basis: ROE -2e-9
    assert format_ratio(-1 * 20, 10_000_000_000, 0) == "0"


# ------------------------------------------------------------------ rounding helpers


def test_taker_fee_on_ten_thousand_dollars_is_four_and_a_half() -> None:
    assert mul_ratio(10_000_000_000, 450, round_up=True) == 4_500_000
    assert mul_ratio(10_000_000_000, 150, round_up=False) == 1_500_000


def test_a_fee_on_a_tiny_notional_rounds_up_to_one_micro_dollar() -> None:
    assert mul_ratio(1, 450, round_up=True) == 1
    assert mul_ratio(1, 450, round_up=False) == 0


@given(amount=st.integers(-(10**15), 10**15), ppm=st.integers(0, 1_000_000))
@FAST
def test_mul_ratio_brackets_the_exact_product(amount: int, ppm: int) -> None:
    exact = Fraction(amount * ppm, 1_000_000)
    down = mul_ratio(amount, ppm, round_up=False)
    up = mul_ratio(amount, ppm, round_up=True)
    assert down == math.floor(exact)
    assert up == math.ceil(exact)


@given(numerator=st.integers(-(10**18), 10**18), denominator=st.integers(1, 10**6))
@FAST
def test_div_ceil_rounds_toward_plus_infinity(numerator: int, denominator: int) -> None:
    assert div_ceil(numerator, denominator) == math.ceil(Fraction(numerator, denominator))


def test_decimal_to_units_rounded_goes_the_stated_way() -> None:
    assert decimal_to_units_rounded(Decimal("100000.06"), 1, up=True) == 1_000_001
    assert decimal_to_units_rounded(Decimal("100000.06"), 1, up=False) == 1_000_000
    assert decimal_to_units_rounded(Decimal("-0.05"), 1, up=False) == -1


@pytest.mark.parametrize(
    ("units", "figures"),
    [(0, 0), (1, 1), (1_234_500, 5), (1_000_000, 1), (-123_456, 6), (100_001, 6)],
)
def test_significant_figures_ignore_trailing_zeros(units: int, figures: int) -> None:
    assert significant_figures(units) == figures
