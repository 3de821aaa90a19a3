"""The whole pipeline against the raw bus: signed orders in, acknowledgements out.

    python -m bench.e2e [--quick] [--rates 1000,5000] [--seconds S] [--batch B]
                        [--clients C] [--saturation-orders N] [--hops N] [--gateways G]

Starts a private Kafka and Redis and the gateway (G processes sharing its port), risk
and matcher as processes, funds accounts through the operator API, then:

- **Hops.** N orders one at a time, each record of each order timed as it is produced
  and as it is committed on the bus (``bench.hops``): the median time of each hop.

- **Offered rate.** An open-loop generator posts signed orders at a fixed rate for S
  seconds: request i is due at ``start + i * B / rate`` and is sent then whether or not
  earlier ones were answered, so a slow system builds a queue and the latency shows it.
  Latency is measured from the moment a request was due (not when it was sent) to its
  answer: order-to-acknowledgement, queueing included. B orders go in one ``order``
  action (B=1: one order per request). Requests share 256 keep-alive connections; what
  is still unanswered 10 s after the last request was due is reported as unanswered
  (and its latency as above 10 s).
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
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import uvloop
from eth_account.signers.local import LocalAccount

from bench.bus import consume_all, produce_all
from bench.hops import hops
from bench.venue import bench_venue
from libs.common import codec
from libs.common.admin import ensure_topics
from libs.common.schemas import PlaceOrder
from libs.common.settings import Settings
from sim.client import signed_body, wallet

ACCOUNTS = 256
# Connections the open-loop generator keeps; a request due while all are busy waits.
OPEN_LOOP_CONNECTIONS = 256
# How long the open-loop generator waits for answers after its last request was due.
DRAIN_S = 10.0


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

    def bodies(self, port: int, count: int, batch: int) -> list[bytes]:
        return [request(port, self.body(batch)) for _ in range(count)]


@dataclass
class Outcome:
    orders: int
    seconds: float
    latencies: list[float]  # seconds, one per order (inf: never answered)
    failures: int
    unanswered: int = 0

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        def ms(q: float) -> str:
            value = self.pct(q)
            return f"{value:.1f} ms" if value < math.inf else f"> {DRAIN_S:.0f} s"

        return (
            f"{self.rate:,.0f} orders/s answered, latency p50 {ms(0.5)}, "
            f"p99 {ms(0.99)}, p99.9 {ms(0.999)}"
            + (f", {self.failures} not resting" if self.failures else "")
            + (f", {self.unanswered} unanswered" if self.unanswered else "")
        )


def request(port: int, body: dict[str, Any]) -> bytes:
    """The whole HTTP/1.1 request, encoded before the clock starts."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /exchange HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class Connection:
    """One keep-alive HTTP/1.1 connection that posts pre-encoded requests.

    A general client (aiohttp's) spends more CPU per request than the gateway does, on
    the same two cores; this one only writes bytes and reads a Content-Length body.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, raw: bytes) -> bytes:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = -1
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length < 0:
            raise SystemExit(f"answer without Content-Length: {head!r}")
        body = await self.reader.readexactly(length)
        if status != b"200":
            raise SystemExit(f"HTTP {status.decode()}: {body[:300]!r}")
        return body

    def close(self) -> None:
        self.writer.close()


def resting(answer: bytes) -> int:
    """How many of the answer's statuses say the order rests."""
    return answer.count(b'"resting"')


async def offered(port: int, bodies: list[bytes], rate: float, batch: int) -> Outcome:
    """Open loop: each request is due at its time and waits for a free connection if
    all are busy; its latency counts from when it was due."""
    latencies: list[float] = []
    failures = 0
    interval = batch / rate
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [await Connection.open(port) for _ in range(OPEN_LOOP_CONNECTIONS)]
    for conn in conns:
        pool.put_nowait(conn)

    async def one(raw: bytes, due: float) -> None:
        nonlocal failures
        conn = await pool.get()
        try:
            answer = await conn.post(raw)
        finally:
            pool.put_nowait(conn)
        took = time.perf_counter() - due
        latencies.extend([took] * batch)
        failures += batch - resting(answer)

    tasks = []
    start = time.perf_counter()
    for i, raw in enumerate(bodies):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raw, due)))
    # Past its offered rate the system builds a backlog it may take minutes to answer:
    # what is unanswered DRAIN_S after the last request was due counts as unanswered.
    _done, late = await asyncio.wait(tasks, timeout=DRAIN_S)
    elapsed = time.perf_counter() - start
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    for conn in conns:
        conn.close()
    answered = len(latencies) // batch
    latencies.extend([math.inf] * (len(late) * batch))
    return Outcome(answered * batch, elapsed, latencies, failures, len(late) * batch)


async def saturated(port: int, bodies: list[bytes], clients: int, batch: int) -> Outcome:
    """Closed loop: each client posts its next request when the last one is answered."""
    pending = list(reversed(bodies))
    latencies: list[float] = []
    failures = 0

    async def client(conn: Connection) -> None:
        nonlocal failures
        while pending:
            raw = pending.pop()
            t0 = time.perf_counter()
            answer = await conn.post(raw)
            latencies.extend([time.perf_counter() - t0] * batch)
            failures += batch - resting(answer)
        conn.close()

    conns = [await Connection.open(port) for _ in range(clients)]
    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
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
        rates = [100.0, 1000.0, 5000.0] if args.quick else [100.0, 1000.0, 5000.0, 10000.0, 20000.0]
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    sat_orders = args.saturation_orders or (6_000 if args.quick else 40_000)
    keys = [wallet(0xB000 + i) for i in range(ACCOUNTS)]
    overrides = {"fetch_max_wait_ms": args.fetch_max_wait_ms}
    async with bench_venue("e2e", keys, "10000000", args.gateways, **overrides) as venue:
        settings, gateway_port = venue.settings, venue.gateway_port
        signer = Signer(keys)
        print(
            f"{args.gateways} gateway(s), risk and matcher as processes; {ACCOUNTS} funded accounts"
        )
        await saturated(
            gateway_port, signer.bodies(gateway_port, 2 * args.clients, 1), args.clients, 1
        )  # warm
        if args.hops:
            conn = await Connection.open(gateway_port)
            lines = await hops(
                settings, conn.post, gateway_port, request, keys, order_wire, args.hops
            )
            conn.close()
            print(f"one order at a time ({args.hops}), median time per hop:")
            print("\n".join(lines))

        for rate in rates:
            requests = max(1, int(rate * seconds / args.batch))
            bodies = signer.bodies(gateway_port, requests, args.batch)
            outcome = await offered(gateway_port, bodies, rate, args.batch)
            print(
                f"offered {rate:,.0f} orders/s for {seconds:.0f} s "
                f"({args.batch} order(s) per request, open loop): {outcome.line()}"
            )

        best = 0.0
        for batch in (1, args.saturation_batch):
            bodies = signer.bodies(gateway_port, max(1, sat_orders // batch), batch)
            outcome = await saturated(gateway_port, bodies, args.clients, batch)
            best = max(best, outcome.rate)
            print(
                f"saturation, {args.clients} clients, {batch} order(s) per request, "
                f"{outcome.orders:,} orders: {outcome.line()}"
            )

        bus = await raw_bus(settings, sat_orders)
        print(f"pipeline at saturation (best of the two) {best:,.0f} orders/s")
        return best / bus


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
    parser.add_argument(
        "--hops", type=int, default=40, help="orders sent one at a time, timed per hop"
    )
    parser.add_argument(
        "--gateways", type=int, default=1, help="gateway processes sharing the port"
    )
    parser.add_argument("--saturation-orders", type=int, default=0)
    parser.add_argument(
        "--fetch-max-wait-ms", type=int, default=Settings().fetch_max_wait_ms, help="services'"
    )
    ratio = uvloop.run(run(parser.parse_args()))
    print(f"e2e_vs_bus_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
