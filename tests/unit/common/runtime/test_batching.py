"""Adaptive batch sizing: start at the ceiling, halve when slow, double when full and fast."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.runtime.batching import BatchSizer


def test_starts_at_the_ceiling_so_a_backlog_drains_in_few_transactions() -> None:
    assert BatchSizer(1, 1000, 50).size == 1000
    assert BatchSizer(100, 100, 50).size == 100


def test_a_slow_batch_halves_the_next_one() -> None:
    sizer = BatchSizer(1, 1000, target_ms=50)
    assert sizer.observe(1000, 0.051) == 500
    assert sizer.observe(3, 0.2) == 250


def test_a_full_batch_under_half_the_target_doubles_the_next_one() -> None:
    sizer = BatchSizer(1, 1000, target_ms=50)
    sizer.observe(1000, 1.0)
    sizer.observe(500, 1.0)
    assert sizer.size == 250
    assert sizer.observe(250, 0.010) == 500
    assert sizer.observe(500, 0.025) == 1000


def test_a_partial_or_merely_acceptable_batch_keeps_the_size() -> None:
    sizer = BatchSizer(1, 1000, target_ms=50)
    sizer.observe(1000, 1.0)
    assert sizer.size == 500
    assert sizer.observe(499, 0.001) == 500  # not full: no backlog to serve
    assert sizer.observe(500, 0.030) == 500  # full but over half the target
    assert sizer.observe(500, 0.050) == 500  # exactly on target is not slow


def test_growth_stops_at_the_maximum_and_shrinking_at_the_minimum() -> None:
    sizer = BatchSizer(16, 100, target_ms=50)
    assert sizer.observe(100, 0.001) == 100
    assert sizer.observe(100, 1.0) == 50
    assert sizer.observe(50, 1.0) == 25
    assert sizer.observe(25, 1.0) == 16
    assert sizer.observe(16, 1.0) == 16


@pytest.mark.parametrize(("minimum", "maximum"), [(0, 10), (11, 10), (-1, -1)])
def test_impossible_bounds_are_refused(minimum: int, maximum: int) -> None:
    with pytest.raises(ValueError, match="minimum <= maximum"):
        BatchSizer(minimum, maximum, 50)


@given(
    minimum=st.integers(1, 300),
    extra=st.integers(0, 5000),
    observations=st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(0, 1, allow_nan=False)), max_size=60
    ),
)
@settings(max_examples=200, deadline=None)
def test_the_size_always_stays_within_the_bounds(
    minimum: int, extra: int, observations: list[tuple[int, float]]
) -> None:
    sizer = BatchSizer(minimum, minimum + extra, target_ms=50)
    for records, seconds in observations:
        before = sizer.size
        after = sizer.observe(records, seconds)
        assert minimum <= after <= minimum + extra
        assert after in (before, min(before * 2, minimum + extra), max(before // 2, minimum))
