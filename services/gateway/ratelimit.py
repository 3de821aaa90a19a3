"""Admission by rate: the venue's per-IP weight budget and per-address request budget.

Per IP, REST requests share 1200 weight per sliding 60 s window. An /exchange request
weighs ``1 + floor(batch_length / 40)``; /info requests weigh 2 (l2Book, allMids,
clearinghouseState, orderStatus, spotClearinghouseState, exchangeStatus), 60 (userRole)
or 20 (all others).

Per address (actions only), the budget is cumulative since inception: 10,000 requests
plus 1 per 1 USDC traded. A batch of n orders or cancels counts n. Cancels get
``min(cap + 100000, 2 * cap)`` so a throttled account can still pull its orders, and an
address over its cap is still let through once every 10 seconds.

The rules are pure functions; the two limiters apply them atomically in Redis with one
Lua script each. Time comes from an injected clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as aioredis

from libs.common.money import format_usd

Clock = Callable[[], int]

IP_WEIGHT_LIMIT: Final = 1200
IP_WINDOW_MS: Final = 60_000
BATCH_PER_EXTRA_WEIGHT: Final = 40
INFO_DEFAULT_WEIGHT: Final = 20
INFO_WEIGHTS: Final[Mapping[str, int]] = {
    "l2Book": 2,
    "allMids": 2,
    "clearinghouseState": 2,
    "orderStatus": 2,
    "spotClearinghouseState": 2,
    "exchangeStatus": 2,
    "userRole": 60,
}
# Info requests that cost extra per item returned (the weight is charged after answering).
INFO_ITEMS_PER_EXTRA_WEIGHT: Final[Mapping[str, int]] = {
    **dict.fromkeys(
        (
            "recentTrades",
            "historicalOrders",
            "userFills",
            "userFillsByTime",
            "fundingHistory",
            "userFunding",
            "nonUserFundingUpdates",
            "twapHistory",
            "userTwapSliceFills",
            "userTwapSliceFillsByTime",
            "liquidationHistory",
        ),
        20,
    ),
    "candleSnapshot": 60,
}

ADDRESS_INITIAL_BUFFER: Final = 10_000
MICRO_USD_PER_REQUEST: Final = 1_000_000  # 1 request per 1 USDC traded
CANCEL_EXTRA_REQUESTS: Final = 100_000
THROTTLED_INTERVAL_MS: Final = 10_000
# Action key holding the batch, per action type.
BATCH_KEYS: Final[Mapping[str, str]] = {
    "order": "orders",
    "cancel": "cancels",
    "cancelByCloid": "cancels",
    "batchModify": "modifies",
}
CANCEL_TYPES: Final = frozenset({"cancel", "cancelByCloid"})


class RateLimited(Exception):
    """A refused request; the app answers HTTP 429 with ``str(exc)``.

    ``retry_after_ms`` is how long until the same request would pass, when known.
    """

    def __init__(self, message: str, retry_after_ms: int | None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class IpRateLimited(RateLimited):
    pass


class AddressRateLimited(RateLimited):
    pass


# ---------------------------------------------------------------- weights (pure)


def batch_length(action: Mapping[str, Any]) -> int:
    """Length of the action's batch array (orders, cancels, modifies); 0 for other actions."""
    key = BATCH_KEYS.get(str(action.get("type")))
    batch = action.get(key) if key else None
    return len(batch) if isinstance(batch, list) else 0


def exchange_weight(action: Mapping[str, Any]) -> int:
    """IP weight of an /exchange request: ``1 + floor(batch_length / 40)``."""
    return 1 + batch_length(action) // BATCH_PER_EXTRA_WEIGHT


def info_weight(request_type: str) -> int:
    """IP weight of an /info request of this ``type``, charged before answering."""
    return INFO_WEIGHTS.get(request_type, INFO_DEFAULT_WEIGHT)


def info_items_weight(request_type: str, n_items: int) -> int:
    """Extra IP weight of an /info answer that lists ``n_items`` items (0 for most types)."""
    per = INFO_ITEMS_PER_EXTRA_WEIGHT.get(request_type)
    return n_items // per if per else 0


# ---------------------------------------------------------------- address budget (pure)


def address_requests(action: Mapping[str, Any]) -> int:
    """Requests an action counts against its address: n for a batch of n, else 1."""
    return max(1, batch_length(action))


def is_cancel(action: Mapping[str, Any]) -> bool:
    return action.get("type") in CANCEL_TYPES


def request_cap(cum_vlm_micro: int) -> int:
    """Cumulative requests allowed: 10,000 plus 1 per whole USDC traded."""
    return ADDRESS_INITIAL_BUFFER + cum_vlm_micro // MICRO_USD_PER_REQUEST


def cancel_cap(cap: int) -> int:
    """The higher cumulative cap that cancels are held to."""
    return min(cap + CANCEL_EXTRA_REQUESTS, cap * 2)


@dataclass(frozen=True, slots=True)
class AddressVerdict:
    """Outcome of one address admission. ``used`` counts this request if it was admitted."""

    admitted: bool
    throttled: bool  # admitted over the cap, as the one request per 10 s
    used: int
    cap: int
    retry_after_ms: int | None = None


def decide_address(
    used: int,
    cum_vlm_micro: int,
    n: int,
    *,
    cancel: bool,
    last_throttled_ms: int | None,
    now_ms: int,
) -> AddressVerdict:
    """The per-address rule; the Redis limiter's script computes exactly this."""
    cap = request_cap(cum_vlm_micro)
    if cancel:
        cap = cancel_cap(cap)
    if used + n <= cap:
        return AddressVerdict(True, False, used + n, cap)
    if last_throttled_ms is None or now_ms - last_throttled_ms >= THROTTLED_INTERVAL_MS:
        return AddressVerdict(True, True, used + n, cap)
    wait = last_throttled_ms + THROTTLED_INTERVAL_MS - now_ms
    return AddressVerdict(False, False, used, cap, wait)


def address_limit_message(attempted: int, cap: int, cum_vlm_micro: int) -> str:
    """The venue's refusal text for an address over its cumulative budget."""
    return (
        f"Too many cumulative requests sent ({attempted} > {cap}) for cumulative volume "
        f"traded ${format_usd(cum_vlm_micro)}. "
        "Place taker orders to free up 1 request per USDC traded."
    )


def user_rate_limit_view(used: int, cum_vlm_micro: int) -> dict[str, Any]:
    """The ``userRateLimit`` /info answer, in the venue's shape."""
    return {
        "cumVlm": format_usd(cum_vlm_micro),
        "nRequestsUsed": used,
        "nRequestsCap": request_cap(cum_vlm_micro),
        "nRequestsSurplus": 0,  # requests bought in advance; this venue sells none
    }


# ---------------------------------------------------------------- per-IP limiter (Redis)

# A sliding log per IP: a sorted set of "<seq>:<weight>" members scored by time, and a
# hash holding the running total and the sequence. Expired entries are subtracted as
# they are dropped, so each call costs O(entries expired), not O(window).
_IP_ADMIT = """
local log, meta = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local force = ARGV[5] == '1'
local total = tonumber(redis.call('HGET', meta, 'total') or '0')
local cutoff = now - window
local expired = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
for _, member in ipairs(expired) do
  total = total - tonumber(string.match(member, ':(%d+)$'))
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
  redis.call('HSET', meta, 'total', total)
end
if not force and total + weight > limit then
  local retry = -1
  if weight <= limit then
    local need = total + weight - limit
    local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    local freed = 0
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
      if freed >= need then
        retry = tonumber(entries[i + 1]) + window - now
        break
      end
    end
  end
  return {0, total, retry}
end
if weight > 0 then
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('ZADD', log, now, seq .. ':' .. weight)
  total = total + weight
  redis.call('HSET', meta, 'total', total)
  redis.call('PEXPIRE', log, window)
  redis.call('PEXPIRE', meta, window)
end
return {1, total, 0}
"""


class IpRateLimiter:
    """1200 weight per IP per sliding 60 s window, shared by every gateway instance."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        clock: Clock,
        *,
        limit: int = IP_WEIGHT_LIMIT,
        window_ms: int = IP_WINDOW_MS,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.clock = clock
        self.limit = limit
        self.window_ms = window_ms
        self._admit = client.register_script(_IP_ADMIT)

    def keys(self, ip: str) -> list[str]:
        tag = f"{{{self.namespace}ratelimit:ip:{ip}}}"
        return [f"{tag}:log", f"{tag}:meta"]

    async def admit(self, ip: str, weight: int) -> int:
        """Spend ``weight`` for ``ip`` and return the weight used in the window, or raise."""
        return await self._run(ip, weight, force=False)

    async def charge(self, ip: str, weight: int) -> int:
        """Spend weight already earned by an answer (per-item /info weight); never refuses."""
        return await self._run(ip, weight, force=True)

    async def _run(self, ip: str, weight: int, *, force: bool) -> int:
        if weight < 0:
            raise ValueError("weight must not be negative")
        now = self.clock()
        args = [now, weight, self.limit, self.window_ms, int(force)]
        ok, total, retry = cast(list[int], await self._admit(keys=self.keys(ip), args=args))
        if ok:
            return total
        retry_after = retry if retry >= 0 else None
        wait = f" Retry in {-(-retry_after // 1000)} s." if retry_after is not None else ""
        raise IpRateLimited(
            f"Rate limited: this IP has used {total} of its {self.limit} request weight "
            f"in the last {self.window_ms // 1000} s and this request weighs {weight}.{wait}",
            retry_after,
        )


# ---------------------------------------------------------------- per-address limiter


# Volume is kept in micro-USDC by HINCRBY (exact int64). Lua numbers are doubles, so the
# script takes whole USDC as the decimal digits but the last six: exact below 2^53 USDC.
_ADDRESS_ADMIT = """
local key = KEYS[1]
local n = tonumber(ARGV[1])
local cancel = ARGV[2] == '1'
local now = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local extra = tonumber(ARGV[5])
local interval = tonumber(ARGV[6])
local fields = redis.call('HMGET', key, 'req', 'vlm', 'throttled')
local used = tonumber(fields[1] or '0')
local vlm = fields[2] or '0'
local whole = 0
if #vlm > 6 then
  whole = tonumber(string.sub(vlm, 1, -7))
end
local cap = base + whole
if cancel then
  cap = math.min(cap + extra, cap * 2)
end
if used + n <= cap then
  redis.call('HINCRBY', key, 'req', n)
  return {1, used + n, cap, 0}
end
local last = fields[3]
if (not last) or now - tonumber(last) >= interval then
  redis.call('HINCRBY', key, 'req', n)
  redis.call('HSET', key, 'throttled', now)
  return {2, used + n, cap, 0}
end
return {0, used, cap, tonumber(last) + interval - now}
"""


class AddressRateLimiter:
    """Cumulative per-address request budget: a hash per address, ``{<ns>ratelimit:addr:<a>}``.

    Fields: ``req`` (requests counted), ``vlm`` (micro-USDC traded), ``throttled`` (time
    of the last request let through over the cap).
    """

    def __init__(self, client: aioredis.Redis, namespace: str, clock: Clock) -> None:
        self.client = client
        self.namespace = namespace
        self.clock = clock
        self._admit = client.register_script(_ADDRESS_ADMIT)

    def key(self, address: str) -> str:
        return f"{{{self.namespace}ratelimit:addr:{address.lower()}}}"

    async def admit(self, address: str, action: Mapping[str, Any]) -> AddressVerdict:
        """Count an action against ``address`` or raise ``AddressRateLimited``."""
        return await self.admit_requests(address, address_requests(action), is_cancel(action))

    async def admit_requests(self, address: str, n: int, cancel: bool) -> AddressVerdict:
        if n < 1:
            raise ValueError("an action counts at least one request")
        args = [
            n,
            int(cancel),
            self.clock(),
            ADDRESS_INITIAL_BUFFER,
            CANCEL_EXTRA_REQUESTS,
            THROTTLED_INTERVAL_MS,
        ]
        verdict, used, cap, retry = cast(
            list[int], await self._admit(keys=[self.key(address)], args=args)
        )
        if verdict == 1:
            return AddressVerdict(True, False, used, cap)
        if verdict == 2:
            return AddressVerdict(True, True, used, cap)
        vlm = await self.traded(address)
        raise AddressRateLimited(address_limit_message(used + n, cap, vlm), retry)

    async def record_traded(self, address: str, usd_micro: int) -> None:
        """Add traded notional (micro-USDC, one side of a fill) to the address's volume."""
        if usd_micro < 0:
            raise ValueError("traded volume must not be negative")
        if usd_micro:
            await self.client.hincrby(self.key(address), "vlm", usd_micro)

    async def traded(self, address: str) -> int:
        raw = await self.client.hget(self.key(address), "vlm")
        return int(raw) if raw is not None else 0

    async def user_rate_limit(self, address: str) -> dict[str, Any]:
        """The ``userRateLimit`` /info answer for ``address``."""
        raw = cast(
            list[bytes | None],
            await self.client.hmget(self.key(address), ["req", "vlm"]),
        )
        used = int(raw[0]) if raw[0] is not None else 0
        vlm = int(raw[1]) if raw[1] is not None else 0
        return user_rate_limit_view(used, vlm)
