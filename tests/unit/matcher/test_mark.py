"""The mark price: median of (oracle + EMA basis), (median of bid, ask, last) and an
external perp mid, each replaced by the oracle when missing."""

from __future__ import annotations

import itertools

import pytest

from services.matcher.mark import EMA_SCALE, MarkState, mark_price, median3, update_basis
from tests.unit.matcher.scenario import px

ORACLE = px("100000")
TAU = 150_000  # the configured EMA time constant, 150 s


@pytest.mark.parametrize("values", list(itertools.permutations((1, 2, 3))))
def test_median_of_three_is_the_middle_value_in_any_order(values: tuple[int, int, int]) -> None:
    assert median3(*values) == 2


def test_median_of_three_with_ties() -> None:
    assert median3(5, 5, 1) == median3(1, 5, 5) == median3(5, 9, 5) == 5


def test_an_empty_book_marks_at_the_oracle() -> None:
    assert mark_price(MarkState(), ORACLE, None, None, None, None) == ORACLE


def test_a_one_sided_book_adds_no_basis_sample() -> None:
    state = MarkState()
    update_basis(state, None, ORACLE, 1_000, TAU)
    assert state == MarkState()


def test_the_first_mid_sets_the_basis_outright() -> None:
    state = MarkState()
    update_basis(state, px("100010"), ORACLE, 1_000, TAU)  # mid $10 above the oracle
    assert (state.ema_basis, state.ema_ts) == (100 * EMA_SCALE, 1_000)


def test_the_basis_moves_by_dt_over_tau_plus_dt_of_the_gap() -> None:
    state = MarkState(ema_basis=100 * EMA_SCALE, ema_ts=1_000)
    # 150 s later the mid sits at the oracle: the basis closes half the gap ($10 -> $5).
    update_basis(state, ORACLE, ORACLE, 1_000 + TAU, TAU)
    assert state.ema_basis == 50 * EMA_SCALE
    # One second later it moves by 1/151 of the remaining gap: $5 -> $4.9668874.
    update_basis(state, ORACLE, ORACLE, 2_000 + TAU, TAU)
    assert state.ema_basis == 49_668_874


def test_a_sample_at_the_same_time_does_not_move_the_basis() -> None:
    state = MarkState(ema_basis=100 * EMA_SCALE, ema_ts=1_000)
    update_basis(state, px("99000"), ORACLE, 1_000, TAU)
    assert state.ema_basis == 100 * EMA_SCALE


def test_the_mark_is_the_median_of_the_three_estimates() -> None:
    # Book premium EMA +$5 -> 100,005; bid/ask/last 99,990/100,010/100,020 -> 100,010;
    # no external mid -> the oracle, 100,000. The median is 100,005.
    state = MarkState(ema_basis=50 * EMA_SCALE, ema_ts=1)
    bid, ask, last = px("99990"), px("100010"), px("100020")
    assert mark_price(state, ORACLE, bid, ask, last, None) == px("100005")
    # An external perp mid at 100,030 pulls it to the book's 100,010.
    assert mark_price(state, ORACLE, bid, ask, last, px("100030")) == px("100010")


def test_without_a_last_trade_the_book_estimate_falls_back_to_the_oracle() -> None:
    state = MarkState(ema_basis=50 * EMA_SCALE, ema_ts=1)
    assert mark_price(state, ORACLE, px("99990"), px("100010"), None, None) == ORACLE


def test_before_any_basis_sample_the_first_estimate_is_the_oracle() -> None:
    state = MarkState()
    assert mark_price(state, ORACLE, px("100100"), px("100200"), px("100150"), None) == ORACLE
    assert mark_price(state, ORACLE, None, None, None, px("100300")) == ORACLE


@pytest.mark.parametrize(
    ("basis", "ticks"),
    [
        (EMA_SCALE // 2, 1),  # +0.5 tick rounds away from zero
        (-EMA_SCALE // 2, -1),
        (EMA_SCALE * 4 // 10, 0),
        (-EMA_SCALE * 4 // 10, 0),
        (EMA_SCALE * 6 // 10, 1),
    ],
)
def test_the_basis_rounds_to_the_nearest_tick_half_away_from_zero(basis: int, ticks: int) -> None:
    state = MarkState(ema_basis=basis, ema_ts=1)
    # With the book far above and the external mid far below, the mark is the first
    # estimate itself.
    high, low = ORACLE + 1_000, ORACLE - 1_000
    assert mark_price(state, ORACLE, high, high, high, low) == ORACLE + ticks
