"""A short demo through the public API: two traders deposit, cross, and read back.

Run by ``make demo`` once the local stack is up; prints each step and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from sim.client import VenueClient

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20


def show(title: str, payload: Any) -> None:
    print(f"\n== {title}\n{json.dumps(payload, indent=2)}")


async def run(base_url: str) -> int:
    async with VenueClient(base_url) as venue:
        meta = await venue.info("meta")
        btc = next(i for i, m in enumerate(meta["universe"]) if m["name"] == "BTC")
        show("deposit 10000 USDC for Alice", await venue.deposit(ALICE, "10000"))
        show("deposit 10000 USDC for Bob", await venue.deposit(BOB, "10000"))
        resting = await venue.limit_order(ALICE, btc, True, "100000", "0.01")
        show("Alice bids 0.01 BTC at 100000 (GTC)", resting)
        filled = await venue.limit_order(BOB, btc, False, "100000", "0.01", tif="Ioc")
        show("Bob sells 0.01 BTC at 100000 (IOC)", filled)
        alice = await venue.info("clearinghouseState", user=ALICE)
        bob = await venue.info("clearinghouseState", user=BOB)
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
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url)))


if __name__ == "__main__":
    main()
