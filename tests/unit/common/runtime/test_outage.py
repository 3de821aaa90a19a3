"""When a service retries during an outage and when it gives up (pure, time given)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.runtime.outage import Outage


def attempts_until_given_up(outage: Outage, began: float, answer_after: float) -> list[float]:
    """Times of the attempts made from ``began`` while the other side stays away until
    ``answer_after`` (the attempt at or after it succeeds)."""
    outage.begin(began)
    times: list[float] = []
    now = began
    while True:
        times.append(now)
        if now >= answer_after:
            outage.end()
            return times
        retry_at = outage.failed(now)
        if retry_at is None:
            return times
        now = retry_at


def test_delay_doubles_from_the_first_up_to_the_cap() -> None:
    outage = Outage(first_s=0.2, max_s=5.0, window_s=300.0)
    assert [outage.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert outage.delay(10_000) == 5.0  # no overflow however long it lasts


def test_a_broker_restart_of_20_s_is_ridden_out() -> None:
    outage = Outage(first_s=0.2, max_s=5.0, window_s=300.0)
    times = attempts_until_given_up(outage, began=100.0, answer_after=120.0)
    # waits 0.2, 0.4, 0.8, 1.6, 3.2 (6.2 s), then 5 s each: 11.2, 16.2, 21.2
    assert times == pytest.approx([100.0, 100.2, 100.6, 101.4, 103.0, 106.2, 111.2, 116.2, 121.2])
    assert not outage.active  # ended: the next failure starts a new window
    assert outage.failures == 0


def test_an_outage_longer_than_the_window_is_given_up_at_the_window_end() -> None:
    outage = Outage(first_s=1.0, max_s=4.0, window_s=10.0)
    times = attempts_until_given_up(outage, began=0.0, answer_after=1e9)
    # 0, 1, 3, 7, then the last attempt is moved to the window's end (10), then give up
    assert times == [0.0, 1.0, 3.0, 7.0, 10.0]
    assert outage.lasted(10.0) == 10.0


def test_an_answer_at_the_window_end_is_still_taken() -> None:
    outage = Outage(first_s=1.0, max_s=4.0, window_s=10.0)
    times = attempts_until_given_up(outage, began=0.0, answer_after=10.0)
    assert times[-1] == 10.0 and not outage.active


def test_the_window_counts_from_when_the_outage_was_noticed() -> None:
    outage = Outage(first_s=1.0, max_s=1.0, window_s=5.0)
    outage.begin(0.0)
    outage.begin(3.0)  # a second partition failing later does not extend it
    assert outage.failed(4.0) == 5.0
    assert outage.failed(5.0) is None


def test_bad_backoff_is_refused() -> None:
    with pytest.raises(ValueError, match="backoff"):
        Outage(first_s=0.0, max_s=1.0, window_s=1.0)
    with pytest.raises(ValueError, match="backoff"):
        Outage(first_s=2.0, max_s=1.0, window_s=1.0)


@given(
    first=st.floats(0.01, 5.0),
    factor=st.floats(1.0, 100.0),
    window=st.floats(0.0, 1_000.0),
    answer=st.floats(0.0, 2_000.0),
)
def test_attempts_are_spaced_by_the_backoff_and_never_beyond_the_window(
    first: float, factor: float, window: float, answer: float
) -> None:
    outage = Outage(first_s=first, max_s=first * factor, window_s=window)
    times = attempts_until_given_up(outage, began=0.0, answer_after=answer)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0 < gap <= first * factor + 1e-9 for gap in gaps)
    assert times[-1] <= window + 1e-9 or len(times) == 1
    # the waits never shrink, but for the last one, cut at the window's end
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps[:-1]))
    if answer <= window:  # the other side came back within the window: recovered
        assert times[-1] >= answer and not outage.active
    else:  # given up, right at the window's end
        assert times[-1] == pytest.approx(window) and outage.active
