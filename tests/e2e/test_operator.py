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


async def test_a_market_changed_at_run_time_holds_for_every_service_and_is_audited(
    venue: Venue, settings: Settings
) -> None:
    configure = f"{venue.operator_url}/operator/markets/configure"
    async with aiohttp.ClientSession() as http, VenueClient(venue.url, venue.operator_url) as c:
        await c.deposit(TRADER.address, "10000")
        now = int(time.time() * 1000)
        assert "resting" in await c.limit_order(TRADER, 0, True, "90000", "0.0002", now)  # $18

        async with http.post(configure, json={"coin": "BTC", "changes": {}}) as r:
            assert r.status == 401
        async with http.post(
            configure, json={"coin": "BTC", "changes": {"sz_decimals": 3}}, headers=TOKEN
        ) as r:
            assert r.status == 400
            assert (await r.json())["response"].startswith("sz_decimals cannot change")
        async with http.post(
            configure,
            json={"coin": "BTC", "changes": {"min_order_usd": "50"}, "reason": "drill"},
            headers=TOKEN,
        ) as r:
            assert r.status == 200, await r.text()
            body = (await r.json())["response"]
        assert body["market"]["min_order_usd"] == 50_000_000
        assert body["overrides"] == {"min_order_usd": 50_000_000}

        # the matcher refuses what the old minimum allowed; the resting order stays
        small = await c.limit_order(TRADER, 0, True, "90000", "0.0002", now + 1)
        assert small == {"error": "Order must have minimum value of $50."}
        assert "resting" in await c.limit_order(TRADER, 0, True, "90000", "0.0006", now + 2)
        orders = await c.info("openOrders", user=TRADER.address)
        assert sorted(o["sz"] for o in orders) == ["0.0002", "0.0006"]

        # a leverage cap reaches risk (which refuses 20x) and the public meta
        sol_tiers = [
            {"lower_bound_usd": "0", "max_leverage": 10},
            {"lower_bound_usd": "2000000", "max_leverage": 5},
        ]
        async with http.post(
            configure,
            json={"coin": "SOL", "changes": {"max_leverage": 10, "margin_tiers": sol_tiers}},
            headers=TOKEN,
        ) as r:
            assert r.status == 200, await r.text()
        meta = await c.info("meta")
        assert [(m["name"], m["maxLeverage"]) for m in meta["universe"]] == [
            ("BTC", 50),
            ("ETH", 50),
            ("SOL", 10),
        ]
        lev = {"type": "updateLeverage", "asset": 2, "isCross": True, "leverage": 20}
        refused = await c.action(TRADER, lev, now + 3)
        assert refused == {
            "status": "err",
            "response": "Invalid leverage value: 20x (at most 10x at this size).",
        }
        async with http.get(f"{venue.operator_url}/operator/markets", headers=TOKEN) as r:
            listed = {m["name"]: m for m in (await r.json())["response"]["markets"]}
        assert (listed["SOL"]["max_leverage"], listed["BTC"]["min_order_usd"]) == (10, 50_000_000)

    audit = await read_topic(settings, topics.OPERATOR_AUDIT, expect=6, quiet_s=0.5)
    trail = [(a.value.action, a.value.ok) for a in audit]
    assert trail == [
        ("deposit", True),
        ("configure", False),
        ("configure", False),
        ("configure", True),
        ("configure", True),
        ("markets", True),
    ]
    assert '"reason":"drill"' in audit[3].value.detail
