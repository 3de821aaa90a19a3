"""A liquidation's whole history by account: the steps a real waterfall wrote to
liquidation.audit, projected by the gateway's history consumer into Redis, answered by
``/info {"type": "liquidationHistory"}`` (our extension)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.schemas import LiquidationStep
from libs.common.settings import Settings
from services.gateway.app import Gateway
from services.gateway.history import run_projector
from tests.support.bus import produce
from tests.unit.cores import of_type
from tests.unit.liquidator.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FUND,
    VAULT,
    deposit,
    exchange,
    mark,
    place,
)

pytestmark = pytest.mark.kafka


def waterfall_steps() -> list[LiquidationStep]:
    """Alice long 2 BTC from 100,000 with $11,910; the fund holds $50; at 94,000 she is
    $90 under water: the fund pays $50 and ADL the other $40 at 94,020."""
    bus = exchange()
    for who, amount in (
        (ALICE, "12000"),
        (BOB, "20000"),
        (DAVE, "5000"),
        (CAROL, "100000"),
        (FUND, "50"),
        (VAULT, "100000"),
    ):
        deposit(bus, who, amount)
    place(bus, BOB, "sell", "100000", "1.2")
    place(bus, DAVE, "sell", "100000", "0.8")
    place(bus, ALICE, "buy", "100000", "2", tif="Ioc")
    mark(bus, "94000", 1_000)
    return of_type(bus.log, LiquidationStep)


async def post_info(http: TestClient, body: dict[str, object]) -> object:
    response = await http.post("/info", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_every_step_of_a_liquidation_is_answered_by_account(settings: Settings) -> None:
    await ensure_topics(settings)
    steps = waterfall_steps()
    # delivered twice (at-least-once): the history holds each step once
    items = [(s.account, s) for s in steps]
    await produce(settings, topics.LIQUIDATION_AUDIT, items + items)
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(gateway.history, stop))
    http = TestClient(TestServer(gateway.public_app()))
    await http.start_server()
    try:
        request = {"type": "liquidationHistory", "user": ALICE}
        deadline = time.monotonic() + 60
        got: object = []
        while time.monotonic() < deadline:
            got = await post_info(http, request)
            if isinstance(got, list) and len(got) >= 8:
                break
            await asyncio.sleep(0.2)
        assert isinstance(got, list)
        assert [(r["stage"], r["step"]) for r in got] == [
            ("triggered", 1),
            ("cancel", 2),
            ("insurance", 3),
            ("insurance", 4),
            ("adl", 5),
            ("adl", 6),
            ("adl", 8),
            ("closed", 10),
        ]
        assert {r["caseId"] for r in got} == {steps[0].case_id}
        answer = got[3]
        assert (answer["equityBefore"], answer["equityAfter"], answer["counterparty"]) == (
            "-90",
            "-40",
            FUND,
        )
        assert answer["detail"] == "fund paid 50000000 of 90000000, 40000000 left; fund balance 0"
        dave_close = got[5]
        assert (dave_close["coin"], dave_close["px"], dave_close["sz"]) == ("BTC", "94020", "0.8")
        assert dave_close["counterparty"] == DAVE
        assert (got[-1]["equityBefore"], got[-1]["equityAfter"]) == ("0", "0")
        # the counterparty's side: Bob's history holds the close he gave up
        bob = await post_info(http, {"type": "liquidationHistory", "user": BOB})
        assert [(r["stage"], r["sz"], r["px"]) for r in bob] == [("adl", "1.2", "94020")]
        # a time window, and a clear error for a bad user
        assert await post_info(http, {**request, "startTime": 1_001}) == []
        bad = await http.post("/info", json={"type": "liquidationHistory", "user": "alice"})
        assert bad.status == 400
    finally:
        stop.set()
        await projector
        await http.close()
        await gateway.stop()
