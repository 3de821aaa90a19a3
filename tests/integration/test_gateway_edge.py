"""Bad input at the gateway: every answer is a clear error, nothing changes, no 5xx.

The gateway runs in-process against the session's Kafka and Redis; the state machines
are not running, so any request that wrongly got through would time out instead of
answering with the expected refusal.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from libs.common.settings import Settings
from libs.common.state import ACCOUNT_PREFIX, AccountState
from services.gateway.app import Gateway
from services.gateway.exchange import TIMEOUT
from sim.client import signed_body, wallet

pytestmark = pytest.mark.kafka

TRADER = wallet(0x7AADE2)
STRANGER = wallet(0x57A9)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def order(px: str = "100000", sz: str = "0.01", asset: int = 0) -> dict[str, Any]:
    return {
        "type": "order",
        "orders": [
            {"a": asset, "b": True, "p": px, "s": sz, "r": False, "t": {"limit": {"tif": "Gtc"}}}
        ],
        "grouping": "na",
    }


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[tuple[TestClient, Gateway]]:
    quick = settings.model_copy(update={"gateway_reply_timeout_ms": 500})
    gw = Gateway(quick)
    await gw.start()
    # The trader has an account (risk would have written it after a deposit).
    key = gw.hot.risk_key(TRADER.address.lower())
    import msgspec

    account = AccountState(address=TRADER.address.lower(), collateral=1_000_000_000)
    await gw.redis.hset(key, ACCOUNT_PREFIX + account.address, msgspec.msgpack.encode(account))
    client = TestClient(TestServer(gw.public_app()))
    await client.start_server()
    try:
        yield client, gw
    finally:
        await client.close()
        await gw.stop()


def now() -> int:
    return int(time.time() * 1000)


async def post(client: TestClient, path: str, body: Any, raw: bool = False) -> tuple[int, Any]:
    data = body if raw else json.dumps(body)
    resp = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


async def test_malformed_bodies_get_clear_errors(gateway: tuple[TestClient, Gateway]) -> None:
    client, _ = gateway
    assert await post(client, "/exchange", "{not json", raw=True) == (
        400,
        {"status": "err", "response": "request body must be JSON"},
    )
    status, body = await post(client, "/exchange", {"action": {"type": "order"}})
    assert status == 200 and body["status"] == "err" and "Invalid request" in body["response"]
    status, body = await post(client, "/info", {"type": "clearinghouseState", "user": "alice"})
    assert status == 400 and "address" in body["response"]
    status, body = await post(client, "/info", {"type": "noSuchThing"})
    assert status == 400 and "unsupported info type" in body["response"]
    status, body = await post(client, "/info", [1, 2, 3])
    assert status == 400


async def test_a_tampered_action_is_never_accepted(gateway: tuple[TestClient, Gateway]) -> None:
    client, _ = gateway
    body = signed_body(TRADER, order(px="100000"), now())
    body["action"]["orders"][0]["p"] = "1"  # after signing: recovers to a stranger
    status, answer = await post(client, "/exchange", body)
    assert status == 200 and answer["status"] == "err"
    assert answer["response"].startswith("User or API Wallet 0x")
    assert TRADER.address.lower() not in answer["response"]


async def test_a_malleated_signature_is_refused(gateway: tuple[TestClient, Gateway]) -> None:
    client, _ = gateway
    body = signed_body(TRADER, order(), now())
    sig = body["signature"]
    sig["s"] = f"0x{SECP256K1_N - int(sig['s'], 16):064x}"
    sig["v"] = 55 - sig["v"]  # 27 <-> 28
    status, answer = await post(client, "/exchange", body)
    assert status == 200 and answer["status"] == "err"


async def test_replayed_and_stale_nonces_are_refused(gateway: tuple[TestClient, Gateway]) -> None:
    client, _gw = gateway
    body = signed_body(TRADER, order(sz="0.00001"), now())
    first = await post(client, "/exchange", copy.deepcopy(body))
    assert first[0] == 200  # admitted (the order itself times out: no risk service runs)
    _, answer = await post(client, "/exchange", body)
    assert answer == {
        "status": "err",
        "response": f"Invalid nonce: duplicate nonce {body['nonce']}",
    }
    stale = signed_body(TRADER, order(), now() - 3 * 24 * 3600 * 1000)
    _, answer = await post(client, "/exchange", stale)
    assert answer["status"] == "err" and answer["response"].startswith(
        "Invalid nonce: nonce too low"
    )
    future = signed_body(TRADER, order(), now() + 2 * 24 * 3600 * 1000)
    _status, answer = await post(client, "/exchange", future)
    assert answer["status"] == "err" and answer["response"].startswith(
        "Invalid nonce: nonce too high"
    )


async def test_bad_orders_are_refused_per_order(gateway: tuple[TestClient, Gateway]) -> None:
    client, _ = gateway
    oversized = order()
    oversized["orders"] = oversized["orders"] * 1001
    _, answer = await post(client, "/exchange", signed_body(TRADER, oversized, now()))
    assert answer["status"] == "err" and "Invalid request" in answer["response"]
    _status, answer = await post(client, "/exchange", signed_body(TRADER, order(asset=99), now()))
    assert "unknown asset 99" in answer["response"]["data"]["statuses"][0]["error"]
    huge = order(px="9" * 35)
    _, answer = await post(client, "/exchange", signed_body(TRADER, huge, now()))
    statuses = answer["response"]["data"]["statuses"]
    assert "out of range" in statuses[0]["error"]
    negative = order(sz="-1")
    _status, answer = await post(client, "/exchange", signed_body(TRADER, negative, now()))
    assert "size must be positive" in answer["response"]["data"]["statuses"][0]["error"]


async def test_an_unknown_signer_is_refused(gateway: tuple[TestClient, Gateway]) -> None:
    client, _ = gateway
    _status, answer = await post(client, "/exchange", signed_body(STRANGER, order(), now()))
    assert answer == {
        "status": "err",
        "response": f"User or API Wallet {STRANGER.address.lower()} does not exist.",
    }


async def test_an_agent_acts_for_its_master_and_a_stale_agent_for_nobody(
    gateway: tuple[TestClient, Gateway],
) -> None:
    """The signer's agent claim and account are read together; the answer is as before."""
    client, gw = gateway
    master = TRADER.address.lower()
    agent = STRANGER.address.lower()
    t = now()
    await gw.agents.approve(master, agent, "bot", t, t)
    before = (await gw.address_limits.user_rate_limit(master))["nRequestsUsed"]
    _status, answer = await post(client, "/exchange", signed_body(STRANGER, order(), t + 1))
    # Admitted for the master (no state machine runs, so the outcome times out) and
    # counted against the master's budget, not the agent's.
    assert answer["response"]["data"]["statuses"] == [{"error": TIMEOUT}]
    assert (await gw.address_limits.user_rate_limit(master))["nRequestsUsed"] == before + 1
    assert (await gw.address_limits.user_rate_limit(agent))["nRequestsUsed"] == 0
    # The master no longer lists the agent (its claim is left behind): the agent acts
    # for itself, and has no account.
    await gw.redis.hdel(gw.agents.master_key(master), agent)
    _status, answer = await post(client, "/exchange", signed_body(STRANGER, order(), t + 2))
    assert answer == {"status": "err", "response": f"User or API Wallet {agent} does not exist."}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ACTION_TYPES = st.sampled_from(
    [
        "order",
        "cancel",
        "cancelByCloid",
        "modify",
        "batchModify",
        "updateLeverage",
        "updateIsolatedMargin",
        "scheduleCancel",
        "approveAgent",
        "usdSend",
        "withdraw3",
        "x",
    ]
)


@given(
    action_type=ACTION_TYPES,
    fields=st.dictionaries(st.text(max_size=10), JSON, max_size=5),
    nonce=st.integers(-5, 2**64) | st.text(max_size=5),
    signature=JSON,
)
@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
async def test_fuzzed_exchange_requests_never_break_the_gateway(
    gateway: tuple[TestClient, Gateway],
    action_type: str,
    fields: dict[str, Any],
    nonce: Any,
    signature: Any,
) -> None:
    client, _ = gateway
    body = {"action": {"type": action_type, **fields}, "nonce": nonce, "signature": signature}
    status, answer = await post(client, "/exchange", body)
    assert status in (200, 400, 429), (status, answer)
    assert answer["status"] == "err", answer


@given(
    body=st.dictionaries(st.sampled_from(["type", "user", "coin", "oid", "startTime"]), JSON) | JSON
)
@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
async def test_fuzzed_info_requests_never_break_the_gateway(
    gateway: tuple[TestClient, Gateway], body: Any
) -> None:
    client, _ = gateway
    status, _ = await post(client, "/info", body)
    assert status in (200, 400, 429)
