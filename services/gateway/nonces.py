"""Replay protection: the venue's nonce rule, and a Redis store that applies it atomically.

Per signer the venue keeps the 100 highest nonces it has accepted. A new nonce must lie
strictly inside (now - 2 days, now + 1 day), must not be one of those kept, and, once 100
are kept, must exceed the smallest of them. Accepting it may push the smallest out. A
nonce that was ever accepted can therefore never be accepted again: it is either still
kept (a duplicate) or below the smallest kept (too low), or outside the time window.

Rejections carry the venue's own wording, which client libraries match on:
``Invalid nonce: duplicate nonce N``, ``Invalid nonce: nonce too low N < B`` and
``Invalid nonce: nonce too high N > B``, where B is the nearest bound the nonce missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import redis.asyncio as aioredis

KEPT_PER_SIGNER: Final = 100
PAST_WINDOW_MS: Final = 2 * 86_400_000
FUTURE_WINDOW_MS: Final = 86_400_000


class NonceError(ValueError):
    """A refused nonce; ``str(exc)`` is the message the venue answers with."""

    def __init__(self, message: str, nonce: int) -> None:
        super().__init__(message)
        self.nonce = nonce


class DuplicateNonce(NonceError):
    def __init__(self, nonce: int) -> None:
        super().__init__(f"Invalid nonce: duplicate nonce {nonce}", nonce)


class NonceTooLow(NonceError):
    """Below the time window, or (with 100 kept) below the smallest kept nonce."""

    def __init__(self, nonce: int, least: int) -> None:
        super().__init__(f"Invalid nonce: nonce too low {nonce} < {least}", nonce)
        self.least = least


class NonceTooHigh(NonceError):
    def __init__(self, nonce: int, most: int) -> None:
        super().__init__(f"Invalid nonce: nonce too high {nonce} > {most}", nonce)
        self.most = most


def check_window(nonce: int, now_ms: int) -> None:
    """Refuse a nonce outside the open interval (now - 2 days, now + 1 day)."""
    least = now_ms - PAST_WINDOW_MS + 1
    most = now_ms + FUTURE_WINDOW_MS - 1
    if nonce < least:
        raise NonceTooLow(nonce, least)
    if nonce > most:
        raise NonceTooHigh(nonce, most)


def check_kept(nonce: int, kept: Sequence[int], capacity: int = KEPT_PER_SIGNER) -> None:
    """Refuse a nonce already kept, or not above the smallest when the set is full."""
    if nonce in kept:
        raise DuplicateNonce(nonce)
    if len(kept) >= capacity:
        smallest = min(kept)
        if nonce < smallest:
            raise NonceTooLow(nonce, smallest + 1)


def admit(
    kept: Sequence[int], nonce: int, now_ms: int, capacity: int = KEPT_PER_SIGNER
) -> tuple[int, ...]:
    """The whole rule as a pure function: the kept set (ascending) after accepting ``nonce``.

    Raises a ``NonceError`` and changes nothing when the nonce is refused. The Redis
    store does exactly this; tests hold the two to each other.
    """
    check_window(nonce, now_ms)
    check_kept(nonce, kept, capacity)
    return tuple(sorted((*kept, nonce)))[-capacity:]


# One round trip, atomic per signer. Nonces reach it already inside the time window, so
# they are below 2^53 and exact as Lua numbers and as sorted-set scores.
_CLAIM = """
local key = KEYS[1]
local nonce = ARGV[1]
local capacity = tonumber(ARGV[2])
if redis.call('ZSCORE', key, nonce) then
  return {1, 0}
end
local count = redis.call('ZCARD', key)
if count >= capacity then
  local smallest = redis.call('ZRANGE', key, 0, 0)[1]
  if tonumber(nonce) < tonumber(smallest) then
    return {2, smallest}
  end
end
redis.call('ZADD', key, nonce, nonce)
if count + 1 > capacity then
  redis.call('ZREMRANGEBYRANK', key, 0, count - capacity)
end
redis.call('PEXPIRE', key, ARGV[3])
return {0, 0}
"""

# Once a signer is idle this long, every nonce it ever used has left the time window
# (each was below its acceptance time + 1 day), so forgetting them reopens nothing.
_IDLE_EXPIRY_MS: Final = PAST_WINDOW_MS + FUTURE_WINDOW_MS


class NonceStore:
    """The kept nonces of every signer, one sorted set each, keyed ``{<ns>nonce:<addr>}``."""

    def __init__(
        self, client: aioredis.Redis, namespace: str, *, capacity: int = KEPT_PER_SIGNER
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.capacity = capacity
        self._claim = client.register_script(_CLAIM)

    def key(self, signer: str) -> str:
        return f"{{{self.namespace}nonce:{signer.lower()}}}"

    async def claim(self, signer: str, nonce: int, now_ms: int) -> None:
        """Accept ``nonce`` for ``signer`` or raise the venue's ``NonceError``."""
        if isinstance(nonce, bool) or not isinstance(nonce, int):
            raise TypeError(f"nonce must be an integer, got {type(nonce).__name__}")
        check_window(nonce, now_ms)
        verdict, smallest = cast(
            list[int | bytes],
            await self._claim(
                keys=[self.key(signer)], args=[nonce, self.capacity, _IDLE_EXPIRY_MS]
            ),
        )
        if verdict == 1:
            raise DuplicateNonce(nonce)
        if verdict == 2:
            raise NonceTooLow(nonce, int(smallest) + 1)

    async def kept(self, signer: str) -> list[int]:
        """The signer's kept nonces, ascending (for operators and tests)."""
        members = cast(list[bytes], await self.client.zrange(self.key(signer), 0, -1))
        return [int(m) for m in members]
