"""The nonce rule: the 100 highest kept per signer, no repeats, inside (now - 2 d, now + 1 d)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.nonces import (
    FUTURE_WINDOW_MS,
    KEPT_PER_SIGNER,
    PAST_WINDOW_MS,
    DuplicateNonce,
    NonceError,
    NonceTooHigh,
    NonceTooLow,
    admit,
    check_window,
)

NOW = 1_700_000_000_000
DAY = 86_400_000


def fill(count: int, start: int = NOW) -> tuple[int, ...]:
    kept: tuple[int, ...] = ()
    for i in range(count):
        kept = admit(kept, start + i, NOW)
    return kept


def test_the_window_is_open_two_days_back_and_one_day_ahead() -> None:
    assert PAST_WINDOW_MS == 2 * DAY and FUTURE_WINDOW_MS == DAY
    check_window(NOW - 2 * DAY + 1, NOW)
    check_window(NOW + DAY - 1, NOW)
    with pytest.raises(NonceTooLow) as low:
        check_window(NOW - 2 * DAY, NOW)
    assert str(low.value) == f"Invalid nonce: nonce too low {NOW - 2 * DAY} < {NOW - 2 * DAY + 1}"
    with pytest.raises(NonceTooHigh) as high:
        check_window(NOW + DAY, NOW)
    assert str(high.value) == f"Invalid nonce: nonce too high {NOW + DAY} > {NOW + DAY - 1}"


def test_a_repeated_nonce_is_a_duplicate_in_the_venues_words() -> None:
    kept = admit((), NOW, NOW)
    with pytest.raises(DuplicateNonce) as exc:
        admit(kept, NOW, NOW)
    assert str(exc.value) == f"Invalid nonce: duplicate nonce {NOW}"


def test_below_100_kept_any_fresh_nonce_in_the_window_passes_even_a_lower_one() -> None:
    kept = fill(99, start=NOW)
    kept = admit(kept, NOW - 5, NOW)  # lower than all 99, still accepted: the set was not full
    assert len(kept) == 100 and kept[0] == NOW - 5


def test_with_100_kept_a_nonce_must_exceed_the_smallest_which_then_drops_out() -> None:
    kept = fill(100)  # NOW .. NOW+99
    with pytest.raises(NonceTooLow) as exc:
        admit(kept, NOW - 1, NOW)
    assert str(exc.value) == f"Invalid nonce: nonce too low {NOW - 1} < {NOW + 1}"
    with pytest.raises(DuplicateNonce):
        admit(kept, NOW, NOW)  # the smallest itself: still kept, so a duplicate
    kept = admit(kept, NOW + 1000, NOW)
    assert len(kept) == KEPT_PER_SIGNER
    assert kept[0] == NOW + 1 and kept[-1] == NOW + 1000
    with pytest.raises(NonceTooLow):
        admit(kept, NOW, NOW)  # the evicted nonce can never come back
    kept = admit(kept, NOW + 500, NOW)  # out of order but above the smallest: fine
    assert kept[0] == NOW + 2


def test_a_refused_nonce_changes_nothing() -> None:
    kept = fill(100)
    for bad in (NOW - 1, NOW + 50, NOW + 2 * DAY):
        with pytest.raises(NonceError):
            admit(kept, bad, NOW)
    assert kept == fill(100)


# ------------------------------------------------------------------ properties

NONCES = st.lists(st.integers(NOW - 3 * DAY, NOW + 2 * DAY), max_size=300)
CLUSTERED = st.lists(st.integers(NOW - 200, NOW + 200), max_size=400)


def run(nonces: list[int], capacity: int) -> tuple[tuple[int, ...], list[int], list[int]]:
    kept: tuple[int, ...] = ()
    accepted: list[int] = []
    refused: list[int] = []
    for n in nonces:
        try:
            kept = admit(kept, n, NOW, capacity)
        except NonceError:
            refused.append(n)
        else:
            accepted.append(n)
    return kept, accepted, refused


@given(st.one_of(NONCES, CLUSTERED), st.sampled_from([1, 5, 100]))
@settings(max_examples=300, deadline=None)
def test_no_nonce_is_ever_accepted_twice(nonces: list[int], capacity: int) -> None:
    _, accepted, _ = run(nonces, capacity)
    assert len(accepted) == len(set(accepted))


@given(st.one_of(NONCES, CLUSTERED), st.sampled_from([1, 5, 100]))
@settings(max_examples=300, deadline=None)
def test_kept_is_the_highest_accepted_and_never_more_than_capacity(
    nonces: list[int], capacity: int
) -> None:
    kept, accepted, _ = run(nonces, capacity)
    assert kept == tuple(sorted(accepted)[-capacity:])
    assert len(kept) <= capacity


@given(st.one_of(NONCES, CLUSTERED), st.sampled_from([1, 5, 100]))
@settings(max_examples=300, deadline=None)
def test_each_decision_follows_the_stated_rule(nonces: list[int], capacity: int) -> None:
    kept: tuple[int, ...] = ()
    for n in nonces:
        in_window = NOW - 2 * DAY < n < NOW + DAY
        fresh = n not in kept
        above = len(kept) < capacity or n > min(kept)
        try:
            after = admit(kept, n, NOW, capacity)
        except NonceError:
            assert not (in_window and fresh and above)
        else:
            assert in_window and fresh and above
            kept = after


@given(st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=300, deadline=None)
def test_every_nonce_outside_the_window_is_refused_whatever_is_kept(nonce: int) -> None:
    inside = NOW - 2 * DAY < nonce < NOW + DAY
    try:
        admit((), nonce, NOW)
    except (NonceTooLow, NonceTooHigh):
        assert not inside
    else:
        assert inside
