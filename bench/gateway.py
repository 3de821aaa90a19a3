"""Signed orders per second through the gateway, and the cost of verifying a signature.

    python -m bench.gateway [--quick] [--orders N] [--clients C]

Starts a private Kafka and Redis and the gateway, risk and matcher as processes; funds
accounts through the operator API; then C concurrent HTTP clients post signed GTC
orders (passive, so every one rests) and wait for each answer: admission (IP weight,
signature recovery, agent lookup, nonce, address budget), the hop through risk and the
matcher, and the answer back from account.events. Separately it times signature
recovery alone. Last line: ``gateway_orders_per_sec=<answered orders/s>``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
import uvloop

from bench.venue import bench_venue
from libs.common.signing import recover_l1_signer
from sim.client import signed_body, wallet


def order(asset: int, px: str) -> dict[str, Any]:
    size = "0.001" if asset == 0 else "0.01"  # over the $10 minimum in BTC and ETH
    return {
        "type": "order",
        "orders": [
            {
                "a": asset,
                "b": True,
                "p": px,
                "s": size,
                "r": False,
                "t": {"limit": {"tif": "Gtc"}},
            }
        ],
        "grouping": "na",
    }


def signature_cost(count: int) -> float:
    """Microseconds to recover the signer of one order (coincurve backend)."""
    key = wallet(0x5161)
    now = int(time.time() * 1000)
    bodies = [signed_body(key, order(0, str(90000 + i % 1000)), now + i) for i in range(count)]
    started = time.perf_counter()
    for body in bodies:
        recover_l1_signer(body["action"], body["nonce"], None, None, body["signature"], source="b")
    return (time.perf_counter() - started) / count * 1e6


async def drive(url: str, bodies: list[dict[str, Any]], clients: int) -> tuple[float, list[float]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures: list[Any] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            async with session.post(url + "/exchange", json=body) as resp:
                answer = await resp.json()
            latencies.append(time.perf_counter() - t0)
            response = answer.get("response")
            status = response["data"]["statuses"][0] if isinstance(response, dict) else answer
            if "resting" not in status:
                failures.append((body["action"]["orders"][0], answer))

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} orders were not accepted, e.g. {failures[0]}")
    return len(bodies) / elapsed, latencies


async def run(args: argparse.Namespace) -> float:
    count = args.orders or (2_000 if args.quick else 20_000)
    keys = [wallet(0xB000 + i) for i in range(args.clients)]
    async with bench_venue("gateway", keys, "1000000", ip_weight_per_minute=10_000_000) as venue:
        url = venue.url
        now = int(time.time() * 1000)
        bodies = [
            signed_body(
                keys[i % len(keys)],
                order(i % 2, str(90000 + i % 500) if i % 2 == 0 else str(3000 + i % 400)),
                now + i,
            )
            for i in range(count)
        ]
        warm, rest = bodies[: len(keys)], bodies[len(keys) :]
        await drive(url, warm, args.clients)
        rate, latencies = await drive(url, rest, args.clients)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        print(
            f"{len(rest):,} signed orders, {args.clients} concurrent clients: {rate:,.0f} orders/s,"
            f" answer latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under 30 s")
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    cost = signature_cost(500 if args.quick else 5_000)
    print(f"signature recovery: {cost:.0f} us per order (one core)")
    rate = uvloop.run(run(args))
    print(f"gateway_orders_per_sec={rate:.0f}")


if __name__ == "__main__":
    main()
