"""The walking skeleton: five services as processes, real Kafka and Redis, public API."""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.common import topics
from libs.common.settings import Settings
from sim.client import VenueClient, wallet
from tests.e2e.conftest import Venue

pytestmark = pytest.mark.kafka

ALICE_KEY, BOB_KEY, CAROL_KEY = wallet(0xA11CE), wallet(0xB0B), wallet(0xCA201)
ALICE, BOB, CAROL = (k.address.lower() for k in (ALICE_KEY, BOB_KEY, CAROL_KEY))


def position(state: dict, coin: str) -> dict | None:
    for entry in state["assetPositions"]:
        if entry["position"]["coin"] == coin:
            return entry["position"]
    return None


async def holding(client: VenueClient, user: str, coin: str, within_s: float = 20.0) -> dict:
    """The user's clearinghouseState once it shows a position in ``coin`` (bounded wait)."""
    deadline = time.monotonic() + within_s
    while True:
        state = await client.info("clearinghouseState", user=user)
        if position(state, coin) is not None or time.monotonic() > deadline:
            return state  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)


async def test_two_crossing_orders_become_positions(venue: Venue, settings: Settings) -> None:
    async with VenueClient(venue.url, venue.operator_url) as client:
        assert (await client.deposit(ALICE, "10000"))["response"]["collateral"] == "10000"
        assert (await client.deposit(BOB, "10000"))["response"]["collateral"] == "10000"
        assert (await client.deposit(CAROL, "10"))["response"]["collateral"] == "10"

        now = int(time.time() * 1000)
        resting = await client.limit_order(ALICE_KEY, 0, True, "100000", "0.1", now)
        assert set(resting) == {"resting"} and resting["resting"]["oid"] > 0
        filled = await client.limit_order(BOB_KEY, 0, False, "99000", "0.1", now, tif="Ioc")
        assert filled["filled"]["totalSz"] == "0.1"
        assert filled["filled"]["avgPx"] == "100000"  # the maker's price, not the taker's limit

        # the taker's answer waits for the taker's own state; the maker's fill is applied
        # on its own risk partition, a moment later on a loaded machine
        alice = await holding(client, ALICE, "BTC")
        bob = await client.info("clearinghouseState", user=BOB)
        assert position(alice, "BTC")["szi"] == "0.1"
        assert position(alice, "BTC")["entryPx"] == "100000"
        assert position(bob, "BTC")["szi"] == "-0.1"
        # notional 10000 USDC: maker fee 0.015% = 1.5, taker fee 0.045% = 4.5, mark = 100000
        assert alice["marginSummary"]["accountValue"] == "9998.5"
        assert bob["marginSummary"]["accountValue"] == "9995.5"
        assert alice["marginSummary"]["totalMarginUsed"] == "500"  # 10000 / 20x

        # Carol's 10 USDC cannot carry 1 BTC; nothing about her account changes.
        rejected = await client.limit_order(CAROL_KEY, 0, True, "100000", "1", now)
        assert rejected == {"error": "Insufficient margin to place order. asset=0"}
        carol = await client.info("clearinghouseState", user=CAROL)
        assert carol["assetPositions"] == [] and carol["withdrawable"] == "10"

        # A price off the tick is refused at the edge.
        off_tick = await client.limit_order(ALICE_KEY, 0, True, "100000.55", "0.1", now)
        assert "error" in off_tick and "decimals" in off_tick["error"]

        # Risk applied 3 deposits, 4 orders (one refused), 2 fill legs and 2 order
        # results live, and owns all 4 partitions; the matcher saw the 3 orders it was sent.
        risk = venue.scrape("risk")
        applied = risk["exchange_messages_in_total{service=risk,topic=risk.in}"]
        assert applied >= 3 + 3 + 2 + 2  # plus the marks the matcher broadcasts
        assert risk["exchange_partitions_owned{service=risk}"] == 4
        assert risk["exchange_batch_seconds_count{service=risk}"] > 0
        # every live batch's transaction timed; the input position rides in it as a
        # checkpoint record, so no consumer-group offset phase
        committed = risk["exchange_transaction_phase_seconds_count{phase=commit,service=risk}"]
        assert 0 < committed <= risk["exchange_batch_seconds_count{service=risk}"]
        assert "exchange_transaction_phase_seconds_count{phase=offsets,service=risk}" not in risk
        assert risk.get("exchange_transaction_aborts_total{service=risk}", 0) == 0
        assert risk.get("exchange_replayed_messages_total{service=risk,topic=risk.in}", 0) == 0
        matcher = venue.scrape("matcher")
        risk_in = settings.topics.name(topics.RISK_IN)
        routed = matcher[f"exchange_messages_out_total{{service=matcher,topic={risk_in}}}"]
        assert routed >= 2 + 2  # two fill legs and two results, plus marks
