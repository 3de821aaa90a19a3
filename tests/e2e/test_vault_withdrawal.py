"""A whole LP cycle through the real services with a one-second lock-up: the SDK
deposits, is refused inside the lock-up, withdraws after it, and the money is back in
the LP's account (the vault's partition burns the shares and pays the LP's partition in
one transaction)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from libs.common.admin import ensure_topics
from libs.common.settings import Settings
from libs.common.state import BACKSTOP_VAULT_ACCOUNT
from libs.localstack import LocalStack
from sim.client import VenueClient
from tests.conftest import make_settings
from tests.e2e.conftest import Venue

pytestmark = pytest.mark.kafka

LP = Account.from_key(bytes.fromhex("5d" * 32))


@pytest.fixture
async def settings(stack: LocalStack) -> Settings:
    """The session's settings with a one-second lock-up on vault deposits."""
    s = make_settings(stack, risk_vault_lockup_ms=1_000)
    await ensure_topics(s)
    return s


async def test_an_lp_withdraws_at_nav_once_the_lock_up_is_over(venue: Venue) -> None:
    lp = LP.address.lower()
    async with VenueClient(venue.url, venue.operator_url) as ours:
        await ours.deposit(lp, "10000")

    def session() -> dict[str, Any]:
        ex = Exchange(LP, base_url=venue.url)
        info = Info(venue.url, skip_ws=True)
        out: dict[str, Any] = {}
        out["deposit"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, True, 3_000_000_000)
        out["early"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, False, 1_000_000_000)
        time.sleep(1.2)
        out["withdraw"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, False, 1_000_000_000)
        deadline = time.time() + 10
        while time.time() < deadline:  # the payout lands on the LP's partition
            out["state"] = info.user_state(lp)
            out["equities"] = info.user_vault_equities(lp)
            if out["state"]["withdrawable"] == "8000" and out["equities"][0]["equity"] == "2000":
                break
            time.sleep(0.1)
        return out

    got = await asyncio.to_thread(session)

    assert got["deposit"] == {"status": "ok", "response": {"type": "default"}}
    assert got["early"]["status"] == "err"
    assert got["early"]["response"].startswith("Vault deposit is locked until ")
    assert got["withdraw"] == {"status": "ok", "response": {"type": "default"}}
    # $10,000 - $3,000 in + $1,000 out; $2,000 left in the vault at NAV 1
    assert got["state"]["withdrawable"] == "8000"
    assert [e["equity"] for e in got["equities"]] == ["2000"]
    assert venue.scrape("risk")["exchange_backstop_vault_shares{}"] == 2_000_000_000
