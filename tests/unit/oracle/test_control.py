"""The operator endpoint: token, validation at the edge, and overrides that reach the
core in order (here a core in memory; tests/integration/test_oracle.py goes over Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from libs.common.schemas import OracleOverride
from services.oracle.aggregator import IndexUpdate, Override
from services.oracle.control import ControlApi
from services.oracle.holds import HoldStoreUnavailable
from tests.unit.oracle.reference import MARKETS, T0, aggregator, everyone, feed

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Core:
    def __init__(self) -> None:
        self.agg = aggregator()
        self.audit: list[OracleOverride] = []
        feed(self.agg, 0, everyone("100000"))

    async def apply(self, command: Override) -> tuple[OracleOverride, IndexUpdate]:
        audit, update = self.agg.override(command)
        self.audit.append(audit)
        return audit, update


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[Any, Any], Core]]:
    core = Core()
    control = ControlApi(MARKETS, TOKEN, core.apply, core.agg.last_update)
    client = TestClient(TestServer(control.app(), host="127.0.0.1"))
    await client.start_server()
    yield client, core
    await client.close()


async def post(client: TestClient[Any, Any], body: object, headers: Any = AUTH) -> Any:
    response = await client.post("/operator/override", json=body, headers=headers)
    return response.status, await response.json()


async def test_an_override_needs_the_operator_token(api: tuple[TestClient[Any, Any], Core]) -> None:
    client, core = api
    body = {"market": "BTC", "action": "freeze", "operator": "alice"}
    assert await post(client, body, {}) == (
        401,
        {"status": "err", "response": "operator token required"},
    )
    assert (await post(client, body, {"Authorization": "Bearer nope"}))[0] == 401
    assert core.audit == []


async def test_freeze_set_and_release_answer_with_the_index_they_caused(
    api: tuple[TestClient[Any, Any], Core],
) -> None:
    client, core = api
    status, body = await post(
        client, {"market": "BTC", "action": "freeze", "operator": "alice", "reason": "drill"}
    )
    assert status == 200
    assert body["response"] | {"ts": 0, "sources": []} == {
        "action": "freeze",
        "market": "BTC",
        "px": "100000",
        "status": "halted",
        "reason": "frozen at 100000 by alice: drill",
        "ts": 0,
        "sources": [],
    }
    status, body = await post(
        client, {"market": "BTC", "action": "set", "px": "99501", "operator": "bob"}
    )
    assert (status, body["response"]["px"], body["response"]["status"]) == (
        200,
        "99501",
        "halted",
    )
    status, body = await post(client, {"market": "BTC", "action": "release", "operator": "bob"})
    assert (status, body["response"]["status"], body["response"]["px"]) == (200, "valid", "100000")
    assert [(a.action, a.px, a.operator) for a in core.audit] == [
        ("freeze", 1_000_000, "alice"),
        ("set", 995_010, "bob"),
        ("release", 995_010, "bob"),
    ]


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        ({"market": "BTC", "action": "melt", "operator": "a"}, 400, "invalid request"),
        ({"market": "BTC", "action": "freeze"}, 400, "Field required at ('operator',)"),
        ({"market": "BTC", "action": "set", "operator": "a"}, 400, "set needs px"),
        ({"market": "BTC", "action": "freeze", "px": "1", "operator": "a"}, 400, "only for set"),
        ({"market": "BTC", "action": "set", "px": "100000.55", "operator": "a"}, 400, "decimals"),
        ({"market": "BTC", "action": "set", "px": "-1", "operator": "a"}, 400, "positive"),
        ({"market": "DOGE", "action": "freeze", "operator": "a"}, 400, "unknown market"),
        ({"market": "BTC", "action": "release", "operator": "a"}, 409, "not under an override"),
        ({"market": "BTC", "action": "freeze", "operator": "a", "x": 1}, 400, "Extra inputs"),
    ],
)
async def test_bad_overrides_get_a_clear_error_and_change_nothing(
    api: tuple[TestClient[Any, Any], Core], body: object, code: int, error: str
) -> None:
    client, core = api
    status, answer = await post(client, body)
    assert status == code and answer["status"] == "err" and error in answer["response"]
    assert core.audit == []
    assert core.agg.last_update("BTC").status == "valid"  # type: ignore[union-attr]


async def test_an_override_redis_cannot_keep_answers_503_with_the_reason() -> None:
    core = Core()

    async def unavailable(command: Override) -> tuple[OracleOverride, IndexUpdate]:
        raise HoldStoreUnavailable("hold store (Redis) unavailable: Connection refused")

    control = ControlApi(MARKETS, TOKEN, unavailable, core.agg.last_update)
    async with TestClient(TestServer(control.app(), host="127.0.0.1")) as client:
        body = {"market": "BTC", "action": "freeze", "operator": "a"}
        status, answer = await post(client, body)
    assert (status, answer["status"]) == (503, "err")
    assert answer["response"] == (
        "override not applied, try again: hold store (Redis) unavailable: Connection refused"
    )
    assert core.agg.last_update("BTC").status == "valid"  # type: ignore[union-attr]


async def test_status_shows_every_markets_last_index(
    api: tuple[TestClient[Any, Any], Core],
) -> None:
    client, _ = api
    response = await client.get("/oracle/status")
    body = await response.json()
    btc, eth, sol = body["response"]
    assert btc["px"] == "100000" and btc["status"] == "valid" and btc["ts"] == T0
    assert [(s["source"], s["weight"], s["px"]) for s in btc["sources"]] == [
        ("binance", 3, "100000"),
        ("okx", 2, "100000"),
        ("bybit", 2, "100000"),
        ("coinbase", 1, "100000"),
        ("kraken", 1, "100000"),
    ]
    assert eth == {"market": "ETH"} and sol == {"market": "SOL"}  # not in this core
