"""A short demo through the public API: two traders deposit, cross, and read back.

Run by ``make demo`` once the local stack is up; prints each step and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from sim.client import VenueClient, wallet

ALICE = wallet(0xA11CE)
BOB = wallet(0xB0B)


def show(title: str, payload: Any) -> None:
    print(f"\n== {title}\n{json.dumps(payload, indent=2)}")


def now() -> int:
    return int(time.time() * 1000)


async def run(base_url: str, operator_url: str) -> int:
    async with VenueClient(base_url, operator_url) as venue:
        meta = await venue.info("meta")
        btc = next(i for i, m in enumerate(meta["universe"]) if m["name"] == "BTC")
        show("deposit 10000 USDC for Alice", await venue.deposit(ALICE.address, "10000"))
        show("deposit 10000 USDC for Bob", await venue.deposit(BOB.address, "10000"))
        resting = await venue.limit_order(ALICE, btc, True, "100000", "0.01", now())
        show("Alice bids 0.01 BTC at 100000 (GTC, signed)", resting)
        filled = await venue.limit_order(BOB, btc, False, "100000", "0.01", now(), tif="Ioc")
        show("Bob sells 0.01 BTC at 100000 (IOC, signed)", filled)
        alice = await venue.info("clearinghouseState", user=ALICE.address)
        bob = await venue.info("clearinghouseState", user=BOB.address)
        show("Alice's clearinghouseState", alice)
        show("Bob's clearinghouseState", bob)
    ok = "resting" in resting and "filled" in filled
    print("\n== summary")
    print(
        f"Alice: position {_szi(alice)} BTC, account value {alice['marginSummary']['accountValue']}"
    )
    print(f"Bob:   position {_szi(bob)} BTC, account value {bob['marginSummary']['accountValue']}")
    print("demo " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def _szi(state: dict[str, Any]) -> str:
    positions = state.get("assetPositions", [])
    return positions[0]["position"]["szi"] if positions else "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:18080")
    parser.add_argument("--operator-url", default="http://127.0.0.1:18081")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url, args.operator_url)))


if __name__ == "__main__":
    main()
