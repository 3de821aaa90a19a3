"""WebSocket protocol details against an in-process gateway (real Kafka and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from libs.common.schemas import Trade
from libs.common.settings import Settings
from services.gateway import ws as ws_module
from services.gateway.app import Gateway

pytestmark = pytest.mark.kafka


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[tuple[TestClient, Gateway]]:
    gateway = Gateway(settings)
    await gateway.start()
    test_client = TestClient(TestServer(gateway.public_app()))
    await test_client.start_server()
    try:
        yield test_client, gateway
    finally:
        await test_client.close()
        await gateway.stop()


async def test_ping_subscriptions_and_post(client: tuple[TestClient, Gateway]) -> None:
    http, _ = client
    async with http.ws_connect("/ws") as ws:
        await ws.send_json({"method": "ping"})
        assert await ws.receive_json(timeout=5) == {"channel": "pong"}

        await ws.send_json(
            {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "DOGE"}}
        )
        refused = await ws.receive_json(timeout=5)
        assert refused == {
            "channel": "error",
            "data": "Invalid subscription: unknown market 'DOGE'",
        }

        sub = {"type": "l2Book", "coin": "BTC"}
        await ws.send_json({"method": "subscribe", "subscription": sub})
        ack = await ws.receive_json(timeout=5)
        assert ack == {
            "channel": "subscriptionResponse",
            "data": {"method": "subscribe", "subscription": sub},
        }
        snapshot = await ws.receive_json(timeout=5)
        assert snapshot["channel"] == "l2Book" and snapshot["data"]["levels"] == [[], []]

        await ws.send_json(
            {"method": "post", "id": 7, "request": {"type": "info", "payload": {"type": "meta"}}}
        )
        post = await ws.receive_json(timeout=5)
        assert post["channel"] == "post" and post["data"]["id"] == 7
        universe = post["data"]["response"]["payload"]["data"]["universe"]
        assert [m["name"] for m in universe] == ["BTC", "ETH", "SOL"]

        await ws.send_json(
            {"method": "post", "id": 8, "request": {"type": "action", "payload": {}}}
        )
        refused_action = await ws.receive_json(timeout=5)
        assert refused_action["data"]["response"]["type"] == "error"


async def test_an_idle_connection_is_closed(
    client: tuple[TestClient, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _ = client
    monkeypatch.setattr(ws_module, "IDLE_TIMEOUT_S", 0.5)
    async with http.ws_connect("/ws") as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_a_slow_client_is_dropped_and_others_keep_receiving(
    client: tuple[TestClient, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, gateway = client
    monkeypatch.setattr(ws_module, "QUEUE_LIMIT", 50)
    sub = {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}
    async with http.ws_connect("/ws") as slow, http.ws_connect("/ws") as fast:
        for ws in (slow, fast):
            await ws.send_json(sub)
            await ws.receive_json(timeout=5)  # ack
        await asyncio.sleep(0.1)
        hub = gateway.hub
        # Subscribers are kept in subscription order: the first is `slow`'s server side.
        slow_client = next(iter(hub.subs["trades:BTC"]))
        trade = Trade(
            ts=1,
            market="BTC",
            px=1_000_000,
            sz=100,
            taker_is_buy=True,
            buyer="0x" + "1" * 40,
            seller="0x" + "2" * 40,
            tid=1,
        )
        original_send = slow_client.ws.send_str

        async def never(_: str) -> None:
            await asyncio.sleep(3600)

        slow_client.ws.send_str = never  # type: ignore[method-assign]  # its writer stalls
        for _ in range(60):
            hub.on_event("market.events", trade)
            await asyncio.sleep(0)  # the healthy client's writer keeps up
        await asyncio.sleep(0.2)
        assert not slow_client.alive, "the slow client must be disconnected"
        assert all(slow_client not in clients for clients in hub.subs.values())
        received = 0
        while received < 60:
            msg = await fast.receive_json(timeout=5)
            assert msg["channel"] == "trades"
            received += 1
        slow_client.ws.send_str = original_send  # type: ignore[method-assign]
