"""Adaptive batch sizing from a fit of the batch cost (fixed per transaction + per record).

Batches here are timed by a cost model the test chooses, so the sizes the sizer settles
at can be worked out by hand: with fixed cost F, per-record cost P and target T, the
latency side wants (T - F) / P records, the throughput side F / P (records take as long
as the commit), and the sizer takes the larger.
"""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.runtime.batching import BatchSizer


def backlog(
    sizer: BatchSizer,
    fixed_s: float,
    per_record_s: float,
    batches: int,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> list[int]:
    """A partition with more waiting than any size: every batch is full. Returns the size
    chosen after each batch."""
    sizes = []
    for _ in range(batches):
        records = sizer.size
        seconds = fixed_s + per_record_s * records
        if rng is not None:
            seconds *= 1 + rng.uniform(-jitter, jitter)
        sizes.append(sizer.observe(records, seconds))
    return sizes


def test_starts_at_the_ceiling_so_a_backlog_drains_in_few_transactions() -> None:
    assert BatchSizer(1, 1000, 50).size == 1000
    assert BatchSizer(100, 100, 50).size == 100


def test_a_commit_slower_than_the_target_does_not_collapse_the_batch_to_one_record() -> None:
    # 40 ms per commit and 20 us per record against a 25 ms target: no size meets the
    # target (one record already takes 40 ms), which used to halve the size down to one
    # record per transaction, 25 records/s. The sizer halves once to tell the two costs
    # apart (4000 -> 2000 -> 4000 -> 2000), then settles where records take as long as
    # the commit: 40 ms / 20 us = 2000 records in 80 ms, 25,000 records/s.
    sizer = BatchSizer(1, 4000, target_ms=25)
    sizes = backlog(sizer, 0.040, 20e-6, 50)
    assert sizes[:4] == [2000, 4000, 2000, 2000]
    assert set(sizes[3:]) == {2000}
    assert sizer.fixed_s == pytest.approx(0.040)
    assert sizer.per_record_s == pytest.approx(20e-6)
    assert 2000 / (0.040 + 20e-6 * 2000) == pytest.approx(25_000)


def test_a_fast_commit_settles_at_the_largest_batch_that_fits_the_target() -> None:
    # 2 ms + 50 us per record: 4000 records take 202 ms; (25 - 2) / 0.05 = 460 records
    # take 25 ms, the target.
    sizer = BatchSizer(1, 4000, target_ms=25)
    sizes = backlog(sizer, 0.002, 50e-6, 30)
    assert sizes[:3] == [2000, 4000, 2000]
    for size in sizes[3:]:
        assert size == 460
        assert 0.002 + 50e-6 * size == pytest.approx(0.025)


def test_a_jittery_commit_stays_near_the_size_that_fits() -> None:
    # Every batch time off by up to 30% either way: the fit averages it out.
    sizer = BatchSizer(1, 4000, target_ms=25)
    sizes = backlog(sizer, 0.002, 50e-6, 200, jitter=0.3, rng=random.Random(7))
    settled = sizes[20:]
    assert 420 <= statistics.median(settled) <= 500
    assert 200 <= min(settled) and max(settled) <= 1000


@pytest.mark.parametrize(("fixed_s", "per_record_s"), [(0.002, 50e-6), (0.040, 20e-6)])
def test_a_trickle_of_partial_batches_keeps_the_cap(fixed_s: float, per_record_s: float) -> None:
    # One to three records at a time, on time or (40 ms commits) all over the target:
    # each batch had everything that was waiting, so the cap did not make it slow.
    rng = random.Random(3)
    sizer = BatchSizer(1, 4000, target_ms=25)
    for _ in range(100):
        records = rng.randint(1, 3)
        seconds = (fixed_s + per_record_s * records) * rng.uniform(0.8, 1.2)
        assert sizer.observe(records, seconds) == 4000


def test_a_trickle_after_a_backlog_keeps_the_settled_size_and_the_fit() -> None:
    sizer = BatchSizer(1, 4000, target_ms=25)
    settled = backlog(sizer, 0.002, 50e-6, 10)[-1]
    for records in [1, 3, 2, 5, 1, 1, 4] * 5:
        assert sizer.observe(records, 0.002 + 50e-6 * records) == settled
    # A backlog after the trickle is taken at the settled size straight away.
    assert backlog(sizer, 0.002, 50e-6, 3) == [settled] * 3


def test_recovers_quickly_when_commits_get_slow_and_fast_again() -> None:
    sizer = BatchSizer(1, 4000, target_ms=25)
    assert backlog(sizer, 0.002, 50e-6, 10)[-1] == 460
    # The broker gets busy: 40 ms per commit. The first slow batch may be a hiccup;
    # after the second the size goes to 40 / 0.05 = 800 (80 ms batches), halves once to
    # tell the costs apart again, and stays.
    slow = backlog(sizer, 0.040, 50e-6, 20)
    assert slow[:4] == [460, 800, 400, 800]
    assert set(slow[3:]) == {800}
    # Quiet again: two 2 ms commits and the size is back at 460.
    fast = backlog(sizer, 0.002, 50e-6, 10)
    assert fast == [800] + [460] * 9


def test_one_stalled_batch_changes_nothing() -> None:
    sizer = BatchSizer(1, 4000, target_ms=25)
    assert backlog(sizer, 0.002, 50e-6, 10)[-1] == 460
    # A 500 ms hiccup (a rebalance, a GC pause) in place of 25 ms is left out of the
    # fit, and the next normal batch confirms the fit.
    assert sizer.observe(460, 0.5) == 460
    assert backlog(sizer, 0.002, 50e-6, 5) == [460] * 5
    assert sizer.fixed_s == pytest.approx(0.002)


def test_free_records_take_the_maximum() -> None:
    # Every batch takes 10 ms whatever it holds: nothing to gain from smaller ones.
    sizer = BatchSizer(1, 4000, target_ms=25)
    for records in [4000, 1200, 4000, 17, 4000, 300, 4000]:
        assert sizer.observe(records, 0.010) == 4000


@pytest.mark.parametrize(("minimum", "maximum"), [(0, 10), (11, 10), (-1, -1)])
def test_impossible_bounds_are_refused(minimum: int, maximum: int) -> None:
    with pytest.raises(ValueError, match="minimum <= maximum"):
        BatchSizer(minimum, maximum, 50)


@pytest.mark.parametrize("target_ms", [0.0, -5.0, float("nan")])
def test_a_target_that_is_not_positive_is_refused(target_ms: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        BatchSizer(1, 10, target_ms)


def test_an_empty_or_untimed_batch_changes_nothing() -> None:
    sizer = BatchSizer(1, 4000, target_ms=25)
    assert sizer.observe(0, 1.0) == 4000
    assert sizer.observe(10, float("nan")) == 4000
    assert sizer.observe(10, float("inf")) == 4000
    assert sizer.observe(10, -0.001) == 4000
    assert sizer.weight == 0.0


@given(
    minimum=st.integers(1, 300),
    extra=st.integers(0, 5000),
    observations=st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(0, 1, allow_nan=False)), max_size=60
    ),
)
@settings(max_examples=300, deadline=None)
def test_the_size_stays_within_the_bounds_and_only_a_larger_batch_lowers_it(
    minimum: int, extra: int, observations: list[tuple[int, float]]
) -> None:
    maximum = minimum + extra
    sizer = BatchSizer(minimum, maximum, target_ms=25)
    for records, seconds in observations:
        before = sizer.size
        after = sizer.observe(records, seconds)
        assert minimum <= after <= maximum
        # A batch with fewer records than the new size could not have been cut by it.
        assert after >= before or after < records
        assert after <= 2 * before or after < records
