"""Rate-limit rules: request weights, the per-address budget, and their messages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.ratelimit import (
    address_limit_message,
    address_requests,
    batch_length,
    cancel_cap,
    decide_address,
    exchange_weight,
    info_items_weight,
    info_weight,
    is_cancel,
    request_cap,
    user_rate_limit_view,
)

USDC = 1_000_000  # micro-USDC per USDC


def orders(n: int) -> dict[str, Any]:
    wire = {"a": 0, "b": True, "p": "100", "s": "1", "r": False, "t": {"limit": {"tif": "Gtc"}}}
    return {"type": "order", "orders": [wire] * n, "grouping": "na"}


def cancels(n: int, kind: str = "cancel") -> dict[str, Any]:
    return {"type": kind, "cancels": [{"a": 0, "o": i} for i in range(n)]}


# ------------------------------------------------------------------ weights


@pytest.mark.parametrize(("n", "weight"), [(1, 1), (39, 1), (40, 2), (79, 2), (80, 3), (200, 6)])
def test_exchange_weight_is_one_plus_a_unit_per_40_in_the_batch(n: int, weight: int) -> None:
    assert exchange_weight(orders(n)) == weight
    assert exchange_weight(cancels(n)) == weight
    assert exchange_weight(cancels(n, "cancelByCloid")) == weight


def test_unbatched_actions_weigh_one() -> None:
    assert exchange_weight({"type": "updateLeverage", "asset": 0, "isCross": True}) == 1
    assert exchange_weight({"type": "scheduleCancel", "time": 1}) == 1
    assert exchange_weight({"type": "batchModify", "modifies": [{}] * 40}) == 2
    assert exchange_weight({"type": "order", "orders": "not a list"}) == 1


@pytest.mark.parametrize(
    ("kind", "weight"),
    [
        ("l2Book", 2),
        ("allMids", 2),
        ("clearinghouseState", 2),
        ("orderStatus", 2),
        ("spotClearinghouseState", 2),
        ("exchangeStatus", 2),
        ("userRole", 60),
        ("meta", 20),
        ("metaAndAssetCtxs", 20),
        ("openOrders", 20),
        ("userRateLimit", 20),
        ("somethingNew", 20),
    ],
)
def test_info_weights(kind: str, weight: int) -> None:
    assert info_weight(kind) == weight


def test_list_answers_cost_extra_per_20_items_and_candles_per_60() -> None:
    assert info_items_weight("userFills", 19) == 0
    assert info_items_weight("userFills", 2000) == 100
    assert info_items_weight("candleSnapshot", 5000) == 83
    assert info_items_weight("l2Book", 1000) == 0


@given(st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_exchange_weight_grows_by_one_every_40_orders(n: int) -> None:
    assert exchange_weight(orders(n)) == 1 + n // 40
    assert batch_length(orders(n)) == n


# ------------------------------------------------------------------ the address budget


def test_the_cap_is_10000_plus_one_per_whole_usdc_traded() -> None:
    assert request_cap(0) == 10_000
    assert request_cap(999_999) == 10_000
    assert request_cap(USDC) == 10_001
    # the venue's own userRateLimit example: cumVlm 2854574.593578 -> cap 2864574
    assert request_cap(2_854_574_593_578) == 2_864_574


def test_cancels_get_double_or_100000_more_whichever_is_less() -> None:
    assert cancel_cap(10_000) == 20_000
    assert cancel_cap(100_000) == 200_000
    assert cancel_cap(500_000) == 600_000


def test_a_batch_counts_each_order_and_a_plain_action_one() -> None:
    assert address_requests(orders(25)) == 25
    assert address_requests(cancels(3)) == 3
    assert address_requests({"type": "updateLeverage"}) == 1
    assert is_cancel(cancels(1)) and is_cancel(cancels(1, "cancelByCloid"))
    assert not is_cancel(orders(1))


def test_the_10001st_request_of_a_new_address_is_refused_then_one_passes_per_10_s() -> None:
    now = 1_700_000_000_000
    ok = decide_address(9_999, 0, 1, cancel=False, last_throttled_ms=None, now_ms=now)
    assert ok.admitted and not ok.throttled and ok.used == 10_000 and ok.cap == 10_000
    first_over = decide_address(10_000, 0, 1, cancel=False, last_throttled_ms=None, now_ms=now)
    assert first_over.admitted and first_over.throttled and first_over.used == 10_001
    refused = decide_address(10_001, 0, 1, cancel=False, last_throttled_ms=now, now_ms=now + 9_999)
    assert not refused.admitted and refused.used == 10_001 and refused.retry_after_ms == 1
    again = decide_address(10_001, 0, 1, cancel=False, last_throttled_ms=now, now_ms=now + 10_000)
    assert again.admitted and again.throttled


def test_cancels_still_pass_where_orders_are_throttled() -> None:
    now = 1_700_000_000_000
    order = decide_address(15_000, 0, 1, cancel=False, last_throttled_ms=now, now_ms=now)
    cancel = decide_address(15_000, 0, 1, cancel=True, last_throttled_ms=now, now_ms=now)
    assert not order.admitted
    assert cancel.admitted and not cancel.throttled and cancel.cap == 20_000


def test_trading_buys_requests_back() -> None:
    now = 1_700_000_000_000
    verdict = decide_address(
        12_000, 2_500 * USDC, 1, cancel=False, last_throttled_ms=now, now_ms=now
    )
    assert verdict.admitted and not verdict.throttled and verdict.cap == 12_500


@given(
    st.integers(0, 50_000),
    st.integers(0, 10**12),
    st.integers(1, 100),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 20_000)),
)
@settings(max_examples=300, deadline=None)
def test_admission_within_the_cap_and_throttling_otherwise(
    used: int, vlm: int, n: int, cancel: bool, since_throttled: int | None
) -> None:
    now = 1_700_000_000_000
    last = None if since_throttled is None else now - since_throttled
    verdict = decide_address(used, vlm, n, cancel=cancel, last_throttled_ms=last, now_ms=now)
    cap = cancel_cap(request_cap(vlm)) if cancel else request_cap(vlm)
    assert verdict.cap == cap
    within = used + n <= cap
    may_trickle = since_throttled is None or since_throttled >= 10_000
    assert verdict.admitted == (within or may_trickle)
    assert verdict.throttled == (not within and may_trickle)
    assert verdict.used == (used + n if verdict.admitted else used)


def test_the_refusal_reads_like_the_venues() -> None:
    assert address_limit_message(10_002, 10_001, 1_500_000) == (
        "Too many cumulative requests sent (10002 > 10001) for cumulative volume traded "
        "$1.5. Place taker orders to free up 1 request per USDC traded."
    )


def test_user_rate_limit_has_the_venues_fields() -> None:
    assert user_rate_limit_view(2890, 2_854_574_593_578) == {
        "cumVlm": "2854574.593578",
        "nRequestsUsed": 2890,
        "nRequestsCap": 2_864_574,
        "nRequestsSurplus": 0,
    }
    assert user_rate_limit_view(0, 0) == {
        "cumVlm": "0",
        "nRequestsUsed": 0,
        "nRequestsCap": 10_000,
        "nRequestsSurplus": 0,
    }
