"""The dashboard's venue-wide WebSocket feed of liquidation and ADL steps, against an
in-process gateway reading liquidation.audit from real Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

from libs.common import codec, topics
from libs.common.schemas import LiquidationStep
from libs.common.settings import Settings
from services.gateway.app import Gateway

pytestmark = pytest.mark.kafka

VICTIM = "0x" + "d4" * 20


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[TestClient]:
    gateway = Gateway(settings)
    await gateway.start()
    client = TestClient(TestServer(gateway.public_app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await gateway.stop()


async def test_liquidation_steps_are_pushed_live_and_replayed_to_new_subscribers(
    http: TestClient, settings: Settings
) -> None:
    sub = {"method": "subscribe", "subscription": {"type": "liquidations"}}
    async with http.ws_connect("/ws") as ws:
        await ws.send_json(sub)
        assert (await ws.receive_json(timeout=5))["channel"] == "subscriptionResponse"
        assert await ws.receive_json(timeout=5) == {
            "channel": "liquidations",
            "data": {"isSnapshot": True, "events": []},
        }
        step = LiquidationStep(
            ts=1_763_740_800_000,
            account=VICTIM,
            stage="backstop",
            detail="vault takes 10000 lots at 950000",
            market="BTC",
            case_id="c1",
            px=950_000,
            sz=10_000,
            equity=45_500_000,
            maintenance=95_000_000,
            counterparty="0x" + "00" * 19 + "b1",
            equity_after=45_500_000,
            step=3,
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.name(topics.LIQUIDATION_AUDIT),
                codec.encode(step),
                key=VICTIM.encode(),
            )
        finally:
            await producer.stop()
        live = await ws.receive_json(timeout=10)
    row = {
        "user": VICTIM,
        "time": 1_763_740_800_000,
        "caseId": "c1",
        "step": 3,
        "stage": "backstop",
        "coin": "BTC",
        "px": "95000",
        "sz": "0.1",
        "equityBefore": "45.5",
        "equityAfter": "45.5",
        "maintenance": "95",
        "shortfall": "0",
        "counterparty": "0x" + "00" * 19 + "b1",
        "detail": "vault takes 10000 lots at 950000",
    }
    assert live == {"channel": "liquidations", "data": {"isSnapshot": False, "events": [row]}}
    async with http.ws_connect("/ws") as late:
        await late.send_json(sub)
        assert (await late.receive_json(timeout=5))["channel"] == "subscriptionResponse"
        snapshot = await late.receive_json(timeout=5)
    assert snapshot == {"channel": "liquidations", "data": {"isSnapshot": True, "events": [row]}}
