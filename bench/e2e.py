"""The whole pipeline against the raw bus: signed orders in, acknowledgements out.

    python -m bench.e2e [--quick] [--rates 1000,5000] [--seconds S] [--batch B]
                        [--clients C] [--saturation-orders N]

Starts a private Kafka and Redis and the gateway, risk and matcher as processes, funds
accounts through the operator API, then:

- **Offered rate.** An open-loop generator posts signed orders at a fixed rate for S
  seconds: request i is due at ``start + i * B / rate`` and is sent then whether or not
  earlier ones were answered, so a slow system builds a queue and the latency shows it.
  Latency is measured from the moment a request was due (not when it was sent) to its
  answer: order-to-acknowledgement, queueing included. B orders go in one ``order``
  action (B=1: one order per request).
- **Saturation.** C closed-loop clients post as fast as they are answered, once with one
  order per request and once with batches of ``--saturation-batch`` orders per request;
  orders/s counts orders, not requests.
- **Raw bus.** In the same run, aiokafka produces then consumes (read_committed, one
  hop) as many records as the saturation run sent, of the size of the PlaceOrder the
  gateway produces; the better of two runs is kept (which can only lower the ratio).

Every order is a passive GTC bid that rests; one that does not is counted as a failure.
Last line: ``e2e_vs_bus_ratio=<best saturated orders/s / raw bus msgs/s>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from eth_account.signers.local import LocalAccount

from bench.bus import consume_all, produce_all
from libs.common import codec
from libs.common.admin import ensure_topics
from libs.common.schemas import PlaceOrder
from libs.common.settings import Settings
from libs.localstack import LocalStack, free_ports
from libs.localstack.procs import ServiceProcess, wait_http
from sim.client import VenueClient, signed_body, wallet

ACCOUNTS = 256


def order_wire(i: int) -> dict[str, Any]:
    """A passive GTC bid over the $10 minimum, alternating BTC and ETH."""
    asset = i % 2
    px = str(90000 + i % 500) if asset == 0 else str(3000 + i % 400)
    return {
        "a": asset,
        "b": True,
        "p": px,
        "s": "0.001" if asset == 0 else "0.01",
        "r": False,
        "t": {"limit": {"tif": "Gtc"}},
    }


class Signer:
    """Signs order actions with a rotating set of funded keys, nonces rising per key."""

    def __init__(self, keys: list[LocalAccount]) -> None:
        self.keys = keys
        self.next = 0
        self.nonce = int(time.time() * 1000)
        self.orders = 0

    def body(self, batch: int) -> dict[str, Any]:
        key = self.keys[self.next % len(self.keys)]
        self.next += 1
        self.nonce += 1
        orders = [order_wire(self.orders + j) for j in range(batch)]
        self.orders += batch
        return signed_body(key, {"type": "order", "orders": orders, "grouping": "na"}, self.nonce)

    def bodies(self, count: int, batch: int) -> list[dict[str, Any]]:
        return [self.body(batch) for _ in range(count)]


@dataclass
class Outcome:
    orders: int
    seconds: float
    latencies: list[float]  # seconds, one per order
    failures: int

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.rate:,.0f} orders/s answered, latency p50 {self.pct(0.5):.1f} ms, "
            f"p99 {self.pct(0.99):.1f} ms, p99.9 {self.pct(0.999):.1f} ms"
            + (f", {self.failures} not resting" if self.failures else "")
        )


def resting(answer: Any) -> int:
    """How many of the answer's statuses say the order rests."""
    response = answer.get("response") if isinstance(answer, dict) else None
    if not isinstance(response, dict):
        return 0
    return sum(1 for s in response["data"]["statuses"] if "resting" in s)


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body) as resp:
        return await resp.json()


async def offered(url: str, bodies: list[dict[str, Any]], rate: float, batch: int) -> Outcome:
    """Open loop: each request leaves when it is due, answered or not."""
    latencies: list[float] = []
    failures = 0
    interval = batch / rate

    async def one(session: aiohttp.ClientSession, body: dict[str, Any], due: float) -> None:
        nonlocal failures
        answer = await post(session, url, body)
        took = time.perf_counter() - due
        latencies.extend([took] * batch)
        failures += batch - resting(answer)

    connector = aiohttp.TCPConnector(limit=512)  # more would overflow the listen backlog
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, body, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return Outcome(len(bodies) * batch, elapsed, latencies, failures)


async def saturated(url: str, bodies: list[dict[str, Any]], clients: int, batch: int) -> Outcome:
    """Closed loop: each client posts its next request when the last one is answered."""
    pending = list(reversed(bodies))
    latencies: list[float] = []
    failures = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while pending:
            body = pending.pop()
            t0 = time.perf_counter()
            answer = await post(session, url, body)
            latencies.extend([time.perf_counter() - t0] * batch)
            failures += batch - resting(answer)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return Outcome(len(bodies) * batch, elapsed, latencies, failures)


def bus_payload(count: int) -> list[tuple[bytes, bytes, int]]:
    """Records shaped like the gateway's: a PlaceOrder keyed by a 42-character account."""
    out = []
    for i in range(count):
        account = f"0x{0xB000 + i % ACCOUNTS:040x}"
        message = PlaceOrder(
            ts=1_700_000_000_000 + i,
            account=account,
            market="BTC" if i % 2 == 0 else "ETH",
            is_buy=True,
            px=90_000_000_000 + i % 500,
            sz=1000,
            req_id=uuid.UUID(int=i).hex,
        )
        out.append((account.encode(), codec.encode(message), i % 4))
    return out


async def raw_bus(settings: Settings, count: int) -> float:
    payload = bus_payload(count)
    size = sum(len(v) for _, v, _ in payload) // count
    rates = []
    for attempt in range(2):
        again = settings.model_copy(update={"namespace": f"{settings.namespace}raw{attempt}."})
        await ensure_topics(again)
        topic = again.topics.name("market.events")
        started = time.perf_counter()
        await produce_all(settings.kafka_bootstrap, topic, payload)
        await consume_all(settings.kafka_bootstrap, topic, count)
        rates.append(count / (time.perf_counter() - started))
    print(
        f"raw bus, {count:,} records of {size} bytes, produce then consume (one hop): "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + f" msgs/s; best {max(rates):,.0f}"
    )
    return max(rates)


async def run(args: argparse.Namespace) -> float:
    rates = [float(r) for r in args.rates.split(",")] if args.rates else []
    if not rates:
        rates = [1000.0, 5000.0] if args.quick else [1000.0, 5000.0, 10000.0, 20000.0]
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    sat_orders = args.saturation_orders or (6_000 if args.quick else 40_000)
    stack = LocalStack.private(Path(tempfile.mkdtemp(prefix="bench-e2e-")))
    stack.start()
    procs: list[ServiceProcess] = []
    try:
        gateway_port, operator_port = free_ports(2)
        settings = Settings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.redis_url,
            namespace=f"benche{uuid.uuid4().hex[:8]}.",
            gateway_port=gateway_port,
            operator_port=operator_port,
            oracle_volatility_bps=0,
            ip_weight_per_minute=1_000_000_000,  # one benchmark host sends everything
        )
        await ensure_topics(settings)
        logs = Path(tempfile.mkdtemp(prefix="bench-e2e-logs-"))
        procs = [ServiceProcess(n, settings, logs).start() for n in ("risk", "matcher", "gateway")]
        url = f"http://127.0.0.1:{gateway_port}"
        wait_http(url + "/health")
        keys = [wallet(0xB000 + i) for i in range(ACCOUNTS)]
        async with VenueClient(url, f"http://127.0.0.1:{operator_port}") as venue:
            await asyncio.gather(*(venue.deposit(k.address, "10000000") for k in keys))
        signer = Signer(keys)
        exchange = url + "/exchange"
        print(f"gateway, risk and matcher as processes; {ACCOUNTS} funded accounts")
        await saturated(exchange, signer.bodies(2 * args.clients, 1), args.clients, 1)  # warm

        for rate in rates:
            requests = max(1, int(rate * seconds / args.batch))
            bodies = signer.bodies(requests, args.batch)
            outcome = await offered(exchange, bodies, rate, args.batch)
            print(
                f"offered {rate:,.0f} orders/s for {seconds:.0f} s "
                f"({args.batch} order(s) per request, open loop): {outcome.line()}"
            )

        best = 0.0
        for batch in (1, args.saturation_batch):
            bodies = signer.bodies(max(1, sat_orders // batch), batch)
            outcome = await saturated(exchange, bodies, args.clients, batch)
            best = max(best, outcome.rate)
            print(
                f"saturation, {args.clients} clients, {batch} order(s) per request, "
                f"{outcome.orders:,} orders: {outcome.line()}"
            )

        bus = await raw_bus(settings, sat_orders)
        print(f"pipeline at saturation (best of the two) {best:,.0f} orders/s")
        return best / bus
    finally:
        for proc in procs:
            proc.stop()
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--rates", default="", help="offered orders/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=0.0, help="per offered rate")
    parser.add_argument("--batch", type=int, default=1, help="orders per request, offered")
    parser.add_argument("--clients", type=int, default=64, help="saturation clients")
    parser.add_argument("--saturation-batch", type=int, default=40)
    parser.add_argument("--saturation-orders", type=int, default=0)
    ratio = uvloop.run(run(parser.parse_args()))
    print(f"e2e_vs_bus_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
