"""The weighted median: exact values, and the properties that make it an oracle's median."""

from __future__ import annotations

import statistics
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.oracle.median import weighted_median

prices = st.integers(1, 10**12)
weights = st.integers(1, 10)
points = st.lists(st.tuples(prices, weights), min_size=1, max_size=12)


def test_the_reference_weights_pick_the_price_holding_the_majority() -> None:
    # Binance 3, OKX 2, Bybit 2, Coinbase 1, Kraken 1: total 9, half is 4.5
    assert weighted_median([(101, 3), (100, 2), (102, 2), (99, 1), (150, 1)]) == 101
    assert weighted_median([(150, 3), (100, 2), (102, 2), (99, 1), (98, 1)]) == 102


def test_landing_exactly_on_half_the_weight_gives_the_midpoint() -> None:
    assert weighted_median([(100, 1), (103, 1)]) == Decimal("101.5")
    assert weighted_median([(100, 3), (90, 1), (200, 2), (300, 2)]) == 150


def test_one_price_is_its_own_median_and_nothing_has_none() -> None:
    assert weighted_median([(42, 7)]) == 42
    with pytest.raises(ValueError, match="no prices"):
        weighted_median([])
    with pytest.raises(ValueError, match="positive"):
        weighted_median([(1, 0)])


@given(honest=points, dishonest=st.lists(st.tuples(prices, weights), max_size=12))
def test_with_an_honest_majority_of_weight_the_median_is_within_the_honest_prices(
    honest: list[tuple[int, int]], dishonest: list[tuple[int, int]]
) -> None:
    honest_weight = sum(w for _, w in honest)
    dishonest_weight = sum(w for _, w in dishonest)
    if honest_weight <= dishonest_weight:
        # give the honest side a strict majority by scaling its weights
        honest = [(p, w * (dishonest_weight + 1)) for p, w in honest]
    median = weighted_median(honest + dishonest)
    assert min(p for p, _ in honest) <= median <= max(p for p, _ in honest)


@given(values=st.lists(prices, min_size=1, max_size=15))
def test_equal_weights_give_the_ordinary_median(values: list[int]) -> None:
    expected = statistics.median(Decimal(v) for v in values)
    assert weighted_median((v, 1) for v in values) == expected


@given(data=points, factor=st.integers(2, 50), seed=st.randoms(use_true_random=False))
def test_order_and_the_scale_of_the_weights_do_not_matter(
    data: list[tuple[int, int]], factor: int, seed: object
) -> None:
    shuffled = list(data)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert weighted_median(shuffled) == weighted_median(data)
    assert weighted_median((p, w * factor) for p, w in data) == weighted_median(data)


@given(data=points, index=st.integers(0, 11), raise_by=st.integers(1, 10**6))
def test_raising_one_price_never_lowers_the_median(
    data: list[tuple[int, int]], index: int, raise_by: int
) -> None:
    i = index % len(data)
    higher = list(data)
    higher[i] = (data[i][0] + raise_by, data[i][1])
    assert weighted_median(higher) >= weighted_median(data)
