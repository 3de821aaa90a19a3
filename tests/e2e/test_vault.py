"""An LP in the backstop vault through the real services, with the unmodified SDK:
``vault_usd_transfer`` deposits (risk debits the LP's partition and mints shares on the
vault's), ``userVaultEquities`` reads the stake back, a withdrawal inside the
four-day lock-up is refused with the vault partition's reason, and risk's gauges show
the shares and NAV per share."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from libs.common.state import BACKSTOP_VAULT_ACCOUNT
from sim.client import VenueClient
from tests.e2e.conftest import Venue

pytestmark = pytest.mark.kafka

LP = Account.from_key(bytes.fromhex("5c" * 32))
LOCKUP_MS = 4 * 86_400_000


async def test_an_lp_deposits_with_the_sdk_and_is_held_to_the_lock_up(venue: Venue) -> None:
    lp = LP.address.lower()
    async with VenueClient(venue.url, venue.operator_url) as ours:
        await ours.deposit(lp, "10000")

    def session() -> dict[str, Any]:
        ex = Exchange(LP, base_url=venue.url)
        info = Info(venue.url, skip_ws=True)
        out: dict[str, Any] = {"before": int(time.time() * 1000)}
        out["deposit"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, True, 2_500_000_000)
        out["after"] = int(time.time() * 1000)
        deadline = time.time() + 10
        while time.time() < deadline:  # the vault's partition commits its snapshot
            out["equities"] = info.user_vault_equities(lp)
            if out["equities"]:
                break
            time.sleep(0.1)
        out["details"] = info.post(
            "/info", {"type": "vaultDetails", "vaultAddress": BACKSTOP_VAULT_ACCOUNT, "user": lp}
        )
        out["withdraw"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, False, 1_000_000_000)
        out["too_much"] = ex.vault_usd_transfer(BACKSTOP_VAULT_ACCOUNT, True, 7_500_000_001)
        out["state"] = info.user_state(lp)
        return out

    got = await asyncio.to_thread(session)

    assert got["deposit"] == {"status": "ok", "response": {"type": "default"}}
    (stake,) = got["equities"]
    assert stake["vaultAddress"] == BACKSTOP_VAULT_ACCOUNT
    assert stake["equity"] == "2500"  # the first deposit: NAV 1
    locked_until = stake["lockedUntilTimestamp"]
    assert got["before"] + LOCKUP_MS <= locked_until <= got["after"] + LOCKUP_MS
    follower = got["details"]["followerState"]
    assert (follower["vaultEquity"], follower["pnl"], follower["lockupUntil"]) == (
        "2500",
        "0.0",
        locked_until,
    )
    assert got["details"]["totalShares"] == "2500000000"
    assert got["withdraw"] == {
        "status": "err",
        "response": f"Vault deposit is locked until {locked_until}.",
    }
    assert got["too_much"] == {"status": "err", "response": "Insufficient balance."}
    # nothing moved for the refused requests: $10,000 less the $2,500 in the vault
    assert got["state"]["withdrawable"] == "7500"
    gauges = venue.scrape("risk")
    assert gauges["exchange_backstop_vault_shares{}"] == 2_500_000_000
    assert gauges["exchange_backstop_vault_nav_per_share{}"] == 1.0
