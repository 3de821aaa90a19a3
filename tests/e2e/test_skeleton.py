"""The walking skeleton: five services as processes, real Kafka and Redis, public API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.settings import Settings
from libs.localstack import free_ports
from sim.client import VenueClient
from tests.support.procs import ServiceProcess, wait_http

pytestmark = pytest.mark.kafka

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c3" * 20
SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway")


@pytest.fixture
def venue_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    (gateway_port,) = free_ports(1)
    procs = [
        ServiceProcess(
            name,
            settings,
            tmp_path / "logs",
            gateway_port=gateway_port,
            oracle_volatility_bps=0,
            oracle_interval_ms=200,
        ).start()
        for name in SERVICES
    ]
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/health")
        yield f"http://127.0.0.1:{gateway_port}"
        for p in procs:
            assert p.alive(), f"{p.name} died:\n{p.tail()}"
    finally:
        codes = {p.name: p.stop() for p in procs}
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


def position(state: dict, coin: str) -> dict | None:
    for entry in state["assetPositions"]:
        if entry["position"]["coin"] == coin:
            return entry["position"]
    return None


async def test_two_crossing_orders_become_positions(venue_url: str) -> None:
    async with VenueClient(venue_url) as venue:
        assert (await venue.deposit(ALICE, "10000"))["response"]["collateral"] == "10000"
        assert (await venue.deposit(BOB, "10000"))["response"]["collateral"] == "10000"
        assert (await venue.deposit(CAROL, "10"))["response"]["collateral"] == "10"

        resting = await venue.limit_order(ALICE, 0, True, "100000", "0.1")
        assert set(resting) == {"resting"} and resting["resting"]["oid"] > 0
        filled = await venue.limit_order(BOB, 0, False, "99000", "0.1", tif="Ioc")
        assert filled["filled"]["totalSz"] == "0.1"
        assert filled["filled"]["avgPx"] == "100000"  # the maker's price, not the taker's limit

        alice = await venue.info("clearinghouseState", user=ALICE)
        bob = await venue.info("clearinghouseState", user=BOB)
        assert position(alice, "BTC")["szi"] == "0.1"
        assert position(alice, "BTC")["entryPx"] == "100000"
        assert position(bob, "BTC")["szi"] == "-0.1"
        # notional 10000 USDC: maker fee 0.015% = 1.5, taker fee 0.045% = 4.5, mark = 100000
        assert alice["marginSummary"]["accountValue"] == "9998.5"
        assert bob["marginSummary"]["accountValue"] == "9995.5"
        assert alice["marginSummary"]["totalMarginUsed"] == "500"  # 10000 / 20x

        # Carol's 10 USDC cannot carry 1 BTC; nothing about her account changes.
        rejected = await venue.limit_order(CAROL, 0, True, "100000", "1")
        assert rejected == {"error": "Insufficient margin to place order. asset=0"}
        carol = await venue.info("clearinghouseState", user=CAROL)
        assert carol["assetPositions"] == [] and carol["withdrawable"] == "10"

        # A price off the tick is refused at the edge.
        off_tick = await venue.limit_order(ALICE, 0, True, "100000.55", "0.1")
        assert "error" in off_tick and "decimals" in off_tick["error"]
