"""Agent wallets: one unnamed and one per name, expiry, revocation, and who acts for whom."""

from __future__ import annotations

import pytest

from services.gateway.agents import (
    MAX_NAMED_AGENTS,
    ZERO_ADDRESS,
    AgentApproval,
    AgentError,
    acting_master,
    extra_agents_view,
    parse_agent_name,
    plan_approval,
)

NOW = 1_700_000_000_000
MASTER = "0x" + "aa" * 20
A1 = "0x" + "01" * 20
A2 = "0x" + "02" * 20
A3 = "0x" + "03" * 20


def approve(
    current: list[AgentApproval], agent: str, name: str = "", now: int = NOW
) -> list[AgentApproval]:
    plan = plan_approval(current, MASTER, agent, name, now, now)
    kept = [a for a in current if a not in plan.remove]
    return kept + ([plan.add] if plan.add else [])


def test_an_approval_makes_the_agent_act_for_its_master() -> None:
    (approval,) = approve([], "0x" + "Bc" * 20)  # checksummed input is stored lowercase
    assert approval == AgentApproval(agent="0x" + "bc" * 20, master=MASTER, approved_ms=NOW)
    assert acting_master(approval, "0x" + "BC" * 20, NOW) == MASTER
    assert acting_master(approval, A2, NOW) is None


def test_a_new_unnamed_agent_replaces_the_old_unnamed_one() -> None:
    agents = approve(approve([], A1), A2)
    assert [a.agent for a in agents] == [A2]


def test_a_named_agent_replaces_only_the_agent_of_that_name() -> None:
    agents = approve(approve(approve([], A1), A2, "bot"), A3, "bot")
    assert sorted((a.name, a.agent) for a in agents) == [("", A1), ("bot", A3)]


def test_reapproving_an_agent_under_a_new_name_moves_it() -> None:
    agents = approve(approve([], A1, "old"), A1, "new")
    assert [(a.name, a.agent) for a in agents] == [("new", A1)]


def test_the_zero_address_revokes_the_agent_of_that_name() -> None:
    agents = approve(approve([], A1), A2, "bot")
    assert [a.agent for a in approve(agents, ZERO_ADDRESS, "bot")] == [A1]
    assert [a.agent for a in approve(agents, ZERO_ADDRESS)] == [A2]
    assert approve([], ZERO_ADDRESS, "nobody") == []


def test_valid_until_in_the_name_sets_an_expiry() -> None:
    assert parse_agent_name("bot valid_until 1700000060000") == ("bot", 1_700_000_060_000)
    assert parse_agent_name("plain") == ("plain", None)
    (approval,) = approve([], A1, f"bot valid_until {NOW + 60_000}")
    assert approval.name == "bot" and approval.valid_until == NOW + 60_000
    assert acting_master(approval, A1, NOW + 59_999) == MASTER
    assert acting_master(approval, A1, NOW + 60_000) is None


def test_expired_agents_are_pruned_and_do_not_count() -> None:
    agents = approve([], A1, f"old valid_until {NOW + 10}")
    plan = plan_approval(agents, MASTER, A2, "x", NOW + 10, NOW + 10)
    assert [a.agent for a in plan.remove] == [A1]
    assert extra_agents_view(agents, NOW + 10) == []


@pytest.mark.parametrize(
    ("agent", "name", "match"),
    [
        (MASTER, "", "cannot approve itself"),
        ("0x1234", "", "agentAddress must be"),
        (A1, f"late valid_until {NOW}", "already past"),
        (A1, "x" * 51, "at most 50"),
    ],
)
def test_refused_approvals(agent: str, name: str, match: str) -> None:
    with pytest.raises(AgentError, match=match):
        plan_approval([], MASTER, agent, name, NOW, NOW)


def test_at_most_three_named_agents_but_a_used_name_can_be_reused() -> None:
    agents: list[AgentApproval] = []
    for i in range(MAX_NAMED_AGENTS):
        agents = approve(agents, "0x" + f"{i + 1:02x}" * 20, f"bot{i}")
    agents = approve(agents, "0x" + "09" * 20)  # the unnamed one does not count
    with pytest.raises(AgentError, match="at most 3"):
        approve(agents, "0x" + "0a" * 20, "bot9")
    agents = approve(agents, "0x" + "0a" * 20, "bot0")
    assert len(agents) == 4


def test_extra_agents_lists_live_agents_in_the_venues_shape() -> None:
    agents = approve(approve([], A1), A2, f"bot valid_until {NOW + 5}")
    assert extra_agents_view(agents, NOW) == [
        {"name": "", "address": A1, "validUntil": None},
        {"name": "bot", "address": A2, "validUntil": NOW + 5},
    ]
