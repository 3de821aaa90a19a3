"""Agent (API) wallets: addresses a master account approves to sign L1 actions for it.

A master signs ``approveAgent{agentAddress, agentName, nonce}`` (user-signed). From then
on an L1 action signed by the agent acts for the master. The venue's rules, kept here:

- a master has at most one unnamed agent and one agent per name: approving a new unnamed
  agent, or a new agent under a used name, deregisters the old one;
- ``agentName`` may end in `` valid_until <ms>``, after which the agent no longer acts;
- approving the zero address revokes the agent under that name (or the unnamed one);
- an agent acts for one master only, and an account cannot be its own agent.

The named-agent cap (3) is this venue's guard on storage.

Redis layout: per master a hash ``{<ns>agents:<master>}`` of agent -> approval (JSON),
which the master's rules (one per name, the cap) are checked against under WATCH; per
agent a claim ``{<ns>agent:<agent>}`` holding the same approval, taken atomically so two
masters can never both own an agent. An agent acts only while its claim and its master's
hash hold the same live approval, so a change cut short half-way fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

ZERO_ADDRESS: Final = "0x" + "00" * 20
MAX_NAMED_AGENTS: Final = 3
MAX_NAME_LENGTH: Final = 50
VALID_UNTIL: Final = re.compile(r"^(.*) valid_until (\d+)$")
_ADDRESS: Final = re.compile(r"0x[0-9a-f]{40}")


class AgentError(ValueError):
    """An approval the venue refuses; ``str(exc)`` is the answer to the client."""


class AgentApproval(msgspec.Struct, frozen=True, kw_only=True):
    """One approved agent. ``name`` is "" for the unnamed agent."""

    agent: str
    master: str
    name: str = ""
    valid_until: int | None = None
    approved_ms: int = 0

    def active(self, now_ms: int) -> bool:
        return self.valid_until is None or now_ms < self.valid_until


@dataclass(frozen=True, slots=True)
class ApprovalPlan:
    """What one approveAgent changes in a master's agents."""

    add: AgentApproval | None
    remove: tuple[AgentApproval, ...]


def normalize(address: str, what: str) -> str:
    value = address.lower()
    if not _ADDRESS.fullmatch(value):
        raise AgentError(f"{what} must be 0x followed by 40 hex digits")
    return value


def parse_agent_name(raw: str) -> tuple[str, int | None]:
    """Split ``"bot valid_until 1700000000000"`` into the name and its expiry (ms)."""
    match = VALID_UNTIL.match(raw)
    name, valid_until = (match.group(1), int(match.group(2))) if match else (raw, None)
    if len(name) > MAX_NAME_LENGTH:
        raise AgentError(f"Agent name must be at most {MAX_NAME_LENGTH} characters.")
    return name, valid_until


def plan_approval(
    current: Iterable[AgentApproval],
    master: str,
    agent: str,
    raw_name: str,
    nonce: int,
    now_ms: int,
) -> ApprovalPlan:
    """Apply one approveAgent to a master's current agents (pure).

    Expired approvals are dropped on the way, as the venue prunes them.
    """
    master = normalize(master, "master")
    agent = normalize(agent, "agentAddress")
    name, valid_until = parse_agent_name(raw_name)
    live = [a for a in current if a.active(now_ms)]
    stale = tuple(a for a in current if not a.active(now_ms))
    if agent == ZERO_ADDRESS:
        return ApprovalPlan(None, stale + tuple(a for a in live if a.name == name))
    if agent == master:
        raise AgentError("An account cannot approve itself as its own agent.")
    if valid_until is not None and valid_until <= now_ms:
        raise AgentError(f"Agent valid_until {valid_until} is already past.")
    replaced = tuple(a for a in live if a.name == name or a.agent == agent)
    kept = [a for a in live if a not in replaced]
    if name and sum(1 for a in kept if a.name) >= MAX_NAMED_AGENTS:
        raise AgentError(
            f"Too many named agents: at most {MAX_NAMED_AGENTS}. "
            "Revoke one or approve under a name already used."
        )
    approval = AgentApproval(
        agent=agent, master=master, name=name, valid_until=valid_until, approved_ms=nonce
    )
    return ApprovalPlan(approval, stale + replaced)


def acting_master(approval: AgentApproval | None, agent: str, now_ms: int) -> str | None:
    """The master an agent acts for right now, or None."""
    if approval is None or approval.agent != agent.lower() or not approval.active(now_ms):
        return None
    return approval.master


def extra_agents_view(approvals: Sequence[AgentApproval], now_ms: int) -> list[dict[str, Any]]:
    """The ``extraAgents`` /info answer: the master's live agents."""
    return [
        {"name": a.name, "address": a.agent, "validUntil": a.valid_until}
        for a in sorted(approvals, key=lambda a: (a.name, a.agent))
        if a.active(now_ms)
    ]


# ---------------------------------------------------------------- Redis store

_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(AgentApproval)

# Take an agent's claim for a master (ARGV[1]) at time ARGV[2], storing approval ARGV[3],
# unless another master holds a live claim on it.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then
  local held = cjson.decode(current)
  local live = held.valid_until == cjson.null or tonumber(held.valid_until) > tonumber(ARGV[2])
  if held.master ~= ARGV[1] and live then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""
# Drop a claim only if it still holds exactly the approval being removed.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class AgentStore:
    """Approved agents in Redis: a hash per master, a claim per agent."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def master_key(self, master: str) -> str:
        return f"{{{self.namespace}agents:{master.lower()}}}"

    def claim_key(self, agent: str) -> str:
        return f"{{{self.namespace}agent:{agent.lower()}}}"

    async def approvals(self, master: str) -> list[AgentApproval]:
        """Everything in the master's hash, expired approvals included."""
        raw = cast(Mapping[bytes, bytes], await self.client.hgetall(self.master_key(master)))
        return [_DECODE.decode(v) for v in raw.values()]

    async def master_of(self, agent: str, now_ms: int) -> str | None:
        """The master this agent acts for now, or None if it is no live agent."""
        claim = cast(bytes | None, await self.client.get(self.claim_key(agent)))
        return await self.master_by_claim(agent, claim, now_ms)

    async def master_by_claim(self, agent: str, claim: bytes | None, now_ms: int) -> str | None:
        """``master_of`` with the agent's claim (``GET claim_key(agent)``) already read, so
        a caller can fetch it in a pipeline with its other reads."""
        if claim is None:
            return None
        approval = _DECODE.decode(claim)
        listed = cast(
            bytes | None, await self.client.hget(self.master_key(approval.master), approval.agent)
        )
        if listed != claim:
            return None
        return acting_master(approval, agent, now_ms)

    async def acting_for(self, signer: str, now_ms: int) -> str:
        """The account an L1 signature acts for: the master of an agent, else the signer."""
        return await self.master_of(signer, now_ms) or signer.lower()

    async def approve(
        self, master: str, agent: str, raw_name: str, nonce: int, now_ms: int
    ) -> ApprovalPlan:
        """Apply an approveAgent the master has signed, or raise ``AgentError``.

        A refused approval writes nothing.
        """
        master = normalize(master, "master")
        agent = normalize(agent, "agentAddress")
        key = self.master_key(master)
        claimed: bytes | None = None
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = cast(Mapping[bytes, bytes], await pipe.hgetall(key))
                    current = [_DECODE.decode(v) for v in raw.values()]
                    plan = plan_approval(current, master, agent, raw_name, nonce, now_ms)
                    if plan.add is not None:
                        encoded = _ENCODE.encode(plan.add)
                        if not await self._claim(
                            keys=[self.claim_key(agent)], args=[master, now_ms, encoded]
                        ):
                            raise AgentError(
                                f"Agent {agent} is already approved by another account."
                            )
                        claimed = encoded
                    pipe.multi()  # type: ignore[no-untyped-call]
                    removed = {a.agent for a in plan.remove} - {agent}  # agent: overwritten
                    if removed:
                        pipe.hdel(key, *sorted(removed))
                    if plan.add is not None:
                        pipe.hset(key, agent, _ENCODE.encode(plan.add))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
                except AgentError:
                    if claimed is not None:
                        await self._release(keys=[self.claim_key(agent)], args=[claimed])
                    raise
        for gone in plan.remove:
            if gone.agent != agent:  # a re-approved agent's claim now holds the new approval
                await self._release(keys=[self.claim_key(gone.agent)], args=[_ENCODE.encode(gone)])
        return plan
