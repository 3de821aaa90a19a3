"""Portfolio margin through the bus: a hedged pair traded through the matcher, the switch
to portfolio margin over risk.in, and the gateway's ``portfolioMargin`` answer from what
risk wrote to Redis, which is what a fresh replay of the log computes."""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from libs.common import topics
from libs.common.portfolio import portfolio_margin_document
from libs.common.runtime import SnapshotStore
from libs.common.schemas import ActionResult, Deposit, IndexTick, PlaceOrder, SetMarginMode
from libs.common.settings import Settings
from libs.common.state import (
    ACCOUNT_PREFIX,
    MARK_PREFIX,
    AccountState,
    MarkState,
    PositionState,
)
from services.gateway.app import Gateway
from services.gateway.hot import HotState
from sim.client import signed_body, wallet
from tests.integration.test_risk import answered, services
from tests.support.bus import produce, read_topic, wait_for
from tests.support.workload import reference_run

pytestmark = pytest.mark.kafka

ALICE = "0x" + "a7" * 20
BOB = "0x" + "b8" * 20
T0 = 1_700_000_000_000


async def test_a_hedged_pair_switches_to_portfolio_margin_and_the_gateway_shows_why(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    markets = settings.markets
    btc, eth = markets.by_name("BTC"), markets.by_name("ETH")
    async with services(settings):
        await produce(
            settings,
            topics.RISK_IN,
            [
                (ALICE, Deposit(ts=T0, account=ALICE, usd=2_000_000_000)),
                (BOB, Deposit(ts=T0, account=BOB, usd=10_000_000_000)),
            ],
        )
        await produce(
            settings,
            topics.MATCHER_IN,
            [
                ("BTC", IndexTick(ts=T0 + 1, market="BTC", px=btc.price_units("100000"))),
                ("ETH", IndexTick(ts=T0 + 1, market="ETH", px=eth.price_units("4000"))),
            ],
        )
        # Bob rests each side, Alice takes it: long 0.1 BTC, short 2.5 ETH ($10,000 each)
        steps = [
            (BOB, "BTC", False, "100000", "0.1", "Gtc", "pm-b1"),
            (ALICE, "BTC", True, "100000", "0.1", "Ioc", "pm-a1"),
            (BOB, "ETH", True, "4000", "2.5", "Gtc", "pm-b2"),
            (ALICE, "ETH", False, "4000", "2.5", "Ioc", "pm-a2"),
        ]
        for who, market, is_buy, price, size, tif, req_id in steps:
            spec = markets.by_name(market)
            order = PlaceOrder(
                ts=T0 + 2,
                account=who,
                market=market,
                is_buy=is_buy,
                px=spec.price_units(price),
                sz=spec.size_units(size),
                tif=tif,  # type: ignore[arg-type]
                req_id=req_id,
            )
            await produce(settings, topics.RISK_IN, [(who, order)])
            assert await wait_for(lambda req_id=req_id: answered(settings, req_id))
        switch = SetMarginMode(ts=T0 + 3, account=ALICE, mode="portfolio", req_id="pm-mode")
        await produce(settings, topics.RISK_IN, [(ALICE, switch)])
        assert await wait_for(lambda: answered(settings, "pm-mode"))
        events = await read_topic(settings, topics.ACCOUNT_EVENTS, quiet_s=0.5)
        inputs = await read_topic(settings, topics.RISK_IN, decode=False, quiet_s=1.0)
        ref = reference_run(settings, inputs)
        store = SnapshotStore(redis_client, settings.namespace, "risk")

        async def caught_up() -> bool:
            for p, end in ref.offsets.items():
                if await store.stored_offset(p) < end:
                    return False
            return True

        assert await wait_for(caught_up)

    (result,) = [
        e.value for e in events if isinstance(e.value, ActionResult) and e.value.req_id == "pm-mode"
    ]
    assert (result.action, result.error) == ("setMarginMode", None)
    for p, state in ref.state.items():
        offset, stored = await store.load(p)
        assert (offset, stored) == (ref.offsets[p], state)
    account, marks = await HotState(redis_client, settings).account(ALICE)
    assert account is not None and account.margin_mode == "portfolio"
    assert marks == {"BTC": btc.price_units("100000"), "ETH": eth.price_units("4000")}
    doc = portfolio_margin_document(account, marks, markets, 0)
    # the worked pair at 1/100: stress $650.5 + provision $29; cross at 20x $1,000;
    # equity $2,000 less two $4.5 taker fees
    assert {k: doc[k] for k in ("accountValue", "initialMargin", "bindingScenario")} == {
        "accountValue": "1991",
        "initialMargin": "679.5",
        "bindingScenario": "stress",
    }
    assert (doc["maintenanceMargin"], doc["crossInitialMargin"]) == ("407.7", "1000")


TRADER = wallet(0x9A1F)


async def test_the_gateway_answers_portfolio_margin_and_refuses_an_unknown_mode(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"gateway_reply_timeout_ms": 500})
    gw = Gateway(quick)
    await gw.start()
    user = TRADER.address.lower()
    btc, eth = settings.markets.by_name("BTC"), settings.markets.by_name("ETH")
    account = AccountState(
        address=user,
        collateral=75_000_000_000,
        margin_mode="portfolio",
        positions={
            "BTC": PositionState(market="BTC", szi=btc.size_units("10"), entry_ntl=10**12),
            "ETH": PositionState(market="ETH", szi=-eth.size_units("250"), entry_ntl=10**12),
        },
    )
    key = gw.hot.risk_key(user)
    entries = {ACCOUNT_PREFIX + user: msgspec.msgpack.encode(account)}
    for spec, price in ((btc, "100000"), (eth, "4000")):
        ticks = spec.price_units(price)
        state = MarkState(market=spec.name, mark_px=ticks, index_px=ticks, ts=T0)
        entries[MARK_PREFIX + spec.name] = msgspec.msgpack.encode(state)
    await gw.redis.hset(key, mapping=entries)  # type: ignore[arg-type]
    client = TestClient(TestServer(gw.public_app()))
    await client.start_server()
    try:
        resp = await client.post("/info", json={"type": "portfolioMargin", "user": user})
        doc = await resp.json()
        assert resp.status == 200
        assert {k: doc[k] for k in ("marginMode", "initialMargin", "bindingScenario")} == {
            "marginMode": "portfolio",
            "initialMargin": "67950",
            "bindingScenario": "stress",
        }
        assert (doc["maintenanceMargin"], doc["crossInitialMargin"]) == ("40770", "100000")
        body = signed_body(TRADER, {"type": "setMarginMode", "mode": "isolated"}, T0)
        resp = await client.post("/exchange", json=body)
        answer = await resp.json()
        assert answer["status"] == "err" and "Invalid request" in answer["response"]
        assert "cross" in answer["response"] and "portfolio" in answer["response"]
    finally:
        await client.close()
        await gw.stop()


async def test_btc_deposited_through_the_operator_api_counts_at_the_oracle_less_haircut(
    settings: Settings,
) -> None:
    user = "0x" + "c9" * 20
    btc = settings.markets.by_name("BTC")
    gw = Gateway(settings)
    await gw.start()
    operator = TestClient(TestServer(gw.operator.app()))
    public = TestClient(TestServer(gw.public_app()))
    await operator.start_server()
    await public.start_server()
    auth = {"Authorization": f"Bearer {settings.operator_token}"}
    try:
        async with services(settings):
            await produce(
                settings,
                topics.MATCHER_IN,
                [("BTC", IndexTick(ts=T0, market="BTC", px=btc.price_units("100000")))],
            )
            body = {"user": user, "asset": "BTC", "amount": "0.5"}
            resp = await operator.post("/operator/deposit", json=body, headers=auth)
            assert (resp.status, await resp.json()) == (
                200,
                {
                    "status": "ok",
                    "response": {
                        "type": "deposit",
                        "collateral": "0",
                        "asset": "BTC",
                        "balance": "0.5",
                    },
                },
            )
            sol = {"user": user, "asset": "SOL", "amount": "1"}
            resp = await operator.post("/operator/deposit", json=sol, headers=auth)
            assert resp.status == 400
            assert (await resp.json())["response"] == "'SOL' is not accepted as collateral."
            both = {"user": user, "usd": "10", "asset": "BTC", "amount": "1"}
            resp = await operator.post("/operator/deposit", json=both, headers=auth)
            assert resp.status == 400
            assert "give either usd, or asset with amount" in (await resp.json())["response"]

            async def valued() -> bool:
                resp = await public.post("/info", json={"type": "portfolioMargin", "user": user})
                doc = await resp.json()
                return bool(doc["collateralAssets"]) and doc["accountValue"] != "0.0"

            assert await wait_for(valued)
            resp = await public.post("/info", json={"type": "portfolioMargin", "user": user})
            doc = await resp.json()
        # 0.5 BTC at 100,000 less 5%
        assert doc["accountValue"] == "47500"
        assert doc["collateralAssets"] == [
            {"asset": "BTC", "balance": "0.5", "value": "47500", "oracleValid": True}
        ]
    finally:
        await operator.close()
        await public.close()
        await gw.stop()
