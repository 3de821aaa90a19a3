"""The gateway's admission stores against a real Redis: nonces, rate limits, agent wallets.

Each test runs in a fresh namespace, with an injected clock so minutes pass instantly.
Where a store's Lua script mirrors a pure rule, a seeded random workload holds the two
to the same decisions.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis

from libs.common.settings import Settings
from services.gateway.agents import ZERO_ADDRESS, AgentError, AgentStore
from services.gateway.nonces import (
    DuplicateNonce,
    NonceError,
    NonceStore,
    NonceTooHigh,
    NonceTooLow,
    admit,
)
from services.gateway.ratelimit import (
    AddressRateLimited,
    AddressRateLimiter,
    IpRateLimited,
    IpRateLimiter,
    decide_address,
)

pytestmark = pytest.mark.kafka

NOW = 1_700_000_000_000
DAY = 86_400_000
USDC = 1_000_000
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
AGENT = "0x" + "c3" * 20
AGENT2 = "0x" + "d4" * 20


class FakeClock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# ------------------------------------------------------------------ nonces


async def test_nonces_refuse_repeats_low_and_far_nonces_in_the_venues_words(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = NonceStore(redis_client, settings.namespace)
    await store.claim(ALICE, NOW, NOW)
    with pytest.raises(DuplicateNonce, match=f"^Invalid nonce: duplicate nonce {NOW}$"):
        await store.claim(ALICE, NOW, NOW)
    await store.claim(BOB, NOW, NOW)  # per signer
    await store.claim(ALICE.upper().replace("0X", "0x"), NOW + 1, NOW)  # address case ignored
    with pytest.raises(NonceTooLow, match=f"nonce too low {NOW - 2 * DAY} < {NOW - 2 * DAY + 1}"):
        await store.claim(ALICE, NOW - 2 * DAY, NOW)
    with pytest.raises(NonceTooHigh, match=f"nonce too high {NOW + DAY} > {NOW + DAY - 1}"):
        await store.claim(ALICE, NOW + DAY, NOW)
    assert await store.kept(ALICE) == [NOW, NOW + 1]
    key = store.key(ALICE)
    assert key == f"{{{settings.namespace}nonce:{ALICE}}}"
    assert 3 * DAY - 60_000 < await redis_client.pttl(key) <= 3 * DAY


async def test_with_100_kept_the_smallest_must_be_beaten_and_evicted_ones_never_return(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = NonceStore(redis_client, settings.namespace)
    for i in range(100):
        await store.claim(ALICE, NOW + i, NOW)
    with pytest.raises(NonceTooLow, match=f"^Invalid nonce: nonce too low {NOW - 1} < {NOW + 1}$"):
        await store.claim(ALICE, NOW - 1, NOW)
    await store.claim(ALICE, NOW + 500, NOW)
    kept = await store.kept(ALICE)
    assert len(kept) == 100 and kept[0] == NOW + 1 and kept[-1] == NOW + 500
    with pytest.raises(NonceTooLow):
        await store.claim(ALICE, NOW, NOW)  # evicted: below the new smallest


async def test_concurrent_claims_of_one_nonce_admit_exactly_one(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = NonceStore(redis_client, settings.namespace)
    results = await asyncio.gather(
        *(store.claim(ALICE, NOW, NOW) for _ in range(50)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DuplicateNonce) for r in results if r is not None)


async def test_the_redis_store_decides_exactly_like_the_pure_rule(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    rng = random.Random(7)
    store = NonceStore(redis_client, settings.namespace, capacity=20)
    kept: tuple[int, ...] = ()
    for _ in range(600):
        nonce = NOW + rng.randint(-150, 150)
        expected: type[NonceError] | None = None
        try:
            kept = admit(kept, nonce, NOW, capacity=20)
        except NonceError as exc:
            expected = type(exc)
        try:
            await store.claim(ALICE, nonce, NOW)
        except NonceError as exc:
            assert type(exc) is expected, nonce
        else:
            assert expected is None, nonce
    assert tuple(await store.kept(ALICE)) == kept


# ------------------------------------------------------------------ per-IP weight


async def test_the_1201st_weight_unit_in_a_minute_is_refused_and_a_minute_later_passes(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock = FakeClock()
    limiter = IpRateLimiter(redis_client, settings.namespace, clock)
    for _ in range(60):
        await limiter.admit("10.0.0.1", 20)  # 60 meta requests: 1200 weight
    clock.now = NOW + 59_999
    with pytest.raises(IpRateLimited) as exc:
        await limiter.admit("10.0.0.1", 1)
    assert exc.value.retry_after_ms == 1
    assert str(exc.value) == (
        "Rate limited: this IP has used 1200 of its 1200 request weight in the last 60 s "
        "and this request weighs 1. Retry in 1 s."
    )
    assert await limiter.admit("10.0.0.2", 20) == 20  # another IP has its own budget
    clock.now = NOW + 60_000
    assert await limiter.admit("10.0.0.1", 1) == 1


async def test_the_window_slides_rather_than_resetting_on_the_minute(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock = FakeClock()
    limiter = IpRateLimiter(redis_client, settings.namespace, clock)
    for _ in range(30):
        await limiter.admit("ip", 20)  # 600 at t = 0
    clock.now = NOW + 30_000
    for _ in range(30):
        await limiter.admit("ip", 20)  # 600 at t = 30 s
    clock.now = NOW + 60_000  # the first 600 have left the window, the second have not
    assert await limiter.admit("ip", 600) == 1200
    with pytest.raises(IpRateLimited) as exc:
        await limiter.admit("ip", 2)
    assert exc.value.retry_after_ms == 30_000  # when the t = 30 s weight leaves
    with pytest.raises(IpRateLimited) as too_big:
        await limiter.admit("other", 1201)
    assert too_big.value.retry_after_ms is None  # never fits


async def test_charged_weight_counts_but_is_never_refused(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock = FakeClock()
    limiter = IpRateLimiter(redis_client, settings.namespace, clock)
    await limiter.admit("ip", 1190)
    assert await limiter.charge("ip", 100) == 1290  # userFills answered with 2000 fills
    with pytest.raises(IpRateLimited):
        await limiter.admit("ip", 2)


async def test_concurrent_requests_never_overspend_the_budget(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    limiter = IpRateLimiter(redis_client, settings.namespace, FakeClock())
    results = await asyncio.gather(
        *(limiter.admit("ip", 20) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(r, int) for r in results) == 60
    assert sum(isinstance(r, IpRateLimited) for r in results) == 40


# ------------------------------------------------------------------ per-address budget


async def test_a_new_address_gets_10000_requests_then_one_per_10_s(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock = FakeClock()
    limiter = AddressRateLimiter(redis_client, settings.namespace, clock)
    verdict = await limiter.admit_requests(ALICE, 9_999, cancel=False)
    assert verdict.used == 9_999 and verdict.cap == 10_000
    order = {"type": "order", "orders": [{}], "grouping": "na"}
    assert (await limiter.admit(ALICE, order)).used == 10_000
    over = await limiter.admit(ALICE, order)  # the 10,001st: let through as the 1 per 10 s
    assert over.admitted and over.throttled and over.used == 10_001
    clock.now = NOW + 9_999
    with pytest.raises(AddressRateLimited) as exc:
        await limiter.admit(ALICE, order)
    assert str(exc.value) == (
        "Too many cumulative requests sent (10002 > 10000) for cumulative volume traded $0. "
        "Place taker orders to free up 1 request per USDC traded."
    )
    assert exc.value.retry_after_ms == 1
    cancel = {"type": "cancel", "cancels": [{"a": 0, "o": 1}] * 3}
    assert (await limiter.admit(ALICE, cancel)).used == 10_004  # cancels: cap 20,000
    clock.now = NOW + 10_000
    assert (await limiter.admit(ALICE, order)).throttled
    assert await limiter.user_rate_limit(ALICE) == {
        "cumVlm": "0",
        "nRequestsUsed": 10_005,
        "nRequestsCap": 10_000,
        "nRequestsSurplus": 0,
    }


async def test_each_usdc_traded_buys_one_request(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock = FakeClock()
    limiter = AddressRateLimiter(redis_client, settings.namespace, clock)
    await limiter.admit_requests(ALICE, 10_000, cancel=False)
    await limiter.record_traded(ALICE, 2_500 * USDC + 400_000)  # $2500.40
    verdict = await limiter.admit_requests(ALICE, 2_500, cancel=False)
    assert verdict.admitted and not verdict.throttled and verdict.cap == 12_500
    await limiter.admit_requests(ALICE, 1, cancel=False)  # over: the throttled one
    with pytest.raises(AddressRateLimited, match=r"\(12502 > 12500\).*traded \$2500\.4\."):
        await limiter.admit_requests(ALICE, 1, cancel=False)
    view = await limiter.user_rate_limit(ALICE)
    assert view["cumVlm"] == "2500.4" and view["nRequestsCap"] == 12_500


async def test_volume_beyond_double_precision_stays_exact(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    limiter = AddressRateLimiter(redis_client, settings.namespace, FakeClock())
    huge = 2**60 + 123_456_789  # micro-USDC; not exact as a double
    await limiter.record_traded(ALICE, huge)
    verdict = await limiter.admit_requests(ALICE, 1, cancel=False)
    assert verdict.cap == 10_000 + huge // USDC
    assert (await limiter.user_rate_limit(ALICE))["nRequestsCap"] == 10_000 + huge // USDC


async def test_the_address_script_decides_exactly_like_the_pure_rule(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    rng = random.Random(11)
    clock = FakeClock()
    limiter = AddressRateLimiter(redis_client, settings.namespace, clock)
    used, vlm, last = 9_900, 0, None
    await limiter.admit_requests(ALICE, used, cancel=False)
    for _ in range(300):
        clock.now += rng.choice([0, 1_000, 4_000, 10_000])
        if rng.random() < 0.1:
            traded = rng.randint(0, 50 * USDC)
            vlm += traded
            await limiter.record_traded(ALICE, traded)
        n, cancel = rng.randint(1, 60), rng.random() < 0.3
        expected = decide_address(
            used, vlm, n, cancel=cancel, last_throttled_ms=last, now_ms=clock.now
        )
        try:
            verdict = await limiter.admit_requests(ALICE, n, cancel)
        except AddressRateLimited as exc:
            assert not expected.admitted
            assert exc.retry_after_ms == expected.retry_after_ms
        else:
            assert verdict == expected
            used = verdict.used
            last = clock.now if verdict.throttled else last


# ------------------------------------------------------------------ agent wallets


async def test_an_approved_agent_acts_for_its_master_until_replaced(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    assert await store.acting_for(AGENT, NOW) == AGENT  # not an agent: acts for itself
    await store.approve(ALICE, AGENT.upper().replace("0X", "0x"), "", NOW, NOW)
    assert await store.master_of(AGENT, NOW) == ALICE
    assert await store.acting_for(AGENT, NOW) == ALICE
    await store.approve(ALICE, AGENT2, "", NOW + 1, NOW + 1)  # a new unnamed agent
    assert await store.master_of(AGENT, NOW + 1) is None
    assert await store.master_of(AGENT2, NOW + 1) == ALICE
    assert await redis_client.exists(store.claim_key(AGENT)) == 0  # claim cleaned up
    assert [a.agent for a in await store.approvals(ALICE)] == [AGENT2]


async def test_a_live_agent_cannot_be_taken_by_another_master_until_revoked(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    await store.approve(ALICE, AGENT, "bot", NOW, NOW)
    with pytest.raises(AgentError, match="already approved by another account"):
        await store.approve(BOB, AGENT, "", NOW, NOW)
    assert await store.approvals(BOB) == []
    await store.approve(ALICE, ZERO_ADDRESS, "bot", NOW + 1, NOW + 1)  # revoke by name
    assert await store.master_of(AGENT, NOW + 1) is None
    await store.approve(BOB, AGENT, "", NOW + 2, NOW + 2)
    assert await store.master_of(AGENT, NOW + 2) == BOB


async def test_an_expired_agent_stops_acting_and_can_be_reapproved_elsewhere(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    await store.approve(ALICE, AGENT, f"bot valid_until {NOW + 60_000}", NOW, NOW)
    assert await store.master_of(AGENT, NOW + 59_999) == ALICE
    assert await store.master_of(AGENT, NOW + 60_000) is None
    await store.approve(
        BOB, AGENT, "", NOW + 60_000, NOW + 60_000
    )  # the expired claim is taken over
    assert await store.master_of(AGENT, NOW + 60_000) == BOB


async def test_a_refused_approval_leaves_no_trace(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    for i in range(3):
        await store.approve(ALICE, "0x" + f"{i + 1:02x}" * 20, f"bot{i}", NOW, NOW)
    with pytest.raises(AgentError, match="at most 3"):
        await store.approve(ALICE, AGENT, "bot9", NOW, NOW)
    assert await redis_client.exists(store.claim_key(AGENT)) == 0
    assert len(await store.approvals(ALICE)) == 3
    with pytest.raises(AgentError, match="cannot approve itself"):
        await store.approve(ALICE, ALICE, "", NOW, NOW)


async def test_a_pointer_without_its_approval_lets_nothing_act(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    await store.approve(ALICE, AGENT, "", NOW, NOW)
    await redis_client.hdel(store.master_key(ALICE), AGENT)  # as if a change was cut short
    assert await store.master_of(AGENT, NOW) is None


async def test_masters_racing_for_one_agent_leave_exactly_one_owner(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    store = AgentStore(redis_client, settings.namespace)
    masters = [ALICE, BOB, "0x" + "e5" * 20]
    for i in range(10):
        agent = "0x" + f"{i + 16:02x}" * 20
        results = await asyncio.gather(
            *(store.approve(m, agent, "", NOW, NOW) for m in masters), return_exceptions=True
        )
        assert sum(isinstance(r, AgentError) for r in results) == 2
        owner = await store.master_of(agent, NOW)
        assert owner in masters
        for loser in set(masters) - {owner}:
            assert agent not in {a.agent for a in await store.approvals(loser)}
