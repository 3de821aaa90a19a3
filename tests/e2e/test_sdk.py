"""The official Hyperliquid Python SDK, unmodified, pointed at our gateway.

It signs as testnet (source "b") because its base URL is not the mainnet URL, exactly
as a desk's bot would when pointed at this venue. Values are checked against what the
engine did.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from sim.client import VenueClient, wallet
from tests.e2e.conftest import Venue

pytestmark = pytest.mark.kafka

BOT = Account.from_key(bytes.fromhex("7b" * 32))
MAKER = wallet(0x3A4E)


def statuses(reply: dict[str, Any]) -> list[Any]:
    assert reply["status"] == "ok", reply
    return list(reply["response"]["data"]["statuses"])


async def test_the_official_sdk_trades_and_reads_unchanged(venue: Venue) -> None:
    bot = BOT.address.lower()
    async with VenueClient(venue.url, venue.operator_url) as ours:
        await ours.deposit(bot, "50000")
        await ours.deposit(MAKER.address, "50000")
        now = int(time.time() * 1000)
        ask = await ours.limit_order(MAKER, 0, False, "100100", "0.05", now)
        assert "resting" in ask, ask

    def session() -> dict[str, Any]:
        ex = Exchange(BOT, base_url=venue.url)
        info = Info(venue.url, skip_ws=True)
        out: dict[str, Any] = {"meta": info.meta(), "mids": info.all_mids()}
        out["gtc"] = statuses(ex.order("BTC", True, 0.01, 99000.0, {"limit": {"tif": "Gtc"}}))
        cloid = Cloid.from_str("0x" + "11" * 16)
        out["gtc_cloid"] = statuses(
            ex.order("BTC", True, 0.02, 98000.0, {"limit": {"tif": "Gtc"}}, cloid=cloid)
        )
        out["alo_cross"] = statuses(
            ex.order("BTC", True, 0.01, 100100.0, {"limit": {"tif": "Alo"}})
        )
        out["ioc"] = statuses(ex.order("BTC", True, 0.03, 100100.0, {"limit": {"tif": "Ioc"}}))
        out["open_before"] = info.open_orders(bot)
        oid = out["gtc"][0]["resting"]["oid"]
        out["modify"] = ex.modify_order(oid, "BTC", True, 0.015, 97000.0, {"limit": {"tif": "Gtc"}})
        out["open_modified"] = info.open_orders(bot)
        out["cancel"] = statuses(ex.cancel("BTC", oid))
        out["cancel_cloid"] = statuses(ex.cancel_by_cloid("BTC", cloid))
        out["cancel_again"] = statuses(ex.cancel("BTC", oid))
        out["open_after"] = info.open_orders(bot)
        out["leverage"] = ex.update_leverage(5, "BTC", is_cross=True)
        out["state"] = info.user_state(bot)
        out["book"] = info.l2_snapshot("BTC")
        deadline = time.time() + 10
        while time.time() < deadline:  # fills arrive through the history projector
            out["fills"] = info.user_fills(bot)
            if out["fills"]:
                break
            time.sleep(0.2)
        return out

    got = await asyncio.to_thread(session)

    assert [m["name"] for m in got["meta"]["universe"]] == ["BTC", "ETH", "SOL"]
    assert got["gtc"][0]["resting"]["oid"] > 0
    assert got["gtc_cloid"][0]["resting"]["cloid"] == "0x" + "11" * 16
    assert got["alo_cross"] == [
        {"error": "Post only order would have immediately matched, bbo was 100100. asset=0"}
    ]
    assert got["ioc"][0]["filled"] == {
        "totalSz": "0.03",
        "avgPx": "100100",
        "oid": got["ioc"][0]["filled"]["oid"],
    }
    assert {o["limitPx"] for o in got["open_before"]} == {"99000", "98000"}
    # The SDK's modify_order sends batchModify, answered with the order's new status.
    assert statuses(got["modify"]) == [{"resting": {"oid": got["gtc"][0]["resting"]["oid"]}}]
    modified = [o for o in got["open_modified"] if o["oid"] == got["gtc"][0]["resting"]["oid"]]
    assert modified and modified[0]["limitPx"] == "97000" and modified[0]["sz"] == "0.015"
    assert got["cancel"] == ["success"] and got["cancel_cloid"] == ["success"]
    assert got["cancel_again"] == [
        {"error": "Order was never placed, already canceled, or filled."}
    ]
    assert got["open_after"] == []
    assert got["leverage"] == {"status": "ok", "response": {"type": "default"}}
    position = got["state"]["assetPositions"][0]["position"]
    assert position["coin"] == "BTC" and position["szi"] == "0.03"
    assert position["entryPx"] == "100100"
    assert position["leverage"] == {"type": "cross", "value": 5}
    asks = got["book"]["levels"][1]
    assert asks[0] == {"px": "100100", "sz": "0.02", "n": 1}  # 0.05 ask less 0.03 taken
    fill = got["fills"][0]
    assert (fill["coin"], fill["side"], fill["px"], fill["sz"]) == ("BTC", "B", "100100", "0.03")
    assert fill["dir"] == "Open Long" and fill["crossed"] is True
    assert fill["fee"] == "1.35135"  # 3003 USDC at the 0.045% taker rate


async def test_the_sdk_websocket_receives_book_trades_and_own_orders(venue: Venue) -> None:
    bot = BOT.address.lower()
    async with VenueClient(venue.url, venue.operator_url) as ours:
        await ours.deposit(bot, "50000")
        await ours.deposit(MAKER.address, "50000")

    received: dict[str, list[Any]] = {"l2Book": [], "trades": [], "orderUpdates": [], "user": []}

    def record(message: dict[str, Any]) -> None:
        received[message["channel"]].append(message["data"])

    def session() -> None:
        info = Info(venue.url, skip_ws=False)
        try:
            info.subscribe({"type": "l2Book", "coin": "BTC"}, record)
            info.subscribe({"type": "trades", "coin": "BTC"}, record)
            info.subscribe({"type": "orderUpdates", "user": bot}, record)
            info.subscribe({"type": "userEvents", "user": bot}, record)
            time.sleep(1.0)
            ex = Exchange(BOT, base_url=venue.url)
            statuses(ex.order("BTC", False, 0.02, 101000.0, {"limit": {"tif": "Gtc"}}))
            deadline = time.time() + 10
            while time.time() < deadline and not all(received.values()):
                time.sleep(0.1)
        finally:
            info.disconnect_websocket()

    async with VenueClient(venue.url, venue.operator_url) as ours:
        task = asyncio.create_task(asyncio.to_thread(session))
        await asyncio.sleep(2.5)
        taken = await ours.limit_order(
            MAKER, 0, True, "101000", "0.02", int(time.time() * 1000), tif="Ioc"
        )
        assert "filled" in taken, taken
        await task

    books = [b for b in received["l2Book"] if b["levels"][1]]
    assert books and books[0]["levels"][1][0] == {"px": "101000", "sz": "0.02", "n": 1}
    assert received["trades"][0][0]["px"] == "101000"
    assert received["trades"][0][0]["users"] == [MAKER.address.lower(), bot]
    statuses_seen = [u["status"] for batch in received["orderUpdates"] for u in batch]
    assert statuses_seen[:2] == ["open", "filled"]
    fills = [f for e in received["user"] for f in e.get("fills", [])]
    assert fills[0]["side"] == "A" and fills[0]["sz"] == "0.02" and fills[0]["crossed"] is False
