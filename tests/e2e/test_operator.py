"""The operator API: token auth, the kill switch, and an audit event for every call."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from libs.common import topics
from libs.common.settings import Settings
from sim.client import VenueClient, wallet
from tests.e2e.conftest import Venue
from tests.support.bus import read_topic

pytestmark = pytest.mark.kafka

TRADER = wallet(0x0BE7)
TOKEN = {"Authorization": "Bearer local-operator-token"}


async def test_halt_refuses_orders_until_resume_and_every_call_is_audited(
    venue: Venue, settings: Settings
) -> None:
    async with aiohttp.ClientSession() as http, VenueClient(venue.url, venue.operator_url) as c:
        async with http.post(f"{venue.operator_url}/operator/halt", json={"coin": "ETH"}) as r:
            assert r.status == 401  # no token: refused, and audited as refused
        await c.deposit(TRADER.address, "10000")
        async with http.post(
            f"{venue.operator_url}/operator/halt",
            json={"coin": "ETH", "reason": "drill"},
            headers=TOKEN,
        ) as r:
            assert r.status == 200
        await asyncio.sleep(0.5)  # the halt travels through matcher.in
        now = int(time.time() * 1000)
        halted = await c.limit_order(TRADER, 1, True, "3500", "0.01", now)
        assert halted == {"error": "Trading is halted for this market. asset=1"}
        btc = await c.limit_order(TRADER, 0, True, "99000", "0.001", now)
        assert "resting" in btc, "other markets keep trading"
        async with http.post(
            f"{venue.operator_url}/operator/resume", json={"coin": "ETH"}, headers=TOKEN
        ) as r:
            assert r.status == 200
        await asyncio.sleep(0.5)
        resumed = await c.limit_order(TRADER, 1, True, "3500", "0.01", now + 1)
        assert "resting" in resumed, resumed

        async with http.get(f"{venue.operator_url}/operator/funds", headers=TOKEN) as r:
            funds = (await r.json())["response"]
        assert set(funds) == {"insuranceFund", "backstopVault"}
        assert funds["insuranceFund"]["marginSummary"]["accountValue"] == "0.0"
        assert funds["backstopVault"]["assetPositions"] == []

    audit = await read_topic(settings, topics.OPERATOR_AUDIT, expect=5, quiet_s=0.5)
    trail = [(a.value.action, a.value.ok) for a in audit]
    assert trail == [
        ("halt", False),
        ("deposit", True),
        ("halt", True),
        ("resume", True),
        ("funds", True),
    ]
    assert '"reason":"drill"' in audit[2].value.detail
