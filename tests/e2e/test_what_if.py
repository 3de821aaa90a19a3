"""whatIf and venueState over HTTP against the venue's services: at the current marks the
what-if is the engine's own clearinghouseState, for both sides of a trade; bad input is
refused with 400 and the reason; the dashboard's files are served."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from sim.client import VenueClient, wallet
from tests.e2e.conftest import Venue

pytestmark = pytest.mark.kafka

LONG = wallet(0x3F11)
SHORT = wallet(0x3F12)


def post_info(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/info", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", ""


def same_numbers(what_if: dict[str, Any], engine: dict[str, Any]) -> None:
    cross = engine["crossMarginSummary"]
    assert what_if["crossAccountValue"] == cross["accountValue"]
    assert what_if["initialMargin"] == cross["totalMarginUsed"]
    assert what_if["maintenanceMargin"] == engine["crossMaintenanceMarginUsed"]
    assert what_if["withdrawable"] == engine["withdrawable"]
    assert what_if["accountValue"] == engine["marginSummary"]["accountValue"]
    assert what_if["marginUsed"] == engine["marginSummary"]["totalMarginUsed"]
    rows = [p["position"] for p in engine["assetPositions"]]
    assert [p["coin"] for p in what_if["positions"]] == [r["coin"] for r in rows]
    for mine, theirs in zip(what_if["positions"], rows, strict=True):
        for field, other in (
            ("szi", "szi"),
            ("entryPx", "entryPx"),
            ("positionValue", "positionValue"),
            ("unrealizedPnl", "unrealizedPnl"),
            ("liquidationPx", "liquidationPx"),
        ):
            assert mine[field] == theirs[other], (field, mine, theirs)


async def test_what_if_at_the_marks_is_the_engines_state_for_both_sides(venue: Venue) -> None:
    long, short = LONG.address.lower(), SHORT.address.lower()
    async with VenueClient(venue.url, venue.operator_url) as client:
        await client.deposit(long, "2000")
        await client.deposit(short, "3000")
        deadline = time.monotonic() + 120  # the oracle's first valid price, on a busy machine
        while (await client.info("venueState"))["markets"][0]["oracleStatus"] != "valid":
            assert time.monotonic() < deadline, "the oracle never published BTC"
            await asyncio.sleep(0.2)
        now = int(time.time() * 1000)
        ask = await client.limit_order(SHORT, 0, False, "100000", "0.25", now)
        assert "resting" in ask, ask
        fill = await client.limit_order(LONG, 0, True, "100000", "0.25", now, tif="Ioc")
        assert fill["filled"]["totalSz"] == "0.25", fill
        for user in (long, short):
            engine = await client.info("clearinghouseState", user=user)
            answer = await client.info("whatIf", user=user)
            same_numbers(answer, engine)
            assert answer["positions"][0]["liquidated"] is False
        # the long's liquidation: 2,000 - 11.25 fee + 0.25 (p - 100,000) = 1% of 0.25 p,
        # p = 23,011.25 / 0.2475 = 92,974.74..., where BTC at 92,000 is past it
        moved = await client.info("whatIf", user=long, prices={"BTC": "92000"})
        assert moved["positions"][0]["liquidationPx"] == "92974.74747475"
        assert (moved["crossAccountValue"], moved["maintenanceMargin"]) == ("-11.25", "230")
        assert moved["liquidated"] is True
        venue_state = await client.info("venueState")
        assert [m["coin"] for m in venue_state["markets"]] == ["BTC", "ETH", "SOL"]
        assert venue_state["markets"][0]["lastPx"] == "100000"
        assert venue_state["markets"][0]["openInterest"] == "0.25"
        assert {"insuranceFund", "backstopVault", "scenarios"} <= set(venue_state)

    assert post_info(venue.url, {"type": "whatIf", "user": "0x12"})[0] == 400
    status, body = post_info(venue.url, {"type": "whatIf", "user": long, "prices": {"BTC": "x"}})
    assert (status, body) == (400, {"status": "err", "response": "not a decimal number: 'x'"})
    status, body = post_info(venue.url, {"type": "whatIf", "user": long, "scenario": "moon"})
    assert (status, body["response"]) == (400, "unknown scenario 'moon'")

    status, kind, html = get(venue.url + "/dashboard")
    assert status == 200 and kind.startswith("text/html") and "Risk dashboard" in html
    status, kind, script = get(venue.url + "/dashboard/dashboard.js")
    assert status == 200 and kind.startswith("application/javascript") and "whatIf" in script
    assert get(venue.url + "/dashboard/secrets.txt")[0] == 404
    assert get(venue.url + "/dashboard/../app.py")[0] == 404
